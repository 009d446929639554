package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/monitor"
)

// alertsFlags are strata alerts' flags.
type alertsFlags struct {
	out         string
	expectedRPS float64
	slo         string
	runbookURL  string
	scale       float64
	docs        bool
	flagSet     func(name string) bool
}

func newAlerts(g *globals) *cobra.Command {
	f := &alertsFlags{}
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Write Prometheus alert and recording rules, their promtool tests, Grafana dashboards and runbooks",
		Long: `Write, under --out DIR, what Prometheus and Grafana need to watch Strata, all
generated from the metrics Strata registers:

  DIR/rules.yml              recording and alerting rules: the guide's warning and
                             critical thresholds with their periods, SLO burn-rate
                             alerts, an alert for every metric an alert reads when
                             it is absent
  DIR/rules_test.yml         promtool tests: every alert fires at its severity
                             after its period, and not before or below it
  DIR/dashboards/<uid>.json  Grafana dashboards
  DIR/runbooks/<alert>.md    one runbook per alert

--expected-rps adds the guide's traffic alerts (below 0.5 × or above 2 × the
rate for 5 minutes). --slo sets the SLOs of the burn-rate alerts (default
availability=99.9,latency=p99<100ms; none: no burn-rate alerts). --scale
divides every period, for tests. --docs prints docs/monitoring.md instead.`,
		Example: `  strata alerts --out /etc/prometheus/strata --expected-rps 200
  promtool test rules /etc/prometheus/strata/rules_test.yml
  strata alerts --out rules --slo availability=99.95,latency=p99<250ms --runbook-url https://wiki.example/runbooks
  strata alerts --docs > docs/monitoring.md`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.flagSet = func(name string) bool { return cmd.Flags().Changed(name) }
			cfg, err := f.config()
			if err != nil {
				return usageError{err}
			}
			if f.docs {
				b, err := monitor.Docs()
				if err != nil {
					return err
				}
				_, err = g.stdout.Write(b)
				return err
			}
			return f.write(cfg, g.stdout)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "", "directory to write rules.yml, rules_test.yml, dashboards/ and runbooks/ into (created if missing; required)")
	fl.Float64Var(&f.expectedRPS, "expected-rps", 0, "requests per second the service expects; adds the alerts for traffic below 0.5 × or above 2 × it (0: none)")
	fl.StringVar(&f.slo, "slo", "", `SLOs of the burn-rate alerts, e.g. availability=99.9,latency=p99<100ms (the default), or none`)
	fl.StringVar(&f.runbookURL, "runbook-url", "", `prefix of each alert's runbook_url, which ends <alert>.md (default: the relative runbooks/<alert>.md)`)
	fl.Float64Var(&f.scale, "scale", 1, fmt.Sprintf("divide every period (for:, windows, intervals) by this, 1 to %d: a test uses 30, so that 1m becomes 2s", monitor.MaxScale))
	fl.BoolVar(&f.docs, "docs", false, "print docs/monitoring.md (every alert, its thresholds, the guide's numbers) to standard output and write nothing")
	return cmd
}

// config checks the flags, naming the bad one, and returns the
// generator's configuration.
func (f *alertsFlags) config() (monitor.Config, error) {
	switch {
	case f.docs && f.flagSet("out"):
		return monitor.Config{}, errors.New("--docs and --out: choose one (--docs prints the document and writes nothing)")
	case f.docs:
		for _, name := range []string{"expected-rps", "slo", "runbook-url", "scale"} {
			if f.flagSet(name) {
				return monitor.Config{}, fmt.Errorf("--%s has no effect with --docs (the document shows the defaults)", name)
			}
		}
		return monitor.Config{}, nil
	case f.out == "":
		return monitor.Config{}, errors.New("--out is required: the directory to write the rules, tests, dashboards and runbooks into")
	case !(f.expectedRPS >= 0) || math.IsInf(f.expectedRPS, 0):
		return monitor.Config{}, fmt.Errorf("--expected-rps %v: want 0 (no traffic alerts) or a positive number of requests per second", f.expectedRPS)
	case !(f.scale >= 1 && f.scale <= monitor.MaxScale):
		return monitor.Config{}, fmt.Errorf("--scale %v: want 1 (the guide's periods) to %d", f.scale, monitor.MaxScale)
	}
	cfg := monitor.Config{ExpectedRPS: f.expectedRPS, Scale: f.scale, RunbookURL: f.runbookURL}
	if f.flagSet("slo") {
		slos, err := monitor.ParseSLOs(f.slo)
		if err != nil {
			return monitor.Config{}, fmt.Errorf("--slo: %s", strings.TrimPrefix(err.Error(), "monitor: "))
		}
		cfg.SLOs = slos
	}
	if f.runbookURL != "" {
		if err := checkRunbookURL(f.runbookURL); err != nil {
			return monitor.Config{}, err
		}
	}
	return cfg, nil
}

// checkRunbookURL accepts an http(s) URL or a path, without spaces.
func checkRunbookURL(raw string) error {
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("--runbook-url %s: has spaces or control characters", quote(raw))
	}
	if i := strings.Index(raw, "://"); i >= 0 && raw[:i] != "http" && raw[:i] != "https" {
		return fmt.Errorf("--runbook-url %s: want an http or https URL, or a path", quote(raw))
	}
	return nil
}

// write generates and writes the files, and says what it wrote.
func (f *alertsFlags) write(cfg monitor.Config, stdout io.Writer) error {
	out, err := monitor.Generate(cfg)
	if err != nil {
		return usageError{fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "monitor: "))}
	}
	if err := out.Write(f.out); err != nil {
		return fmt.Errorf("cannot write the rules into %s: %s", quote(f.out), strings.TrimPrefix(err.Error(), "monitor: "))
	}
	var records, alerts int
	for _, g := range out.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts++
			} else {
				records++
			}
		}
	}
	dir := f.out
	fmt.Fprintf(stdout, "wrote %s: %d groups, %d recording and %d alerting rules (%d alerts)\n",
		filepath.Join(dir, "rules.yml"), len(out.Groups), records, alerts, len(out.Alerts()))
	fmt.Fprintf(stdout, "wrote %s: promtool tests, a firing and a non-firing case for every alert\n", filepath.Join(dir, "rules_test.yml"))
	fmt.Fprintf(stdout, "wrote %s: %d dashboards\n", filepath.Join(dir, "dashboards"), len(out.Dashboards))
	fmt.Fprintf(stdout, "wrote %s: %d runbooks\n", filepath.Join(dir, "runbooks"), len(out.Runbooks))
	if cfg.ExpectedRPS == 0 {
		fmt.Fprintln(stdout, "no traffic alerts: --expected-rps was not given")
	}
	fmt.Fprintf(stdout, "check them with: promtool check rules %s && promtool test rules %s\n",
		filepath.Join(dir, "rules.yml"), filepath.Join(dir, "rules_test.yml"))
	return nil
}
