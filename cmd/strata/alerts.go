package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-dev/strata/monitor"
)

// alertsFlags are strata alerts' flags.
type alertsFlags struct {
	out         string
	expectedRPS float64
	slo         string
	exporters   string
	replicas    bool
	runbookURL  string
	scale       float64
	scrape      time.Duration
	docs        bool
	flagSet     func(name string) bool
}

// alertsField returns the flag of a monitor.Config field, or "".
func alertsField(field string) string {
	return map[string]string{
		"ExpectedRPS": "--expected-rps", "Scale": "--scale", "ScrapeInterval": "--scrape-interval",
		"RunbookURL": "--runbook-url", "Exporters": "--exporters",
	}[field]
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
availability=99.9,latency=p99<100ms; none: no burn-rate alerts).
--exporters names the exporters Prometheus scrapes (default node,postgres, as
scripts/dev runs them; none: no infrastructure alerts). --replicas adds the
query time alert, for strata serve with --replica or --shard. --scale
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
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{flagError(err)} })
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "", "directory to write rules.yml, rules_test.yml, dashboards/ and runbooks/ into (created if missing; required)")
	fl.Float64Var(&f.expectedRPS, "expected-rps", 0, "requests per second the service expects; adds the alerts for traffic below 0.5 × or above 2 × it (0: none)")
	fl.StringVar(&f.slo, "slo", "", `SLOs of the burn-rate alerts, e.g. availability=99.9,latency=p99<100ms (the default), or none`)
	fl.StringVar(&f.runbookURL, "runbook-url", "", `prefix of each alert's runbook_url, which ends <alert>.md (default: the relative runbooks/<alert>.md)`)
	fl.StringVar(&f.exporters, "exporters", strings.Join(monitor.DefaultExporters(), ","), "exporters Prometheus scrapes, whose infrastructure alerts to write: node, postgres, both, or none")
	fl.BoolVar(&f.replicas, "replicas", false, "strata serve reads through the replica router (--replica or --shard): add the query time alert and its absent alert")
	fl.Float64Var(&f.scale, "scale", 1, fmt.Sprintf("divide every period (for:, windows, intervals) by this, 1 to %d: a test uses 30, so that 1m becomes 2s", monitor.MaxScale))
	fl.DurationVar(&f.scrape, "scrape-interval", 0, "scrape interval of the Prometheus that loads the rules; every rate window holds four of it (default 15s divided by --scale)")
	fl.BoolVar(&f.docs, "docs", false, "print docs/monitoring.md (every alert, its thresholds, the guide's numbers) to standard output and write nothing")
	return cmd
}

// config checks the flags, naming the bad one, and returns the
// generator's configuration; monitor.Generate checks the values.
func (f *alertsFlags) config() (monitor.Config, error) {
	switch {
	case f.docs && f.flagSet("out"):
		return monitor.Config{}, errors.New("--docs and --out: choose one (--docs prints the document and writes nothing)")
	case f.docs:
		for _, name := range []string{"expected-rps", "slo", "exporters", "replicas", "runbook-url", "scale", "scrape-interval"} {
			if f.flagSet(name) {
				return monitor.Config{}, fmt.Errorf("--%s has no effect with --docs (the document shows the defaults)", name)
			}
		}
		return monitor.Config{}, nil
	case f.out == "":
		return monitor.Config{}, errors.New("--out is required: the directory to write the rules, tests, dashboards and runbooks into")
	case f.scale == 0:
		return monitor.Config{}, fmt.Errorf("--scale 0: want 1 (the guide's periods) to %d", monitor.MaxScale)
	}
	cfg := monitor.Config{ExpectedRPS: f.expectedRPS, Scale: f.scale, RunbookURL: f.runbookURL, Replicas: f.replicas,
		ScrapeInterval: f.scrape, Exporters: []string{}}
	if f.exporters != "none" {
		for e := range strings.SplitSeq(f.exporters, ",") {
			cfg.Exporters = append(cfg.Exporters, strings.TrimSpace(e))
		}
	}
	if f.flagSet("slo") {
		slos, err := monitor.ParseSLOs(f.slo)
		if err != nil {
			return monitor.Config{}, fmt.Errorf("--slo: %s", strings.TrimPrefix(err.Error(), "monitor: "))
		}
		cfg.SLOs = slos
	}
	return cfg, nil
}

// flagError rewords a flag parse error so that it quotes the value once,
// cut short: pflag's repeats it whole, twice.
func flagError(err error) error {
	var ve *pflag.InvalidValueError
	if !errors.As(err, &ve) {
		return errors.New(bounded(err.Error()))
	}
	why := "not valid"
	switch {
	case ve.GetFlag().Value.Type() == "duration":
		why = "not a duration such as 15s"
	case errors.Is(err, strconv.ErrRange):
		why = "out of range"
	case errors.Is(err, strconv.ErrSyntax):
		why = "not a number"
	}
	return fmt.Errorf("--%s %s: %s", ve.GetFlag().Name, quote(ve.GetValue()), why)
}

// write generates and writes the files, and says what it wrote.
func (f *alertsFlags) write(cfg monitor.Config, stdout io.Writer) error {
	out, err := monitor.Generate(cfg)
	var ce *monitor.ConfigError
	switch {
	case errors.As(err, &ce) && alertsField(ce.Field) != "":
		return usageError{fmt.Errorf("%s %s: %s", alertsField(ce.Field), ce.Value, ce.Reason)}
	case err != nil:
		return usageError{errors.New(bounded(strings.TrimPrefix(err.Error(), "monitor: ")))}
	}
	if err := out.Write(f.out); err != nil {
		// The path is quoted once, cut short: the OS error would repeat it.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		return fmt.Errorf("cannot write the rules into %s: %s", quote(f.out), bounded(strings.TrimPrefix(err.Error(), "monitor: ")))
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
