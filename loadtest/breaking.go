package loadtest

import (
	"context"
	"math"
	"time"
)

const (
	probeSkipLimit  = 0.01 // Strata: a probe that could not send 1 % of its schedule has failed
	settleAfterFail = 0.25 // Strata: after a failed probe, wait this share of a step for the target to drain
	minProbeRate    = 1.0  // Strata: a breaking search that fails at its start rate goes no lower than this
)

// search is a breaking phase's search for the highest rate whose probes
// pass. It runs its probes through once, so that a test can stand a model
// of a target in for the load.
type search struct {
	ph       Phase
	ctx      context.Context
	deadline time.Time        // when the phase's Duration is up; zero for none
	now      func() time.Time // the clock the deadline is read on
	// once runs one probe at rate and returns whether it passed, and the
	// probe's seconds.
	once   func(rate float64, purpose string) (passed bool, seconds []Point)
	lo, hi float64 // the highest rate that passed and the lowest that failed; 0 for none yet
	calm   float64 // the first rate that passed: the recovery drops back to it
	ref    float64 // its typical p99, ms: the latency the recovery must return to
}

// breaking searches for the highest rate whose probes pass: up by Growth
// until one fails, then bisect to within Precision; then it overloads the
// target at the first failing rate and drops back to a passing rate to
// time the recovery.
//
// A probe that fails is run once more, after the target has had time to
// drain, before the search believes it: one stall (a GC pause, a
// checkpoint, a noisy neighbour) would otherwise set the breaking point.
// When the start rate itself fails, the search goes down by Growth until
// a rate passes, rather than give up.
func (r *phaseRun) breaking(ctx context.Context, m map[Measure]float64) error {
	s := &search{ph: r.ph, ctx: ctx, now: time.Now, once: func(rate float64, purpose string) (bool, []Point) {
		return r.probe(ctx, rate, purpose)
	}}
	if r.ph.Duration > 0 {
		s.deadline = r.start.Add(r.ph.Duration)
	}
	if err := s.run(); err != nil {
		return err
	}
	m[MeasureBreakingPoint] = s.lo
	if s.hi == 0 {
		m[MeasureNoFailureUpTo] = s.lo
		return nil // nothing broke: no overload to recover from
	}
	m[MeasureFirstFailingRate] = s.hi
	if s.lo == 0 {
		return nil // nothing passed: no calm rate to recover at
	}
	m[MeasureBaselineP99] = s.ref
	return r.overload(ctx, s, m)
}

// run searches: up, down if the start rate failed, then bisect.
func (s *search) run() error {
	for _, step := range []func() error{s.ramp, s.descend, s.bisect} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// ramp probes from the start rate up by Growth until a probe fails, the
// ceiling is reached or the time is up.
func (s *search) ramp() error {
	ph := s.ph
	for rate := ph.Rate; ; rate = math.Min(rate*ph.Growth, ph.To) {
		ok, err := s.probe(rate, purposeRamp)
		if err != nil {
			return err
		}
		if !ok {
			s.hi = rate
			return nil
		}
		s.lo = rate
		if rate >= ph.To || !s.timeLeft() {
			return nil
		}
	}
}

// descend goes down by Growth from a failing start rate until a rate
// passes.
func (s *search) descend() error {
	ph := s.ph
	for s.lo == 0 && s.hi/ph.Growth >= minProbeRate && s.timeLeft() {
		rate := s.hi / ph.Growth
		ok, err := s.probe(rate, purposeDescend)
		if err != nil {
			return err
		}
		if ok {
			s.lo = rate
		} else {
			s.hi = rate
		}
	}
	return nil
}

// bisect narrows the knee between the highest pass and the lowest
// failure to within Precision.
func (s *search) bisect() error {
	for s.hi > 0 && s.lo > 0 && (s.hi-s.lo)/s.lo > s.ph.Precision && s.timeLeft() {
		mid := (s.lo + s.hi) / 2
		ok, err := s.probe(mid, purposeBisect)
		if err != nil {
			return err
		}
		if ok {
			s.lo = mid
		} else {
			s.hi = mid
		}
	}
	return nil
}

// timeLeft reports whether another probe fits in the phase's duration.
func (s *search) timeLeft() bool {
	return s.deadline.IsZero() || s.now().Add(s.ph.Step).Before(s.deadline)
}

// probe runs a probe at rate, and once more if it fails (time allowing);
// it reports whether it passed, or ctx's error. The first rate that
// passes is the calm one, and its seconds give the reference latency.
func (s *search) probe(rate float64, purpose string) (bool, error) {
	ok, seconds := s.once(rate, purpose)
	if !ok && s.ctx.Err() == nil && s.timeLeft() {
		ok, seconds = s.once(rate, purposeConfirm)
	}
	if err := s.ctx.Err(); err != nil {
		return false, err
	}
	if ok && s.calm == 0 {
		s.calm = rate
		s.ref, _ = typicalP99(seconds, 0, len(seconds))
	}
	return ok, nil
}

// probe runs one probe of the phase at rate and returns whether it
// passed its criteria, and its seconds. After a failed probe it waits for
// the target to drain.
func (r *phaseRun) probe(ctx context.Context, rate float64, purpose string) (bool, []Point) {
	ph := r.ph
	res, from := r.runProfile(ctx, constant(rate, ph.Step), purpose)
	ok := res.Requests > 0 && float64(res.Skipped) <= probeSkipLimit*rate*ph.Step.Seconds()
	for _, th := range ph.Probe {
		ok = ok && th.holds(th.measure(res.Result))
	}
	sum := res.Summary()
	r.steps = append(r.steps, Step{Purpose: purpose, AskedRPS: rate, AchievedRPS: sum.AchievedRPS, P99MS: sum.LatencyMS.P99,
		ErrorRate: errorRate(res.Result), Passed: ok})
	if !ok {
		_ = sleep(ctx, time.Duration(settleAfterFail*float64(ph.Step)))
	}
	return ok, r.series[from:]
}

// overload runs the target at the first failing rate for a step, then
// drops to the calm rate, in one run: the drop comes the moment the
// overload's schedule ends, while the target still works through its
// backlog. How much of the overload the target answered in its seconds
// says whether it degrades gracefully or collapses; the seconds after the
// drop time the return to the reference latency.
func (r *phaseRun) overload(ctx context.Context, s *search, m map[Measure]float64) error {
	ph := r.ph
	prof := constant(s.hi, ph.Step)
	if ph.Recovery > 0 {
		prof = append(prof, segment{ph.Recovery, s.calm, s.calm})
	}
	overSecs := int(ph.Step / time.Second)                    // seconds of overload alone
	dropSec := int((ph.Step + time.Second - 1) / time.Second) // the first second of calm alone
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var seen []Point
	_, from := r.runProfile(rctx, prof, "overload, then recovery", func(p Point) {
		if p.Second < dropSec || ph.Recovery <= 0 {
			return
		}
		seen = append(seen, p)
		if recoveredAt(seen, 0, s.ref) >= 0 {
			stop() // recovered: no need to watch the rest of the window
		}
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	h, n, errs := window(r.series, from, from+overSecs)
	r.steps = append(r.steps, Step{Purpose: purposeOverload, AskedRPS: s.hi, AchievedRPS: float64(n) / float64(overSecs), P99MS: p99(h), ErrorRate: fraction(errs, n)})
	m[MeasureOverloadGoodput] = float64(n-errs) / float64(overSecs) / s.lo
	if ph.Recovery <= 0 {
		return nil
	}
	drop := from + dropSec
	h, n, errs = window(r.series, drop, len(r.series))
	step := Step{Purpose: purposeRecovery, AskedRPS: s.calm, AchievedRPS: float64(n) / float64(max(len(r.series)-drop, 1)), P99MS: p99(h), ErrorRate: fraction(errs, n)}
	step.Passed = recovery(r.series, drop, s.ref, m)
	r.steps = append(r.steps, step)
	return nil
}
