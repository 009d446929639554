package loadtest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// local starts a test server on 127.0.0.1.
func local(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func runPlan(t *testing.T, src string, opt ParseOptions) *Report {
	t.Helper()
	p := mustPlan(t, src, opt)
	rep, err := p.Run(context.Background(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRunConstantRate: a constant-rate phase schedules exactly rate ×
// duration requests, and its achieved rate is near the asked one, second
// by second as well as overall. (Near: on a loaded machine the last sends
// may go out late, and the rate counts them over the longer time.)
func TestRunConstantRate(t *testing.T) {
	url := local(t, func(w http.ResponseWriter, r *http.Request) {})
	rep := runPlan(t, "target: "+url+"\ncooldown: 0s\nrequests: [{path: /}]\nphases: [{name: baseline, rate: 500, duration: 4s}]\n", ParseOptions{})
	ph := rep.Phases[0]
	s := ph.Summary
	if s.Requests+s.Skipped != 2000 || s.Errors != 0 || s.Skipped > 20 {
		t.Fatalf("%d requests, %d errors, %d skipped; want 2000 between sent and skipped, no error, few skipped", s.Requests, s.Errors, s.Skipped)
	}
	if math.Abs(s.AchievedRPS-500)/500 > 0.05 {
		t.Errorf("achieved %.2f/s, want 500 within 5 %%", s.AchievedRPS)
	}
	var got []string
	for _, v := range ph.Verdicts {
		got = append(got, v.Criterion)
	}
	if strings.Join(got, " ") != "p(99)<100ms rate<0.1% rps>=495" || ph.Verdicts[1].Status != StatusPassed || ph.Verdicts[2].Actual != s.AchievedRPS {
		t.Errorf("baseline verdicts %+v; want the guide's three, no error, the achieved rate judged", ph.Verdicts)
	}
	if len(ph.Series) < 4 {
		t.Fatalf("%d seconds in the series", len(ph.Series))
	}
	var sum int64
	for _, p := range ph.Series {
		sum += p.Requests
		if p.Second < 4 && p.AskedRPS != 500 {
			t.Errorf("second %d asked %v/s", p.Second, p.AskedRPS)
		}
	}
	if sum != s.Requests {
		t.Errorf("the series adds up to %d requests, the phase to %d", sum, s.Requests)
	}
}

// TestRunCoordinatedOmission: the server stalls every request for a second
// starting at a known moment. The open model keeps sending on schedule and
// latencies run from the scheduled time, so the p99 includes the stall even
// though only a few connections were free for it.
func TestRunCoordinatedOmission(t *testing.T) {
	var stallFrom, stallTo atomic.Int64
	url := local(t, func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UnixNano()
		if from, to := stallFrom.Load(), stallTo.Load(); from > 0 && now >= from && now < to {
			time.Sleep(time.Duration(to - now))
		}
	})
	p := mustPlan(t, "target: "+url+"\nconnections: 10\nrequests: [{path: /}]\nphases: [{name: a, rate: 200, duration: 4s, criteria: ['p(99)<100ms']}]\n", ParseOptions{})
	start := time.Now()
	stallFrom.Store(start.Add(time.Second).UnixNano())
	stallTo.Store(start.Add(2 * time.Second).UnixNano())
	rep, err := p.Run(context.Background(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Phases[0].Summary
	// A fifth of the sends fall in the stall and wait up to a second: p99
	// is most of that second. The uncorrected view sees only the few that
	// held a connection.
	if s.LatencyMS.P99 < 800 {
		t.Errorf("p99 %.1fms misses the 1 s stall: %+v", s.LatencyMS.P99, s.LatencyMS)
	}
	if s.Late == 0 {
		t.Errorf("no late sends with 10 connections through a 1 s stall at 200/s")
	}
	if s.UncorrectedLatency.P90 >= s.LatencyMS.P90 {
		t.Errorf("uncorrected p90 %.1fms not below corrected %.1fms", s.UncorrectedLatency.P90, s.LatencyMS.P90)
	}
	if rep.Phases[0].Status != StatusFailed || rep.Assessment.Status != StatusFailed {
		t.Errorf("a 1 s stall passed p(99)<100ms: %+v", rep.Phases[0].Verdicts)
	}
}

// capacityServer serves at most rate requests a second, as one queue: each
// request waits its turn, so above the rate the queue, and the latency,
// grow without bound.
func capacityServer(t *testing.T, rate float64) string {
	var mu sync.Mutex
	var next time.Time
	each := time.Duration(float64(time.Second) / rate)
	return local(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		if next.Before(now) {
			next = now
		}
		next = next.Add(each)
		wait := next.Sub(now)
		mu.Unlock()
		time.Sleep(wait)
	})
}

// TestRunBreakingPoint: a breaking phase against a server with a known
// capacity runs its probes, an overload and a recovery, and finds a
// breaking point near the capacity. TestSearch proves the search's steps
// exactly against a model; this is the real thing, so its bounds allow
// for a loaded machine: noise can only fail probes that should pass
// (latency runs from the scheduled time, so a starved generator shows as
// latency), so the bound above the capacity is tight and the one below
// wide.
func TestRunBreakingPoint(t *testing.T) {
	// Above the capacity the queue grows by (rate - capacity) a second: a
	// 1 s probe 5 % over it ends 50 ms behind, which its p99 criterion
	// catches. A small capacity leaves the generator, and the race
	// detector, most of the CPU.
	const capacity = 500
	url := capacityServer(t, capacity)
	rep := runPlan(t, "target: "+url+"\nconnections: 200\nrequests: [{path: /}]\nphases:\n"+
		"  - {name: stress, pattern: breaking, rate: 250, step: 1s, precision: 0.1, probe: ['p(99)<50ms'], recovery: 5s, criteria: ['breaking_point>=100', 'recovery<5s', 'overload_goodput>=50%']}\n", ParseOptions{})
	ph := rep.Phases[0]
	t.Logf("steps: %+v\nmeasures: %v", ph.Steps, ph.Measures)
	if bp := ph.Measures[MeasureBreakingPoint]; bp < 0.3*capacity || bp > 1.15*capacity {
		t.Errorf("breaking point %.0f/s, capacity %d/s", bp, capacity)
	}
	n := map[string]int{}
	for _, s := range ph.Steps {
		n[s.Purpose]++
	}
	if n[purposeRamp]+n[purposeDescend] < 2 || n[purposeOverload] != 1 || n[purposeRecovery] != 1 {
		t.Errorf("steps %v: %+v", n, ph.Steps)
	}
	if last := ph.Steps[len(ph.Steps)-1]; last.AskedRPS > capacity {
		t.Errorf("recovery at %.0f/s, above the capacity", last.AskedRPS)
	}
	m := ph.Measures
	for _, k := range []Measure{MeasureFirstFailingRate, MeasureBaselineP99, MeasureRecoverySeconds} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s measured: %v", k, m)
		}
	}
	// A server that queues degrades gracefully: overloaded, it still
	// answers at its capacity.
	if g := m[MeasureOverloadGoodput]; g < 0.5 {
		t.Errorf("overload_goodput %.2f from a server that answers at its capacity", g)
	}
	if len(ph.Verdicts) != 3 || ph.Verdicts[0].Status != StatusPassed || ph.Verdicts[2].Status != StatusPassed {
		t.Errorf("verdicts %+v", ph.Verdicts)
	}
}

// TestRunCascade: a server that, once its queue holds more than 100 ms
// of work, fails every request from then on (a cascading failure) is
// judged on overload_goodput: it answers nothing while overloaded. (The
// queue's bound is far above what a scheduling stall at the passing rates
// can build, so the cascade starts in the search's failing probe.)
func TestRunCascade(t *testing.T) {
	const capacity = 1000
	var mu sync.Mutex
	var next time.Time
	var broken bool
	url := local(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		if next.Before(now) {
			next = now
		}
		broken = broken || next.Sub(now) > 100*time.Millisecond
		if broken {
			mu.Unlock()
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		next = next.Add(time.Second / capacity)
		wait := next.Sub(now)
		mu.Unlock()
		time.Sleep(wait)
	})
	rep := runPlan(t, "target: "+url+"\nconnections: 200\nrequests: [{path: /}]\nphases:\n"+
		"  - {name: stress, pattern: breaking, rate: 300, growth: 2, step: 1s, precision: 0.5, probe: ['p(99)<50ms', 'rate<1%'], recovery: 1s}\n", ParseOptions{})
	ph := rep.Phases[0]
	t.Logf("steps: %+v", ph.Steps)
	var v *CriterionVerdict
	for i := range ph.Verdicts {
		if strings.HasPrefix(ph.Verdicts[i].Criterion, string(MetricOverloadGoodput)) {
			v = &ph.Verdicts[i]
		}
	}
	if v == nil || v.Status != StatusFailed || ph.Status != StatusFailed {
		t.Fatalf("the guide's stress criteria did not fail the cascade: %+v", ph.Verdicts)
	}
	// Measured, it is about 0; a run so starved that not even the start
	// rate passed fails it unmeasured.
	if g, ok := ph.Measures[MeasureOverloadGoodput]; ok == v.Unmeasured || ok && g > 0.1 {
		t.Errorf("overload_goodput %v (measured: %v, verdict %+v), want about 0 from a server that fails everything", g, ok, v)
	}
}

// TestRunNothingPasses: against a target that fails everything, the
// search goes down until its time is up, the breaking point is 0, and the
// criteria that need a rate the target handled say so.
func TestRunNothingPasses(t *testing.T) {
	t.Parallel() // a light load: the heavy tests run before, alone
	url := local(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	rep := runPlan(t, "target: "+url+"\nrequests: [{path: /}]\nphases:\n"+
		"  - {name: stress, pattern: breaking, rate: 100, step: 1s, duration: 5s, recovery: 2s}\n", ParseOptions{})
	ph := rep.Phases[0]
	n := map[string]int{}
	for _, s := range ph.Steps {
		n[s.Purpose]++
	}
	if n["ramp"] != 1 || n["descend"] < 1 || n["confirm"] < 1 || ph.Measures["breaking_point"] != 0 {
		t.Errorf("steps %v, measures %v", n, ph.Measures)
	}
	want := map[string]string{
		"breaking_point":   "every probe failed, down to",
		"recovery":         "no probe passed",
		"overload_goodput": "no probe passed",
	}
	for _, v := range ph.Verdicts {
		for metric, detail := range want {
			if strings.HasPrefix(v.Criterion, metric) && !strings.Contains(v.Detail, detail) {
				t.Errorf("%s: %s %q, want a detail with %q", v.Criterion, v.Status, v.Detail, detail)
			}
		}
	}
	if ph.Status != StatusFailed {
		t.Errorf("stress %s", ph.Status)
	}
}

// TestRunSpike: a server that really slows down while the rate is high
// (40 ms instead of 1) fails the spike's latency criterion, with a clear
// margin over any machine's noise; it recovers after the spike.
// TestSpikeMeasures proves the other direction, that noise alone passes,
// on series whose figures a test can fix.
func TestRunSpike(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time // in the last 100 ms
	url := local(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		arrivals = append(arrivals, now)
		for len(arrivals) > 0 && now.Sub(arrivals[0]) > 100*time.Millisecond {
			arrivals = arrivals[1:]
		}
		busy := len(arrivals) > 20 // over 200/s: the spike's 500, not the 50 around it
		mu.Unlock()
		if busy {
			time.Sleep(40 * time.Millisecond)
		} else {
			time.Sleep(time.Millisecond)
		}
	})
	rep := runPlan(t, "target: "+url+"\nrequests: [{path: /}]\nphases: [{name: spike, rate: 50, multiplier: 10, spike: 2s, duration: 6s}]\n", ParseOptions{})
	ph := rep.Phases[0]
	if ph.Status == StatusError {
		t.Fatalf("spike: %s %s", ph.Status, ph.Error)
	}
	m := ph.Measures
	for _, k := range []Measure{MeasureLatencyIncrease, MeasureSpikeErrorRate, MeasureRecoverySeconds, MeasureBaselineP99, MeasureSpikeP99} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s measured: %v", k, m)
		}
	}
	// The asked rate is 50, 500, 50 over the phase.
	if ph.Series[0].AskedRPS != 50 || ph.Series[3].AskedRPS != 500 || ph.Series[5].AskedRPS != 50 {
		t.Errorf("asked rates %v %v %v", ph.Series[0].AskedRPS, ph.Series[3].AskedRPS, ph.Series[5].AskedRPS)
	}
	if s := ph.Summary; s.Requests+s.Skipped != 2*50+2*500+2*50 {
		t.Errorf("%d requests and %d skipped, want 1,200", s.Requests, s.Skipped)
	}
	if len(ph.Verdicts) != 2 {
		t.Fatalf("the guide's two spike criteria: %+v", ph.Verdicts)
	}
	if v := ph.Verdicts[0]; v.Status != StatusFailed || v.Actual < 1 {
		t.Errorf("a 40× slower spike: %+v (measures %v); want latency_increase failed, over 100 %%", v, m)
	}
	if v := ph.Verdicts[1]; v.Status != StatusPassed {
		t.Errorf("a spike without errors: %+v", v)
	}
}

// TestRunTargetMetrics: a target whose resident memory grows by a tenth a
// second fails memory_growth; its CPU and goroutines are in the series.
func TestRunTargetMetrics(t *testing.T) {
	t.Parallel() // a light load: the heavy tests run before, alone
	var scrapes atomic.Int64
	start := time.Now()
	url := local(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			return
		}
		scrapes.Add(1)
		el := time.Since(start).Seconds()
		fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %g\n", 1e8*(1+0.1*el))
		fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", 0.5*el)
		fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines 12\n")
		fmt.Fprintf(w, "# TYPE app_queue gauge\napp_queue{shard=\"a\"} 2\napp_queue{shard=\"b\"} 3\n")
	})
	rep := runPlan(t, "target: "+url+"\nmetrics: "+url+"/metrics\nseries: [app_queue]\nrequests: [{path: /}]\n"+
		"phases: [{name: endurance, pattern: sustained, capacity: '100', fraction: 0.5, duration: 6s}]\n", ParseOptions{})
	ph := rep.Phases[0]
	if scrapes.Load() < 4 {
		t.Fatalf("%d scrapes in 6 s", scrapes.Load())
	}
	if g := ph.Measures["memory_growth"]; g < 0.2 {
		t.Errorf("memory growth %.2f; the target grew 10 %% a second", g)
	}
	if ph.Status != StatusFailed {
		t.Errorf("endurance %s: %+v", ph.Status, ph.Verdicts)
	}
	var cpu, rss, gor, extra int
	for _, p := range ph.Series {
		if p.TargetCPU != nil {
			cpu++
			if math.Abs(*p.TargetCPU-0.5) > 0.2 { // the scrape's own delay moves it a little
				t.Errorf("second %d: target CPU %.2f, want 0.5", p.Second, *p.TargetCPU)
			}
		}
		if p.TargetRSS != nil {
			rss++
		}
		if p.TargetGoroutines != nil && *p.TargetGoroutines == 12 {
			gor++
		}
		if p.TargetSeries["app_queue"] == 5 {
			extra++
		}
	}
	if cpu < 3 || rss < 4 || gor < 4 || extra < 4 {
		t.Errorf("seconds with target figures: cpu %d, rss %d, goroutines %d, app_queue %d", cpu, rss, gor, extra)
	}
	if s := ph.Summary; s.Requests+s.Skipped != 300 {
		t.Errorf("50 %% of 100/s for 6 s: %d requests, %d skipped", s.Requests, s.Skipped)
	}
}

// TestRunCriteriaWithoutMeasures: a phase criterion the phase cannot
// measure is ERROR with the reason, not FAILED.
func TestRunCriteriaWithoutMeasures(t *testing.T) {
	t.Parallel() // a light load: the heavy tests run before, alone
	url := local(t, func(w http.ResponseWriter, r *http.Request) {})
	rep := runPlan(t, "target: "+url+"\ncooldown: 0s\nrequests: [{path: /}]\nphases:\n"+
		"  - {name: a, rate: 50, duration: 1s, criteria: ['memory_growth<5%', 'breaking_point>=10', 'p(99)<1s']}\n", ParseOptions{})
	ph := rep.Phases[0]
	want := []Status{StatusError, StatusError, StatusPassed}
	for i, v := range ph.Verdicts {
		if v.Status != want[i] || (v.Status == StatusError && v.Detail == "") {
			t.Errorf("%s: %s (%s), want %s with a reason", v.Criterion, v.Status, v.Detail, want[i])
		}
	}
	if ph.Status != StatusError || rep.Assessment.Status != StatusError {
		t.Errorf("phase %s, overall %s; want ERROR", ph.Status, rep.Assessment.Status)
	}
}

// TestRunInterrupted: a run stopped mid-phase returns the report of what
// it measured, the interrupted phase ERROR and the rest not started.
func TestRunInterrupted(t *testing.T) {
	t.Parallel() // a light load: the heavy tests run before, alone
	url := local(t, func(w http.ResponseWriter, r *http.Request) {})
	p := mustPlan(t, "target: "+url+"\ncooldown: 0s\nrequests: [{path: /}]\nphases:\n"+
		"  - {name: a, rate: 100, duration: 1s, criteria: ['rate<1%']}\n  - {name: b, rate: 100, duration: 5s}\n  - {name: c, rate: 100, duration: 1s}\n", ParseOptions{})
	// Stopped in the middle of b, which runs from about 1 s to 6 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	rep, err := p.Run(ctx, RunOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || rep == nil {
		t.Fatalf("Run: %v, report %v; want the deadline and a report", err, rep != nil)
	}
	if len(rep.Phases) != 2 || rep.Phases[0].Status != StatusPassed || rep.Phases[1].Status != StatusError {
		t.Fatalf("phases %+v", rep.Phases)
	}
	b := rep.Phases[1]
	if !strings.HasPrefix(b.Error, "interrupted") || b.Summary.Requests < 100 || b.Summary.Requests > 300 || len(b.Series) < 2 {
		t.Errorf("interrupted phase: %q, %d requests, %d seconds", b.Error, b.Summary.Requests, len(b.Series))
	}
	a := rep.Assessment
	if a.Status != StatusError || !strings.HasPrefix(a.Summary, "interrupted") || !strings.Contains(strings.Join(a.Findings, "\n"), "1 phases did not start") {
		t.Errorf("assessment %+v", a)
	}
}

// TestRunAbortOnFailure: abort_on_failure stops the run after the first
// phase that fails, and says so.
func TestRunAbortOnFailure(t *testing.T) {
	t.Parallel() // a light load: the heavy tests run before, alone
	url := local(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	rep := runPlan(t, "target: "+url+"\ncooldown: 0s\nabort_on_failure: true\nrequests: [{path: /}]\nphases:\n"+
		"  - {name: a, rate: 20, duration: 1s}\n  - {name: b, rate: 20, duration: 1s}\n", ParseOptions{})
	if len(rep.Phases) != 1 || rep.Phases[0].Status != StatusFailed {
		t.Fatalf("phases %d, first %s", len(rep.Phases), rep.Phases[0].Status)
	}
	if !strings.Contains(strings.Join(rep.Assessment.Findings, "\n"), "stopped after a failed") {
		t.Errorf("findings %q", rep.Assessment.Findings)
	}
	if rep.Phases[0].Summary.ErrorsByKind["status 500"] != 20 {
		t.Errorf("errors by kind %v", rep.Phases[0].Summary.ErrorsByKind)
	}
}

// TestMergeExact: percentiles of merged reports equal those of one
// histogram holding every value, exactly, for histograms built from known
// values and for a real split run.
func TestMergeExact(t *testing.T) {
	all := newHistogram()
	var parts []*Report
	for slice := range 3 {
		h := newHistogram()
		for i := range 5000 {
			v := int64((i*7919+slice*104729)%200000 + 1) // spread over 1 µs–200 ms
			_ = h.RecordValue(v)
			_ = all.RecordValue(v)
		}
		parts = append(parts, &Report{Plan: "p", Split: fmt.Sprintf("%d/3", slice+1), Slices: 1, Phases: []PhaseReport{{
			Name: "a", Pattern: "constant", Status: StatusPassed, Summary: Summary{Requests: 5000, AchievedRPS: 100},
			Histograms: Histograms{Latency: encodeHistogram(h), Uncorrected: encodeHistogram(h)},
			Verdicts:   []CriterionVerdict{{Criterion: "p(99)<150ms"}, {Criterion: "rps>=300"}},
			Series:     []Point{{Second: 0, Requests: 5000, Histogram: encodeHistogram(h)}},
		}}})
	}
	m, err := Merge(parts...)
	if err != nil {
		t.Fatal(err)
	}
	got, want := m.Phases[0].Summary.LatencyMS, percentiles(all)
	if got != want {
		t.Errorf("merged %+v, single %+v", got, want)
	}
	sec := m.Phases[0].Series[0]
	single := newSecondHistogram()
	for _, p := range parts {
		h, _ := decodeHistogram(p.Phases[0].Series[0].Histogram)
		single.Merge(h)
	}
	if sec.Requests != 15000 || sec.P99MS != float64(single.ValueAtQuantile(99))/1000 {
		t.Errorf("merged second: %d requests, p99 %v", sec.Requests, sec.P99MS)
	}
	if m.Slices != 3 || m.Phases[0].Summary.AchievedRPS != 300 {
		t.Errorf("slices %d, rate %v", m.Slices, m.Phases[0].Summary.AchievedRPS)
	}
	if v := m.Phases[0].Verdicts; v[1].Status != StatusPassed || v[0].Actual != want.P99 {
		t.Errorf("criteria judged again on the whole: %+v", v)
	}
	other := *parts[1]
	other.Plan = "other"
	if _, err := Merge(parts[0], &other, parts[2]); err == nil {
		t.Error("merged reports of different plans")
	}
}

// TestMergeRefuses: merge takes each slice of one split run once, or a
// single report; anything else would add up to a wrong rate.
func TestMergeRefuses(t *testing.T) {
	slice := func(split string) *Report {
		return &Report{Plan: "p", Split: split, Slices: 1, Phases: []PhaseReport{{Name: "a", Pattern: "constant", Status: StatusPassed}}}
	}
	for _, tc := range []struct {
		name    string
		reports []*Report
		want    string // in the error; "" for none
	}{
		// one unsplit report is judged again on its own
		{"single", []*Report{slice("")}, ""},
		// every slice once
		{"whole", []*Report{slice("2/2"), slice("1/2")}, ""},
		// the same slice twice would double its share
		{"twice", []*Report{slice("1/2"), slice("1/2")}, "slice 1/2 again"},
		// an unsplit report beside a slice
		{"unsplit", []*Report{slice(""), slice("1/2")}, "report 1 is not a slice"},
		// slices of different splits
		{"mixed", []*Report{slice("1/2"), slice("2/3")}, "of 3 slices; report 1 is of 2"},
		// a slice missing would leave the rates short
		{"missing", []*Report{slice("1/3"), slice("3/3")}, "slices 2/3 are missing"},
		// one slice alone is part of a run, not a run
		{"alone", []*Report{slice("2/4")}, "slices 1/4, 3/4, 4/4 are missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(tc.reports...)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrMerge) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want ErrMerge with %q", err, tc.want)
			}
		})
	}
}

// TestReadReportRefuses: JSON that is not a run's report is refused with
// a message saying what it lacks.
func TestReadReportRefuses(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`{"requests": 10, "latency_ms": {}}`, "no phases (is it an attack's --json?"}, // an attack's JSON
		{`{"phases": [{"name": "x"}]}`, `phase "x": status ""`},                        // no status: not run
		{`{"phases": [{"status": "PASSED"}]}`, "phases[0] has no name"},
		{`{"split": "3/2", "phases": [{"name": "x", "status": "PASSED"}]}`, `split "3/2" is not i/N`},
		{`[1, 2]`, "not a load-test report"},
	} {
		_, err := ReadReport(strings.NewReader(tc.src))
		if err == nil || !errors.Is(err, ErrNotReport) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrNotReport with %q", tc.src, err, tc.want)
		}
	}
}

// TestSplitRunMerge: two slices of a plan, run side by side, send the
// whole plan's requests between them, and merge into one report whose
// counts and percentiles are those of all requests.
func TestSplitRunMerge(t *testing.T) {
	var hits atomic.Int64
	url := local(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	src := "target: " + url + "\nrequests: [{path: /}]\nphases: [{name: baseline, rate: 400, duration: 2s}]\n"
	reps := make([]*Report, 2)
	start := time.Now().Add(200 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range 2 {
		p := mustPlan(t, src, ParseOptions{Slice: i, Slices: 2})
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := p.Run(context.Background(), RunOptions{StartAt: start})
			if err != nil {
				t.Error(err)
				return
			}
			reps[i] = rep
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if s := reps[0].Phases[0].Summary; reps[0].Split != "1/2" || s.Requests+s.Skipped != 400 {
		t.Fatalf("slice 1: split %q, %d requests, %d skipped", reps[0].Split, s.Requests, s.Skipped)
	}
	// Round-trip through JSON, as merge reads files.
	for i, r := range reps {
		var buf bytes.Buffer
		if err := r.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := ReadReport(&buf)
		if err != nil {
			t.Fatal(err)
		}
		reps[i] = back
	}
	m, err := Merge(reps...)
	if err != nil {
		t.Fatal(err)
	}
	ph := m.Phases[0]
	if s := ph.Summary; s.Requests+s.Skipped != 800 || hits.Load() != s.Requests {
		t.Errorf("merged %d requests and %d skipped, server saw %d; want 800 between them, all seen", s.Requests, s.Skipped, hits.Load())
	}
	if math.Abs(ph.Summary.AchievedRPS-400)/400 > 0.05 {
		t.Errorf("merged rate %.1f/s, want 400 within 5 %%", ph.Summary.AchievedRPS)
	}
	both := newHistogram()
	for _, r := range reps {
		h, _ := decodeHistogram(r.Phases[0].Histograms.Latency)
		both.Merge(h)
	}
	if ph.Summary.LatencyMS != percentiles(both) {
		t.Errorf("merged percentiles %+v, all requests' %+v", ph.Summary.LatencyMS, percentiles(both))
	}
	// The default criteria name the whole plan's rate, and are judged on
	// the merged report's.
	if v := ph.Verdicts[2]; v.Criterion != "rps>=396" || v.Actual != ph.Summary.AchievedRPS {
		t.Errorf("throughput criterion %+v, merged rate %v", v, ph.Summary.AchievedRPS)
	}
}

// TestRunMemoryFlat: a constant-rate run's heap does not grow with its
// requests: histograms are fixed in size and the series holds a few
// hundred bytes a second. The heap is read as the run reports its
// seconds 2 and 7, so the readings are ordered by the run itself.
func TestRunMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("an 8-second run")
	}
	url := local(t, func(w http.ResponseWriter, r *http.Request) {})
	// Few connections, so that the pools on both sides (buffers of some
	// KiB each) are full by the first reading: a stall of the loaded
	// machine would otherwise open more of them in the middle, and read
	// as growth.
	p := mustPlan(t, "target: "+url+"\nconnections: 8\nrequests: [{path: /}]\nphases: [{name: a, rate: 2000, duration: 8s, criteria: []}]\n", ParseOptions{})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var early, late uint64
	second := 0
	live := writerFunc(func(b []byte) {
		if !bytes.HasPrefix(b, []byte("\r[")) {
			return // not a second's line
		}
		switch second {
		case 2:
			early = heap()
		case 7:
			late = heap()
		}
		second++
	})
	rep, err := p.Run(context.Background(), RunOptions{Live: live, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Phases[0].Summary; s.Requests+s.Skipped != 16000 || second < 8 {
		t.Fatalf("%d requests, %d skipped, %d seconds reported", s.Requests, s.Skipped, second)
	}
	// 10,000 requests between the two readings; a generator that kept
	// 100 bytes for each would grow by a megabyte.
	growth := int64(late) - int64(early)
	t.Logf("heap %d KiB at 2 s, %d KiB at 7 s", early/1024, late/1024)
	if growth > 1<<20 {
		t.Errorf("heap grew %d KiB over 5 s of a constant-rate run", growth/1024)
	}
}

// writerFunc is an io.Writer that hands each write to a function.
type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func TestJUnit(t *testing.T) {
	rep := &Report{Plan: "p", Phases: []PhaseReport{
		{Name: "a", Status: StatusFailed, Verdicts: []CriterionVerdict{{Criterion: "p(99)<1ms", Status: StatusFailed, Actual: 5, Unit: "ms"}, {Criterion: "rate<1%", Status: StatusPassed}}},
		{Name: "b", Status: StatusError, Error: "phase \"x\" measured no breaking point", Verdicts: []CriterionVerdict{}},
	}}
	var buf bytes.Buffer
	if err := rep.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if got.Tests != 3 || got.Fails != 1 || got.Errors != 1 || len(got.Suites) != 2 {
		t.Errorf("tests %d, failures %d, errors %d, suites %d:\n%s", got.Tests, got.Fails, got.Errors, len(got.Suites), buf.String())
	}
	if f := got.Suites[0].Cases[0].Failure; f == nil || !strings.Contains(f.Message, "actual 5ms") {
		t.Errorf("failure %+v", f)
	}
}
