package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/monitor"
)

// TestAlertsBadInput: each bad command line of strata alerts is a usage
// error (exit 2) naming the flag, short, never echoing a huge value.
func TestAlertsBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		// --out has no default: the command must not write into the working folder unasked
		{"no out", []string{"alerts"}, 2, []string{"--out is required"}},
		// a negative rate
		{"negative rps", []string{"alerts", "--out", out, "--expected-rps", "-5"}, 2, []string{"--expected-rps -5: want 0"}},
		// an infinite rate
		{"inf rps", []string{"alerts", "--out", out, "--expected-rps", "+Inf"}, 2, []string{"--expected-rps +Inf"}},
		// not a number: cobra's parse error is a usage error too
		{"rps not a number", []string{"alerts", "--out", out, "--expected-rps", "lots"}, 2, []string{"--expected-rps", "lots"}},
		// a huge rate is quoted once, cut short (pflag's message repeats it whole, twice)
		{"huge rps", []string{"alerts", "--out", out, "--expected-rps", strings.Repeat("9", 5000)}, 2, []string{"--expected-rps \"999", "(5000 bytes): out of range"}},
		// a huge scale likewise
		{"huge scale", []string{"alerts", "--out", out, "--scale", strings.Repeat("x", 5000)}, 2, []string{"--scale \"xxx", "(5000 bytes): not a number"}},
		// a scrape interval that is not a duration
		{"scrape not a duration", []string{"alerts", "--out", out, "--scrape-interval", strings.Repeat("y", 5000)}, 2, []string{"--scrape-interval \"yyy", "not a duration"}},
		// scrapes too slow for the guide's one-minute windows
		{"scrape too slow", []string{"alerts", "--out", out, "--scrape-interval", "2m"}, 2, []string{"--scrape-interval 2m0s: want at most 1m0s"}},
		// an exporter Strata has no alerts for
		{"unknown exporter", []string{"alerts", "--out", out, "--exporters", "node,mysql"}, 2, []string{`--exporters "mysql": unknown exporter`}},
		// a scale under 1
		{"scale 0.5", []string{"alerts", "--out", out, "--scale", "0.5"}, 2, []string{"--scale 0.5: want 0 or 1"}},
		// a scale of 0 on the command line is a mistake, not the default
		{"scale 0", []string{"alerts", "--out", out, "--scale", "0"}, 2, []string{"--scale 0: want 1"}},
		// a scale past what Prometheus can evaluate
		{"scale 1000", []string{"alerts", "--out", out, "--scale", "1000"}, 2, []string{"--scale 1000", "to 60"}},
		// an unknown SLO is named
		{"unknown slo", []string{"alerts", "--out", out, "--slo", "throughput=99"}, 2, []string{`--slo: SLO "throughput=99": unknown SLO "throughput"`}},
		// an empty --slo is a mistake, not "none"
		{"empty slo", []string{"alerts", "--out", out, "--slo", ""}, 2, []string{"--slo: SLO list is empty"}},
		// a latency threshold between buckets
		{"slo off bucket", []string{"alerts", "--out", out, "--slo", "latency=p99<120ms"}, 2, []string{"--slo: SLO latency: threshold 120ms is not a bucket"}},
		// a huge --slo is not echoed
		{"huge slo", []string{"alerts", "--out", out, "--slo", strings.Repeat("availability=99,", 10_000)}, 2, []string{"--slo: SLO list is 160000 bytes"}},
		// a runbook URL with a space
		{"runbook space", []string{"alerts", "--out", out, "--runbook-url", "https://wiki/a b"}, 2, []string{"--runbook-url", "spaces"}},
		// a runbook URL of another scheme
		{"runbook scheme", []string{"alerts", "--out", out, "--runbook-url", "ftp://wiki/runbooks"}, 2, []string{"--runbook-url", "want an http or https URL"}},
		// --docs prints, --out writes: not both
		{"docs and out", []string{"alerts", "--docs", "--out", out}, 2, []string{"--docs and --out: choose one"}},
		// --docs shows the defaults; a flag that changes them is a mistake
		{"docs and slo", []string{"alerts", "--docs", "--slo", "none"}, 2, []string{"--slo has no effect with --docs"}},
		// positional arguments are refused
		{"argument", []string{"alerts", "--out", out, "extra"}, 2, []string{"takes no arguments"}},
		// --out under a file cannot be created: a runtime error (exit 1)
		{"out under a file", []string{"alerts", "--out", filepath.Join(file, "rules")}, 1, []string{"cannot write the rules into", "mkdir: not a directory"}},
		// a long --out is quoted once, cut short: the OS error's path is dropped
		{"long out under a file", []string{"alerts", "--out", filepath.Join(file, strings.Repeat("d", 3000))}, 1, []string{"cannot write the rules into", "bytes): mkdir: not a directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runBadInput(t, tc.args, tc.code, tc.want)
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused command wrote %s", out)
	}
}

// TestAlertsWrites: strata alerts writes the files it lists, and promtool
// accepts them: check rules on the defaults, and test rules on a fast
// configuration (scale 30, no SLOs; monitor's own tests run the rest).
func TestAlertsWrites(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, "alerts", "--out", dir, "--expected-rps", "40", "--replicas", "--runbook-url", "https://wiki.example/runbooks")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"wrote " + filepath.Join(dir, "rules.yml"), "wrote " + filepath.Join(dir, "rules_test.yml"), "dashboards", "runbooks", "promtool test rules"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"rules.yml", "rules_test.yml", "runbooks/StrataHTTPSuccessRateLow.md", "runbooks/StrataHTTPTrafficHigh.md", "runbooks/StrataDBQueryP95High.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	rules, _ := os.ReadFile(filepath.Join(dir, "rules.yml"))
	if !strings.Contains(string(rules), "https://wiki.example/runbooks/NodeCPUHigh.md") {
		t.Errorf("rules.yml lacks the runbook URL")
	}
	fast := t.TempDir()
	if code, out, errOut := runCLI(t, "alerts", "--out", fast, "--scale", "30", "--slo", "none", "--exporters", "none"); code != 0 || !strings.Contains(out, "no traffic alerts") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(fast, "rules.yml")); strings.Contains(string(b), "node_") || strings.Contains(string(b), "strata_replica_") {
		t.Errorf("--exporters none and no --replicas still read exporter or replica metrics")
	}
	promtool := lookPromtool(t)
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(dir, "rules.yml")},
		{"check", "rules", filepath.Join(fast, "rules.yml")},
		{"test", "rules", filepath.Join(fast, "rules_test.yml")},
	} {
		if b, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%.5000s", strings.Join(args, " "), err, b)
		}
	}
}

// TestAlertsDocs: --docs prints what docs/monitoring.md holds.
func TestAlertsDocs(t *testing.T) {
	code, out, errOut := runCLI(t, "alerts", "--docs")
	want, err := monitor.Docs()
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || out != string(want) {
		t.Fatalf("exit %d, %d bytes, want %d\n%s", code, len(out), len(want), errOut)
	}
}

// lookPromtool returns promtool's path; without it the test is skipped,
// or fails when CI is set. (monitor's tests have the same lookup, and run
// promtool on everything monitor generates; this one runs it on what the
// command writes.)
func lookPromtool(t *testing.T) string {
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
