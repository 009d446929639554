package storefront

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// tierRig is one tier of limit 1 and a short budget, behind the API's
// recover, with fn as the tier's work.
type tierRig struct {
	a  *api
	t  *tier
	fn func(ctx context.Context) error
}

func newTierRig(budget time.Duration) *tierRig {
	ts := newTiers(SearchTiers{Autocomplete: TierConfig{MaxInFlight: 1, Budget: budget}}, prometheus.NewRegistry())
	return &tierRig{a: &api{log: slog.New(slog.NewTextHandler(io.Discard, nil))}, t: ts.autocomplete}
}

// serve answers one request through inTier on the caller's goroutine.
func (g *tierRig) serve(ctx context.Context) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r := httptest.NewRequestWithContext(ctx, "GET", "/search/suggest?prefix=a", nil)
	g.a.recover(func(w http.ResponseWriter, r *http.Request) {
		if g.a.inTier(w, r, g.t, g.fn) {
			writeJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
		}
	})(w, r)
	return w
}

// waitFree waits until the tier's slot is given back, within a bound.
func (g *tierRig) waitFree(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(g.t.slots) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the tier's slot was not given back within 5 s of its work's end")
		}
	}
}

// TestTierDrain: past its budget a request is answered 503 at once, while
// its work runs on, holding the tier's slot (so the next request is
// refused, not queued), under a deadline of the budget plus tierDrain;
// once the work ends, the slot is free again.
func TestTierDrain(t *testing.T) {
	const budget = 20 * time.Millisecond
	g := newTierRig(budget)
	release, entered := make(chan struct{}), make(chan time.Duration, 1)
	g.fn = func(ctx context.Context) error {
		d, _ := ctx.Deadline()
		entered <- time.Until(d)
		<-release
		return nil
	}
	t0 := time.Now()
	w := g.serve(context.Background())
	if w.Code != 503 || !strings.Contains(w.Body.String(), "could not answer within its 20ms budget") || time.Since(t0) < budget {
		t.Fatalf("past the budget: %d in %v: %s", w.Code, time.Since(t0), w.Body)
	}
	if left := <-entered; left < budget+tierDrain/2 || left > budget+tierDrain {
		t.Errorf("the work's deadline was %v away, want about the budget plus tierDrain, %v", left, budget+tierDrain)
	}
	g.fn = func(context.Context) error {
		t.Error("a second request ran while the first one's work held the slot")
		return nil
	}
	if w := g.serve(context.Background()); w.Code != 503 || !strings.Contains(w.Body.String(), "tier is full") {
		t.Fatalf("while the first request's work drains: %d %s, want the tier full", w.Code, w.Body)
	}
	close(release)
	g.waitFree(t)
	g.fn = func(context.Context) error { return nil }
	if w := g.serve(context.Background()); w.Code != 200 {
		t.Fatalf("once the work has ended: %d %s", w.Code, w.Body)
	}
}

// TestTierWorkCanceled: when the client goes before the budget, the
// work's context is canceled at once (its query stops), and the slot is
// given back; a panic in the work is the handler's 500, not a crash.
func TestTierWorkCanceled(t *testing.T) {
	g := newTierRig(time.Hour)
	entered, stopped := make(chan struct{}), make(chan error, 1)
	g.fn = func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		stopped <- ctx.Err()
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	answered := make(chan int, 1)
	go func() { answered <- g.serve(ctx).Code }()
	<-entered
	cancel()
	if err := <-stopped; err != context.Canceled {
		t.Errorf("the work's context ended with %v, want canceled", err)
	}
	if code := <-answered; code != 503 {
		t.Errorf("a request whose client went: %d, want 503", code)
	}
	g.waitFree(t)

	g.fn = func(context.Context) error { panic("boom") }
	if w := g.serve(context.Background()); w.Code != 500 || !strings.Contains(w.Body.String(), "internal error") {
		t.Fatalf("a panicking work: %d %s, want 500", w.Code, w.Body)
	}
	g.waitFree(t)
}
