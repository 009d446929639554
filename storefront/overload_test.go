package storefront_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/overload"
	"github.com/strata-dev/strata/storefront"
)

// countingService counts the recommendations it was asked for.
type countingService struct {
	storefront.Service
	recommends atomic.Int64
}

func (c *countingService) Recommend(ctx context.Context, userID int64, limit int) ([]storefront.Recommendation, error) {
	c.recommends.Add(1)
	return c.Service.Recommend(ctx, userID, limit)
}

// Popular passes the store's fallback through.
func (c *countingService) Popular(ctx context.Context, limit int) ([]storefront.Recommendation, error) {
	return c.Service.(*storefront.Store).Popular(ctx, limit)
}

// TestOverloadShedding: with a limit of 10 and work already in flight
// (held here, as other requests would hold it), the storefront sheds by
// priority: with 5 in flight the composite page's recommendations fall
// back without being tried, with 8 normal requests (writes, search,
// recommendations) get 503 with Retry-After and a JSON error naming
// overload while critical reads are served, with 10 everything limited
// is refused, and the probes answer throughout. The counters of
// refusals say so by class (the page at 8 in flight shed its
// recommendations too).
func TestOverloadShedding(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	seed(t, s, 3, 5, 20)
	svc := &countingService{Service: s}
	reg := prometheus.NewRegistry()
	lim, err := overload.New(overload.Config{InitialLimit: 10, MinLimit: 10, MaxLimit: 10, QueueSize: -1, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h := storefront.NewHandler(svc, storefront.HandlerConfig{Overload: lim, Registerer: reg, Gatherer: reg})
	var held []*overload.Token
	hold := func(n int) {
		for range n {
			tok, err := lim.Acquire(context.Background(), overload.Critical)
			if err != nil {
				t.Fatalf("holding work in flight: %v", err)
			}
			held = append(held, tok)
		}
	}
	type req struct{ method, target, body string }
	var (
		critical = []req{{"GET", "/users/1", ""}, {"GET", "/products/1", ""}, {"GET", "/users/2/home", ""}}
		normal   = []req{{"GET", "/search?q=x", ""}, {"GET", "/users/1/recommendations", ""},
			{"POST", "/users", user("new@example.com", "New", "eu")}, {"PATCH", "/users/2", `{"name":"B"}`},
			{"POST", "/users/1/actions", `{"product_id":1,"kind":"view"}`}}
		probes = []req{{"GET", "/healthz", ""}, {"GET", "/readyz", ""}, {"GET", "/metrics", ""}}
	)
	expect := func(stage string, rs []req, shed bool) {
		t.Helper()
		for _, r := range rs {
			got := send(t, h, r.method, r.target, r.body)
			if shed {
				checkShed(t, stage, r.method+" "+r.target, got)
			} else if got.status >= 500 { // a 409 for the second POST /users is served all the same
				t.Errorf("%s: %s %s: %d %s, want it served", stage, r.method, r.target, got.status, got.raw)
			}
		}
	}

	// Idle: everything is served, the page's recommendations too.
	expect("idle", critical, false)
	expect("idle", normal, false)
	if n := svc.recommends.Load(); n != 2 {
		t.Fatalf("idle: %d recommendations computed, want 2 (the page's and the route's)", n)
	}

	// 5 in flight, half the limit: the page falls back without trying.
	hold(5)
	before := svc.recommends.Load()
	got := send(t, h, "GET", "/users/2/home", "")
	var page storefront.Home
	if err := json.Unmarshal([]byte(got.raw), &page); err != nil || got.status != 200 || page.User.ID != 2 ||
		len(page.Fallbacks) != 1 || page.Fallbacks[0] != "recommendations" || len(page.Recommendations) == 0 {
		t.Fatalf("home with 5 of 10 in flight: %d %s, want the user and popular products as the fallback", got.status, got.raw)
	}
	if fb := got.header.Get(storefront.FallbackHeader); !strings.Contains(fb, "overloaded") {
		t.Errorf("%s = %q, want it to say the service is overloaded", storefront.FallbackHeader, fb)
	}
	if n := svc.recommends.Load(); n != before {
		t.Errorf("the shed recommendations were computed anyway (%d calls)", n-before)
	}
	expect("5 of 10 in flight", normal, false)

	// 8 in flight: normal requests are shed, critical reads served.
	hold(3)
	expect("8 of 10 in flight", normal, true)
	expect("8 of 10 in flight", critical, false)
	expect("8 of 10 in flight", probes, false)

	// 10 in flight: the limit; critical reads refused too, probes answered.
	hold(2)
	expect("10 of 10 in flight", critical, true)
	expect("10 of 10 in flight", normal, true)
	expect("10 of 10 in flight", probes, false)

	for _, tok := range held {
		tok.Done()
	}
	expect("released", critical, false)
	for class, want := range map[string]float64{"critical": 3, "normal": 10, "sheddable": 2} {
		rejected := testutil.ToFloat64(rejectedCounter(t, reg, class))
		if rejected != want {
			t.Errorf("strata_overload_rejected_total{class=%q} = %v, want %v", class, rejected, want)
		}
	}
}

// checkShed requires a shed request's answer: 503, Retry-After, and a
// JSON error whose cause is overload.
func checkShed(t *testing.T, stage, what string, got sent) {
	t.Helper()
	var body struct{ Error, Cause string }
	if err := json.Unmarshal([]byte(got.raw), &body); err != nil || got.status != 503 || got.header.Get("Retry-After") == "" ||
		body.Cause != "overload" || !strings.Contains(body.Error, "overloaded") {
		t.Errorf("%s: %s: %d Retry-After %q %s; want 503, Retry-After and a JSON error with cause overload",
			stage, what, got.status, got.header.Get("Retry-After"), got.raw)
	}
}

// rejectedCounter returns the gathered strata_overload_rejected_total of
// class as a collector ToFloat64 reads.
func rejectedCounter(t *testing.T, reg *prometheus.Registry, class string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "copy", Help: "copy"})
	for _, mf := range mfs {
		if mf.GetName() != "strata_overload_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == class {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}
