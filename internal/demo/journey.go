package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/strata-dev/strata/loadtest"
)

// The demo's load test: the guide's four phases, cut to about half a
// minute a stage so that the whole journey runs in a few minutes on a
// laptop. The shape and the criteria are the guide's (see
// loadtest.DefaultPlan); only the durations and the start rate are small.
var demoPlanSet = []string{
	"cooldown=1s",
	"connections=64",
	"timeout=5s",
	"baseline.rate=200", "baseline.duration=4s", `baseline.criteria=["p(99)<100ms", "rate<0.001", "rps>=198"]`,
	"stress.rate=200", "stress.step=1s", "stress.duration=20s", "stress.recovery=5s",
	`stress.criteria=["breaking_point>=300", "recovery<5s", "overload_goodput>=90%"]`,
	"spike.rate=100", "spike.spike=2s", "spike.duration=6s", `spike.criteria=["latency_increase<50%", "spike_error_rate<1%", "recovery<2s"]`,
	"endurance.duration=5s",
}

// loadTest runs the demo's plan against the stage served at base.
func loadTest(ctx context.Context, cfg Config, base string) (*loadtest.Report, error) {
	src := loadtest.DefaultPlan(loadtest.DefaultPlanOptions{Target: base, CurrentRPS: 200, PeakRPS: 200, Users: cfg.Users, Products: cfg.Products})
	plan, err := loadtest.ParsePlan(src, loadtest.ParseOptions{File: "demo plan", Set: demoPlanSet})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(cfg.Out, "\n  load test: the guide's four phases, scaled down (about 35 s)\n")
	for _, ph := range plan.Phases {
		fmt.Fprintf(cfg.Out, "    %s\n", ph)
	}
	rep, err := plan.Run(ctx, loadtest.RunOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: load test: %w", err)
	}
	fmt.Fprintln(cfg.Out)
	if err := rep.WriteSummary(&indent{w: cfg.Out}); err != nil {
		return nil, err
	}
	return rep, nil
}

// indent writes its lines four spaces in.
type indent struct {
	w       io.Writer
	midLine bool // the last write did not end a line
}

func (i *indent) Write(p []byte) (int, error) {
	var out []byte
	for _, b := range p {
		if !i.midLine && b != '\n' {
			out = append(out, "    "...)
		}
		out = append(out, b)
		i.midLine = b != '\n'
	}
	_, err := i.w.Write(out)
	return len(p), err
}

// journeyReport joins the stages' load tests into one report whose phases
// are named "stage: phase".
func journeyReport(r Result) *loadtest.Report {
	rep := &loadtest.Report{Plan: "the scale journey", Slices: 1}
	for i, st := range r.Stages {
		if st.Plan == nil {
			continue
		}
		if rep.Target == "" {
			rep.Target, rep.Started = "the storefront, one stage after another", st.Plan.Started
		}
		rep.Finished = st.Plan.Finished
		for _, ph := range st.Plan.Phases {
			ph.Name = stageName(i, st) + ": " + ph.Name
			rep.Phases = append(rep.Phases, ph)
		}
	}
	rep.Reassess()
	return rep
}

func stageName(i int, st StageResult) string {
	if st.Short != "" {
		return st.Short
	}
	return shortStage(i, st.Name)
}

// printJourney prints the load tests' key figures, stage by stage.
func printJourney(out io.Writer, r Result) {
	fmt.Fprintf(out, "\nthe load test side by side (the guide's phases, scaled down; open-model load)\n\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "\t")
	for i, st := range r.Stages {
		if st.Plan != nil {
			fmt.Fprintf(tw, "%s\t", stageName(i, st))
		}
	}
	fmt.Fprintln(tw)
	rows := []struct {
		name string
		get  func(rep *loadtest.Report) string
	}{
		{"baseline p99 at 200/s", func(rep *loadtest.Report) string {
			return phaseFig(rep, "baseline", func(ph loadtest.PhaseReport) string { return fmt.Sprintf("%.2fms", ph.Summary.LatencyMS.P99) })
		}},
		{"breaking point", func(rep *loadtest.Report) string { return measure(rep, "stress", "breaking_point", "%.0f/s", 1) }},
		{"recovery after overload", func(rep *loadtest.Report) string { return measure(rep, "stress", "recovery_seconds", "%.0fs", 1) }},
		{"spike ×10: p99 increase", func(rep *loadtest.Report) string { return measure(rep, "spike", "latency_increase", "%+.0f%%", 100) }},
		{"spike: errors", func(rep *loadtest.Report) string { return measure(rep, "spike", "spike_error_rate", "%.2f%%", 100) }},
		{"endurance: rate, p99", func(rep *loadtest.Report) string {
			return phaseFig(rep, "endurance", func(ph loadtest.PhaseReport) string {
				return fmt.Sprintf("%.0f/s, %.2fms", ph.Summary.AchievedRPS, ph.Summary.LatencyMS.P99)
			})
		}},
		{"verdict", func(rep *loadtest.Report) string {
			return fmt.Sprintf("%s (%d/%d passed)", rep.Assessment.Status, rep.Assessment.Passed, len(rep.Phases))
		}},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t", row.name)
		for _, st := range r.Stages {
			if st.Plan != nil {
				fmt.Fprintf(tw, "%s\t", row.get(st.Plan))
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(out, "\n(the generator and the service share this process and its cores: the figures compare the stages\n"+
		"with each other; for a service's own capacity, run `strata loadtest run` from a second machine)\n")
}

func phaseFig(rep *loadtest.Report, name string, f func(loadtest.PhaseReport) string) string {
	for _, ph := range rep.Phases {
		if ph.Name == name {
			if ph.Status == loadtest.StatusError && ph.Error != "" {
				return "error"
			}
			return f(ph)
		}
	}
	return "-"
}

func measure(rep *loadtest.Report, phase, key, format string, factor float64) string {
	return phaseFig(rep, phase, func(ph loadtest.PhaseReport) string {
		v, ok := ph.Measures[key]
		if !ok {
			return "-"
		}
		return fmt.Sprintf(format, v*factor)
	})
}

// writeHTML writes the report through a temporary file.
func writeHTML(path string, rep *loadtest.Report) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".strata-demo-*.html")
	if err != nil {
		return fmt.Errorf("demo: --html: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := rep.WriteHTML(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("demo: --html: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("demo: --html: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}
