package monitor

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// MaxScale is the largest [Config.Scale]: it turns the guide's one-minute
// periods into one second, about as fast as Prometheus evaluates rules.
const MaxScale = 60

// The exporters whose infrastructure alerts [Config.Exporters] names.
const (
	// ExporterNode is prometheus-node-exporter: the CPU, memory, disk I/O
	// and network alerts.
	ExporterNode = "node"
	// ExporterPostgres is prometheus-postgres-exporter: the PostgreSQL
	// connection alerts.
	ExporterPostgres = "postgres"
)

// DefaultExporters returns the exporters of a zero [Config]: both, as
// scripts/dev runs them.
func DefaultExporters() []string { return []string{ExporterNode, ExporterPostgres} }

// DefaultScrapeInterval is the scrape interval [Config.ScrapeInterval] 0
// stands for, before Scale divides it: [RateWindow] holds four scrapes
// of it.
const DefaultScrapeInterval = 15 * time.Second

// Config says what [Generate] generates. Its zero value gives the guide's
// alerts at the guide's periods (the infrastructure ones on both
// exporters, without the replica router's), the default SLOs and
// relative runbook links, without the traffic alerts.
type Config struct {
	// ExpectedRPS is the request rate, in requests per second, the service
	// expects. 0 leaves out the guide's traffic alerts (below 0.5 × or
	// above 2 × it for 5 minutes): without it there is nothing to compare.
	ExpectedRPS float64
	// SLOs are the service level objectives of the burn-rate alerts. nil
	// means [DefaultSLOs]; an empty, non-nil slice means none.
	SLOs []SLO
	// Exporters are the exporters Prometheus scrapes beside strata serve:
	// [ExporterNode], [ExporterPostgres]. Their infrastructure alerts, and
	// the alerts on their metrics being absent, are generated for these
	// only. nil means [DefaultExporters] (both); an empty, non-nil slice
	// means none.
	Exporters []string
	// Replicas says that strata serve reads through the replica router
	// (it runs with --replica or --shard), which registers
	// strata_replica_query_duration_seconds: it adds the guide's query
	// time alert (StrataDBQueryP95High) and the alert on that metric being
	// absent. Without the router (SQLite, one PostgreSQL) the metric does
	// not exist, and an absent alert on it would fire for ever.
	Replicas bool
	// RunbookURL is the prefix of every alert's runbook_url annotation,
	// which ends "<alert>.md"; "" gives the relative "runbooks/<alert>.md"
	// of the files [Output.Write] writes. An http or https URL, or a path,
	// without spaces or control characters.
	RunbookURL string
	// Scale divides every period: for:, keep_firing_for:, rate windows,
	// burn-rate windows and evaluation intervals, and the SLO guard's
	// count of failed requests. 0 or 1 keeps the guide's; an end-to-end
	// test uses 30, so that a one-minute period becomes two seconds. At
	// most MaxScale. Rate windows do not shrink below four
	// ScrapeIntervals.
	Scale float64
	// ScrapeInterval is the scrape interval of the Prometheus that loads
	// the rules: every rate window is at least four of it, so that it
	// holds samples however far Scale divides it. 0 means
	// [DefaultScrapeInterval] divided by Scale (which never lengthens a
	// window); set it when Prometheus scrapes slower than that.
	ScrapeInterval time.Duration
}

// Rule is one Prometheus recording or alerting rule, in the rule file
// format (rulefmt): Record or Alert is set, not both.
type Rule struct {
	Record string `yaml:"record,omitempty"` // name of the recorded series
	Alert  string `yaml:"alert,omitempty"`  // alert name
	Expr   string `yaml:"expr"`             // PromQL
	For    string `yaml:"for,omitempty"`    // how long Expr must hold before the alert fires
	// KeepFiringFor keeps an alert firing this long after Expr stops
	// holding (Prometheus 2.42 and later), so that a value hovering at
	// the threshold does not resolve and fire again.
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`      // severity, for alerts
	Annotations   map[string]string `yaml:"annotations,omitempty"` // summary, description, runbook_url
}

// RuleGroup is one group of a rule file: its rules run in order, every
// Interval.
type RuleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Runbook is the Markdown page of one alert.
type Runbook struct {
	Alert    string // alert name; the file is runbooks/<Alert>.md
	Markdown string
}

// Output is what [Generate] made: rule groups, their promtool tests,
// runbooks and dashboards, ready for [Output.Write].
type Output struct {
	Groups     []RuleGroup // rules.yml
	Runbooks   []Runbook   // runbooks/<alert>.md, by alert name
	Dashboards []Dashboard // dashboards/<uid>.json, from [Dashboards]
	Config     Config      // the configuration, defaults filled in

	tests testFile // rules_test.yml
	docs  []docRow // for docs/monitoring.md
}

// periods divides the guide's durations by the scale.
type periods struct {
	scale     float64
	minWindow time.Duration // the shortest rate window: four scrapes
}

// d returns d divided by the scale, rounded to the millisecond
// Prometheus keeps.
func (p periods) d(d time.Duration) time.Duration {
	if d == 0 {
		return 0
	}
	s := time.Duration(math.Round(float64(d)/p.scale/float64(time.Millisecond))) * time.Millisecond
	return max(s, time.Millisecond)
}

// w returns the rate window d divided by the scale, but at least four
// scrapes long.
func (p periods) w(d time.Duration) time.Duration { return max(p.d(d), p.minWindow) }

// promDuration formats d as Prometheus writes durations (1m, 2s500ms).
func promDuration(d time.Duration) string { return model.Duration(d).String() }

// Generate returns the rules, tests, runbooks and dashboards for cfg.
func Generate(cfg Config) (*Output, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Scale == 0 {
		cfg.Scale = 1
	}
	if cfg.SLOs == nil {
		cfg.SLOs = DefaultSLOs()
	}
	if cfg.Exporters == nil {
		cfg.Exporters = DefaultExporters()
	}
	if cfg.ScrapeInterval == 0 {
		cfg.ScrapeInterval = periods{scale: cfg.Scale}.d(DefaultScrapeInterval)
	}
	p := periods{scale: cfg.Scale, minWindow: 4 * cfg.ScrapeInterval}
	g := &generator{cfg: cfg, p: p, interval: p.d(ruleInterval)}
	for _, f := range guideFamilies(p, cfg.ExpectedRPS) {
		if g.wants(f.needs) {
			g.addFamily(f)
		}
	}
	for _, s := range cfg.SLOs {
		g.addSLO(s)
	}
	g.addAbsent()
	out := &Output{Groups: g.groups, Dashboards: Dashboards(), Config: cfg, docs: g.docs}
	out.tests = testFile{RuleFiles: []string{"rules.yml"}, EvaluationInterval: promDuration(g.testInterval()), Tests: g.tests}
	for _, b := range g.books {
		out.Runbooks = append(out.Runbooks, Runbook{Alert: b.alert, Markdown: b.markdown(b.alert, g.p)})
	}
	slices.SortFunc(out.Runbooks, func(a, b Runbook) int { return strings.Compare(a.Alert, b.Alert) })
	return out, nil
}

// needReplicas is what a family of the replica router's metrics needs
// (family.needs): [Config.Replicas].
const needReplicas = "replicas"

// wants reports whether the configuration generates what needs: "" is
// always, an exporter when [Config.Exporters] names it, needReplicas with
// [Config.Replicas].
func (g *generator) wants(needs string) bool {
	switch needs {
	case "":
		return true
	case needReplicas:
		return g.cfg.Replicas
	}
	return slices.Contains(g.cfg.Exporters, needs)
}

// ConfigError is a [Config] field [Generate] refuses: the caller (strata
// alerts) names its own flag for Field.
type ConfigError struct {
	Field  string // the Config field: ExpectedRPS, Scale, RunbookURL, …
	Value  string // the value, quoted and cut short if long
	Reason string // what is wrong and what would do
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("monitor: %s %s: %s", e.Field, e.Value, e.Reason)
}

// check refuses a configuration that cannot make rules, naming the field.
func (cfg Config) check() error {
	bad := func(field string, v any, reason string) error {
		val := fmt.Sprint(v)
		if s, ok := v.(string); ok {
			val = clip(s)
		}
		return &ConfigError{Field: field, Value: val, Reason: reason}
	}
	switch {
	case math.IsNaN(cfg.ExpectedRPS) || math.IsInf(cfg.ExpectedRPS, 0) || cfg.ExpectedRPS < 0:
		return bad("ExpectedRPS", cfg.ExpectedRPS, "want 0 (no traffic alerts) or a positive number of requests per second")
	case math.IsNaN(cfg.Scale) || cfg.Scale != 0 && (cfg.Scale < 1 || cfg.Scale > MaxScale):
		return bad("Scale", cfg.Scale, fmt.Sprintf("want 0 or 1 (the guide's periods) up to %d", MaxScale))
	case cfg.ScrapeInterval < 0 || cfg.ScrapeInterval > 0 && cfg.ScrapeInterval < time.Millisecond:
		return bad("ScrapeInterval", cfg.ScrapeInterval, "want 0 (15s divided by Scale) or at least 1ms")
	case cfg.ScrapeInterval > RateWindow:
		return bad("ScrapeInterval", cfg.ScrapeInterval, fmt.Sprintf("want at most %s: the guide's one-minute windows would hold no two scrapes", RateWindow))
	}
	if err := checkRunbookURL(cfg.RunbookURL); err != "" {
		return bad("RunbookURL", cfg.RunbookURL, err)
	}
	for _, e := range cfg.Exporters {
		if e != ExporterNode && e != ExporterPostgres {
			return bad("Exporters", e, fmt.Sprintf("unknown exporter; want %s or %s", ExporterNode, ExporterPostgres))
		}
	}
	seen := map[string]bool{}
	for _, s := range cfg.SLOs {
		if err := s.check(); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("monitor: SLO %s given twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// checkRunbookURL says what is wrong with a runbook URL prefix, or "":
// it must be an http or https URL, or a path, without spaces or control
// characters (which would break the annotation's link).
func checkRunbookURL(raw string) string {
	if raw == "" {
		return ""
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "has spaces or control characters"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return "want an http or https URL, or a path"
	}
	return ""
}

// clip quotes a user's value for a message, cut short if long. (strata
// alerts has its own quote, with the same rule; the command package cannot
// share an unexported helper, and one line of it is not worth a package.)
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// Alerts returns the name of every alert, sorted, each once.
func (o *Output) Alerts() []string { return o.names(func(r Rule) string { return r.Alert }) }

// Records returns the name of every recording rule, sorted, each once.
func (o *Output) Records() []string { return o.names(func(r Rule) string { return r.Record }) }

// names returns name(r) of every rule with one, sorted, each once.
func (o *Output) names(name func(Rule) string) []string {
	var names []string
	for _, g := range o.Groups {
		for _, r := range g.Rules {
			if n := name(r); n != "" {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// RulesYAML returns the rule file, rules.yml.
func (o *Output) RulesYAML() ([]byte, error) {
	return marshal(struct {
		Groups []RuleGroup `yaml:"groups"`
	}{o.Groups})
}

// TestsYAML returns the promtool test file, rules_test.yml, which reads
// rules.yml beside it.
func (o *Output) TestsYAML() ([]byte, error) { return marshal(o.tests) }

func marshal(v any) ([]byte, error) {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	return []byte(b.String()), nil
}

// generator collects the rule groups, tests, runbooks and docs.
type generator struct {
	cfg      Config
	p        periods
	interval time.Duration // of the guide's groups; the SLO groups use twice it
	groups   []RuleGroup
	tests    []testGroup
	books    []namedBook
	docs     []docRow
	reads    map[string][]string // metric -> alerts reading it
	order    []string            // metrics in first-read order
	needs    map[string]string   // metric -> what its alerts need (family.needs)
}

type namedBook struct {
	alert string
	runbook
}

// testInterval is the evaluation interval of the generated promtool
// tests, which promtool applies to every group: the SLO groups' (twice
// the others'). An alert's for: is tested all the same, and the tests of
// the day-long burn-rate windows take half the evaluations.
func (g *generator) testInterval() time.Duration { return 2 * g.interval }

// group returns the named group, added (with interval) if new.
func (g *generator) group(name string, interval time.Duration) *RuleGroup {
	for i := range g.groups {
		if g.groups[i].Name == name {
			return &g.groups[i]
		}
	}
	g.groups = append(g.groups, RuleGroup{Name: name, Interval: promDuration(interval)})
	return &g.groups[len(g.groups)-1]
}

// add appends rules to a group, recording rules once each.
func (rg *RuleGroup) add(rs ...Rule) {
	for _, r := range rs {
		if r.Record != "" && slices.ContainsFunc(rg.Rules, func(o Rule) bool { return o.Record == r.Record }) {
			continue
		}
		rg.Rules = append(rg.Rules, r)
	}
}

// read notes that alert reads metrics, for the absent alerts.
func (g *generator) read(alert string, metrics ...string) {
	if g.reads == nil {
		g.reads = map[string][]string{}
	}
	for _, m := range metrics {
		if _, ok := g.reads[m]; !ok {
			g.order = append(g.order, m)
		}
		if !slices.Contains(g.reads[m], alert) {
			g.reads[m] = append(g.reads[m], alert)
		}
	}
}

// runbookURL is the runbook_url of alert.
func (g *generator) runbookURL(alert string) string {
	if g.cfg.RunbookURL == "" {
		return "runbooks/" + alert + ".md"
	}
	prefix := g.cfg.RunbookURL
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix + alert + ".md"
}

// fmtFloat writes f as PromQL and promtool read it: never with an exponent.
func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// op is the comparison of a family's rules.
func (f family) op() string {
	if f.below {
		return "<"
	}
	return ">"
}

// describe returns the description of f at lv.
func (f family) describe(lv level, forText string) string {
	dir := "above"
	if f.below {
		dir = "below"
	}
	return fmt.Sprintf("%s is {{ $value | %s }}%s, %s the %s threshold of %s for %s (the guide's %s).",
		f.what, f.show.humanize, f.show.after, dir, lv.severity, f.show.format(lv.threshold), forText, f.guide)
}

// format writes v in the display's unit, for docs and descriptions.
func (d display) format(v float64) string {
	n := strconv.FormatFloat(v*d.factor, 'f', -1, 64)
	if d.unit == "" {
		return n
	}
	return n + " " + d.unit
}

// addFamily adds a guide alert's rules, tests, runbook and docs.
func (g *generator) addFamily(f family) {
	rg := g.group(f.group, g.interval)
	rg.add(f.records...)
	forText := promDuration(g.p.d(f.period))
	for _, lv := range f.levels {
		expr := fmt.Sprintf("%s %s %s", f.value, f.op(), fmtFloat(lv.threshold))
		if f.guard != "" {
			expr += " and " + f.guard
		}
		rg.add(Rule{
			Alert: f.name, Expr: expr, For: forText,
			Labels: map[string]string{"severity": lv.severity},
			Annotations: map[string]string{
				"summary":     f.name + ": " + f.summary,
				"description": f.describe(lv, forText),
				"runbook_url": g.runbookURL(f.name),
			},
		})
	}
	g.read(f.name, f.metrics...)
	for _, m := range f.metrics {
		if g.needs == nil {
			g.needs = map[string]string{}
		}
		g.needs[m] = f.needs
	}
	g.books = append(g.books, namedBook{f.name, f.book})
	row := docRow{alert: f.name, period: f.period, guide: f.guide, expr: f.value + " " + f.op() + " …", needs: f.needs}
	for _, lv := range f.levels {
		row.thresholds = append(row.thresholds, lv.severity+" "+f.show.format(lv.threshold))
	}
	g.docs = append(g.docs, row)
	g.tests = append(g.tests, g.familyTests(f)...)
}

// addAbsent adds, for every metric an alert reads, an alert when it is
// absent.
func (g *generator) addAbsent() {
	rg := g.group("strata-absent", g.interval)
	forText := promDuration(g.p.d(AbsentPeriod))
	g.tests = append(g.tests, g.absentTests()...)
	for _, m := range g.order {
		name := absentName(m)
		readers := strings.Join(g.reads[m], ", ")
		rg.add(Rule{
			Alert: name, Expr: fmt.Sprintf("absent(%s)", m), For: forText,
			Labels: map[string]string{"severity": SeverityWarning},
			Annotations: map[string]string{
				"summary":     name + ": no " + m + " series",
				"description": fmt.Sprintf("No series of %s for %s: the alerts that read it (%s) cannot fire.", m, forText, readers),
				"runbook_url": g.runbookURL(name),
			},
		})
		g.books = append(g.books, namedBook{name, bookAbsent(m, g.reads[m])})
		g.docs = append(g.docs, docRow{alert: name, period: AbsentPeriod, thresholds: []string{"warning: no series"}, needs: g.needs[m],
			guide: "Strata's: every metric an alert reads", expr: "absent(" + m + ")"})
	}
}

// absentName is the alert name for an absent metric:
// node_cpu_seconds_total → NodeCpuSecondsTotalAbsent.
func absentName(metric string) string {
	var b strings.Builder
	for _, part := range strings.Split(metric, "_") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String() + "Absent"
}
