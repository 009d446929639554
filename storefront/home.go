package storefront

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/strata-dev/strata/overload"
	"github.com/strata-dev/strata/shard"
)

// Budgets of the composite page GET /users/{id}/home, from the guide's
// Stage 3 handle_user_request: the user and the recommendations are asked
// for in parallel; the user is critical data, waited for 100 ms
// (user_future.result(timeout=100)); the recommendations are non-critical,
// waited for 500 ms (recommendations_future.result(timeout=500)), then
// replaced by the fallback recommendations. Each budget is a context
// deadline: it reaches the cache's lease wait and the SQL query, which the
// database cancels when it runs out.
const (
	DefaultCriticalBudget = 100 * time.Millisecond // guide, Stage 3: user_future.result(timeout=100)
	// DefaultNonCriticalBudget is the stage-3 budget of non-critical
	// calls, the one the shard router's fan-out already uses.
	DefaultNonCriticalBudget = shard.DefaultEachTimeout // guide, Stage 3: recommendations_future.result(timeout=500)
)

// fallbackBudget bounds the fallback recommendations once the
// non-critical budget has run out (Strata's choice): the popularity
// ranking is in memory, so this is one read of a few products by primary
// key. Past it the page answers with no recommendations at all.
const fallbackBudget = 100 * time.Millisecond

// partRecommendations names the recommendations in the page's "fallbacks".
const partRecommendations = "recommendations"

// popularService is implemented by a Service that can list the popular
// products, the fallback of a user's recommendations. Without it the
// composite page's fallback is an empty list.
type popularService interface {
	Popular(ctx context.Context, limit int) ([]Recommendation, error)
}

var (
	_ popularService = (*Store)(nil)
	_ popularService = (*Cached)(nil)
)

// Home is the body of GET /users/{id}/home.
type Home struct {
	User            User             `json:"user"`
	Recommendations []Recommendation `json:"recommendations"`
	// Fallbacks names the parts of the page that are fallbacks rather
	// than the real thing ("recommendations"); empty when none is.
	Fallbacks []string `json:"fallbacks"`
}

// budgets are the composite page's budgets, resolved from HandlerConfig.
type budgets struct {
	critical, nonCritical time.Duration
}

// resolveBudgets applies the defaults to cfg's budgets. A negative budget
// is a programming error at registration time.
func resolveBudgets(cfg HandlerConfig) budgets {
	b := budgets{critical: cfg.CriticalBudget, nonCritical: cfg.NonCriticalBudget}
	if b.critical < 0 || b.nonCritical < 0 {
		panic(fmt.Sprintf("storefront: negative budget in HandlerConfig (CriticalBudget %v, NonCriticalBudget %v)", b.critical, b.nonCritical))
	}
	if b.critical == 0 {
		b.critical = DefaultCriticalBudget
	}
	if b.nonCritical == 0 {
		b.nonCritical = DefaultNonCriticalBudget
	}
	return b
}

// part is the outcome of one of the page's parallel calls. Each call
// records how the caches served it into a slice of its own (served), which
// the handler copies into the request's only once the call has answered:
// a call given up on may still be finishing, and must not write into what
// the response is being built from.
type part[T any] struct {
	v        T
	err      error
	timedOut bool // the call's own budget ran out
	served   []string
	notes    []string // fallbacks noted inside the call (a shard left out)
}

// start runs fn on its own goroutine under a deadline of budget and
// returns the channel that receives its outcome. The channel is buffered:
// a call the handler stopped waiting for ends without blocking, as soon
// as its context (canceled when the handler returns) stops its queries.
func start[T any](ctx context.Context, budget time.Duration, fn func(ctx context.Context) (T, error)) <-chan part[T] {
	out := make(chan part[T], 1)
	go func() {
		p := part[T]{}
		fb := new(fallbacks)
		cctx, cancel := context.WithTimeout(withFallbacks(withCacheInfo(ctx, &p.served), fb), budget)
		defer cancel()
		p.v, p.err = fn(cctx)
		p.timedOut = p.err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		p.notes = fb.list()
		out <- p
	}()
	return out
}

// merge copies a finished call's cache and fallback notes into the request's.
func merge[T any](ctx context.Context, p part[T]) {
	if h, ok := ctx.Value(infoKey{}).(*[]string); ok {
		*h = append(*h, p.served...)
	}
	for _, n := range p.notes {
		noteFallback(ctx, n)
	}
}

// home serves GET /users/{id}/home: the guide's stage-3 composite page.
// The user and the recommendations are read in parallel, each under its
// budget. Past the critical budget the page fails with 503 and
// Retry-After (and the recommendations call is canceled with it); past
// the non-critical budget, or on its error, the recommendations are the
// popular products and "fallbacks" says so.
func (a *api) home(w http.ResponseWriter, r *http.Request) {
	id, aerr := pathID(r)
	var limit int
	if aerr == nil {
		var q map[string][]string
		if q, aerr = query(r, "limit"); aerr == nil {
			limit, aerr = limitParam(q)
		}
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel() // stops a call still running: its queries are canceled on the database
	userc := start(ctx, a.budgets.critical, func(ctx context.Context) (User, error) { return a.svc.GetUser(ctx, id) })
	recc := a.startRecommendations(ctx, id, limit) // sheddable under overload control

	u := <-userc // start's deadline bounds the wait
	merge(ctx, u)
	if u.err != nil {
		if u.timedOut {
			a.unavailable.warn(a.log, "critical budget exceeded", "method", r.Method, "path", r.URL.Path, "err", u.err)
			w.Header().Set("Retry-After", retryAfterSeconds)
			writeJSON(w, http.StatusServiceUnavailable, errorBody{
				Error: fmt.Sprintf("the user could not be read within its %v budget (critical data of the page); retry in a moment", a.budgets.critical),
			})
			return
		}
		a.fail(w, r, u.err)
		return
	}
	page := Home{User: u.v, Fallbacks: []string{}}
	rec := <-recc
	merge(ctx, rec)
	page.Recommendations = rec.v
	if rec.err != nil || len(rec.notes) > 0 {
		page.Fallbacks = append(page.Fallbacks, partRecommendations)
	}
	if rec.err != nil {
		page.Recommendations = a.fallbackRecommendations(ctx, limit, rec)
	}
	if page.Recommendations == nil {
		page.Recommendations = []Recommendation{}
	}
	policy := privateCache
	if len(page.Fallbacks) > 0 {
		policy = "private, no-store" // a fallback is not worth revalidating against
	}
	writeCacheable(w, r, policy, page)
}

// fallbackRecommendations returns the popular products in place of
// recommendations that failed with err, noting why for FallbackHeader.
// It is bounded by fallbackBudget; past it, or without a popularService,
// the list is empty.
func (a *api) fallbackRecommendations(ctx context.Context, limit int, failed part[[]Recommendation]) []Recommendation {
	why := "no answer within " + a.budgets.nonCritical.String()
	switch {
	case errors.Is(failed.err, overload.ErrOverloaded):
		why = "not tried: the service is overloaded and sheds non-critical work"
	case !failed.timedOut:
		why = clipReport(failed.err.Error())
		a.unavailable.warn(a.log, "recommendations failed; serving popular products instead", "err", failed.err)
	}
	ps, ok := a.svc.(popularService)
	if !ok {
		noteFallback(ctx, "recommendations: none ("+why+"; no popular products to fall back on)")
		return nil
	}
	fctx, cancel := context.WithTimeout(ctx, fallbackBudget)
	defer cancel()
	var served []string // the call is waited for: its cache notes can go straight in
	recs, perr := ps.Popular(withCacheInfo(fctx, &served), limit)
	merge(ctx, part[[]Recommendation]{served: served})
	if perr != nil {
		noteFallback(ctx, "recommendations: none ("+why+"; the popular products failed too: "+clipReport(perr.Error())+")")
		return nil
	}
	noteFallback(ctx, "recommendations: popular products instead ("+why+")")
	return recs
}

// Popular returns up to limit of the most popular products, as
// recommendations with reason "popular": the fallback of a user's
// recommendations. It reads the popularity ranking in memory (waiting for
// one, within ctx, only when there is none yet) and the products by id.
func (s *Store) Popular(ctx context.Context, limit int) ([]Recommendation, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	pop, err := s.pop.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("storefront: popular products: %w", err)
	}
	ids := first(pop.global, limit)
	products, err := s.productsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Recommendation, len(products))
	for i, p := range products {
		out[i] = Recommendation{Product: p, Score: popularWeight * (1 - float64(i)/float64(limit+1)), Reason: reasonPopular}
	}
	return out, nil
}

// Popular returns the store's popular products (see [Store.Popular]).
// They are not cached here: the ranking is in memory already, and the
// products are one read by primary key.
func (c *Cached) Popular(ctx context.Context, limit int) ([]Recommendation, error) {
	return c.store.Popular(ctx, limit)
}
