package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
	"github.com/strata-dev/strata/upstream"
)

// recService is a recommendation service (NewRecommendationHandler over
// a store) behind a front whose behaviour a test switches: "pass" serves
// it; "503", "drop" (close the connection), "hang" (answer only once the
// caller gave up), "garbage", "wrong user" and "no route" misbehave.
type recService struct {
	*httptest.Server
	mode        atomic.Value // string
	hits        atomic.Int32
	traceparent atomic.Value // []string: the last request's traceparent headers
}

func newRecService(t *testing.T, s *storefront.Store) *recService {
	t.Helper()
	real := storefront.NewRecommendationHandler(s, storefront.HandlerConfig{Logger: slog.New(slog.DiscardHandler)})
	rs := &recService{}
	rs.mode.Store("pass")
	rs.traceparent.Store([]string(nil))
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.hits.Add(1)
		rs.traceparent.Store(r.Header.Values(storefront.TraceparentHeader))
		switch rs.mode.Load() {
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "drop":
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		case "hang":
			<-r.Context().Done()
		case "garbage":
			_, _ = io.WriteString(w, "<html>maintenance</html>")
		case "wrong user":
			_, _ = io.WriteString(w, `{"user_id": 3, "recommendations": []}`)
		case "no route":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error": "path \"/v2/users/2/recommendations\" matches no route", "field": "path"}`)
		default:
			real.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(rs.Close)
	return rs
}

// remoteHandler is the storefront API over s with its recommendations
// asked of the service at url, through a client with cfg.
func remoteHandler(t *testing.T, s *storefront.Store, url string, cfg upstream.Config, hcfg storefront.HandlerConfig) (http.Handler, *upstream.Client) {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := upstream.New("recommendations", url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	hcfg.Logger = slog.New(slog.DiscardHandler)
	return storefront.NewHandler(storefront.NewRemoteRecommender(s, c), hcfg), c
}

// sendWithin is send with the request's context ending after budget.
func sendWithin(t *testing.T, h http.Handler, budget time.Duration, target string, header ...string) (sent, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	req := httptest.NewRequest(http.MethodGet, target, nil).WithContext(ctx)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	took := time.Since(start)
	out := sent{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Code >= 400 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out.body); err != nil {
			t.Fatalf("GET %s: error response is not JSON: %v: %.200s", target, err, out.raw)
		}
	}
	return out, took
}

func seededStore(t *testing.T) *storefront.Store {
	t.Helper()
	s := open(t, testdb.SQLite(t))
	seed(t, s, 20, 30, 300)
	return s
}

// TestRemoteRecommendations: GET /users/{id}/recommendations through the
// remote recommendation service answers as in process when it works, and
// with the status its failure deserves (never 500) when it does not.
func TestRemoteRecommendations(t *testing.T) {
	s := seededStore(t)
	rs := newRecService(t, s)
	h, _ := remoteHandler(t, s, rs.URL, upstream.Config{BaseBackoff: time.Millisecond, FailureThreshold: 1000}, storefront.HandlerConfig{})
	for _, tc := range []struct {
		name, mode, target string
		budget             time.Duration
		status             int
		says, retryAfter   string
		hits               int32
	}{
		{"served remotely", "pass", "/users/2/recommendations?limit=3", 5 * time.Second, 200, "", "", 1},                            // as in process
		{"unknown user", "pass", "/users/99/recommendations", 5 * time.Second, 404, "user 99 not found", "", 1},                     // the remote 404 is ours
		{"bad limit", "pass", "/users/2/recommendations?limit=0", 5 * time.Second, 400, "limit", "", 0},                             // refused before any call
		{"failing", "503", "/users/2/recommendations", 5 * time.Second, 503, "it answered 503", "1", 4},                             // retried 3 times, then 503
		{"dropping connections", "drop", "/users/2/recommendations", 5 * time.Second, 503, "is unreachable", "1", 4},                // likewise
		{"slow past the budget", "hang", "/users/2/recommendations", 300 * time.Millisecond, 504, "did not answer within", "", 1},   // 504 naming the cause
		{"garbage", "garbage", "/users/2/recommendations", 5 * time.Second, 502, "not a list of recommendations", "", 1},            // a bad gateway
		{"another user's list", "wrong user", "/users/2/recommendations", 5 * time.Second, 502, "for user 3, not 2", "", 1},         // checked
		{"a base URL with the wrong path", "no route", "/users/2/recommendations", 5 * time.Second, 502, "matches no route", "", 1}, // not "user not found"
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs.mode.Store(tc.mode)
			rs.hits.Store(0)
			got, took := sendWithin(t, h, tc.budget, tc.target)
			if got.status != tc.status || !strings.Contains(got.raw, tc.says) || got.header.Get("Retry-After") != tc.retryAfter {
				t.Fatalf("%d Retry-After %q %s; want %d Retry-After %q saying %q", got.status, got.header.Get("Retry-After"), got.raw, tc.status, tc.retryAfter, tc.says)
			}
			// net/http's Transport replays a request once by itself when a
			// kept-alive connection turns out closed: one more may arrive.
			if n := rs.hits.Load(); n != tc.hits && (tc.mode != "drop" || n != tc.hits+1) {
				t.Errorf("the service was asked %d times, want %d", n, tc.hits)
			}
			if took > tc.budget+time.Second {
				t.Errorf("answered in %v, past the budget %v", took, tc.budget)
			}
		})
	}
	// The remote answer is the service's own.
	rs.mode.Store("pass")
	remote := send(t, h, "GET", "/users/2/recommendations?limit=5", "")
	local := send(t, storefront.NewHandler(s, storefront.HandlerConfig{}), "GET", "/users/2/recommendations?limit=5", "")
	if remote.status != 200 || local.status != 200 || picks(t, remote.raw) != picks(t, local.raw) {
		t.Errorf("remote %d %s\nlocal %d %s", remote.status, remote.raw, local.status, local.raw)
	}
}

// picks returns the products and reasons of a recommendations answer (the
// scores decay with time, so two answers a moment apart differ in them).
func picks(t *testing.T, raw string) string {
	t.Helper()
	var body struct {
		Recommendations []storefront.Recommendation
	}
	if err := json.Unmarshal([]byte(raw), &body); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range body.Recommendations {
		out = append(out, fmt.Sprintf("%d %s", r.Product.ID, r.Reason))
	}
	return strings.Join(out, ", ")
}

// TestRemoteBreaker: once the service has failed enough, the breaker
// opens: recommendations answer 503 at once without asking it, /readyz
// says the storefront is degraded, and the home page falls back at once.
func TestRemoteBreaker(t *testing.T) {
	s := seededStore(t)
	rs := newRecService(t, s)
	h, _ := remoteHandler(t, s, rs.URL, upstream.Config{Retries: upstream.NoRetries, FailureThreshold: 2, OpenTimeout: time.Hour},
		storefront.HandlerConfig{NonCriticalBudget: 5 * time.Second})
	rs.mode.Store("503")
	for range 2 {
		if got, _ := sendWithin(t, h, 5*time.Second, "/users/2/recommendations"); got.status != 503 {
			t.Fatalf("%d %s", got.status, got.raw)
		}
	}
	got, took := sendWithin(t, h, 5*time.Second, "/users/2/recommendations")
	if got.status != 503 || got.header.Get("Retry-After") != "1" || !strings.Contains(got.body.Error, "circuit breaker is open") || rs.hits.Load() != 2 {
		t.Fatalf("breaker open: %d Retry-After %q %s after %d calls", got.status, got.header.Get("Retry-After"), got.raw, rs.hits.Load())
	}
	t.Logf("breaker open: 503 in %v", took)
	ready := send(t, h, "GET", "/readyz", "")
	if ready.status != 200 || !strings.Contains(ready.raw, `"degraded"`) || !strings.Contains(ready.raw, "circuit breaker open") {
		t.Errorf("/readyz with the breaker open: %d %s", ready.status, ready.raw)
	}
	page, took := sendWithin(t, h, 10*time.Second, "/users/2/home")
	home := decodeHome(t, page.status, page.raw)
	if page.status != 200 || !slices.Equal(home.Fallbacks, []string{"recommendations"}) || len(home.Recommendations) == 0 ||
		!strings.Contains(page.header.Get(storefront.FallbackHeader), "circuit breaker open") {
		t.Fatalf("home with the breaker open: %d %s (%s)", page.status, page.raw, page.header.Get(storefront.FallbackHeader))
	}
	if took > time.Second || rs.hits.Load() != 2 {
		t.Errorf("home with the breaker open took %v (its budget 5 s) and asked the service %d more times; want a fast fallback", took, rs.hits.Load()-2)
	}
}

// TestRemoteHomeFallsBack: the composite page answers 200 with the popular
// products, saying "fallbacks": ["recommendations"], whichever way the
// remote service fails, within its non-critical budget, retries included.
func TestRemoteHomeFallsBack(t *testing.T) {
	const budget = 300 * time.Millisecond
	s := seededStore(t)
	rs := newRecService(t, s)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // refuses connections
	h, _ := remoteHandler(t, s, rs.URL, upstream.Config{FailureThreshold: 1000}, storefront.HandlerConfig{NonCriticalBudget: budget})
	refused, _ := remoteHandler(t, s, gone.URL, upstream.Config{FailureThreshold: 1000}, storefront.HandlerConfig{NonCriticalBudget: budget})
	for _, tc := range []struct {
		name, mode string
		h          http.Handler
		fallback   bool
	}{
		{"working", "pass", h, false},   // the real recommendations
		{"failing", "503", h, true},     // retried within the budget, then the fallback
		{"dropping", "drop", h, true},   // likewise
		{"slow", "hang", h, true},       // the budget ends the wait
		{"garbage", "garbage", h, true}, // a bad answer
		{"down", "pass", refused, true}, // connections refused
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs.mode.Store(tc.mode)
			got, took := sendWithin(t, tc.h, 10*time.Second, "/users/2/home")
			page := decodeHome(t, got.status, got.raw)
			if got.status != 200 || page.User.ID != 2 || len(page.Recommendations) == 0 {
				t.Fatalf("%d %s", got.status, got.raw)
			}
			if (len(page.Fallbacks) > 0) != tc.fallback {
				t.Fatalf("fallbacks %v, want a fallback %v (%s)", page.Fallbacks, tc.fallback, got.header.Get(storefront.FallbackHeader))
			}
			if tc.fallback {
				for _, r := range page.Recommendations {
					if r.Reason != "popular" {
						t.Errorf("fallback recommendation %d has reason %q", r.Product.ID, r.Reason)
					}
				}
			}
			// The budget plus the fallback's own (100 ms), with a margin
			// for a loaded machine.
			if took > budget+100*time.Millisecond+time.Second {
				t.Errorf("answered in %v, past the %v budget", took, budget)
			}
			t.Logf("%s: %v, %s", tc.name, took, got.header.Get(storefront.FallbackHeader))
		})
	}
}

// TestRemoteTraceparent: a well-formed W3C traceparent of the incoming
// request reaches the recommendation service, from the recommendations
// endpoint and from the composite page; a malformed one does not.
func TestRemoteTraceparent(t *testing.T) {
	s := seededStore(t)
	rs := newRecService(t, s)
	h, _ := remoteHandler(t, s, rs.URL, upstream.Config{}, storefront.HandlerConfig{})
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name   string
		header []string
		want   []string
	}{
		{"valid", []string{"traceparent", valid}, []string{valid}}, // passed on
		{"none", nil, nil}, // none made up
		{"upper-case hex", []string{"traceparent", strings.ToUpper(valid)}, nil},                   // malformed: dropped
		{"two of them", []string{"traceparent", valid, "traceparent", valid}, nil},                 // ambiguous: dropped
		{"huge", []string{"traceparent", "01" + valid[2:] + "-" + strings.Repeat("a", 5000)}, nil}, // bounded
	} {
		for _, path := range []string{"/users/2/recommendations", "/users/2/home"} {
			rs.traceparent.Store([]string{"unset"})
			if got, _ := sendWithin(t, h, 5*time.Second, path, tc.header...); got.status != 200 {
				t.Fatalf("%s %s: %d %s", tc.name, path, got.status, got.raw)
			}
			if got := rs.traceparent.Load().([]string); !slices.Equal(got, tc.want) {
				t.Errorf("%s %s: the service got traceparent %q, want %q", tc.name, path, got, tc.want)
			}
		}
	}
}

// TestRecommendationHandler: the recommendation service alone serves its
// endpoint, the probes and metrics, and nothing else.
func TestRecommendationHandler(t *testing.T) {
	s := seededStore(t)
	h := storefront.NewRecommendationHandler(s, storefront.HandlerConfig{})
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/users/2/recommendations", 200},  // its one endpoint
		{"GET", "/users/99/recommendations", 404}, // an unknown user, as the storefront says it
		{"GET", "/healthz", 200},                  // liveness
		{"GET", "/readyz", 200},                   // readiness
		{"GET", "/metrics", 200},                  // Prometheus
		{"GET", "/users/2", 404},                  // the storefront's, not here
		{"GET", "/users/2/home", 404},             // likewise
		{"POST", "/users", 404},                   // likewise
		{"GET", "/search?q=x", 404},               // likewise
	} {
		if got := send(t, h, tc.method, tc.path, ""); got.status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, got.status, got.raw, tc.status)
		}
	}
}
