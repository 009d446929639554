package loadtest

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"
)

const liveEvery = 5 * time.Second // without a terminal, a live line this often

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
// returns the report. A plan that cannot run (a literal with a missing or
// bad field, see Plan) returns an error that wraps ErrBadPlan and names
// the field, before anything is sent. A phase that fails or cannot be
// measured is in the report. When ctx ends mid-run, Run returns ctx's
// error with the report of what ran, the interrupted phase ERROR with
// what it measured so far, so that an interrupted run loses nothing it
// measured; a run that could not start returns only the error.
func (p *Plan) Run(ctx context.Context, opt RunOptions) (*Report, error) {
	plan, err := p.checked()
	if err != nil {
		return nil, err
	}
	// Requests go out on the caller's client, or on fasthttp senders kept
	// for the whole run; the target's metrics are scraped on net/http.
	senders := newSenders(opt.Client, plan.Connections, plan.Timeout)
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
	rep := &Report{Plan: plan.Name, Target: plan.Target, Slices: 1, Started: time.Now().UTC()}
	if plan.slices > 1 {
		rep.Split = fmt.Sprintf("%d/%d", plan.slice+1, plan.slices)
	}
	measured := map[string]map[Measure]float64{}
	for i, ph := range plan.Phases {
		if i > 0 && plan.Cooldown > 0 {
			if opt.Live != nil {
				fmt.Fprintf(opt.Live, "cooling down for %v\n", plan.Cooldown)
			}
			if err := sleep(ctx, plan.Cooldown); err != nil {
				return rep.interrupted(len(plan.Phases) - i), err
			}
		}
		r := &phaseRun{plan: plan, ph: ph, opt: opt, client: client, senders: senders}
		pr := r.run(ctx, measured)
		if err := ctx.Err(); err != nil {
			pr.Status, pr.Error, pr.Verdicts = StatusError, fmt.Sprintf("interrupted after %.0fs", pr.ElapsedSeconds), []CriterionVerdict{}
			rep.Phases = append(rep.Phases, pr)
			return rep.interrupted(len(plan.Phases) - i - 1), err
		}
		measured[ph.Name] = pr.Measures
		rep.Phases = append(rep.Phases, pr)
		if opt.Live != nil {
			fmt.Fprintf(opt.Live, "%s: %s\n", ph.Name, pr.Status)
		}
		if pr.Status == StatusFailed && plan.AbortOnFailure && i < len(plan.Phases)-1 {
			rep.Assessment.Findings = append(rep.Assessment.Findings,
				fmt.Sprintf("the run stopped after %s failed (abort_on_failure); %d phases did not run", ph.Name, len(plan.Phases)-1-i))
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
func (r *phaseRun) run(ctx context.Context, measured map[string]map[Measure]float64) PhaseReport {
	ph := r.ph
	pr := PhaseReport{Name: ph.Name, Kind: ph.Kind, Pattern: ph.Pattern, Measures: map[Measure]float64{}}
	r.start = time.Now()
	pr.Started = r.start.UTC()
	r.total = newResult()

	stopScrape := r.scrape(ctx)
	err := r.runPattern(ctx, pr.Measures, measured)
	sc := stopScrape()
	pr.ElapsedSeconds = time.Since(r.start).Seconds()
	r.total.Elapsed = time.Since(r.start)
	if sc != nil {
		if serr := sc.attach(r.start, r.series); serr != nil && err == nil {
			pr.Error = "the target's metrics: " + serr.Error()
		}
	}
	growthMeasures(r.series, pr.Measures, ph.Pattern != PatternSpike && ph.Pattern != PatternBreaking)
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

// scrape starts scraping the target's metrics, when the plan names them;
// stop ends it and returns the scraper (nil for none).
func (r *phaseRun) scrape(ctx context.Context) (stop func() *scraper) {
	if r.plan.Metrics == "" {
		return func() *scraper { return nil }
	}
	sc := &scraper{url: r.plan.Metrics, series: r.plan.Series, client: r.client}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sc.run(ctx) }()
	return func() *scraper {
		cancel()
		<-done
		return sc
	}
}

// runPattern runs the phase's pattern, its figures in m; a sustained
// phase takes its capacity from the earlier phases' measured.
func (r *phaseRun) runPattern(ctx context.Context, m map[Measure]float64, measured map[string]map[Measure]float64) error {
	ph := r.ph
	switch ph.Pattern {
	case PatternSpike:
		return r.spike(ctx, m)
	case PatternBreaking:
		return r.breaking(ctx, m)
	case PatternSustained:
		capacity := ph.Capacity
		if ph.CapacityFrom != "" {
			bp, ok := measured[ph.CapacityFrom][MeasureBreakingPoint]
			if !ok || bp <= 0 {
				return fmt.Errorf("phase %q measured no breaking point to take %.0f%% of", ph.CapacityFrom, 100*ph.Fraction)
			}
			capacity = bp
		}
		m[MeasureCapacity] = capacity
		r.runProfile(ctx, constant(ph.Fraction*capacity, ph.Duration), "")
		return nil
	}
	r.runProfile(ctx, ph.profile(), "")
	return nil
}

// profile is the rate profile of a constant, ramp or steps phase.
func (ph Phase) profile() profile {
	switch ph.Pattern {
	case PatternRamp:
		return profile{{ph.Duration, ph.Rate, ph.To}}
	case PatternSteps:
		var prof profile
		for k := range ph.Steps {
			rate := ph.Rate
			if ph.Steps > 1 {
				rate += (ph.To - ph.Rate) * float64(k) / float64(ph.Steps-1)
			}
			prof = append(prof, segment{ph.Duration / time.Duration(ph.Steps), rate, rate})
		}
		return prof
	}
	return constant(ph.Rate, ph.Duration)
}

// criteria returns the phase's criteria, or the guide's for its kind.
func (r *phaseRun) criteria() []Threshold {
	if r.ph.Criteria != nil {
		return r.ph.Criteria
	}
	return r.plan.defaultCriteria(r.ph)
}

// defaultCriteria are the guide's criteria for a phase of ph's kind (the
// baseline's error rate for a custom phase), built as values: a rate
// divided between the slices of a split run, its Source left whole.
func (p *Plan) defaultCriteria(ph Phase) []Threshold {
	var out []Threshold
	switch ph.Kind {
	case KindBaseline:
		out = append(out, latencyCriterion(99, "<", BaselineP99), criterion(MetricRate, "<", BaselineErrorRate))
		if ph.Pattern == PatternConstant {
			// throughput ≥ the current rate, within 1 % for the rounding of
			// a schedule to whole requests; of the whole rate in a split run
			out = append(out, criterion(MetricRPS, ">=", math.Floor(0.99*ph.Rate*p.slicesOrOne()*100)/100))
		}
	case KindStress:
		if p.PeakRPS > 0 {
			out = append(out, criterion(MetricBreakingPoint, ">=", StressBreakingFactor*p.PeakRPS))
		}
		if ph.Recovery > 0 { // recovery: 0 watches none
			out = append(out, criterion(MetricRecovery, "<", ph.Recovery.Seconds()))
		}
		out = append(out, criterion(MetricOverloadGoodput, ">=", StressOverloadGoodput))
	case KindSpike:
		out = append(out, criterion(MetricLatencyIncrease, "<", SpikeLatencyIncrease), criterion(MetricSpikeErrorRate, "<", SpikeErrorRate))
	case KindEndurance:
		out = append(out, criterion(MetricMemoryGrowth, "<", EnduranceMemoryGrowth),
			criterion(MetricLatencyIncrease, "<", EnduranceLatencyIncrease), criterion(MetricCPUGrowth, "<", DefaultCPUGrowth))
	default:
		out = append(out, criterion(MetricRate, "<", BaselineErrorRate)) // a phase whose every request fails should not pass for want of criteria
	}
	for i, th := range out {
		out[i] = p.slicedThreshold(th)
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
		senders: r.senders, series: true, source: r.plan.source(uint64(time.Now().UnixNano()))}
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
	r.total.add(res.Result)
	// One run's rate is its own; several (probes) average over the phase.
	r.total.AchievedRPS = res.AchievedRPS
	if r.total.Requests != res.Requests {
		r.total.AchievedRPS = float64(r.total.Requests) / time.Since(r.start).Seconds()
	}
	return res, offset
}

// source returns the request makers of a run: the plan's Requests in
// turn, or its weighted mix.
func (p *Plan) source(seed uint64) func(i int) func(uint64) Target {
	if len(p.Requests) > 0 {
		return inTurn(p.Requests)
	}
	return p.mix.source(seed)
}

// inTurn returns request makers that send targets in turn, as an Attack
// does.
func inTurn(targets []Target) func(int) func(uint64) Target {
	return func(int) func(uint64) Target {
		return func(n uint64) Target { return targets[n%uint64(len(targets))] }
	}
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

// fraction is part over whole, 0 for no whole.
func fraction(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

func errorRate(r *Result) float64 { return fraction(r.Errors, r.Requests) }
