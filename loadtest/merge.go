package loadtest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ErrMerge is returned (wrapped) for reports that cannot be merged.
var ErrMerge = errors.New("loadtest: cannot merge")

// Merge combines the reports of the N generators of a split run (`--split
// i/N`) into one: counts and rates add, percentiles come from the merged
// HDR histograms (so they are exactly a single run's), per-second series
// add second by second, and the criteria are judged again on the whole.
// The reports must be of the same plan with the same phases.
func Merge(reports ...*Report) (*Report, error) {
	if len(reports) == 0 {
		return nil, fmt.Errorf("%w: no reports", ErrMerge)
	}
	if err := checkSlices(reports); err != nil {
		return nil, err
	}
	first := reports[0]
	out := &Report{Plan: first.Plan, Target: first.Target, Started: first.Started, Finished: first.Finished}
	for i, r := range reports {
		if r.Plan != first.Plan || len(r.Phases) != len(first.Phases) {
			return nil, fmt.Errorf("%w: report %d is of plan %q with %d phases, report 1 of %q with %d", ErrMerge, i+1, r.Plan, len(r.Phases), first.Plan, len(first.Phases))
		}
		out.Slices += max(r.Slices, 1)
		if r.Started.Before(out.Started) {
			out.Started = r.Started
		}
		if r.Finished.After(out.Finished) {
			out.Finished = r.Finished
		}
	}
	for i := range first.Phases {
		var phases []*PhaseReport
		for j, r := range reports {
			ph := &r.Phases[i]
			if ph.Name != first.Phases[i].Name || ph.Pattern != first.Phases[i].Pattern {
				return nil, fmt.Errorf("%w: report %d's phase %d is %q (%s), report 1's is %q (%s)", ErrMerge, j+1, i+1, ph.Name, ph.Pattern, first.Phases[i].Name, first.Phases[i].Pattern)
			}
			phases = append(phases, ph)
		}
		ph, err := mergePhase(phases)
		if err != nil {
			return nil, err
		}
		out.Phases = append(out.Phases, ph)
	}
	out.assess()
	return out, nil
}

// checkSlices makes sure the reports are the N slices of one split run,
// each once; or a single report, which Merge judges again on its own.
func checkSlices(reports []*Report) error {
	if len(reports) == 1 && reports[0].Split == "" {
		return nil
	}
	n := 0
	seen := map[int]bool{}
	for k, r := range reports {
		i, of, ok := ParseSplit(r.Split)
		switch {
		case !ok:
			return fmt.Errorf("%w: report %d is not a slice of a split run (it was not run with --split i/N)", ErrMerge, k+1)
		case n != 0 && of != n:
			return fmt.Errorf("%w: report %d is slice %s, of %d slices; report 1 is of %d", ErrMerge, k+1, r.Split, of, n)
		case seen[i]:
			return fmt.Errorf("%w: report %d is slice %s again: each slice counts once", ErrMerge, k+1, r.Split)
		}
		n = of
		seen[i] = true
	}
	var missing []string
	for i := 1; i <= n; i++ {
		if !seen[i] {
			missing = append(missing, fmt.Sprintf("%d/%d", i, n))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: slices %s are missing: the rates would be a part of the whole", ErrMerge, strings.Join(missing, ", "))
	}
	return nil
}

func mergePhase(in []*PhaseReport) (PhaseReport, error) {
	f := in[0]
	out := PhaseReport{Name: f.Name, Kind: f.Kind, Pattern: f.Pattern, Started: f.Started, Measures: map[Measure]float64{}}
	total, err := mergeTotals(in, &out)
	if err != nil {
		return out, err
	}
	if out.Series, err = mergeSeries(in); err != nil {
		return out, err
	}
	// Measures: rates add; the rest are measured again on the merged
	// series where the phase allows, else taken from the first report.
	maps.Copy(out.Measures, f.Measures)
	for _, k := range []Measure{MeasureCapacity, MeasureBreakingPoint, MeasureFirstFailingRate, MeasureNoFailureUpTo} {
		if _, ok := f.Measures[k]; ok {
			var sum float64
			for _, ph := range in {
				sum += ph.Measures[k]
			}
			out.Measures[k] = sum
		}
	}
	var merr error
	if out.Pattern == PatternSpike {
		merr = spikeMeasures(out.Series, out.Measures)
	}
	growthMeasures(out.Series, out.Measures, out.Pattern != PatternSpike && out.Pattern != PatternBreaking)
	criteria := make([]Threshold, 0, len(f.Verdicts))
	for _, v := range f.Verdicts {
		th, err := ParseThreshold(v.Criterion)
		if err != nil {
			return out, fmt.Errorf("%w: phase %s: %w", ErrMerge, f.Name, err)
		}
		criteria = append(criteria, th)
	}
	for _, ph := range in {
		if ph.Status == StatusError && len(ph.Verdicts) == 0 {
			out.Status, out.Verdicts = StatusError, []CriterionVerdict{}
			return out, nil
		}
	}
	if merr != nil {
		out.Status, out.Error, out.Verdicts = StatusError, merr.Error(), []CriterionVerdict{}
		return out, nil
	}
	out.Verdicts = judge(criteria, total, out.Measures, Phase{Name: f.Name, Kind: f.Kind, Pattern: f.Pattern})
	out.Status = phaseStatus(out.Verdicts)
	return out, nil
}

// mergeTotals adds the phases' totals and histograms into one Result, and
// sets out's summary, histograms, start, length, first error and steps
// from them.
func mergeTotals(in []*PhaseReport, out *PhaseReport) (*Result, error) {
	total := newResult()
	var lag Percentiles
	for _, ph := range in {
		if ph.Started.Before(out.Started) {
			out.Started = ph.Started
		}
		out.ElapsedSeconds = max(out.ElapsedSeconds, ph.ElapsedSeconds)
		s := ph.Summary
		lat, err := decodeHistogram(ph.Histograms.Latency)
		if err != nil {
			return nil, fmt.Errorf("%w: phase %s: %w", ErrMerge, ph.Name, err)
		}
		raw, err := decodeHistogram(ph.Histograms.Uncorrected)
		if err != nil {
			return nil, fmt.Errorf("%w: phase %s: %w", ErrMerge, ph.Name, err)
		}
		total.add(&Result{Requests: s.Requests, Errors: s.Errors, Late: s.Late, Skipped: s.Skipped, ErrorsByKind: s.ErrorsByKind,
			GeneratorCPU: s.GeneratorCPU, Latency: lat, UncorrectedLatency: raw})
		total.AchievedRPS += s.AchievedRPS
		// The schedule lag is each generator's own: the worst is kept.
		l := s.ScheduleLag
		lag = Percentiles{max(lag.P50, l.P50), max(lag.P90, l.P90), max(lag.P95, l.P95), max(lag.P99, l.P99), max(lag.Max, l.Max)}
		if ph.Error != "" && out.Error == "" {
			out.Error = ph.Error
		}
		if len(ph.Steps) > 0 && out.Steps == nil {
			out.Steps = ph.Steps
		}
	}
	total.Elapsed = time.Duration(out.ElapsedSeconds * float64(time.Second))
	out.Summary = total.Summary()
	out.Summary.ScheduleLag = lag
	out.Histograms = Histograms{Latency: encodeHistogram(total.Latency), Uncorrected: encodeHistogram(total.UncorrectedLatency)}
	return total, nil
}

// mergeSeries adds the phases' series second by second.
func mergeSeries(in []*PhaseReport) ([]Point, error) {
	n := 0
	for _, ph := range in {
		n = max(n, len(ph.Series))
	}
	out := make([]Point, n)
	for sec := range out {
		p := &out[sec]
		p.Second = sec
		h := newSecondHistogram()
		for _, ph := range in {
			if sec >= len(ph.Series) {
				continue
			}
			q := ph.Series[sec]
			p.AskedRPS += q.AskedRPS
			p.add(q)
			qh, err := decodeHistogram(q.Histogram)
			if err != nil {
				return nil, fmt.Errorf("%w: phase %s, second %d: %w", ErrMerge, ph.Name, sec, err)
			}
			h.Merge(qh)
			// Every generator scraped the same target: keep the first's.
			if p.TargetCPU == nil {
				p.TargetCPU = q.TargetCPU
			}
			if p.TargetRSS == nil {
				p.TargetRSS = q.TargetRSS
			}
			if p.TargetGoroutines == nil {
				p.TargetGoroutines = q.TargetGoroutines
			}
			if p.TargetSeries == nil {
				p.TargetSeries = q.TargetSeries
			}
		}
		setPercentiles(p, h, true)
	}
	return out, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[K ~string, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
