package monitor_test

import (
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/monitor"
)

// promtool returns the path of promtool; without it the test is skipped,
// or fails when CI is set (scripts/dev installs Debian's prometheus).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if testdb.Required() {
			t.Fatal("promtool is not installed and CI is set (scripts/dev installs the prometheus package)")
		}
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	return p
}

// runPromtool runs promtool with args and fails the test with its output
// if it fails.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		msg := string(out)
		if len(msg) > 20000 {
			msg = msg[:20000] + "…"
		}
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
}

// TestGeneratedRulesPromtool: at the guide's periods and divided by 30,
// the generated rules pass promtool check rules, and the generated tests
// (a firing and non-firing case for every alert) pass promtool test rules.
func TestGeneratedRulesPromtool(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  monitor.Config
	}{
		// the guide's periods, every alert including the traffic and replica ones
		{"scale 1", monitor.Config{ExpectedRPS: 100, Replicas: true}},
		// an end-to-end test's periods: one minute becomes two seconds
		{"scale 30", mutated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			promtool(t)
			out, err := monitor.Generate(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := out.Write(dir); err != nil {
				t.Fatal(err)
			}
			runPromtool(t, "check", "rules", filepath.Join(dir, "rules.yml"))
			runPromtool(t, "test", "rules", filepath.Join(dir, "rules_test.yml"))
		})
	}
}

// mutated is the configuration TestGeneratedTestsCatchMutations breaks
// (TestGeneratedRulesPromtool shows its tests pass unbroken).
var mutated = monitor.Config{ExpectedRPS: 40, Scale: 30, Replicas: true, RunbookURL: "https://runbooks.example/strata"}

// TestGeneratedTestsCatchMutations: the generated tests fail when the
// rules lose what they test. Each mutation is applied to rules.yml, and
// each test group that must catch it is run alone and must fail:
// removing the minimum-traffic guards (of the guide's alerts and of the
// burn-rate alerts), reading the page alert's short window in place of
// its long one, or its long one in place of its short one, and pointing
// an absent alert at another metric.
func TestGeneratedTestsCatchMutations(t *testing.T) {
	t.Parallel()
	promtool(t)
	out, err := monitor.Generate(mutated)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := out.RulesYAML()
	if err != nil {
		t.Fatal(err)
	}
	tests, err := out.TestsYAML()
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(tests, &file); err != nil {
		t.Fatal(err)
	}
	// group returns the one test group whose YAML has every part.
	group := func(parts ...string) any {
		t.Helper()
		var found []any
		for _, g := range file["tests"].([]any) {
			b, _ := yaml.Marshal(g)
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(string(b), p) }) {
				found = append(found, g)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d test groups have %q", len(found), parts)
		}
		return found[0]
	}
	for _, tc := range []struct {
		name     string
		mutate   func(string) string
		catchers [][]string // the test groups that must fail, by what their YAML holds
	}{
		// every guard removed: the quiet jobs fire
		{"no guards", func(r string) string {
			r = regexp.MustCompile(` and on \(job\) job:strata_http_requests:rate\S+ >= 1`).ReplaceAllString(r, "")
			return regexp.MustCompile(`\s+and on \(job\) slo:sli_error:increase\S+ >= \S+`).ReplaceAllString(r, "")
		}, [][]string{{"alertname: StrataHTTPErrorRateHigh", "-quiet"}, {"alertname: StrataHTTPLatencyP99High", "-quiet"},
			{"alertname: StrataSLOAvailabilityErrorBudgetBurn", "strata-quiet", "long_window: 2m"}}},
		// the page alert reads its short window twice: the blip fires
		{"long window is the short one", func(r string) string {
			return strings.ReplaceAll(r, "\n          slo:sli_error:ratio_rate2m{slo=\"availability\"} > 14.4", "\n          slo:sli_error:ratio_rate10s{slo=\"availability\"} > 14.4")
		}, [][]string{{"strata-blip", "StrataSLOAvailabilityErrorBudgetBurn", `long_window="2m"`}}},
		// the page alert reads its long window twice: the stopped burn never resolves
		{"short window is the long one", func(r string) string {
			return strings.ReplaceAll(r, `and on (job) slo:sli_error:ratio_rate10s{slo="availability"} > 14.4`, `and on (job) slo:sli_error:ratio_rate2m{slo="availability"} > 14.4`)
		}, [][]string{{"strata-stopped", "StrataSLOAvailabilityErrorBudgetBurn", `long_window="2m"`}}},
		// an absent alert on another metric fires at another time
		{"absent on another metric", func(r string) string {
			return strings.Replace(r, "expr: absent(strata_http_requests_total)", "expr: absent(strata_db_in_use_connections)", 1)
		}, [][]string{{"alertname: StrataHttpRequestsTotalAbsent"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.mutate(string(rules))
			if m == string(rules) {
				t.Fatal("the mutation changed nothing")
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(m), 0o644); err != nil {
				t.Fatal(err)
			}
			for i, parts := range tc.catchers {
				one := maps.Clone(file)
				one["tests"] = []any{group(parts...)}
				b, err := yaml.Marshal(one)
				if err != nil {
					t.Fatal(err)
				}
				name := filepath.Join(dir, fmt.Sprintf("test%d.yml", i))
				if err := os.WriteFile(name, b, 0o644); err != nil {
					t.Fatal(err)
				}
				got, err := exec.Command(promtool(t), "test", "rules", name).CombinedOutput()
				if err == nil || !strings.Contains(string(got), "FAILED") {
					t.Errorf("the test group with %q passes the mutated rules: %v\n%.2000s", parts, err, got)
				}
			}
		})
	}
}

// testFile is the part of rules_test.yml the coverage test reads.
type testFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				Labels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertTested: the generated tests hold, for every alert, a
// case where it fires at each severity it has and a case where it must
// not fire.
func TestEveryAlertTested(t *testing.T) {
	out, err := monitor.Generate(monitor.Config{ExpectedRPS: 100, Replicas: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := out.TestsYAML()
	if err != nil {
		t.Fatal(err)
	}
	var tf testFile
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	fired := map[string]map[string]bool{} // alert -> severities tested firing
	quiet := map[string]bool{}            // alert -> a case where it must not fire
	for _, tg := range tf.Tests {
		for _, at := range tg.AlertRuleTest {
			if len(at.ExpAlerts) == 0 {
				quiet[at.Alertname] = true
			}
			for _, a := range at.ExpAlerts {
				if fired[at.Alertname] == nil {
					fired[at.Alertname] = map[string]bool{}
				}
				fired[at.Alertname][a.Labels["severity"]] = true
			}
		}
	}
	severities := map[string]map[string]bool{}
	for _, g := range out.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if severities[r.Alert] == nil {
				severities[r.Alert] = map[string]bool{}
			}
			severities[r.Alert][r.Labels["severity"]] = true
		}
	}
	for _, a := range out.Alerts() {
		if !quiet[a] {
			t.Errorf("%s: no case where it must not fire", a)
		}
		for sev := range severities[a] {
			if !fired[a][sev] {
				t.Errorf("%s: no case where it fires at %s", a, sev)
			}
		}
	}
	if len(out.Alerts()) < 20 {
		t.Errorf("only %d alerts: %v", len(out.Alerts()), out.Alerts())
	}
}

// metricName matches the raw metrics an expression reads.
var metricName = regexp.MustCompile(`\b(strata|node|pg)_[a-zA-Z0-9_]+`)

// TestRulesReadCatalogue: every expression parses as PromQL, and every
// metric a rule reads is in the catalogue (so a renamed metric fails
// here, not in production); every label a selector matches is one the
// metric has.
func TestRulesReadCatalogue(t *testing.T) {
	out, err := monitor.Generate(monitor.Config{ExpectedRPS: 100, Replicas: true})
	if err != nil {
		t.Fatal(err)
	}
	records := out.Records()
	for _, g := range out.Groups {
		for _, r := range g.Rules {
			expr, err := parser.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s%s: %v\n%s", r.Record, r.Alert, err, r.Expr)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok || slices.Contains(records, vs.Name) || !metricName.MatchString(vs.Name) {
					return nil
				}
				m, ok := monitor.Lookup(vs.Name)
				if !ok {
					t.Errorf("%s%s reads %s, which the catalogue lacks", r.Record, r.Alert, vs.Name)
					return nil
				}
				for _, lm := range vs.LabelMatchers {
					if lm.Name == "__name__" || lm.Name == "le" && m.Type == monitor.Histogram {
						continue
					}
					if !slices.Contains(m.Labels, lm.Name) && !slices.Contains(m.OptionalLabels, lm.Name) {
						t.Errorf("%s%s matches label %s of %s, which has %v", r.Record, r.Alert, lm.Name, vs.Name, m.Labels)
					}
				}
				return nil
			})
		}
	}
}

// TestAlertRules: every alert rule has a severity, a for:, a summary, a
// description that shows its value, and a runbook_url with a runbook;
// each guide alert has a warning and a critical rule.
func TestAlertRules(t *testing.T) {
	out, err := monitor.Generate(monitor.Config{ExpectedRPS: 100, Replicas: true})
	if err != nil {
		t.Fatal(err)
	}
	books := map[string]bool{}
	for _, b := range out.Runbooks {
		books[b.Alert] = true
		for _, part := range []string{"## What it means", "## First three checks", "## Usual fixes", "```promql"} {
			if !strings.Contains(b.Markdown, part) {
				t.Errorf("runbook %s lacks %q", b.Alert, part)
			}
		}
	}
	sev := map[string][]string{}
	for _, g := range out.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			sev[r.Alert] = append(sev[r.Alert], r.Labels["severity"])
			switch {
			case r.For == "":
				t.Errorf("%s: no for:", r.Alert)
			case r.Annotations["summary"] == "":
				t.Errorf("%s: no summary", r.Alert)
			case !strings.Contains(r.Annotations["description"], "{{ $value") && !strings.HasSuffix(r.Alert, "Absent"):
				t.Errorf("%s: the description does not show the value: %s", r.Alert, r.Annotations["description"])
			case r.Annotations["runbook_url"] != "runbooks/"+r.Alert+".md":
				t.Errorf("%s: runbook_url %q", r.Alert, r.Annotations["runbook_url"])
			case !books[r.Alert]:
				t.Errorf("%s: no runbook", r.Alert)
			}
		}
	}
	for _, a := range []string{"NodeCPUHigh", "NodeMemoryHigh", "NodeDiskIOHigh", "NodeNetworkReceiveHigh", "NodeNetworkTransmitHigh",
		"PostgresConnectionsHigh", "StrataDBPoolUtilisationHigh", "StrataDBQueryP95High", "StrataHTTPLatencyP50High",
		"StrataHTTPLatencyP95High", "StrataHTTPLatencyP99High", "StrataHTTPSuccessRateLow", "StrataHTTPErrorRateHigh", "StrataHTTPTimeoutRateHigh"} {
		if got := sev[a]; !slices.Equal(got, []string{monitor.SeverityWarning, monitor.SeverityCritical}) {
			t.Errorf("%s: severities %v, want warning and critical", a, got)
		}
	}
	for _, a := range []string{"StrataHTTPTrafficLow", "StrataHTTPTrafficHigh"} {
		if got := sev[a]; !slices.Equal(got, []string{monitor.SeverityWarning}) {
			t.Errorf("%s: severities %v, want warning (the guide gives one threshold)", a, got)
		}
	}
	if len(out.Runbooks) != len(out.Alerts()) {
		t.Errorf("%d runbooks for %d alerts", len(out.Runbooks), len(out.Alerts()))
	}
}

// TestGuideNumbers: the rules compare with the guide's numbers, at its
// periods, and Scale divides every period and window.
func TestGuideNumbers(t *testing.T) {
	find := func(out *monitor.Output, alert, severity string) monitor.Rule {
		for _, g := range out.Groups {
			for _, r := range g.Rules {
				if r.Alert == alert && r.Labels["severity"] == severity {
					return r
				}
			}
		}
		t.Fatalf("no %s at %s", alert, severity)
		return monitor.Rule{}
	}
	guide, err := monitor.Generate(monitor.Config{ExpectedRPS: 200})
	if err != nil {
		t.Fatal(err)
	}
	scaled, err := monitor.Generate(monitor.Config{ExpectedRPS: 200, Scale: 30})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alert, severity, expr, forGuide, forScaled string
	}{
		// CPU 85 % over 5 min
		{"NodeCPUHigh", "critical", "instance:node_cpu_utilisation:ratio_rate1m > 0.85", "5m", "10s"},
		// pool utilisation 75 % over 1 min
		{"StrataDBPoolUtilisationHigh", "warning", "pool:strata_db_connections:ratio > 0.75", "1m", "2s"},
		// p99 2,000 ms over 1 min
		{"StrataHTTPLatencyP99High", "critical", "job:strata_http_request_duration_seconds:p99_rate1m > 2 and", "1m", "2s"},
		// success 99.0 % over 5 min
		{"StrataHTTPSuccessRateLow", "critical", "job:strata_http_success:ratio_rate1m < 0.99 and", "5m", "10s"},
		// timeouts 0.1 %
		{"StrataHTTPTimeoutRateHigh", "warning", "job:strata_http_timeouts:ratio_rate1m > 0.001 and", "5m", "10s"},
		// below 0.5 × the expected 200 requests/s
		{"StrataHTTPTrafficLow", "warning", "job:strata_http_requests:rate1m < 100", "5m", "10s"},
		// above 2 × expected
		{"StrataHTTPTrafficHigh", "warning", "job:strata_http_requests:rate1m > 400", "5m", "10s"},
		// connections 1,500
		{"PostgresConnectionsHigh", "critical", "server:pg_stat_activity:count > 1500", "1m", "2s"},
	} {
		g, s := find(guide, tc.alert, tc.severity), find(scaled, tc.alert, tc.severity)
		if !strings.HasPrefix(g.Expr, tc.expr) || g.For != tc.forGuide {
			t.Errorf("%s %s: %q for %s, want %q… for %s", tc.alert, tc.severity, g.Expr, g.For, tc.expr, tc.forGuide)
		}
		if s.For != tc.forScaled {
			t.Errorf("%s %s at scale 30: for %s, want %s", tc.alert, tc.severity, s.For, tc.forScaled)
		}
	}
	page := find(scaled, "StrataSLOAvailabilityErrorBudgetBurn", "critical")
	if !strings.Contains(page.Expr, "ratio_rate2m{") || !strings.Contains(page.Expr, "ratio_rate10s{") || page.Labels["long_window"] != "2m" {
		t.Errorf("the page alert at scale 30 does not read 2m and 10s windows: %s %v", page.Expr, page.Labels)
	}
}

// TestConfig: the traffic alerts need an expected rate; SLOs nil mean
// the defaults and empty means none; RunbookURL prefixes the links; a
// bad configuration is refused naming the field.
func TestConfig(t *testing.T) {
	out, err := monitor.Generate(monitor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	alerts := out.Alerts()
	for _, a := range []string{"StrataHTTPTrafficLow", "StrataHTTPTrafficHigh"} {
		if slices.Contains(alerts, a) {
			t.Errorf("ExpectedRPS 0 generated %s", a)
		}
	}
	for _, a := range []string{"StrataSLOAvailabilityErrorBudgetBurn", "StrataSLOLatencyErrorBudgetBurn", "NodeCPUHigh", "PostgresConnectionsHigh"} {
		if !slices.Contains(alerts, a) {
			t.Errorf("the zero Config lacks %s", a)
		}
	}
	for _, a := range []string{"StrataDBQueryP95High", "StrataReplicaQueryDurationSecondsBucketAbsent"} {
		if slices.Contains(alerts, a) {
			t.Errorf("the zero Config (no replica router) generated %s", a)
		}
	}
	bare, err := monitor.Generate(monitor.Config{Exporters: []string{}, Replicas: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range bare.Alerts() {
		if strings.HasPrefix(a, "Node") || strings.HasPrefix(a, "Postgres") || strings.HasPrefix(a, "Pg") {
			t.Errorf("Exporters [] generated %s", a)
		}
	}
	if !slices.Contains(bare.Alerts(), "StrataDBQueryP95High") || !slices.Contains(bare.Alerts(), "StrataReplicaQueryDurationSecondsBucketAbsent") {
		t.Errorf("Replicas did not add the query time alert and its absent alert: %v", bare.Alerts())
	}
	none, err := monitor.Generate(monitor.Config{SLOs: []monitor.SLO{}, RunbookURL: "https://wiki.example/run/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range none.Alerts() {
		if strings.HasPrefix(a, "StrataSLO") {
			t.Errorf("SLOs [] generated %s", a)
		}
	}
	if u := none.Groups[0].Rules[1].Annotations["runbook_url"]; u != "https://wiki.example/run/NodeCPUHigh.md" {
		t.Errorf("runbook_url %q", u)
	}

	for _, tc := range []struct {
		name string
		cfg  monitor.Config
		want string
	}{
		// a negative rate cannot be expected
		{"negative rps", monitor.Config{ExpectedRPS: -1}, "ExpectedRPS -1"},
		// NaN is not a rate
		{"NaN rps", monitor.Config{ExpectedRPS: math.NaN()}, "ExpectedRPS NaN"},
		// scales under 1 would stretch periods
		{"scale under 1", monitor.Config{Scale: 0.5}, "Scale 0.5"},
		// scales past 60 make periods Prometheus cannot evaluate
		{"scale too large", monitor.Config{Scale: 1000}, "Scale 1000"},
		// a URL with spaces breaks the annotation
		{"runbook url", monitor.Config{RunbookURL: "http://x/a b"}, "RunbookURL"},
		// a runbook of another scheme would not open
		{"runbook scheme", monitor.Config{RunbookURL: "ftp://x/runbooks"}, "want an http or https URL"},
		// an exporter Strata has no alerts for
		{"unknown exporter", monitor.Config{Exporters: []string{"mysql"}}, `Exporters "mysql": unknown exporter`},
		// scraping slower than the guide's one-minute windows
		{"slow scrapes", monitor.Config{ScrapeInterval: 2 * time.Minute}, "ScrapeInterval 2m0s"},
		// an SLO of 100 % has no budget
		{"slo 100", monitor.Config{SLOs: []monitor.SLO{{Name: "availability", Objective: 100}}}, "objective 100"},
		// the same SLO twice
		{"slo twice", monitor.Config{SLOs: []monitor.SLO{{Name: "availability", Objective: 99}, {Name: "availability", Objective: 99.5}}}, "given twice"},
		// a latency threshold between buckets cannot be measured
		{"latency off bucket", monitor.Config{SLOs: []monitor.SLO{{Name: "latency", Objective: 99, Threshold: 120_000_000}}}, "not a bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := monitor.Generate(tc.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "monitor: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestWrite: Write puts every file Files names where it says, the rules
// and tests decode, and the test file reads rules.yml beside it.
func TestWrite(t *testing.T) {
	out, err := monitor.Generate(monitor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "new")
	if err := out.Write(dir); err != nil {
		t.Fatal(err)
	}
	files := out.Files()
	for _, want := range []string{"rules.yml", "rules_test.yml", "runbooks/NodeCPUHigh.md", "dashboards/" + monitor.Dashboards()[0].UID + ".json"} {
		if !slices.Contains(files, filepath.FromSlash(want)) {
			t.Errorf("Files lacks %s", want)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v, %d bytes", f, err, len(b))
		}
	}
	var rules struct {
		Groups []monitor.RuleGroup `yaml:"groups"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "rules.yml"))
	if err := yaml.Unmarshal(b, &rules); err != nil || len(rules.Groups) != len(out.Groups) {
		t.Errorf("rules.yml: %v, %d groups", err, len(rules.Groups))
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	b, _ = os.ReadFile(filepath.Join(dir, "rules_test.yml"))
	if err := yaml.Unmarshal(b, &tests); err != nil || !slices.Equal(tests.RuleFiles, []string{"rules.yml"}) {
		t.Errorf("rules_test.yml: %v, rule_files %v", err, tests.RuleFiles)
	}
	// a directory that is a file is an error, not a panic
	if err := out.Write(filepath.Join(dir, "rules.yml")); err == nil || !strings.HasPrefix(err.Error(), "monitor: ") {
		t.Errorf("Write under a file: %v", err)
	}
}

// TestDocs: docs/monitoring.md is what Docs writes (STRATA_UPDATE_DOCS=1
// rewrites it), and lists every alert.
func TestDocs(t *testing.T) {
	want, err := monitor.Docs()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", filepath.FromSlash(monitor.DocsPath))
	if os.Getenv("STRATA_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from monitor.Docs(): run STRATA_UPDATE_DOCS=1 go test ./monitor/ -run TestDocs (or strata alerts --docs > %s)", monitor.DocsPath, monitor.DocsPath)
	}
	out, err := monitor.Generate(monitor.Config{ExpectedRPS: monitor.DefaultExpectedRPS})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Alerts() {
		if !strings.Contains(string(want), "`"+a+"`") {
			t.Errorf("the docs lack %s", a)
		}
	}
}

// TestRunbookQueries: every query of every runbook, at the guide's
// periods and scaled, parses as PromQL, reads catalogued metrics (or the
// rules' own series, or Prometheus's up and scrape_samples_scraped),
// and names no job: Prometheus configurations name the storefront's job
// as they like (scripts/dev: "storefront").
func TestRunbookQueries(t *testing.T) {
	block := regexp.MustCompile("(?s)```promql\n\\s*(.*?)\n\\s*```")
	for _, cfg := range []monitor.Config{{ExpectedRPS: 100, Replicas: true}, {ExpectedRPS: 100, Replicas: true, Scale: 30}} {
		out, err := monitor.Generate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		records := out.Records()
		for _, b := range out.Runbooks {
			qs := block.FindAllStringSubmatch(b.Markdown, -1)
			if len(qs) != 3 {
				t.Errorf("%s: %d queries, want 3", b.Alert, len(qs))
			}
			for _, q := range qs {
				expr, err := parser.ParseExpr(q[1])
				if err != nil {
					t.Errorf("%s (scale %v): %v\n%s", b.Alert, cfg.Scale, err, q[1])
					continue
				}
				if strings.Contains(q[1], "job=") {
					t.Errorf("%s: the query names a job: %s", b.Alert, q[1])
				}
				parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
					vs, ok := n.(*parser.VectorSelector)
					if !ok || vs.Name == "" || vs.Name == "up" || vs.Name == "scrape_samples_scraped" || slices.Contains(records, vs.Name) {
						return nil
					}
					if _, ok := monitor.Lookup(vs.Name); !ok {
						t.Errorf("%s reads %s, which the catalogue lacks", b.Alert, vs.Name)
					}
					return nil
				})
			}
			if cfg.Scale == 30 && strings.Contains(b.Markdown, "[5m]") {
				t.Errorf("%s at scale 30 still reads five-minute windows", b.Alert)
			}
		}
	}
}
