package monitor

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// MaxScale is the largest [Config.Scale]: it turns the guide's one-minute
// periods into one second, about as fast as Prometheus evaluates rules.
const MaxScale = 60

// Config says what [Generate] generates. Its zero value gives the guide's
// alerts at the guide's periods, the default SLOs and relative runbook
// links, without the traffic alerts.
type Config struct {
	// ExpectedRPS is the request rate, in requests per second, the service
	// expects. 0 leaves out the guide's traffic alerts (below 0.5 × or
	// above 2 × it for 5 minutes): without it there is nothing to compare.
	ExpectedRPS float64
	// SLOs are the service level objectives of the burn-rate alerts. nil
	// means [DefaultSLOs]; an empty, non-nil slice means none.
	SLOs []SLO
	// RunbookURL is the prefix of every alert's runbook_url annotation,
	// which ends "<alert>.md"; "" gives the relative "runbooks/<alert>.md"
	// of the files [Output.Write] writes.
	RunbookURL string
	// Scale divides every period: for:, rate windows, burn-rate windows
	// and evaluation intervals. 0 or 1 keeps the guide's; an end-to-end
	// test uses 30, so that a one-minute period becomes two seconds. At
	// most MaxScale.
	Scale float64
}

// Rule is one Prometheus recording or alerting rule, in the rule file
// format (rulefmt): Record or Alert is set, not both.
type Rule struct {
	Record      string            `yaml:"record,omitempty"`      // name of the recorded series
	Alert       string            `yaml:"alert,omitempty"`       // alert name
	Expr        string            `yaml:"expr"`                  // PromQL
	For         string            `yaml:"for,omitempty"`         // how long Expr must hold before the alert fires
	Labels      map[string]string `yaml:"labels,omitempty"`      // severity, for alerts
	Annotations map[string]string `yaml:"annotations,omitempty"` // summary, description, runbook_url
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
type periods struct{ scale float64 }

// d returns d divided by the scale, rounded to the millisecond
// Prometheus keeps.
func (p periods) d(d time.Duration) time.Duration {
	if d == 0 {
		return 0
	}
	s := time.Duration(math.Round(float64(d)/p.scale/float64(time.Millisecond))) * time.Millisecond
	return max(s, time.Millisecond)
}

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
	p := periods{cfg.Scale}
	g := &generator{cfg: cfg, p: p, interval: p.d(ruleInterval)}
	fams := guideFamilies(p, cfg.ExpectedRPS)
	for _, f := range fams {
		g.addFamily(f)
	}
	for _, s := range cfg.SLOs {
		g.addSLO(s)
	}
	g.addAbsent()
	out := &Output{Groups: g.groups, Dashboards: Dashboards(), Config: cfg, docs: g.docs}
	out.tests = testFile{RuleFiles: []string{"rules.yml"}, EvaluationInterval: promDuration(g.interval), Tests: g.tests}
	for _, b := range g.books {
		out.Runbooks = append(out.Runbooks, Runbook{Alert: b.alert, Markdown: b.markdown(cfg, b.alert)})
	}
	slices.SortFunc(out.Runbooks, func(a, b Runbook) int { return strings.Compare(a.Alert, b.Alert) })
	return out, nil
}

// check refuses a configuration that cannot make rules, naming the field.
func (cfg Config) check() error {
	switch {
	case math.IsNaN(cfg.ExpectedRPS) || math.IsInf(cfg.ExpectedRPS, 0) || cfg.ExpectedRPS < 0:
		return fmt.Errorf("monitor: ExpectedRPS %v: want 0 (no traffic alerts) or a positive number of requests per second", cfg.ExpectedRPS)
	case math.IsNaN(cfg.Scale) || cfg.Scale != 0 && (cfg.Scale < 1 || cfg.Scale > MaxScale):
		return fmt.Errorf("monitor: Scale %v: want 0 or 1 (the guide's periods) up to %d", cfg.Scale, MaxScale)
	}
	if cfg.RunbookURL != "" {
		if strings.ContainsFunc(cfg.RunbookURL, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("monitor: RunbookURL %s: has spaces or control characters", clip(cfg.RunbookURL))
		}
		if _, err := url.Parse(cfg.RunbookURL); err != nil {
			return fmt.Errorf("monitor: RunbookURL %s: not a URL", clip(cfg.RunbookURL))
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

// clip quotes a user's value for a message, cut short if long.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// Alerts returns the name of every alert, sorted, each once.
func (o *Output) Alerts() []string {
	var names []string
	for _, g := range o.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Records returns the name of every recording rule, sorted, each once.
func (o *Output) Records() []string {
	var names []string
	for _, g := range o.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				names = append(names, r.Record)
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
	ivals    map[string]time.Duration // group -> its interval
	reads    map[string][]string      // metric -> alerts reading it
	order    []string                 // metrics in first-read order
}

type namedBook struct {
	alert string
	runbook
}

// group returns the named group, added (with interval) if new.
func (g *generator) group(name string, interval time.Duration) *RuleGroup {
	for i := range g.groups {
		if g.groups[i].Name == name {
			return &g.groups[i]
		}
	}
	if g.ivals == nil {
		g.ivals = map[string]time.Duration{}
	}
	g.ivals[name] = interval
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
	g.books = append(g.books, namedBook{f.name, f.book})
	row := docRow{alert: f.name, period: f.period, guide: f.guide, expr: f.value + " " + f.op() + " …"}
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
		g.docs = append(g.docs, docRow{alert: name, period: AbsentPeriod, thresholds: []string{"warning: no series"},
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
