package monitor

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The names of the SLOs Strata knows.
const (
	// SLOAvailability: the share of requests answered without a server
	// error (not 5xx).
	SLOAvailability = "availability"
	// SLOLatency: the share of requests answered within a threshold.
	SLOLatency = "latency"
)

// Default SLOs (DESIGN.md: p99 < 100 ms is the guide's latency target in
// its load tests and search case study; availability is Strata's).
const (
	DefaultAvailability     = 99.9                   // percent of requests not 5xx, over 30 days
	DefaultLatencyObjective = 99                     // percent: p99
	DefaultLatencyThreshold = 100 * time.Millisecond // Load Testing: p99 < 100 ms
)

// SLOMinBadRequests is the minimum-traffic guard of the burn-rate alerts:
// a burn-rate alert fires only when its long window holds at least this
// many failed requests (divided by [Config.Scale]), so one or two failed
// requests of a quiet service never page, while a quiet service that
// fails every request still alerts after five of them, however few
// requests it gets.
const SLOMinBadRequests = 5

// maxSLOSpec bounds the text ParseSLOs reads.
const maxSLOSpec = 1024

// SLO is one service level objective of the storefront's HTTP API, over
// every route but the probes and /metrics.
type SLO struct {
	// Name is SLOAvailability or SLOLatency.
	Name string
	// Objective is the percentage of requests that must be good, over
	// 30 days: 99.9 for availability; for latency the quantile, 99 for a
	// p99. Above 93.056 (so that the page alert's 14.4 × burn rate is
	// under 100 % bad), under 100.
	Objective float64
	// Threshold is, for latency, the time within which a request is
	// good; it must be a bucket boundary of
	// strata_http_request_duration_seconds ([HTTPBuckets]).
	Threshold time.Duration
}

// DefaultSLOs returns the SLOs of a zero [Config]: availability 99.9 %
// and latency p99 < 100 ms.
func DefaultSLOs() []SLO {
	return []SLO{
		{Name: SLOAvailability, Objective: DefaultAvailability},
		{Name: SLOLatency, Objective: DefaultLatencyObjective, Threshold: DefaultLatencyThreshold},
	}
}

// HTTPBuckets returns the bucket boundaries, in seconds, of
// strata_http_request_duration_seconds (storefront/http.go; a test keeps
// them equal).
func HTTPBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// String writes s as ParseSLOs reads it.
func (s SLO) String() string {
	obj := strconv.FormatFloat(s.Objective, 'f', -1, 64)
	if s.Name == SLOLatency {
		return fmt.Sprintf("latency=p%s<%s", obj, s.Threshold)
	}
	return s.Name + "=" + obj
}

// budget is the error budget, a fraction.
func (s SLO) budget() float64 { return round12(1 - s.Objective/100) }

func round12(x float64) float64 { return math.Round(x*1e12) / 1e12 }

// ParseSLOs reads a comma-separated list of SLOs, as strata alerts'
// --slo takes it: availability=99.9,latency=p99<100ms. The latency
// threshold takes Go duration units (100ms, 0.25s). "none" means no SLO.
// Each name at most once.
func ParseSLOs(spec string) ([]SLO, error) {
	if len(spec) > maxSLOSpec {
		return nil, fmt.Errorf("monitor: SLO list is %d bytes; want at most %d", len(spec), maxSLOSpec)
	}
	spec = strings.TrimSpace(spec)
	if spec == "none" {
		return []SLO{}, nil
	}
	if spec == "" {
		return nil, errors.New(`monitor: SLO list is empty; want e.g. availability=99.9,latency=p99<100ms, or none`)
	}
	var out []SLO
	for part := range strings.SplitSeq(spec, ",") {
		s, err := parseSLO(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o SLO) bool { return o.Name == s.Name }) {
			return nil, fmt.Errorf("monitor: SLO %s given twice", s.Name)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseSLO(part string) (SLO, error) {
	name, val, ok := strings.Cut(part, "=")
	if !ok {
		return SLO{}, fmt.Errorf("monitor: SLO %s: want NAME=VALUE, e.g. availability=99.9 or latency=p99<100ms", clip(part))
	}
	name, val = strings.TrimSpace(name), strings.TrimSpace(val)
	s := SLO{Name: name}
	switch name {
	case SLOAvailability:
		obj, err := parsePercent(val)
		if err != nil {
			return SLO{}, fmt.Errorf("monitor: SLO %s: %s is not a percentage such as 99.9", clip(part), clip(val))
		}
		s.Objective = obj
	case SLOLatency:
		q, thr, ok := strings.Cut(val, "<")
		q, thr = strings.TrimSpace(q), strings.TrimSpace(thr)
		if !ok || !strings.HasPrefix(q, "p") {
			return SLO{}, fmt.Errorf("monitor: SLO %s: want latency=pNN<DURATION, e.g. latency=p99<100ms", clip(part))
		}
		obj, err := parsePercent(q[1:])
		if err != nil {
			return SLO{}, fmt.Errorf("monitor: SLO %s: %s is not a quantile such as p99 or p99.9", clip(part), clip(q))
		}
		d, err := time.ParseDuration(thr)
		if err != nil {
			return SLO{}, fmt.Errorf("monitor: SLO %s: %s is not a duration such as 100ms", clip(part), clip(thr))
		}
		s.Objective, s.Threshold = obj, d
	default:
		return SLO{}, fmt.Errorf("monitor: SLO %s: unknown SLO %s; want availability or latency", clip(part), clip(name))
	}
	return s, s.check()
}

// parsePercent reads a plain decimal number (no sign, exponent, NaN, Inf
// or hex).
func parsePercent(s string) (float64, error) {
	if s == "" || strings.Trim(s, "0123456789.") != "" {
		return 0, errors.New("not a number")
	}
	return strconv.ParseFloat(s, 64)
}

// minObjective is the smallest objective whose page alert can fire: the
// 14.4 × burn rate must stay under 100 % bad.
func minObjective() float64 { return 100 * (1 - 1/burnWindows()[0].burn) }

// check refuses an SLO that cannot make alerts, naming what is wrong.
func (s SLO) check() error {
	switch s.Name {
	case SLOAvailability, SLOLatency:
	default:
		return fmt.Errorf("monitor: SLO %s: unknown; want availability or latency", clip(s.Name))
	}
	if !(s.Objective > minObjective() && s.Objective < 100) {
		return fmt.Errorf("monitor: SLO %s: objective %v %%: want over %.3f (the page alert's burn rate %v needs a budget under %.2f %%) and under 100",
			s.Name, s.Objective, minObjective(), burnWindows()[0].burn, 100-minObjective())
	}
	if s.Name == SLOAvailability && s.Threshold != 0 {
		return fmt.Errorf("monitor: SLO availability: has a latency threshold %s", s.Threshold)
	}
	if s.Name == SLOLatency && !slices.Contains(HTTPBuckets(), s.Threshold.Seconds()) {
		var bs []string
		for _, b := range HTTPBuckets() {
			bs = append(bs, time.Duration(b*float64(time.Second)).String())
		}
		return fmt.Errorf("monitor: SLO latency: threshold %s is not a bucket of strata_http_request_duration_seconds; want one of %s",
			s.Threshold, strings.Join(bs, ", "))
	}
	return nil
}

// burnWindow is one pair of windows of the multi-window multi-burn-rate
// alerts (Google SRE workbook, chapter 5; sloth): the alert fires when
// both windows burn the 30-day budget at burn × or faster.
type burnWindow struct {
	long, short time.Duration
	burn        float64       // 14.4: 2 % of a 30-day budget in an hour
	severity    string        // critical pages, warning is a ticket
	period      time.Duration // for:, as pyrra does: filters one-evaluation blips
}

// burnWindows returns the four pairs, page first.
func burnWindows() []burnWindow {
	const day = 24 * time.Hour
	return []burnWindow{
		{time.Hour, 5 * time.Minute, 14.4, SeverityCritical, 2 * time.Minute},    // 2 % of the budget in 1 h
		{6 * time.Hour, 30 * time.Minute, 6, SeverityCritical, 15 * time.Minute}, // 5 % in 6 h
		{day, 2 * time.Hour, 3, SeverityWarning, time.Hour},                      // 10 % in 1 d
		{3 * day, 6 * time.Hour, 1, SeverityWarning, 3 * time.Hour},              // 10 % in 3 d
	}
}

// guard is the fewest failed requests the long window of a burn-rate
// alert must hold: SLOMinBadRequests, divided by the scale like the
// windows, so that it stands for the same rate of failures.
func (g *generator) guard() float64 { return round12(SLOMinBadRequests / g.p.scale) }

// title is the SLO's part of alert names: Availability, Latency.
func (s SLO) title() string { return strings.ToUpper(s.Name[:1]) + s.Name[1:] }

// good says in words what a good request is.
func (s SLO) good() string {
	if s.Name == SLOLatency {
		return "answered within " + s.Threshold.String()
	}
	return "answered without a server error (not 5xx)"
}

// bad says in words what a bad request is.
func (s SLO) bad() string {
	if s.Name == SLOLatency {
		return "slower than " + s.Threshold.String()
	}
	return "answered with a server error (5xx)"
}

// burnName is the alert name of s's burn-rate alerts.
func (s SLO) burnName() string { return "StrataSLO" + s.title() + "ErrorBudgetBurn" }

// sel is the selector of the SLOs' requests: every route but the probes.
func sloSelector() string { return fmt.Sprintf(`route!~%q`, probeRoutes) }

// badExpr is the PromQL of s's failed requests over window wn, per job.
func (s SLO) badExpr(wn string) string {
	sel := sloSelector()
	if s.Name == SLOLatency {
		b := `strata_http_request_duration_seconds_bucket{` + sel
		return fmt.Sprintf(`sum by (job) (increase(%s,le="+Inf"}[%s])) - sum by (job) (increase(%s,le="%s"}[%s]))`, b, wn, b, fmtFloat(s.Threshold.Seconds()), wn)
	}
	return fmt.Sprintf(`sum by (job) (increase(strata_http_requests_total{%s,code=~"5.."}[%s]))`, sel, wn)
}

// ratioExpr is the PromQL of s's share of failed requests over window wn,
// per job.
func (s SLO) ratioExpr(wn string) string {
	sel := sloSelector()
	if s.Name == SLOLatency {
		b := `strata_http_request_duration_seconds_bucket{` + sel
		return fmt.Sprintf(`1 - sum by (job) (rate(%s,le="%s"}[%s])) / sum by (job) (rate(%s,le="+Inf"}[%s]))`, b, fmtFloat(s.Threshold.Seconds()), wn, b, wn)
	}
	return fmt.Sprintf(`sum by (job) (rate(strata_http_requests_total{%s,code=~"5.."}[%s])) / sum by (job) (rate(strata_http_requests_total{%s}[%s]))`, sel, wn, sel, wn)
}

// addSLO adds an SLO's recording rules, burn-rate alerts, their tests,
// runbook and docs.
func (g *generator) addSLO(s SLO) {
	ws := burnWindows()
	rg := g.group("strata-slo-"+s.Name, 2*g.interval)
	var windows []time.Duration
	for _, w := range ws {
		windows = append(windows, g.p.w(w.long), g.p.w(w.short))
	}
	slices.Sort(windows)
	for _, w := range slices.Compact(windows) {
		rg.add(Rule{Record: "slo:sli_error:ratio_rate" + promDuration(w), Expr: s.ratioExpr(promDuration(w)), Labels: map[string]string{"slo": s.Name}})
	}
	for _, w := range ws {
		long := promDuration(g.p.w(w.long))
		rg.add(Rule{Record: "slo:sli_error:increase" + long, Expr: s.badExpr(long), Labels: map[string]string{"slo": s.Name}})
	}
	name := s.burnName()
	for _, w := range ws {
		rg.add(g.burnRule(s, w))
	}
	g.read(name, "strata_http_requests_total")
	if s.Name == SLOLatency {
		g.read(name, "strata_http_request_duration_seconds_bucket")
	}
	g.books = append(g.books, namedBook{name, bookBurn(s)})
	row := docRow{alert: name, period: 0, expr: "slo:sli_error:ratio_rate… > burn × budget",
		guide: fmt.Sprintf("SLO %s: %s %% of requests %s (Google SRE workbook windows)", s, fmtFloat(s.Objective), s.good())}
	for _, w := range ws {
		row.thresholds = append(row.thresholds, fmt.Sprintf("%s: %v× over %s and %s (for %s, keep firing %s, ≥ %d failed)",
			w.severity, w.burn, promDuration(w.long), promDuration(w.short), promDuration(w.period), promDuration(w.period), SLOMinBadRequests))
	}
	g.docs = append(g.docs, row)
	g.tests = append(g.tests, g.burnTests(s)...)
}

// burnRule is s's alert on window pair w: both windows burn the budget
// at w.burn × or faster, and the long one holds at least guard failed
// requests. It keeps firing for its for: after the short window clears,
// so a burn hovering at the threshold does not resolve and fire again.
func (g *generator) burnRule(s SLO, w burnWindow) Rule {
	long, short := promDuration(g.p.w(w.long)), promDuration(g.p.w(w.short))
	thr := fmt.Sprintf("%s * %s", fmtFloat(w.burn), fmtFloat(s.budget()))
	return Rule{
		Alert: s.burnName(),
		Expr: fmt.Sprintf("slo:sli_error:ratio_rate%s{slo=%q} > %s\nand on (job) slo:sli_error:ratio_rate%s{slo=%q} > %s\nand on (job) slo:sli_error:increase%s{slo=%q} >= %s",
			long, s.Name, thr, short, s.Name, thr, long, s.Name, fmtFloat(g.guard())),
		For:           promDuration(g.p.d(w.period)),
		KeepFiringFor: promDuration(g.p.d(w.period)),
		Labels:        map[string]string{"severity": w.severity, "long_window": long, "short_window": short},
		Annotations:   g.burnAnnotations(s, w),
	}
}

// burnAnnotations are the annotations of s's alert on window pair w.
func (g *generator) burnAnnotations(s SLO, w burnWindow) map[string]string {
	long, short := promDuration(g.p.w(w.long)), promDuration(g.p.w(w.short))
	return map[string]string{
		"summary": fmt.Sprintf("%s: SLO %s burning its error budget %v× too fast", s.burnName(), s.Name, w.burn),
		"description": fmt.Sprintf("{{ $value | humanizePercentage }} of the requests of {{ $labels.job }} over %s were %s, and more than %v × %s %% over %s too: at this rate the SLO of %s %% spends its 30-day error budget %v× too fast.",
			long, s.bad(), w.burn, fmtFloat(100*s.budget()), short, fmtFloat(s.Objective), w.burn),
		"runbook_url": g.runbookURL(s.burnName()),
	}
}

// burnTests returns, per window pair, a test of three jobs: in one the
// budget burns just faster than the pair's rate (the alert fires after
// its for:, not before, with every pair that rate passes), in another
// just slower (the pair does not fire), and in the third every request
// fails but too few of them reach the guard (nothing fires). The page
// pairs get the tests of the window pair too (windowTests).
func (g *generator) burnTests(s SLO) []testGroup {
	ws := burnWindows()
	name := s.burnName()
	var out []testGroup
	for _, w := range ws {
		short := g.p.w(w.short)
		step := (short / 10).Truncate(time.Millisecond)
		gi := g.testInterval()
		period := g.p.d(w.period)
		fire := period + 2*step + 3*gi
		n := int(fire/step) + 3
		// want: the pairs whose burn rate r passes, whose short window
		// holds two samples, whose for: has run by fire and whose guard
		// the failed requests by then pass.
		want := func(r float64, job string) []expAlert {
			var exp []expAlert
			for _, o := range ws {
				if r > o.burn*s.budget() && 2*step <= g.p.w(o.short) && g.p.d(o.period)+2*step+3*gi <= fire && testRPS*r*fire.Seconds() >= 2*g.guard() {
					a := g.burnAnnotations(s, o)
					a["description"] = strings.ReplaceAll(a["description"], "{{ $value | humanizePercentage }}", humanize("humanizePercentage", r))
					a["description"] = strings.ReplaceAll(a["description"], "{{ $labels.job }}", job)
					exp = append(exp, expAlert{Labels: map[string]string{"severity": o.severity, "slo": s.Name, "job": job,
						"long_window": promDuration(g.p.w(o.long)), "short_window": promDuration(g.p.w(o.short))}, Annotations: a})
				}
			}
			return exp
		}
		tg := testGroup{Interval: promDuration(step)}
		var exp []expAlert
		for _, c := range []struct {
			job    string
			factor float64
		}{{testJob + "-fast", 1.05}, {testJob + "-slow", 0.95}} {
			r := round12(w.burn * s.budget() * c.factor)
			for _, sr := range withJob(synthSLO(s, r), c.job) {
				tg.InputSeries = append(tg.InputSeries, inputSeries{sr.String(), values(true, step, []phase{{sr.value, n}})})
			}
			exp = append(exp, want(r, c.job)...)
		}
		// quiet: every request fails, but by fire only half the guard's
		// failed requests have come.
		quiet := g.guard() / 2 / fire.Seconds()
		for _, sr := range withRate(withJob(synthSLO(s, 1), testJob+"-quiet"), quiet) {
			tg.InputSeries = append(tg.InputSeries, inputSeries{sr.String(), values(true, step, []phase{{sr.value, n}})})
		}
		tg.AlertTests = []alertTest{
			{EvalTime: promDuration(period - gi/2), Alertname: name},        // burning for less than for:, nothing fires
			{EvalTime: promDuration(fire), Alertname: name, ExpAlerts: exp}, // the fast burn fires (with every pair it passes), the slow one not this pair, the quiet one never
		}
		out = append(out, tg)
		if w.severity == SeverityCritical {
			out = append(out, g.windowTests(s, w))
		}
	}
	return out
}

// windowTests tests that both windows of pair w count, on two jobs
// burning at a rate only this pair's alert is asked about:
//
//   - blip: after clean traffic, a burst long enough for the short window
//     to pass the threshold for longer than for:, too short for the long
//     window: the alert does not fire (it would on the short window alone);
//   - stopped: a burn that fires the alert, then stops: once the short
//     window holds no failures and keep_firing_for has run, the alert
//     resolves while the long window is still past the threshold (it would
//     not on the long window alone).
//
// The ticket pairs are left out: their windows (a day, three) would take
// promtool hours of evaluations, and the same code makes their rules.
func (g *generator) windowTests(s SLO, w burnWindow) testGroup {
	long, short, period := g.p.w(w.long), g.p.w(w.short), g.p.d(w.period)
	ln, sn := promDuration(long), promDuration(short)
	step := (short / 10).Truncate(time.Millisecond)
	ev := g.testInterval()
	thr := w.burn * s.budget()
	count := func(job string) string {
		return fmt.Sprintf(`count(ALERTS{alertname=%q,alertstate="firing",job=%q,long_window=%q})`, s.burnName(), job, ln)
	}
	above := func(window, job string) string {
		return fmt.Sprintf(`count(slo:sli_error:ratio_rate%s{job=%q,slo=%q} > %s)`, window, job, s.Name, fmtFloat(thr))
	}
	one := []expSample{{Labels: "{}", Value: 1}}
	tg := testGroup{Interval: promDuration(step)}
	add := func(job string, r float64, phases ...time.Duration) { // clean, failing at r, clean…
		clean, bad := withJob(synthSLO(s, 0), job), withJob(synthSLO(s, r), job)
		for i := range clean {
			var ps []phase
			for k, d := range phases {
				v := clean[i].value
				if k%2 == 1 {
					v = bad[i].value
				}
				ps = append(ps, phase{v, int(d / step)})
			}
			tg.InputSeries = append(tg.InputSeries, inputSeries{clean[i].String(), values(true, step, ps)})
		}
	}

	// blip: 1.5 × the threshold for long enough that the short window
	// alone would fire, after as much clean traffic, so the long window
	// holds at most 0.75 × the threshold.
	rb := min(1.5*thr, (1+thr)/2)
	d := (short + period + 3*ev + 2*step).Truncate(step)
	add(testJob+"-blip", rb, d, d, 2*step)
	tg.PromQLTests = append(tg.PromQLTests,
		promQLTest{Expr: above(sn, testJob+"-blip"), EvalTime: promDuration(2 * d), ExpSamples: one}, // the short window burns
		promQLTest{Expr: count(testJob + "-blip"), EvalTime: promDuration(2 * d)})                    // the long one does not: no alert

	// stopped: 10 × the threshold (at most all requests) until it fires,
	// then none; by then the long window holds over 1.2 × the threshold.
	rs := min(10*thr, 1)
	if rs <= 1.3*thr { // an objective near 93 %: no rate burns the long window far enough past it
		return tg
	}
	after := (short + period + 2*ev + 3*step).Truncate(step)                            // the short window clears, keep_firing_for runs out
	stop := max(period+2*step+6*ev, time.Duration(1.3*thr*float64(after)/(rs-1.3*thr))) // it has fired, and enough failed
	stop = (stop + step - 1).Truncate(step)
	add(testJob+"-stopped", rs, 0, stop, after+step)
	tg.PromQLTests = append(tg.PromQLTests,
		promQLTest{Expr: count(testJob + "-stopped"), EvalTime: promDuration(stop), ExpSamples: one},           // it fires
		promQLTest{Expr: above(ln, testJob+"-stopped"), EvalTime: promDuration(stop + after), ExpSamples: one}, // the long window still burns
		promQLTest{Expr: count(testJob + "-stopped"), EvalTime: promDuration(stop + after)})                    // but the alert resolved
	return tg
}

// withRate returns the counters ss at rate per second in all, each in
// the same share as before: the same ratios at another traffic.
func withRate(ss []series, rate float64) []series {
	var total float64
	for _, s := range ss {
		if s.name == "strata_http_requests_total" || strings.HasSuffix(s.name, "_bucket") && s.labels["le"] == "+Inf" {
			total = max(total, s.value)
		}
	}
	out := slices.Clone(ss)
	for i := range out {
		out[i].value = round12(out[i].value * rate / total)
	}
	return out
}

// synthSLO returns testRPS requests a second of which a fraction r is
// bad for s.
func synthSLO(s SLO, r float64) []series {
	l := func(extra ...string) map[string]string {
		return strataLabels(append([]string{"route", testRoute, "method", "GET"}, extra...)...)
	}
	if s.Name == SLOLatency {
		return []series{
			{"strata_http_requests_total", l("code", "200"), true, testRPS},
			{"strata_http_request_duration_seconds_bucket", l("le", fmtFloat(s.Threshold.Seconds())), true, testRPS * (1 - r)},
			{"strata_http_request_duration_seconds_bucket", l("le", "+Inf"), true, testRPS},
		}
	}
	return []series{
		{"strata_http_requests_total", l("code", "200"), true, testRPS * (1 - r)},
		{"strata_http_requests_total", l("code", "500"), true, testRPS * r},
	}
}
