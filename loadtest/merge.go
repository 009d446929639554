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
	out := PhaseReport{Name: f.Name, Kind: f.Kind, Pattern: f.Pattern, Started: f.Started, Measures: map[string]float64{}}
	total := &Result{ErrorsByKind: map[string]int64{}, Latency: newHistogram(), UncorrectedLatency: newHistogram(), ScheduleLag: newHistogram()}
	var lag Percentiles
	for _, ph := range in {
		if ph.Started.Before(out.Started) {
			out.Started = ph.Started
		}
		out.ElapsedSeconds = max(out.ElapsedSeconds, ph.ElapsedSeconds)
		s := ph.Summary
		total.Requests += s.Requests
		total.Errors += s.Errors
		total.Late += s.Late
		total.Skipped += s.Skipped
		total.AchievedRPS += s.AchievedRPS
		total.GeneratorCPU = max(total.GeneratorCPU, s.GeneratorCPU)
		for k, v := range s.ErrorsByKind {
			total.ErrorsByKind[k] += v
		}
		for _, x := range []struct {
			enc string
			to  *Result
			raw bool
		}{{ph.Histograms.Latency, total, false}, {ph.Histograms.Uncorrected, total, true}} {
			h, err := decodeHistogram(x.enc)
			if err != nil {
				return out, fmt.Errorf("%w: phase %s: %w", ErrMerge, ph.Name, err)
			}
			if x.raw {
				x.to.UncorrectedLatency.Merge(h)
			} else {
				x.to.Latency.Merge(h)
			}
		}
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
	series, err := mergeSeries(in)
	if err != nil {
		return out, err
	}
	out.Series = series

	// Measures: rates add; the rest are measured again on the merged
	// series where the phase allows, else taken from the first report.
	maps.Copy(out.Measures, f.Measures)
	for _, k := range []string{"capacity", "breaking_point", "first_failing_rate", "no_failure_up_to"} {
		if _, ok := f.Measures[k]; ok {
			var sum float64
			for _, ph := range in {
				sum += ph.Measures[k]
			}
			out.Measures[k] = sum
		}
	}
	var merr error
	switch out.Pattern {
	case "spike":
		merr = spikeMeasures(out.Series, out.Measures)
		growthMeasures(out.Series, out.Measures, false)
	case "breaking":
		growthMeasures(out.Series, out.Measures, false)
	default:
		growthMeasures(out.Series, out.Measures, true)
	}
	var criteria []Threshold
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
	out.Verdicts = judge(criteria, total, out.Measures, Phase{Name: f.Name, Pattern: f.Pattern})
	out.Status = phaseStatus(out.Verdicts)
	return out, nil
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
			p.Requests += q.Requests
			p.Errors += q.Errors
			for k, v := range q.ErrorsByKind {
				if p.ErrorsByKind == nil {
					p.ErrorsByKind = map[string]int64{}
				}
				p.ErrorsByKind[k] += v
			}
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
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
