package demo

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-dev/strata/loadtest"
	"github.com/strata-dev/strata/overload"
	"github.com/strata-dev/strata/storefront"
)

// storefrontNonCritical is the composite page's budget for its
// recommendations, which the demo's storefronts keep at the default.
const storefrontNonCritical = storefront.DefaultNonCriticalBudget

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
	fmt.Fprintf(out, "\ncomposite page: GET /users/{id}/home (the user within 100 ms, the recommendations within 500 ms\n"+
		"or the popular products), in the service, from its request duration histogram (≈: within a bucket)\n")
	if slices.ContainsFunc(r.Stages, func(st StageResult) bool { return len(st.Shards) > 0 }) {
		fmt.Fprintf(out, "\nsharded: calls are the shard router's at the fixed rate (reads, writes and fan-out legs to each\n"+
			"shard's primary), over the requests; users are counted on each shard after the stage. The main\n"+
			"database's statements (products, search, id blocks, the email directory) are not counted, so the\n"+
			"stage has no DB queries per request.\n")
	}
	printCriteria(out, r.Stages[0].Report, t)
	printFailures(out, r)
	printBudgets(out, r, cfg, t)
	printOverload(out, r, t)
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
			{"composite page p50 / p99", func(st StageResult) string {
				if st.Page.Count == 0 || math.IsNaN(st.Page.P50) {
					return "-"
				}
				return fmt.Sprintf("≈ %s / %s", ms(1000*st.Page.P50), ms(1000*st.Page.P99))
			}},
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
// are named "stage: phase", with stage 3's budgets phase after its
// stage's, and the overload phase last.
func journeyReport(r Result) *loadtest.Report {
	rep := &loadtest.Report{Plan: "the scale journey", Slices: 1}
	add := func(prefix string, ph loadtest.PhaseReport) {
		ph.Name = prefix + ph.Name
		rep.Phases = append(rep.Phases, ph)
		if end := ph.Started.Add(time.Duration(ph.ElapsedSeconds * float64(time.Second))); end.After(rep.Finished) {
			rep.Finished = end
		}
	}
	for _, st := range r.Stages {
		if st.Report == nil {
			continue
		}
		if rep.Target == "" {
			rep.Target, rep.Started = "the storefront, one stage after another", st.Report.Started
		}
		for _, ph := range st.Report.Phases {
			add(st.Short+": ", ph)
		}
		rep.Finished = st.Report.Finished
		if b := st.Budgets; b != nil {
			add(st.Short+": ", b.Down.Report)
			add(st.Short+": ", b.Back.Report)
		}
	}
	if o := r.Overload; o != nil {
		for _, ph := range []loadtest.PhaseReport{o.With.Critical, o.With.Rest, o.Without.Critical, o.Without.Rest} {
			add(o.Stage+": ", ph)
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

// printBudgets prints stage 3's budgets phase: the composite page while
// the recommendation service stalled, and once it was back.
func printBudgets(out io.Writer, r Result, cfg Config, t timing) {
	for _, st := range r.Stages {
		b := st.Budgets
		if b == nil {
			continue
		}
		fmt.Fprintf(out, "\n%s, its budgets: GET /users/{id}/home alone at %g/s, the recommendation service stalled\n"+
			"past the page's %v budget for them (it answers nothing) for %v, then back for %v\n\n",
			st.Short, cfg.Rate, storefrontNonCritical, t.BudgetDown, t.BudgetBack)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "\trecommendations down\trecommendations back\t\n")
		phases := []PagePhase{b.Down, b.Back}
		for _, rw := range []struct {
			label string
			cell  func(PagePhase) string
		}{
			{"page p50 / p99", func(p PagePhase) string {
				return fmt.Sprintf("%s / %s", ms(p.Report.Summary.LatencyMS.P50), ms(p.Report.Summary.LatencyMS.P99))
			}},
			{"failed pages", func(p PagePhase) string {
				return fmt.Sprintf("%d of %d%s", p.Report.Summary.Errors, p.Report.Summary.Requests, kinds(p.Report.Summary.ErrorsByKind))
			}},
			{"with fallback recommendations", func(p PagePhase) string {
				return fmt.Sprintf("%s (%d of %d)", percent(p.FallbackShare()), p.Fallbacks, p.Pages)
			}},
			{"upstream calls", func(p PagePhase) string { return counts(p.Upstream.Calls) }},
			{"failed attempts, retries", func(p PagePhase) string {
				return fmt.Sprintf("%s; %d retries", counts(p.Upstream.Errors), p.Upstream.Retries)
			}},
			{"breaker at the end", func(p PagePhase) string { return p.Breaker }},
			{"verdict", func(p PagePhase) string { return string(p.Report.Status) }},
		} {
			fmt.Fprintf(tw, "  %s\t", rw.label)
			for _, p := range phases {
				fmt.Fprintf(tw, "%s\t", rw.cell(p))
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
		if b.Recovered {
			fmt.Fprintf(out, "the breaker closed and a page had its recommendations again %.1f s after the service came back\n", b.Recovery.Seconds())
		} else {
			fmt.Fprintf(out, "the breaker had not closed, or no page had its recommendations, %.0f s after the service came back\n", b.Recovery.Seconds())
		}
		printVerdicts(out, b.Down.Report, b.Back.Report)
	}
}

// printOverload prints the overload phase: the two runs side by side.
func printOverload(out io.Writer, r Result, t timing) {
	o := r.Overload
	if o == nil {
		return
	}
	fmt.Fprintf(out, "\noverload: %s at %d × %s, %.0f/s = %.0f/s for %v, the critical requests\n"+
		"(%.0f%%: GET /users/{id}, /products/{id}, /users/{id}/home) and the rest from two generators at once\n\n",
		o.Stage, OverloadFactor, o.CapacityFrom, o.Capacity, o.Rate, t.Overload, 100*o.CriticalShare)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\twith the overload controller\twithout\t\n")
	for _, rw := range []struct {
		label string
		cell  func(OverloadRun) string
	}{
		{"successes/s, of capacity", func(run OverloadRun) string {
			return fmt.Sprintf("%.0f/s, %.0f%%", run.Successes(), 100*run.Successes()/o.Capacity)
		}},
		{"critical p50 / p99", func(run OverloadRun) string {
			return fmt.Sprintf("%s / %s", ms(run.Critical.Summary.LatencyMS.P50), ms(run.Critical.Summary.LatencyMS.P99))
		}},
		{"critical errors", func(run OverloadRun) string { return failures(run.Critical.Summary) }},
		{"the rest's errors", func(run OverloadRun) string { return failures(run.Rest.Summary) }},
		{"limiter at the end", func(run OverloadRun) string {
			s := run.Limiter
			if s.Limit == 0 {
				return "-"
			}
			return fmt.Sprintf("limit %d; shed: %d critical, %d normal, %d sheddable", s.Limit,
				s.Rejected[overload.Critical], s.Rejected[overload.Normal], s.Rejected[overload.Sheddable])
		}},
	} {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t\n", rw.label, rw.cell(o.With), rw.cell(o.Without))
	}
	tw.Flush()
	fmt.Fprintf(out, "latency from each request's scheduled send (the generators share the service's cores)\n")
	printVerdicts(out, o.With.Critical)
	if w := o.Without.Critical.Summary.LatencyMS.P99; !(w > clearOverload*msOf(overload.DefaultTarget)) {
		fmt.Fprintf(out, "  the critical p99s are shown, not judged: without the controller it was %s, not %d× past the %v SLA,\n"+
			"  so there was no clear overload to compare with\n", ms(w), clearOverload, overload.DefaultTarget)
	}
}

// printVerdicts lists the phases' verdicts, one line a phase.
func printVerdicts(out io.Writer, phases ...loadtest.PhaseReport) {
	for _, ph := range phases {
		var vs []string
		for _, v := range ph.Verdicts {
			s := fmt.Sprintf("%s %s", v.Criterion, v.Status)
			if v.Detail != "" {
				s += " (" + v.Detail + ")"
			}
			vs = append(vs, s)
		}
		fmt.Fprintf(out, "  %s: %s: %s\n", ph.Name, ph.Status, strings.Join(vs, ", "))
	}
}

// failures is "n of m" with the kinds of error, and the requests not sent.
func failures(s loadtest.Summary) string {
	f := fmt.Sprintf("%d of %d%s", s.Errors, s.Requests, kinds(s.ErrorsByKind))
	if s.Skipped > 0 {
		f += fmt.Sprintf(", %d not sent", s.Skipped)
	}
	return f
}

// kinds is " (kind ×n, …)", or "" for none.
func kinds(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// counts is "key n, …" over the non-zero counts, or "none".
func counts(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// percent is a share as a percentage, "-" for NaN.
func percent(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}
