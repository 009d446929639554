package demo

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/strata-dev/strata/loadtest"
)

// row is one line of the side-by-side table: a label and how to read its
// cell from a stage.
type row struct {
	label string
	cell  func(StageResult) string
}

// printComparison prints the stages side by side, then what the verdicts
// were judged on, what failed, and which endpoints answered errors.
func printComparison(out io.Writer, r Result, cfg Config, t timing) {
	if len(r.Stages) == 0 {
		return
	}
	if cfg.Mode == Full {
		fmt.Fprintf(out, "\neach stage's load test\n")
		for _, st := range r.Stages {
			fmt.Fprintf(out, "\n  %s\n", st.Name)
			_ = st.Report.WriteSummary(&indent{w: out})
		}
	}
	fmt.Fprintf(out, "\nthe journey side by side: every stage at the same %g requests/s on an open model (latency from\n"+
		"each request's scheduled send), then pushed to its breaking point\n\n", cfg.Rate)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "\t")
	for _, st := range r.Stages {
		fmt.Fprintf(tw, "%s\t", st.Short)
	}
	fmt.Fprintln(tw)
	for _, section := range sections(cfg, t) {
		fmt.Fprintf(tw, "%s\t", section.title)
		for range r.Stages {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprintln(tw)
		for _, rw := range section.rows {
			fmt.Fprintf(tw, "  %s\t", rw.label)
			for _, st := range r.Stages {
				fmt.Fprintf(tw, "%s\t", rw.cell(st))
			}
			fmt.Fprintln(tw)
		}
	}
	fmt.Fprint(tw, "verdict\t")
	for _, st := range r.Stages {
		a := st.Report.Assessment
		fmt.Fprintf(tw, "%s (%d/%d)\t", a.Status, a.Passed, len(st.Report.Phases))
	}
	fmt.Fprintln(tw)
	tw.Flush()
	if slices.ContainsFunc(r.Stages, func(st StageResult) bool { return len(st.Shards) > 0 }) {
		fmt.Fprintf(out, "\nsharded: calls are the shard router's at the fixed rate (reads, writes and fan-out legs to each\n"+
			"shard's primary), over the requests; users are counted on each shard after the stage. The main\n"+
			"database's statements (products, search, id blocks, the email directory) are not counted, so the\n"+
			"stage has no DB queries per request.\n")
	}
	printCriteria(out, r.Stages[0].Report, t)
	printFailures(out, r)
	fmt.Fprintf(out, "\n(the load generator and the service share this process and its cores: the figures compare the\n"+
		"stages with each other; for a service's own capacity, run `strata loadtest run` from a second machine)\n")
}

type section struct {
	title string
	rows  []row
}

// sections are the table's rows, by the phase they come from.
func sections(cfg Config, t timing) []section {
	s := []section{
		{fmt.Sprintf("at %g/s for %v", cfg.Rate, t.Fixed), []row{
			{"p50 / p99", phaseCell(fixedPhase, func(ph *loadtest.PhaseReport) string {
				return fmt.Sprintf("%s / %s", ms(ph.Summary.LatencyMS.P50), ms(ph.Summary.LatencyMS.P99))
			})},
			{"failed requests", phaseCell(fixedPhase, func(ph *loadtest.PhaseReport) string {
				return fmt.Sprintf("%d of %d", ph.Summary.Errors, ph.Summary.Requests)
			})},
			{"DB queries per request", func(st StageResult) string {
				if math.IsNaN(st.Queries) {
					return "-"
				}
				if !math.IsNaN(st.OnReplicas) {
					return fmt.Sprintf("%.2f, %.0f%% on replicas", st.Queries, 100*st.OnReplicas)
				}
				return fmt.Sprintf("%.2f", st.Queries)
			}},
			{"cache hit ratio", func(st StageResult) string {
				if math.IsNaN(st.HitRatio) {
					return "-"
				}
				return fmt.Sprintf("%.1f%%", 100*st.HitRatio)
			}},
		}},
		{fmt.Sprintf("capacity (%v probes)", t.Step), []row{
			{"breaking point", phaseCell(stressPhase, breakingCell)},
			{"overload goodput", measureCell(stressPhase, loadtest.MeasureOverloadGoodput, "%.0f%%", 100)},
		}},
	}
	if len(cfg.Shards) > 0 {
		s[0].rows = append(s[0].rows,
			row{"calls per request, by shard", shardCell(func(sh Shard) string { return fmt.Sprintf("%.2f", sh.Calls) })},
			row{"users per shard", shardCell(func(sh Shard) string { return fmt.Sprint(sh.Users) })})
	}
	if t.Recovery > 0 {
		s[1].rows = append(s[1].rows, row{"recovery after overload", measureCell(stressPhase, loadtest.MeasureRecoverySeconds, "%.0f s", 1)})
	}
	if t.Spike > 0 {
		s = append(s, section{fmt.Sprintf("spike, %g× for %v to %.0f%% of capacity", float64(loadtest.SpikeMultiplier), t.SpikeLen, 100*t.SpikePeak), []row{
			{"rate calm → spike", phaseCell(spikePhase, func(ph *loadtest.PhaseReport) string {
				var lo, hi float64
				for _, p := range ph.Series {
					if lo == 0 || p.AskedRPS < lo {
						lo = p.AskedRPS
					}
					hi = max(hi, p.AskedRPS)
				}
				return fmt.Sprintf("%.0f → %.0f/s", lo, hi)
			})},
			{"p99 calm → spike", phaseCell(spikePhase, func(ph *loadtest.PhaseReport) string {
				return fmt.Sprintf("%s → %s", ms(ph.Measures[loadtest.MeasureBaselineP99]), ms(ph.Measures[loadtest.MeasureSpikeP99]))
			})},
			{"recovery", measureCell(spikePhase, loadtest.MeasureRecoverySeconds, "%.0f s", 1)},
		}})
	}
	if t.Endurance > 0 {
		s = append(s, section{fmt.Sprintf("endurance, %v at %g of capacity", t.Endurance, loadtest.EnduranceFraction), []row{
			{"rate, p99", phaseCell(endurancePhase, func(ph *loadtest.PhaseReport) string {
				return fmt.Sprintf("%.0f/s, %s", ph.Summary.AchievedRPS, ms(ph.Summary.LatencyMS.P99))
			})},
			{"memory growth", measureCell(endurancePhase, loadtest.MeasureMemoryGrowth, "%+.1f%%", 100)},
		}})
	}
	return s
}

// shardCell lists a figure of each of a sharded stage's shards, "-" at
// the other stages.
func shardCell(f func(Shard) string) func(StageResult) string {
	return func(st StageResult) string {
		if len(st.Shards) == 0 {
			return "-"
		}
		var parts []string
		for _, sh := range st.Shards {
			parts = append(parts, sh.Name+" "+f(sh))
		}
		return strings.Join(parts, ", ")
	}
}

// breakingCell is "lo–hi/s": the highest rate that passed its probe, and
// the lowest that failed; "≥ lo/s" when none failed up to the ceiling.
func breakingCell(ph *loadtest.PhaseReport) string {
	lo, ok := ph.Measures[loadtest.MeasureBreakingPoint]
	switch {
	case !ok:
		return "-"
	case ph.Measures[loadtest.MeasureFirstFailingRate] > 0:
		return fmt.Sprintf("%.0f–%.0f/s", lo, ph.Measures[loadtest.MeasureFirstFailingRate])
	}
	return fmt.Sprintf("≥ %.0f/s", lo)
}

// phaseCell reads a cell from the stage's phase of that name.
func phaseCell(name string, f func(*loadtest.PhaseReport) string) func(StageResult) string {
	return func(st StageResult) string {
		ph := st.phase(name)
		switch {
		case ph == nil:
			return "-"
		case ph.Status == loadtest.StatusError && ph.Error != "":
			return "error"
		}
		return f(ph)
	}
}

// measureCell reads one of the phase's measures, × factor.
func measureCell(phase string, key loadtest.Measure, format string, factor float64) func(StageResult) string {
	return phaseCell(phase, func(ph *loadtest.PhaseReport) string {
		v, ok := ph.Measures[key]
		if !ok {
			return "-"
		}
		return fmt.Sprintf(format, v*factor)
	})
}

// printCriteria says what the capacity figures mean and lists what each
// phase was judged on, from a report's verdicts (every stage has the
// same).
func printCriteria(out io.Writer, rep *loadtest.Report, t timing) {
	fmt.Fprintf(out, "\nbreaking point: the highest rate whose probe passed – the lowest that failed (a probe passes\n"+
		"with %s); overload goodput: successes a second while pushed past it, over it\n", strings.Join(t.probe, " and "))
	fmt.Fprintf(out, "verdicts, on loadtest's criteria:\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, ph := range rep.Phases {
		var cs []string
		for _, v := range ph.Verdicts {
			cs = append(cs, v.Criterion)
		}
		if len(cs) > 0 {
			fmt.Fprintf(tw, "  %s\t%s\n", ph.Name, strings.Join(cs, ", "))
		}
	}
	tw.Flush()
}

// printFailures says which criteria failed, stage by stage, and which
// endpoints answered errors at the fixed rate.
func printFailures(out io.Writer, r Result) {
	for _, st := range r.Stages {
		if st.Report.Assessment.Status == loadtest.StatusPassed {
			continue
		}
		for _, f := range st.Report.Assessment.Findings {
			fmt.Fprintf(out, "  %s: %s\n", st.Short, f)
		}
	}
	failed := false
	for _, st := range r.Stages {
		for _, e := range st.Endpoints {
			if e.Failed > 0 {
				fmt.Fprintf(out, "  %s: %s answered %s at the fixed rate\n", st.Short, e.Name, e.Codes)
				failed = true
			}
		}
	}
	if !failed {
		fmt.Fprintf(out, "every endpoint (%d) answered without error at the fixed rate, at every stage\n", len(r.Stages[0].Endpoints))
	}
}

// journeyReport joins the stages' load tests into one report whose phases
// are named "stage: phase".
func journeyReport(stages []StageResult) *loadtest.Report {
	rep := &loadtest.Report{Plan: "the scale journey", Slices: 1}
	for _, st := range stages {
		if st.Report == nil {
			continue
		}
		if rep.Target == "" {
			rep.Target, rep.Started = "the storefront, one stage after another", st.Report.Started
		}
		rep.Finished = st.Report.Finished
		for _, ph := range st.Report.Phases {
			ph.Name = st.Short + ": " + ph.Name
			rep.Phases = append(rep.Phases, ph)
		}
	}
	rep.Reassess()
	return rep
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

func ms(v float64) string { return fmt.Sprintf("%.2fms", v) }
