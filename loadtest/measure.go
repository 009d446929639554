package loadtest

import (
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	recoveryWindow  = 5 * time.Second // Strata: recovered once a window this long is back within the margin
	recoveryMargin  = 0.1             // the issue: p99 back within 10 % of before
	recoverySlackMS = 1.0             // Strata: or within 1 ms, so that sub-millisecond noise does not read as no recovery
	latencyFloorMS  = 1.0             // Strata: a typical p99 under 1 ms counts as 1 ms: below it a loaded machine's scheduling is most of the figure
	tenth           = 0.1             // growth figures compare the last tenth of a phase with the first
	minEndSeconds   = 3               // Strata: … and at least this many seconds at each end, where the phase has twice as many
)

// window merges the per-second histograms of seconds [from, to) and
// returns them with the window's requests and errors.
func window(series []Point, from, to int) (h *hdrhistogram.Histogram, requests, errs int64) {
	h = newSecondHistogram()
	for _, p := range series[max(from, 0):min(to, len(series))] {
		requests += p.Requests
		errs += p.Errors
		if p.Histogram != "" {
			if ph, err := decodeHistogram(p.Histogram); err == nil {
				h.Merge(ph)
			}
		}
	}
	return h, requests, errs
}

// counts returns the requests and errors of seconds [from, to).
func counts(series []Point, from, to int) (requests, errs int64) {
	for _, p := range series[max(from, 0):min(to, len(series))] {
		requests += p.Requests
		errs += p.Errors
	}
	return requests, errs
}

func p99(h *hdrhistogram.Histogram) float64 { return float64(h.ValueAtQuantile(99)) / 1000 }

// typicalP99 is the typical latency of seconds [from, to): the median of
// their per-second p99s (of the seconds that had requests), in ms, and at
// least latencyFloorMS; ok is false when no second had a request. One slow
// second among several (a GC pause, a noisy neighbour) does not move it, a
// latency that really rose does; and a target that answers in a fraction
// of a millisecond is not judged on the noise of its scheduling.
func typicalP99(series []Point, from, to int) (ms float64, ok bool) {
	var ps []float64
	for _, p := range series[max(from, 0):min(to, len(series))] {
		if p.Requests > 0 {
			ps = append(ps, p.P99MS)
		}
	}
	if len(ps) == 0 {
		return 0, false
	}
	slices.Sort(ps)
	n := len(ps)
	ms = ps[n/2]
	if n%2 == 0 {
		ms = (ps[n/2-1] + ps[n/2]) / 2
	}
	return max(ms, latencyFloorMS), true
}

// recoveredAt returns the first second t from `from` at which p99 is back
// near ref, the typical p99 of the calm seconds (ms): within the margin
// (recoveryMargin, or recoverySlackMS) in second t itself and, typically,
// in the window of recoveryWindow seconds that starts at t (less in a
// short phase: a quarter of what is left, at least a second), whose errors
// are at most the spike error rate; -1 if none.
func recoveredAt(series []Point, from int, ref float64) int {
	w := max(min(int(recoveryWindow/time.Second), (len(series)-from)/4), 1)
	limit := max(ref*(1+recoveryMargin), ref+recoverySlackMS)
	for t := max(from, 0); t+w <= len(series); t++ {
		if p := series[t]; p.Requests == 0 || max(p.P99MS, latencyFloorMS) > limit {
			continue
		}
		typical, _ := typicalP99(series, t, t+w)
		n, e := counts(series, t, t+w)
		if typical <= limit && float64(e) <= SpikeErrorRate*float64(n) {
			return t
		}
	}
	return -1
}

// recovery measures the return to ref from second from of series into m,
// and reports whether it came.
func recovery(series []Point, from int, ref float64, m map[Measure]float64) bool {
	delete(m, MeasureNotRecovered)
	if t := recoveredAt(series, from, ref); t >= 0 {
		m[MeasureRecoverySeconds] = float64(t - from)
		return true
	}
	m[MeasureRecoverySeconds] = float64(len(series) - from)
	m[MeasureNotRecovered] = 1
	return false
}

// spike runs base, base × multiplier, base and measures the spike.
func (r *phaseRun) spike(ctx context.Context, m map[Measure]float64) error {
	ph := r.ph
	before := (ph.Duration - ph.SpikeLength) / 2
	after := ph.Duration - ph.SpikeLength - before
	high := ph.Rate * ph.Multiplier
	r.runProfile(ctx, profile{{before, ph.Rate, ph.Rate}, {ph.SpikeLength, high, high}, {after, ph.Rate, ph.Rate}}, "")
	b, sEnd := int(before/time.Second), int((before+ph.SpikeLength)/time.Second)
	m[MeasureSpikeStart], m[MeasureSpikeEnd] = float64(b), float64(sEnd)
	return spikeMeasures(r.series, m)
}

// spikeMeasures measures a spike phase's series, the spike's seconds in
// m: the typical p99 during the spike against that of the seconds before
// it, the spike's error rate, and the return to the typical p99 before.
func spikeMeasures(series []Point, m map[Measure]float64) error {
	b, sEnd := int(m[MeasureSpikeStart]), int(m[MeasureSpikeEnd])
	ref, ok1 := typicalP99(series, 0, b)
	peak, ok2 := typicalP99(series, b, sEnd)
	if !ok1 || !ok2 {
		return errors.New("no requests completed before or during the spike")
	}
	m[MeasureBaselineP99], m[MeasureSpikeP99] = ref, peak
	m[MeasureLatencyIncrease] = peak/ref - 1
	n, e := counts(series, b, sEnd)
	m[MeasureSpikeErrorRate] = fraction(e, n)
	recovery(series, sEnd, ref, m)
	return nil
}

// endSeconds is how many seconds at each end of an n-second phase growth
// figures compare: a tenth, at least minEndSeconds where the phase has
// twice as many; 0 when it is too short for two.
func endSeconds(n int) int {
	k := max(int(math.Round(tenth*float64(n))), min(minEndSeconds, n/2), 1)
	if n < 2*k {
		return 0
	}
	return k
}

// growthMeasures compares the end of a phase's series with its start (see
// endSeconds): the target's memory and CPU, and, for a steady phase
// (latency set), the typical p99.
func growthMeasures(series []Point, m map[Measure]float64, latency bool) {
	n := len(series)
	k := endSeconds(n)
	if k == 0 {
		return
	}
	if latency {
		first, ok1 := typicalP99(series, 0, k)
		last, ok2 := typicalP99(series, n-k, n)
		if ok1 && ok2 {
			m[MeasureLatencyIncrease] = last/first - 1
		}
	}
	mean := func(from, to int, get func(Point) *float64) (float64, bool) {
		var sum float64
		var c int
		for _, p := range series[from:to] {
			if v := get(p); v != nil {
				sum += *v
				c++
			}
		}
		return sum / float64(max(c, 1)), c > 0
	}
	rss := func(p Point) *float64 { return p.TargetRSS }
	cpu := func(p Point) *float64 { return p.TargetCPU }
	if a, ok1 := mean(0, k, rss); ok1 {
		if b, ok2 := mean(n-k, n, rss); ok2 && a > 0 {
			m[MeasureMemoryGrowth] = b/a - 1
		}
	}
	// CPU's first second has no rate (it needs two samples): start at 1.
	if a, ok1 := mean(min(1, n-k), k+1, cpu); ok1 {
		if b, ok2 := mean(n-k, n, cpu); ok2 && a > 0 {
			m[MeasureCPUGrowth] = b/a - 1
		}
	}
}
