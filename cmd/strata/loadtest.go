package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/term"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/loadtest"
)

func newLoadtest(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Load-test an HTTP service",
		Long: `Load-test an HTTP service on an open model, with latency measured from
each request's scheduled send time (no coordinated omission).`,
	}
	cmd.AddCommand(newAttack(g), newLoadtestInit(g), newLoadtestRun(g), newLoadtestMerge(g))
	return cmd
}

// reportFiles are the report outputs that run and merge both write.
type reportFiles struct{ json, junit, html string }

func (f *reportFiles) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.json, "json", "", "write the report as JSON (what merge reads)")
	cmd.Flags().StringVar(&f.junit, "junit", "", "write the verdicts as JUnit XML, a test case per criterion")
	cmd.Flags().StringVar(&f.html, "html", "", "write a self-contained HTML report with charts")
}

func (f *reportFiles) write(rep *loadtest.Report) error {
	for _, out := range []struct {
		flag, path string
		write      func(io.Writer) error
	}{{"--json", f.json, rep.WriteJSON}, {"--junit", f.junit, rep.WriteJUnit}, {"--html", f.html, rep.WriteHTML}} {
		if out.path == "" {
			continue
		}
		if err := writeFile(out.path, out.write); err != nil {
			return fmt.Errorf("%s: %w", out.flag, err)
		}
	}
	return nil
}

// writeFile writes through a temporary file renamed into place, so that a
// failure leaves no half-written report. The file is created 0644 less
// the umask, as os.WriteFile would (os.CreateTemp's 0600 is for secrets),
// under a random name tried afresh if it exists (a file a killed run left).
func writeFile(path string, write func(io.Writer) error) error {
	var tmp *os.File
	var err error
	for range 100 {
		name := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%08x.tmp", filepath.Base(path), rand.Uint32()))
		if tmp, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// verdictError turns a report's assessment into the exit code: nil when
// it passed.
func verdictError(rep *loadtest.Report) error {
	if rep.Assessment.Status == loadtest.StatusPassed {
		return nil
	}
	return fmt.Errorf("loadtest: %s: %s", rep.Assessment.Status, rep.Assessment.Summary)
}

func newLoadtestInit(g *globals) *cobra.Command {
	var (
		out   string
		force bool
		o     loadtest.DefaultPlanOptions
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write the guide's default load-test plan (baseline, stress, spike, endurance)",
		Long: `Write the guide's four-phase plan as commented YAML: baseline at the
current rate for 1 h (p99 < 100 ms, errors < 0.1 %, rps ≥ current), stress
until failure for 2 h (breaking point ≥ 1.5 × peak, recovery < 5 min), a 10×
spike for 10 min within 30 min (latency + < 50 %, errors < 1 %), endurance at
80 % of capacity for 24 h (memory growth < 5 %, latency + < 10 %, CPU
stable), with a 5-minute cool-down between phases, and a request mix for the
storefront. Edit it for your service; run it scaled down with --scale.`,
		Example: `  strata loadtest init -o plan.yaml --target http://127.0.0.1:8080 --current-rps 200 --peak-rps 500
  strata loadtest run plan.yaml --scale 0.01`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkInitFlags(cmd, o); err != nil {
				return usageError{err}
			}
			data := loadtest.DefaultPlan(o)
			if _, err := loadtest.ParsePlan(data, loadtest.ParseOptions{File: "default plan"}); err != nil {
				return usageError{err} // --target was not a URL
			}
			if out == "" || out == "-" {
				_, err := g.stdout.Write(data)
				return err
			}
			if _, err := os.Stat(out); err == nil && !force {
				return usageError{fmt.Errorf("-o %s: the file exists; --force replaces it", out)}
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			fmt.Fprintf(g.stdout, "wrote %s; run it with: strata loadtest run %s --scale 0.01\n", out, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "write the plan to this file (default: standard output)")
	f.BoolVar(&force, "force", false, "replace the file if it exists")
	f.StringVar(&o.Target, "target", "http://127.0.0.1:8080", "the service's base URL")
	f.Float64Var(&o.CurrentRPS, "current-rps", 100, "the production rate today (baseline's rate)")
	f.Float64Var(&o.PeakRPS, "peak-rps", 0, "the production peak (default 2 × current)")
	return cmd
}

// checkInitFlags refuses init's rates and target when they cannot make a
// plan: a rate that is not a positive number of requests per second (0
// would silently become the default), or a peak below the current rate.
func checkInitFlags(cmd *cobra.Command, o loadtest.DefaultPlanOptions) error {
	if !(o.CurrentRPS > 0 && o.CurrentRPS <= loadtest.MaxRate) {
		return fmt.Errorf("--current-rps %v: want a positive number of requests per second, up to %d", o.CurrentRPS, loadtest.MaxRate)
	}
	if cmd.Flags().Changed("peak-rps") {
		switch {
		case !(o.PeakRPS > 0 && o.PeakRPS <= loadtest.MaxRate):
			return fmt.Errorf("--peak-rps %v: want a positive number of requests per second, up to %d", o.PeakRPS, loadtest.MaxRate)
		case o.PeakRPS < o.CurrentRPS:
			return fmt.Errorf("--peak-rps %v is below --current-rps %v: the peak is the highest production rate, at least the current one", o.PeakRPS, o.CurrentRPS)
		}
	}
	if u, err := url.Parse(o.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--target %q: want the service's base URL, e.g. http://127.0.0.1:8080", o.Target)
	}
	return nil
}

// maxStartAhead is how far ahead --start-at may be: further is a typo,
// not a run that is meant to wait.
const maxStartAhead = 24 * time.Hour

// checkStartAt refuses a --start-at that has passed (the slices of a
// split run would not start together) or is more than a day ahead.
func checkStartAt(s string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	switch {
	case err != nil:
		return t, fmt.Errorf("--start-at %q: want an RFC 3339 time such as 2026-11-23T15:00:00Z", s)
	case t.Before(now.Add(-time.Second)):
		return t, fmt.Errorf("--start-at %s passed %v ago: the slices of a split run would not start together; give a time ahead", s, now.Sub(t).Round(time.Second))
	case t.After(now.Add(maxStartAhead)):
		return t, fmt.Errorf("--start-at %s is %v ahead: want a time within %v", s, t.Sub(now).Round(time.Second), maxStartAhead)
	}
	return t, nil
}

func newLoadtestRun(g *globals) *cobra.Command {
	var (
		files   reportFiles
		set     []string
		scale   float64
		split   string
		startAt string
		quiet   bool
	)
	cmd := &cobra.Command{
		Use:   "run PLAN",
		Short: "Run a load-test plan's phases and judge them against their criteria",
		Long: `Run the phases of a YAML plan (see 'strata loadtest init') in turn, with
the cool-down between them, printing a live line per phase and a summary
table at the end, then the overall assessment. Each phase is PASSED, FAILED
or ERROR (not measurable), criterion by criterion. Exits 0 when every phase
passed, 1 when one failed or could not be measured, 2 for a bad plan.

--scale multiplies every duration (0.01 runs the guide's 28-hour plan in
about 17 minutes); --set overrides one key, top-level (key=value) or of a
phase (phase.key=value). --split i/N runs the i-th of N equal slices, so
that N generators add up to the plan's rates; merge their --json files with
'strata loadtest merge'. --start-at makes the slices start together.`,
		Example: `  strata loadtest run plan.yaml --scale 0.01 --html report.html --junit junit.xml
  strata loadtest run plan.yaml --set baseline.duration=30s --set endurance.skip=true
  strata loadtest run plan.yaml --split 2/4 --start-at 2026-11-23T15:00:00Z --json slice2.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{fmt.Errorf("plan: %w", err)}
			}
			opt := loadtest.ParseOptions{File: args[0], Dir: filepath.Dir(args[0]), Set: set}
			if cmd.Flags().Changed("scale") {
				if !(scale > 0) || math.IsInf(scale, 0) {
					return usageError{fmt.Errorf("--scale %v: want a positive factor such as 0.01", scale)}
				}
				opt.Set = append([]string{"scale=" + strconv.FormatFloat(scale, 'g', -1, 64)}, opt.Set...)
			}
			if split != "" {
				i, n, ok := loadtest.ParseSplit(split)
				if !ok {
					return usageError{fmt.Errorf("--split %q: want i/N with 1 ≤ i ≤ N, e.g. 2/4", split)}
				}
				opt.Slice, opt.Slices = i-1, n
			}
			ropt := loadtest.RunOptions{}
			if startAt != "" {
				t, err := checkStartAt(startAt, time.Now())
				if err != nil {
					return usageError{err}
				}
				ropt.StartAt = t
			}
			plan, err := loadtest.ParsePlan(data, opt)
			if err != nil {
				return usageError{err}
			}
			if !quiet {
				ropt.Live = g.stdout
				if f, ok := g.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					ropt.TTY = true
				}
				for _, ph := range plan.Phases {
					fmt.Fprintf(g.stdout, "phase %s\n", ph)
				}
			}
			rep, err := plan.Run(cmd.Context(), ropt)
			if rep == nil {
				return err
			}
			// An interrupted run still reports, and writes, what it measured.
			if werr := rep.WriteSummary(g.stdout); werr != nil {
				return werr
			}
			if werr := files.write(rep); werr != nil {
				return werr
			}
			if err != nil {
				return fmt.Errorf("loadtest: interrupted (%w); the report holds the phases that ran", err)
			}
			return verdictError(rep)
		},
	}
	f := cmd.Flags()
	files.flags(cmd)
	f.Float64Var(&scale, "scale", 1, "multiply every duration of the plan by this")
	f.StringArrayVar(&set, "set", nil, "override a key: key=value or phase.key=value (YAML value); repeatable")
	f.StringVar(&split, "split", "", "run the i-th of N equal slices of the plan: i/N")
	f.StringVar(&startAt, "start-at", "", "wait until this RFC 3339 time before the first phase")
	f.BoolVar(&quiet, "quiet", false, "no live lines, only the summary")
	return cmd
}

func newLoadtestMerge(g *globals) *cobra.Command {
	var files reportFiles
	cmd := &cobra.Command{
		Use:   "merge REPORT.json...",
		Short: "Merge the JSON reports of a split run into one, with exact percentiles",
		Long: `Merge the --json reports of N generators that ran 'strata loadtest run
--split i/N' into one report: counts and rates add, percentiles come from the
merged HDR histograms (exactly a single run's), the per-second series add
up, and the criteria are judged again on the whole. Prints the summary and
writes --json, --junit and --html like run; exits like run.`,
		Example: `  strata loadtest merge slice1.json slice2.json slice3.json --html report.html`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var reps []*loadtest.Report
			for _, path := range args {
				f, err := os.Open(path)
				if err != nil {
					return usageError{err}
				}
				rep, err := loadtest.ReadReport(f)
				f.Close()
				if err != nil {
					return usageError{fmt.Errorf("%s: %w", path, err)}
				}
				reps = append(reps, rep)
			}
			rep, err := loadtest.Merge(reps...)
			if err != nil {
				return usageError{err}
			}
			if err := rep.WriteSummary(g.stdout); err != nil {
				return err
			}
			if err := files.write(rep); err != nil {
				return err
			}
			return verdictError(rep)
		},
	}
	files.flags(cmd)
	return cmd
}

func newAttack(g *globals) *cobra.Command {
	var (
		rate, jsonPath, method string
		thresholds             []string
		a                      loadtest.Attack
	)
	cmd := &cobra.Command{
		Use:   "attack URL",
		Short: "Send requests at a constant rate (or as fast as possible) and report latency",
		Long: `Send GET (or --method) requests to URL at --rate per second for --duration,
at most --connections in flight, then print the achieved rate, the errors
by kind and the latency percentiles, corrected (from each request's
scheduled send time) and uncorrected (from its actual send). --rate max
sends as fast as the connections allow. --json writes the same figures as
JSON. Each --threshold (k6's form: p(99)<100ms, med<20ms, max<1s,
rate<0.001 for the error rate, rps>=500) is checked and printed as PASSED or
FAILED. Exits 1 if a threshold failed, or, without thresholds, if any
request failed.`,
		Example: `  strata loadtest attack http://127.0.0.1:8080/users/42 --rate 500 --duration 30s
  strata loadtest attack http://127.0.0.1:8080/healthz --rate max --duration 10s --connections 64 --json out.json
  strata loadtest attack http://127.0.0.1:8080/users/42 --rate 200 --duration 1m --threshold 'p(99)<100ms' --threshold 'rate<0.001'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range []string{"rate", "duration"} {
				if !cmd.Flags().Changed(name) {
					return usageError{fmt.Errorf("--%s is required", name)}
				}
			}
			switch {
			case a.Duration <= 0:
				return usageError{fmt.Errorf("--duration %v: want a positive duration such as 30s", a.Duration)}
			case a.Connections <= 0: // 0 would silently become the default
				return usageError{fmt.Errorf("--connections %d: want 1 to %d requests in flight", a.Connections, loadtest.MaxConnections)}
			case a.Timeout <= 0:
				return usageError{fmt.Errorf("--timeout %v: want a positive bound on one request, such as 30s", a.Timeout)}
			}
			var checks []loadtest.Threshold
			for _, s := range thresholds {
				th, err := loadtest.ParseThreshold(s)
				if err != nil {
					return usageError{fmt.Errorf("--threshold: %w", err)}
				}
				if th.PhaseOnly() {
					return usageError{fmt.Errorf("--threshold %q: %s is measured by a plan's phases (strata loadtest run), not by one attack", s, th.Metric)}
				}
				checks = append(checks, th)
			}
			if rate != "max" {
				r, err := strconv.ParseFloat(rate, 64)
				if err != nil || !(r > 0 && r <= loadtest.MaxRate) {
					return usageError{fmt.Errorf("--rate %q: want a positive number of requests per second up to %d, or max", rate, loadtest.MaxRate)}
				}
				a.Rate = r
			}
			a.Targets = []loadtest.Target{{Method: method, URL: args[0]}}
			res, err := a.Run(cmd.Context())
			if errors.Is(err, loadtest.ErrBadAttack) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			s := res.Summary()
			s.Format(g.stdout)
			if jsonPath != "" {
				data, err := json.MarshalIndent(s, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
					return fmt.Errorf("--json: %w", err)
				}
			}
			if len(checks) > 0 {
				failed := 0
				for _, th := range checks {
					v := th.Check(res)
					fmt.Fprintln(g.stdout, v)
					if !v.Passed {
						failed++
					}
				}
				if failed > 0 {
					return fmt.Errorf("loadtest: %d of %d thresholds failed", failed, len(checks))
				}
				return nil
			}
			if s.Errors > 0 {
				return fmt.Errorf("loadtest: %d of %d requests failed", s.Errors, s.Requests)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rate, "rate", "", "requests per second, or max (required)")
	f.DurationVar(&a.Duration, "duration", 0, "how long to send, e.g. 30s (required)")
	f.IntVar(&a.Connections, "connections", loadtest.DefaultConnections, "requests in flight at most")
	f.DurationVar(&a.Timeout, "timeout", loadtest.DefaultTimeout, "bound on one request")
	f.StringVar(&method, "method", "GET", "HTTP method")
	f.StringVar(&jsonPath, "json", "", "also write the figures to this file as JSON")
	f.StringArrayVar(&thresholds, "threshold", nil, "a pass/fail criterion such as 'p(99)<100ms', 'rate<0.001' or 'rps>=500'; repeatable")
	return cmd
}
