package storefront

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/strata-dev/strata/overload"
)

// causeOverload is the "cause" of the 503 a request shed under overload
// gets.
const causeOverload = "overload"

// routeClass is the priority of a route's requests under overload
// control, and whether the limiter sees them at all. Reads of one user
// or one product, and the composite page (whose recommendations are
// sheddable on their own), are critical: they are what a visitor waits
// for. Writes, searches and recommendations asked for directly are
// normal: under overload they are refused with 503 before a critical
// read is. The probes are never limited: a load balancer must still hear
// from an overloaded instance.
func routeClass(pattern string) (overload.Class, bool) {
	switch pattern {
	case "GET /healthz", "GET /readyz":
		return 0, false
	case "GET /users/{id}", "GET /products/{id}", "GET /users/{id}/home":
		return overload.Critical, true
	}
	return overload.Normal, true
}

// admit puts the limiter, when there is one, in front of a route's
// handler: a request it refuses is answered 503 with Retry-After and a
// JSON error naming the cause, without running the handler.
func (a *api) admit(pattern string, h http.HandlerFunc) http.HandlerFunc {
	class, limited := routeClass(pattern)
	if a.limiter == nil || !limited {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		tok, err := a.limiter.Acquire(r.Context(), class)
		if err != nil {
			a.shed(w, r, class, err)
			return
		}
		defer tok.Done()
		h(w, r)
	}
}

// shed answers a request the limiter did not admit.
func (a *api) shed(w http.ResponseWriter, r *http.Request, class overload.Class, err error) {
	if !errors.Is(err, overload.ErrOverloaded) {
		a.fail(w, r, err) // the client went away while queued
		return
	}
	w.Header().Set("Retry-After", retryAfterSeconds)
	writeJSON(w, http.StatusServiceUnavailable, errorBody{
		Error: fmt.Sprintf("the service is overloaded and sheds %s-priority requests to keep its critical reads within %v; retry in a moment",
			class, a.limiter.Target()),
		Cause: causeOverload,
	})
}

// startRecommendations starts the composite page's recommendations as
// sheddable work: when the limiter refuses them, they are not tried, and
// the outcome is the refusal, at once, for the page to fall back on.
func (a *api) startRecommendations(ctx context.Context, id int64, limit int) <-chan part[[]Recommendation] {
	recommend := func(ctx context.Context) ([]Recommendation, error) { return a.svc.Recommend(ctx, id, limit) }
	if a.limiter == nil {
		return start(ctx, a.budgets.nonCritical, recommend)
	}
	tok, err := a.limiter.Acquire(ctx, overload.Sheddable)
	if err != nil {
		out := make(chan part[[]Recommendation], 1)
		out <- part[[]Recommendation]{err: err}
		return out
	}
	return start(ctx, a.budgets.nonCritical, func(ctx context.Context) ([]Recommendation, error) {
		defer tok.Done()
		return recommend(ctx)
	})
}
