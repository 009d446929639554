package demo

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/loadtest"
	"github.com/strata-dev/strata/storefront"
)

// TestStallGate: a shut gate holds a request until the caller gives up
// (it never reaches the handler) or the gate opens (it does).
func TestStallGate(t *testing.T) {
	var served atomic.Int64
	waiting, gaveUp := make(chan struct{}, 2), make(chan struct{}, 2)
	g := &stallGate{next: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served.Add(1) }),
		waiting: func() { waiting <- struct{}{} }, gaveUp: func() { gaveUp <- struct{}{} }}
	srv := httptest.NewServer(g)
	defer srv.Close()

	// open: passes at once
	get(t, context.Background(), srv.URL, true)
	// shut, and the caller gives up: the handler never runs
	g.stall()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { get(t, ctx, srv.URL, false); close(done) }()
	<-waiting
	cancel()
	<-done
	<-gaveUp
	// shut, then opened while the request waits: it is served
	done = make(chan struct{})
	go func() { get(t, context.Background(), srv.URL, true); close(done) }()
	<-waiting
	g.release()
	<-done
	g.release() // idempotent
	if n := served.Load(); n != 2 {
		t.Errorf("the handler ran %d times, want 2 (not for the request given up on)", n)
	}
}

// get asks for url, and says if it was answered or not as wanted.
func get(t *testing.T, ctx context.Context, url string, answered bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if (err == nil) != answered {
		t.Errorf("GET: %v, want answered %v", err, answered)
	}
}

// TestPageCounter: only the composite page's 200 answers are counted,
// and of them those whose recommendations fell back.
func TestPageCounter(t *testing.T) {
	cases := []struct {
		name            string
		method, path    string
		status          int
		header          string // FallbackHeader's value
		pages, fallback int64
	}{
		// a page with its recommendations
		{"page", http.MethodGet, "/users/7/home", http.StatusOK, "", 1, 0},
		// a page whose recommendations are the popular products
		{"fallback", http.MethodGet, "/users/7/home", http.StatusOK, "recommendations: popular products instead (no answer within 500ms)", 1, 1},
		// a page that failed its critical budget is not a page answered
		{"failed page", http.MethodGet, "/users/7/home", http.StatusServiceUnavailable, "", 0, 0},
		// another route's fallback is not the page's
		{"other route", http.MethodGet, "/users/7/recommendations", http.StatusOK, "recommendations: popular products instead", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pc := &pageCounter{next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if c.header != "" {
					w.Header().Set(storefront.FallbackHeader, c.header)
				}
				w.WriteHeader(c.status)
			})}
			pc.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, c.path, nil))
			if p, f := pc.counts(); p != c.pages || f != c.fallback {
				t.Errorf("counted %d pages, %d fallbacks; want %d, %d", p, f, c.pages, c.fallback)
			}
		})
	}
}

// TestBugs: a 500 or a 4xx is a bug wherever it is counted; a 503 or a
// 504 (overload, a budget) is not.
func TestBugs(t *testing.T) {
	sum := func(kinds map[string]int64) loadtest.PhaseReport {
		return loadtest.PhaseReport{Summary: loadtest.Summary{ErrorsByKind: kinds}}
	}
	cases := []struct {
		name string
		res  Result
		want int64
	}{
		// 503s at the fixed rate are load
		{"unavailable", Result{Stages: []StageResult{{Endpoints: []Endpoint{{Failed: 3, Unavailable: 3}}}}}, 0},
		// a 500 at the fixed rate is a bug
		{"500 at the fixed rate", Result{Stages: []StageResult{{Endpoints: []Endpoint{{Failed: 4, Unavailable: 3}}}}}, 1},
		// in the budgets phase, 500s count, timeouts and 504s do not
		{"budgets", Result{Stages: []StageResult{{Budgets: &Budgets{Down: PagePhase{Report: sum(map[string]int64{"status 500": 2, "status 504": 5, "timeout": 1})}}}}}, 2},
		// in the overload phase, 503s are the controller's shedding
		{"overload", Result{Overload: &Overload{With: OverloadRun{Critical: sum(map[string]int64{"status 503": 100}), Rest: sum(map[string]int64{"status 409": 1})}}}, 1},
	}
	for _, c := range cases {
		if got := c.res.Bugs(); got != c.want {
			t.Errorf("%s: %d bugs, want %d", c.name, got, c.want)
		}
	}
}

// TestSmokeCriteria: the smoke run's criteria pass a service that answers
// a few 503s (a budget run out on a starved machine, which failed the
// demo's test before) and fail one that fails every request.
func TestSmokeCriteria(t *testing.T) {
	cases := []struct {
		name    string
		handler func(n int64, w http.ResponseWriter)
		want    loadtest.Status
	}{
		// one request in 25 answered 503: load, not a broken stage
		{"a few 503s", func(n int64, w http.ResponseWriter) {
			if n%25 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}, loadtest.StatusPassed},
		// every request answered 500: broken
		{"broken", func(_ int64, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }, loadtest.StatusFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { c.handler(n.Add(1), w) }))
			defer srv.Close()
			j := &journey{cfg: Config{Rate: 50, Users: 10, Products: 10}, t: timings[Smoke], out: discard{}, book: &logBook{}}
			j.log = j.book.logger(0)
			var res StageResult
			if err := j.measure(context.Background(), stage{short: c.name}, 1, srv.URL, prometheus.NewRegistry(), &res); err != nil {
				t.Fatal(err)
			}
			if a := res.Report.Assessment; a.Status != c.want {
				t.Fatalf("%s, want %s: %v", a.Status, c.want, a.Findings)
			}
		})
	}
}

// TestPlans: in every mode, the stage's plan, the budgets phase's and the
// overload phase's two parse, with the requests, rates, timeouts and
// connections each needs.
func TestPlans(t *testing.T) {
	cfg := Config{Rate: 250, Users: 10, Products: 10}
	for _, mode := range []Mode{Standard, Full, Smoke} {
		tm := timings[mode]
		cases := []struct {
			name        string
			entries     []mixEntry
			one         *constantPhase
			phases      int // how many, or 0 for at least two
			connections int
			timeout     time.Duration
		}{
			// the stage's plan: the whole mix, the mode's phases
			{"stage", demoMix, nil, 0, demoConnections, demoTimeout},
			// the budgets phase: the page alone, with room for answers a budget long
			{"budgets", homeOnly, &constantPhase{Name: "down", Rate: cfg.Rate, Duration: tm.BudgetDown, Criteria: tm.budgetCriteria, Connections: wideConnections},
				1, wideConnections, demoTimeout},
			// the overload phase's critical generator
			{"overload", critical(demoMix, true), &constantPhase{Name: "overload", Rate: 3 * cfg.Rate, Duration: tm.Overload, Connections: wideConnections, Timeout: overloadTimeout},
				1, wideConnections, overloadTimeout},
		}
		for _, c := range cases {
			p, err := planOf(tm, c.name, "http://127.0.0.1:1", 1, cfg, c.entries, c.one)
			if err != nil {
				t.Fatalf("%s %s: %v", mode, c.name, err)
			}
			if c.phases == 0 && len(p.Phases) < 2 || c.phases > 0 && len(p.Phases) != c.phases {
				t.Errorf("%s %s: %d phases", mode, c.name, len(p.Phases))
			}
			if p.Connections != c.connections || p.Timeout != c.timeout {
				t.Errorf("%s %s: %d connections, timeout %v; want %d, %v", mode, c.name, p.Connections, p.Timeout, c.connections, c.timeout)
			}
			if c.one != nil && (p.Phases[0].Rate != c.one.Rate || p.Phases[0].Duration != c.one.Duration || p.Phases[0].Duration <= 0) {
				t.Errorf("%s %s: phase %+v", mode, c.name, p.Phases[0])
			}
		}
	}
	// The critical requests are the routes the storefront's overload
	// control counts critical: 60 % of the mix.
	if s := share(critical(demoMix, true), demoMix); s != 0.6 {
		t.Errorf("critical share %v, want 0.6", s)
	}
}

// TestPageLatency: quantiles interpolated within the buckets of the
// histogram's growth between two readings.
func TestPageLatency(t *testing.T) {
	inf := math.Inf(1)
	cases := []struct {
		name     string
		h0, h    map[float64]float64
		p50, p99 float64 // NaN: no answers
	}{
		// 100 answers, all in (1 ms, 2.5 ms]: p50 halfway, p99 near the top
		{"one bucket", map[float64]float64{}, map[float64]float64{0.001: 0, 0.0025: 100, inf: 100}, 0.00175, 0.002485},
		// only the growth since the first reading counts
		{"since", map[float64]float64{0.001: 50, 0.0025: 50, inf: 50}, map[float64]float64{0.001: 50, 0.0025: 150, inf: 150}, 0.00175, 0.002485},
		// past the last finite bucket: its bound, as histogram_quantile
		{"past the buckets", map[float64]float64{}, map[float64]float64{0.001: 0, 10: 0, inf: 10}, 10, 10},
		// no answers
		{"none", map[float64]float64{inf: 5}, map[float64]float64{inf: 5}, math.NaN(), math.NaN()},
	}
	for _, c := range cases {
		l := pageLatency(c.h, c.h0)
		near := func(got, want float64) bool {
			return math.IsNaN(want) && math.IsNaN(got) || math.Abs(got-want) < 1e-9
		}
		if !near(l.P50, c.p50) || !near(l.P99, c.p99) {
			t.Errorf("%s: p50 %v, p99 %v; want %v, %v", c.name, l.P50, l.P99, c.p50, c.p99)
		}
	}
}
