package upstream_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-dev/strata/upstream"
)

// TestMetrics: the series exist at 0 from the start, lint clean, count
// what happened, and a second client of one name on one registry is an
// error until the first is closed.
func TestMetrics(t *testing.T) {
	s := newServer(t, firstThen(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	reg := prometheus.NewPedanticRegistry()
	c, err := upstream.New("recs", s.URL, quiet(upstream.Config{Registerer: reg, BaseBackoff: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	zero := `
# HELP strata_upstream_breaker_state State of an upstream's circuit breaker: 0 closed, 1 open, 2 half-open.
# TYPE strata_upstream_breaker_state gauge
strata_upstream_breaker_state{upstream="recs"} 0
# HELP strata_upstream_calls_total Calls to an upstream service, by outcome (ok: an answer below 500; error: 5xx or no answer, after retries; breaker_open; budget_exhausted; canceled).
# TYPE strata_upstream_calls_total counter
strata_upstream_calls_total{outcome="breaker_open",upstream="recs"} 0
strata_upstream_calls_total{outcome="budget_exhausted",upstream="recs"} 0
strata_upstream_calls_total{outcome="canceled",upstream="recs"} 0
strata_upstream_calls_total{outcome="error",upstream="recs"} 0
strata_upstream_calls_total{outcome="ok",upstream="recs"} 0
# HELP strata_upstream_errors_total Failed attempts of calls to an upstream service, by kind (transport: no answer; status: a 5xx answer; timeout: no answer within the budget).
# TYPE strata_upstream_errors_total counter
strata_upstream_errors_total{kind="status",upstream="recs"} 0
strata_upstream_errors_total{kind="timeout",upstream="recs"} 0
strata_upstream_errors_total{kind="transport",upstream="recs"} 0
# HELP strata_upstream_retries_total Retries of calls to an upstream service (attempts after the first).
# TYPE strata_upstream_retries_total counter
strata_upstream_retries_total{upstream="recs"} 0
`
	names := []string{"strata_upstream_breaker_state", "strata_upstream_calls_total", "strata_upstream_errors_total", "strata_upstream_retries_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(zero), names...); err != nil {
		t.Fatalf("before any call: %v", err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	if got, _, err := call(t, c, 5*time.Second, http.MethodGet, ""); got != 200 {
		t.Fatalf("%d %v", got, err)
	}
	after := strings.NewReplacer(
		`{outcome="ok",upstream="recs"} 0`, `{outcome="ok",upstream="recs"} 1`,
		`{kind="status",upstream="recs"} 0`, `{kind="status",upstream="recs"} 1`,
		`strata_upstream_retries_total{upstream="recs"} 0`, `strata_upstream_retries_total{upstream="recs"} 1`,
	).Replace(zero)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(after), names...); err != nil {
		t.Fatalf("after a 503 then a 200: %v", err)
	}
	if n := testutil.CollectAndCount(reg, "strata_upstream_call_duration_seconds"); n != 1 {
		t.Fatalf("%d duration series, want 1", n)
	}

	if _, err := upstream.New("recs", s.URL, upstream.Config{Registerer: reg}); !errors.Is(err, upstream.ErrAlreadyRegistered) {
		t.Fatalf("a second client named recs on the registry: %v, want ErrAlreadyRegistered", err)
	}
	other, err := upstream.New("search", s.URL, upstream.Config{Registerer: reg})
	if err != nil {
		t.Fatalf("a client of another name on the same registry: %v", err)
	}
	other.Close()
	c.Close()
	again, err := upstream.New("recs", s.URL, upstream.Config{Registerer: reg})
	if err != nil {
		t.Fatalf("once the first is closed, a new client named recs: %v", err)
	}
	again.Close()
}
