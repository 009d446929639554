package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	recoveryWindow  = 5 * time.Second        // Strata: recovered once a window this long is back within the margin
	recoveryMargin  = 0.1                    // the issue: p99 back within 10 % of before
	recoverySlackMS = 1.0                    // Strata: or within 1 ms, so that sub-millisecond noise does not read as no recovery
	probeSkipLimit  = 0.01                   // Strata: a probe that could not send 1 % of its schedule has failed
	tenth           = 0.1                    // growth figures compare the last tenth of a phase with the first
	settleAfterFail = 0.25                   // Strata: after a failed probe, wait this share of a step for the target to drain
	minProbeRate    = 1.0                    // Strata: a breaking search that fails at its start rate goes no lower than this
	liveEvery       = 5 * time.Second        // without a terminal, a live line this often
	cooldownTick    = 100 * time.Millisecond // how often a cool-down looks at its context
)

// RunOptions are how a plan is run, beside the plan itself.
type RunOptions struct {
	// Live, when set, gets a line per second of each phase (elapsed, asked
	// against achieved rate, p99, errors); with TTY the line rewrites
	// itself, without it one is written every 5 s.
	Live io.Writer
	TTY  bool
	// Client sends the requests and scrapes; nil means one built for the
	// run.
	Client *http.Client
	// StartAt, when set, is when the first phase begins, so that the
	// generators of a split run start together.
	StartAt time.Time
}

// Run runs the plan's phases in turn, with the cool-down between them, and
// returns the report. A phase that fails or cannot be measured is in the
// report. When ctx ends mid-run, Run returns ctx's error with the report
// of what ran, the interrupted phase ERROR with what it measured so far,
// so that an interrupted run loses nothing it measured; a run that could
// not start returns only the error.
func (p *Plan) Run(ctx context.Context, opt RunOptions) (*Report, error) {
	// Requests go out on the caller's client, or on fasthttp senders kept
	// for the whole run; the target's metrics are scraped on net/http.
	senders := newSenders(opt.Client, p.Connections, p.Timeout)
	defer senders.close()
	client := opt.Client
	if client == nil {
		client = &http.Client{}
		defer client.CloseIdleConnections()
	}
	if !opt.StartAt.IsZero() {
		if err := sleep(ctx, time.Until(opt.StartAt)); err != nil {
			return nil, err
		}
	}
	rep := &Report{Plan: p.Name, Target: p.Target, Slices: 1, Started: time.Now().UTC()}
	if p.slices > 1 {
		rep.Split = fmt.Sprintf("%d/%d", p.slice+1, p.slices)
	}
	measured := map[string]map[string]float64{}
	for i, ph := range p.Phases {
		if i > 0 && p.Cooldown > 0 {
			if opt.Live != nil {
				fmt.Fprintf(opt.Live, "cooling down for %v\n", p.Cooldown)
			}
			if err := sleep(ctx, p.Cooldown); err != nil {
				return rep.interrupted(len(p.Phases) - i), err
			}
		}
		r := &phaseRun{plan: p, ph: ph, opt: opt, client: client, senders: senders}
		pr := r.run(ctx, measured)
		if err := ctx.Err(); err != nil {
			pr.Status, pr.Error, pr.Verdicts = StatusError, fmt.Sprintf("interrupted after %.0fs", pr.ElapsedSeconds), []CriterionVerdict{}
			rep.Phases = append(rep.Phases, pr)
			return rep.interrupted(len(p.Phases) - i - 1), err
		}
		measured[ph.Name] = pr.Measures
		rep.Phases = append(rep.Phases, pr)
		if opt.Live != nil {
			fmt.Fprintf(opt.Live, "%s: %s\n", ph.Name, pr.Status)
		}
		if pr.Status == StatusFailed && p.AbortOnFailure && i < len(p.Phases)-1 {
			rep.Assessment.Findings = append(rep.Assessment.Findings,
				fmt.Sprintf("the run stopped after %s failed (abort_on_failure); %d phases did not run", ph.Name, len(p.Phases)-1-i))
			break
		}
	}
	rep.Finished = time.Now().UTC()
	rep.assess()
	return rep, nil
}

// interrupted finishes the report of a run stopped with left phases not
// started.
func (rep *Report) interrupted(left int) *Report {
	rep.Finished = time.Now().UTC()
	rep.assess()
	a := &rep.Assessment
	if a.Status == StatusPassed {
		a.Status = StatusError
	}
	a.Summary = "interrupted: " + a.Summary
	f := "the run was interrupted"
	if left > 0 {
		f += fmt.Sprintf("; %d phases did not start", left)
	}
	a.Findings = append(a.Findings, f)
	return rep
}

// Reassess sets the overall assessment again from the phases, for a report
// whose phases were put together from other reports.
func (rep *Report) Reassess() {
	rep.Assessment.Findings = nil
	rep.assess()
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// phaseRun is one phase running.
type phaseRun struct {
	plan    *Plan
	ph      Phase
	opt     RunOptions
	client  *http.Client // for scraping
	senders *senders

	start   time.Time
	total   *Result // all of the phase's requests
	series  []Point
	steps   []Step
	lastOut time.Time
}

// run runs the phase and measures it.
func (r *phaseRun) run(ctx context.Context, measured map[string]map[string]float64) PhaseReport {
	ph := r.ph
	pr := PhaseReport{Name: ph.Name, Kind: ph.Kind, Pattern: ph.Pattern, Measures: map[string]float64{}}
	r.start = time.Now()
	pr.Started = r.start.UTC()
	r.total = &Result{ErrorsByKind: map[string]int64{}, Latency: newHistogram(), UncorrectedLatency: newHistogram(), ScheduleLag: newHistogram()}

	var sc *scraper
	scrapeCtx, stopScrape := context.WithCancel(ctx)
	scraped := make(chan struct{})
	if r.plan.Metrics != "" {
		sc = &scraper{url: r.plan.Metrics, series: r.plan.Series, client: r.client}
		go func() { defer close(scraped); sc.run(scrapeCtx) }()
	} else {
		close(scraped)
	}

	var err error
	switch ph.Pattern {
	case "constant":
		r.runProfile(ctx, constant(ph.Rate, ph.Duration), "")
	case "ramp":
		r.runProfile(ctx, profile{{ph.Duration, ph.Rate, ph.To}}, "")
	case "steps":
		var prof profile
		for k := range ph.Steps {
			rate := ph.Rate
			if ph.Steps > 1 {
				rate += (ph.To - ph.Rate) * float64(k) / float64(ph.Steps-1)
			}
			prof = append(prof, segment{ph.Duration / time.Duration(ph.Steps), rate, rate})
		}
		r.runProfile(ctx, prof, "")
	case "spike":
		err = r.spike(ctx, pr.Measures)
	case "sustained":
		capacity := ph.Capacity
		if ph.CapacityFrom != "" {
			bp, ok := measured[ph.CapacityFrom]["breaking_point"]
			if !ok || bp <= 0 {
				err = fmt.Errorf("phase %q measured no breaking point to take %.0f%% of", ph.CapacityFrom, 100*ph.Fraction)
				break
			}
			capacity = bp
		}
		pr.Measures["capacity"] = capacity
		r.runProfile(ctx, constant(ph.Fraction*capacity, ph.Duration), "")
	case "breaking":
		err = r.breaking(ctx, pr.Measures)
	}
	stopScrape()
	<-scraped
	pr.ElapsedSeconds = time.Since(r.start).Seconds()
	r.total.Elapsed = time.Since(r.start)
	if sc != nil {
		if serr := sc.attach(r.start, r.series); serr != nil && err == nil {
			pr.Error = "the target's metrics: " + serr.Error()
		}
	}
	growthMeasures(r.series, pr.Measures, ph.Pattern != "spike" && ph.Pattern != "breaking")
	pr.Summary = r.total.Summary()
	pr.Histograms = Histograms{Latency: encodeHistogram(r.total.Latency), Uncorrected: encodeHistogram(r.total.UncorrectedLatency)}
	pr.Steps, pr.Series = r.steps, r.series
	if pr.Series == nil {
		pr.Series = []Point{}
	}
	if err != nil {
		pr.Status, pr.Error = StatusError, err.Error()
		pr.Verdicts = []CriterionVerdict{}
		return pr
	}
	pr.Verdicts = judge(r.criteria(), r.total, pr.Measures, ph)
	pr.Status = phaseStatus(pr.Verdicts)
	if r.opt.Live != nil && r.opt.TTY {
		fmt.Fprintln(r.opt.Live)
	}
	return pr
}

// criteria returns the phase's criteria, or the guide's for its kind (the
// baseline's error rate for a custom phase).
func (r *phaseRun) criteria() []Threshold {
	if r.ph.Criteria != nil {
		return r.ph.Criteria
	}
	var src []string
	switch r.ph.Kind {
	case "baseline":
		src = []string{BaselineP99, BaselineErrorRate}
		if r.ph.Pattern == "constant" {
			// throughput ≥ the current rate, within 1 % for the rounding of
			// a schedule to whole requests; of the whole rate in a split run
			src = append(src, fmt.Sprintf("rps>=%g", math.Floor(0.99*r.ph.Rate*r.plan.slicesOrOne()*100)/100))
		}
	case "stress":
		if r.plan.PeakRPS > 0 {
			src = append(src, fmt.Sprintf("breaking_point>=%g", StressBreakingFactor*r.plan.PeakRPS))
		}
		src = append(src, fmt.Sprintf("recovery<%v", r.ph.Recovery.Round(time.Second)), fmt.Sprintf("overload_goodput>=%g%%", 100*StressOverloadGoodput))
	case "spike":
		src = []string{fmt.Sprintf("latency_increase<%g%%", 100*SpikeLatencyIncrease), fmt.Sprintf("spike_error_rate<%g%%", 100*SpikeErrorRate)}
	case "custom":
		src = []string{BaselineErrorRate} // a phase whose every request fails should not pass for want of criteria
	case "endurance":
		src = []string{fmt.Sprintf("memory_growth<%g%%", 100*EnduranceMemoryGrowth), fmt.Sprintf("latency_increase<%g%%", 100*EnduranceLatencyIncrease), fmt.Sprintf("cpu_growth<%g%%", 100*DefaultCPUGrowth)}
	}
	var out []Threshold
	for _, s := range src {
		th, err := ParseThreshold(s)
		if err != nil { // the defaults above are well formed
			panic(err)
		}
		out = append(out, r.plan.slicedThreshold(th))
	}
	return out
}

// runProfile runs one stretch of the phase and adds it to the phase's
// totals and series. purpose names a probe ("" for the phase's own run);
// onSecond, when set, sees each second too.
//
// It returns the run's result and the index in the phase's series where
// the run's own seconds start.
func (r *phaseRun) runProfile(ctx context.Context, prof profile, purpose string, onSecond ...func(Point)) (*runResult, int) {
	offset := len(r.series)
	if n := time.Since(r.start); n > time.Duration(offset)*time.Second {
		// time spent settling between probes shows as a gap in the series
		for s := offset; s < int(n/time.Second); s++ {
			r.series = append(r.series, Point{Second: s})
		}
		offset = len(r.series)
	}
	e := &engine{prof: prof, offset: r.plan.offset(), connections: r.plan.Connections, timeout: r.plan.Timeout,
		senders: r.senders, series: true, source: r.plan.mix.source(uint64(time.Now().UnixNano()))}
	runStart := time.Now()
	e.onSecond = func(p Point) {
		r.live(p, runStart, prof, purpose)
		for _, f := range onSecond {
			f(p)
		}
	}
	res := e.run(ctx)
	for _, p := range res.series {
		p.Second += offset
		r.series = append(r.series, p)
	}
	t := r.total
	t.Requests += res.Requests
	t.Errors += res.Errors
	t.Late += res.Late
	t.Skipped += res.Skipped
	for k, v := range res.ErrorsByKind {
		t.ErrorsByKind[k] += v
	}
	t.Latency.Merge(res.Latency)
	t.UncorrectedLatency.Merge(res.UncorrectedLatency)
	t.ScheduleLag.Merge(res.ScheduleLag)
	t.GeneratorCPU = max(t.GeneratorCPU, res.GeneratorCPU)
	// One run's rate is its own; several (probes) average over the phase.
	t.AchievedRPS = res.AchievedRPS
	if t.Requests != res.Requests {
		t.AchievedRPS = float64(t.Requests) / time.Since(r.start).Seconds()
	}
	return res, offset
}

// live writes the live line for one second.
func (r *phaseRun) live(p Point, runStart time.Time, prof profile, purpose string) {
	w := r.opt.Live
	if w == nil {
		return
	}
	now := time.Now()
	if !r.opt.TTY && now.Sub(r.lastOut) < liveEvery {
		return
	}
	r.lastOut = now
	what := r.ph.Name
	if purpose != "" {
		what += " " + purpose
	}
	line := fmt.Sprintf("[%s %3.0fs/%.0fs] asked %.0f/s achieved %d/s p99 %.2fms errors %d",
		what, now.Sub(runStart).Seconds(), prof.duration().Seconds(), p.AskedRPS, p.Requests, p.P99MS, p.Errors)
	if r.opt.TTY {
		fmt.Fprintf(w, "\r%-100s", line)
	} else {
		fmt.Fprintln(w, line)
	}
}

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

func p99(h *hdrhistogram.Histogram) float64 { return float64(h.ValueAtQuantile(99)) / 1000 }

// recoveredAt returns the first second from `from` at which a window of
// recoveryWindow seconds (less in a short phase) has its p99 within the margin of ref (in ms) and
// at most the spike error rate of errors; -1 if none.
func recoveredAt(series []Point, from int, ref float64) int {
	// A short (scaled-down) phase gets a shorter window: a quarter of
	// what is left after from, at least a second.
	w := max(min(int(recoveryWindow/time.Second), (len(series)-from)/4), 1)
	limit := max(ref*(1+recoveryMargin), ref+recoverySlackMS)
	for t := from; t+w <= len(series); t++ {
		h, n, e := window(series, t, t+w)
		if n > 0 && p99(h) <= limit && float64(e) <= SpikeErrorRate*float64(n) {
			return t
		}
	}
	return -1
}

// spike runs base, base × multiplier, base and measures the spike.
func (r *phaseRun) spike(ctx context.Context, m map[string]float64) error {
	ph := r.ph
	before := (ph.Duration - ph.SpikeLength) / 2
	after := ph.Duration - ph.SpikeLength - before
	high := ph.Rate * ph.Multiplier
	r.runProfile(ctx, profile{{before, ph.Rate, ph.Rate}, {ph.SpikeLength, high, high}, {after, ph.Rate, ph.Rate}}, "")
	b, sEnd := int(before/time.Second), int((before+ph.SpikeLength)/time.Second)
	m["spike_start_second"], m["spike_end_second"] = float64(b), float64(sEnd)
	return spikeMeasures(r.series, m)
}

// spikeMeasures measures a spike phase's series, the spike's seconds in m.
func spikeMeasures(series []Point, m map[string]float64) error {
	b, sEnd := int(m["spike_start_second"]), int(m["spike_end_second"])
	hb, nb, _ := window(series, 0, b)
	hs, ns, es := window(series, b, sEnd)
	if nb == 0 || ns == 0 {
		return errors.New("no requests completed before or during the spike")
	}
	ref := p99(hb)
	if ref <= 0 {
		return errors.New("no latency measured before the spike")
	}
	m["baseline_p99_ms"], m["spike_p99_ms"] = ref, p99(hs)
	m["latency_increase"] = p99(hs)/ref - 1
	m["spike_error_rate"] = float64(es) / float64(ns)
	delete(m, "not_recovered")
	if t := recoveredAt(series, sEnd, ref); t >= 0 {
		m["recovery_seconds"] = float64(t - sEnd)
	} else {
		m["recovery_seconds"] = float64(len(series) - sEnd)
		m["not_recovered"] = 1
	}
	return nil
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
func (r *phaseRun) breaking(ctx context.Context, m map[string]float64) error {
	ph := r.ph
	deadline := time.Time{}
	if ph.Duration > 0 {
		deadline = r.start.Add(ph.Duration)
	}
	once := func(rate float64, purpose string) (bool, *runResult) {
		res, _ := r.runProfile(ctx, constant(rate, ph.Step), purpose)
		ok := res.Requests > 0 && float64(res.Skipped) <= probeSkipLimit*rate*ph.Step.Seconds()
		for _, th := range ph.Probe {
			ok = ok && th.holds(th.measure(res.Result))
		}
		s := res.Summary()
		r.steps = append(r.steps, Step{Purpose: purpose, AskedRPS: rate, AchievedRPS: s.AchievedRPS, P99MS: s.LatencyMS.P99,
			ErrorRate: errorRate(res.Result), Passed: ok})
		if !ok {
			_ = sleep(ctx, time.Duration(settleAfterFail*float64(ph.Step)))
		}
		return ok, res
	}
	timeLeft := func() bool { return deadline.IsZero() || time.Now().Add(ph.Step).Before(deadline) }
	probe := func(rate float64, purpose string) (bool, *runResult) {
		ok, res := once(rate, purpose)
		if ok || ctx.Err() != nil || !timeLeft() {
			return ok, res
		}
		return once(rate, "confirm")
	}

	lo, hi := 0.0, 0.0
	var ref, calm float64 // a passing rate's p99, and the rate, for recovery
	for rate := ph.Rate; ; rate = math.Min(rate*ph.Growth, ph.To) {
		ok, res := probe(rate, "ramp")
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !ok {
			hi = rate
			break
		}
		if lo == 0 {
			ref, calm = res.Summary().LatencyMS.P99, rate
		}
		lo = rate
		if rate >= ph.To || !timeLeft() {
			break
		}
	}
	for lo == 0 && hi/ph.Growth >= minProbeRate && timeLeft() {
		rate := hi / ph.Growth
		ok, res := probe(rate, "descend")
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ok {
			lo, ref, calm = rate, res.Summary().LatencyMS.P99, rate
		} else {
			hi = rate
		}
	}
	for hi > 0 && lo > 0 && (hi-lo)/lo > ph.Precision && timeLeft() {
		mid := (lo + hi) / 2
		ok, _ := probe(mid, "bisect")
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	m["breaking_point"] = lo
	if hi == 0 {
		m["no_failure_up_to"] = lo
		return nil // nothing broke: no overload to recover from
	}
	m["first_failing_rate"] = hi
	if lo == 0 {
		return nil // nothing passed: no calm rate to recover at
	}
	// Overload at the failing rate, then drop to the calm rate, in one
	// run: the drop comes the moment the overload's schedule ends, while
	// the target still works through its backlog. How much of the
	// overload the target answered in its seconds says whether it degrades
	// gracefully or collapses; the seconds after the drop time the return.
	prof := constant(hi, ph.Step)
	if ph.Recovery > 0 {
		prof = append(prof, segment{ph.Recovery, calm, calm})
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
		if recoveredAt(seen, 0, ref) >= 0 {
			stop() // recovered: no need to watch the rest of the window
		}
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	h, n, errs := window(r.series, from, from+overSecs)
	r.steps = append(r.steps, Step{Purpose: "overload", AskedRPS: hi, AchievedRPS: float64(n) / float64(overSecs), P99MS: p99(h), ErrorRate: fraction(errs, n)})
	m["overload_goodput"] = float64(n-errs) / float64(overSecs) / lo
	if ph.Recovery <= 0 {
		return nil
	}
	drop := from + dropSec
	h, n, errs = window(r.series, drop, len(r.series))
	r.steps = append(r.steps, Step{Purpose: "recovery", AskedRPS: calm, AchievedRPS: float64(n) / float64(max(len(r.series)-drop, 1)), P99MS: p99(h), ErrorRate: fraction(errs, n)})
	if t := recoveredAt(r.series, drop, ref); t >= 0 {
		m["recovery_seconds"] = float64(t - drop)
		r.steps[len(r.steps)-1].Passed = true
	} else {
		m["recovery_seconds"] = float64(len(r.series) - drop)
		m["not_recovered"] = 1
	}
	return nil
}

// fraction is part over whole, 0 for no whole.
func fraction(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

func errorRate(r *Result) float64 { return fraction(r.Errors, r.Requests) }

// growthMeasures compares the last tenth of a phase's series with the
// first: the target's memory and CPU, and, for a steady phase (latency
// set), p99.
func growthMeasures(series []Point, m map[string]float64, latency bool) {
	n := len(series)
	k := max(int(math.Round(tenth*float64(n))), 1)
	if n < 2*k {
		return
	}
	if latency {
		h1, n1, _ := window(series, 0, k)
		h2, n2, _ := window(series, n-k, n)
		if n1 > 0 && n2 > 0 && p99(h1) > 0 {
			m["latency_increase"] = p99(h2)/p99(h1) - 1
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
			m["memory_growth"] = b/a - 1
		}
	}
	// CPU's first second has no rate (it needs two samples): start at 1.
	if a, ok1 := mean(min(1, n-k), k+1, cpu); ok1 {
		if b, ok2 := mean(n-k, n, cpu); ok2 && a > 0 {
			m["cpu_growth"] = b/a - 1
		}
	}
}

// judge checks each criterion: latency, rate and rps against the phase's
// totals, the rest against its measures.
func judge(criteria []Threshold, total *Result, m map[string]float64, ph Phase) []CriterionVerdict {
	out := []CriterionVerdict{}
	_, broke := m["first_failing_rate"]
	nothingPassed := broke && m["breaking_point"] == 0
	for _, th := range criteria {
		v := CriterionVerdict{Criterion: th.Source, Unit: th.Unit()}
		switch {
		case nothingPassed && (th.Metric == "recovery" || th.Metric == "overload_goodput"):
			v.Status, v.Unmeasured = StatusFailed, true
			v.Detail = "no probe passed: the target handled no rate, so it could neither degrade gracefully nor recover"
		case !th.PhaseOnly():
			if total.Requests == 0 {
				v.Status, v.Detail = StatusError, "no request completed"
				break
			}
			v.Actual = th.measure(total)
		case th.Metric == "recovery":
			secs, ok := m["recovery_seconds"]
			if !ok {
				v.Status, v.Detail = StatusError, missing(th.Metric, ph)
				break
			}
			v.Actual = secs
			if m["not_recovered"] == 1 {
				v.Status = StatusFailed
				v.Detail = fmt.Sprintf("p99 was not back within %.0f%% of before in the %.0fs watched", 100*recoveryMargin, secs)
			}
		default:
			val, ok := m[th.Metric]
			if !ok {
				v.Status, v.Detail = StatusError, missing(th.Metric, ph)
				break
			}
			v.Actual = val
			if th.Metric == "breaking_point" {
				if up, ok := m["no_failure_up_to"]; ok {
					v.Detail = fmt.Sprintf("no probe failed up to %g/s, the highest the phase tries", up)
				}
				if val == 0 {
					v.Detail = fmt.Sprintf("every probe failed, down to %g/s", m["first_failing_rate"])
				}
			}
		}
		if v.Status == "" {
			v.Status = StatusFailed
			if th.holds(v.Actual) {
				v.Status = StatusPassed
			}
		}
		out = append(out, v)
	}
	return out
}

// missing says why a criterion could not be measured in a phase.
func missing(metric string, ph Phase) string {
	switch metric {
	case "memory_growth", "cpu_growth":
		return "needs the target's metrics: give the plan a metrics URL (its Prometheus /metrics with process_ metrics)"
	case "breaking_point":
		return "only a breaking phase measures it"
	case "recovery":
		if ph.Pattern == "breaking" {
			return "nothing broke, so there was nothing to recover from"
		}
		return "only breaking and spike phases measure it"
	case "spike_error_rate":
		return "only a spike phase measures it"
	case "overload_goodput":
		if ph.Pattern == "breaking" {
			return "nothing broke, so nothing was overloaded"
		}
		return "only a breaking phase measures it"
	case "latency_increase":
		return "the phase is too short to compare its first tenth with its last"
	}
	return "not measured"
}

func phaseStatus(vs []CriterionVerdict) string {
	status := StatusPassed
	for _, v := range vs {
		switch v.Status {
		case StatusFailed:
			return StatusFailed
		case StatusError:
			status = StatusError
		}
	}
	return status
}

// assess sets the overall assessment from the phases.
func (rep *Report) assess() {
	a := &rep.Assessment
	a.Passed, a.Failed, a.Errored = 0, 0, 0
	var findings []string
	var failedNames []string
	for _, ph := range rep.Phases {
		switch ph.Status {
		case StatusPassed:
			a.Passed++
		case StatusFailed:
			a.Failed++
			failedNames = append(failedNames, ph.Name)
		default:
			a.Errored++
		}
		if ph.Error != "" {
			findings = append(findings, fmt.Sprintf("%s: %s", ph.Name, ph.Error))
		}
		for _, v := range ph.Verdicts {
			if v.Status == StatusPassed {
				continue
			}
			f := fmt.Sprintf("%s: %s %s", ph.Name, v.Criterion, v.Status)
			if v.Status != StatusError {
				f += fmt.Sprintf(" (actual %s)", formatActual(v))
			}
			if v.Detail != "" {
				f += ": " + v.Detail
			}
			findings = append(findings, f)
		}
	}
	// Keep findings added while running (an abort), after the phases'.
	a.Findings = append(findings, slices.DeleteFunc(a.Findings, func(s string) bool { return slices.Contains(findings, s) })...)
	n := len(rep.Phases)
	switch {
	case n == 0:
		a.Status, a.Summary = StatusError, "no phase ran"
	case a.Failed > 0:
		a.Status = StatusFailed
		a.Summary = fmt.Sprintf("%d of %d phases passed; %s failed", a.Passed, n, strings.Join(failedNames, ", "))
	case a.Errored > 0:
		a.Status = StatusError
		a.Summary = fmt.Sprintf("%d of %d phases passed; %d could not be measured", a.Passed, n, a.Errored)
	default:
		a.Status = StatusPassed
		a.Summary = fmt.Sprintf("all %d phases passed", n)
	}
}

func formatActual(v CriterionVerdict) string {
	if v.Status == StatusError || v.Unmeasured {
		return "—" // not measured
	}
	if v.Unit == "" {
		return fmt.Sprintf("%.2f%%", 100*v.Actual)
	}
	return fmt.Sprintf("%.4g%s", v.Actual, v.Unit)
}
