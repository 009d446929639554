package storefront

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// The search tiers of the guide's search case study ("separate clusters
// for product search, autocomplete, and faceted search"): each request
// class has resources of its own, a concurrency limit and a budget here
// (and a cache with its own TTL, see [CacheConfig]), so that a burst of
// one cannot starve the others.
const (
	TierSearch       = "search"       // GET /search: product search
	TierAutocomplete = "autocomplete" // GET /search/suggest
	TierFacets       = "facets"       // GET /search?facets=category: the results and their facet counts
)

// SearchP99Target is the search case study's latency target: p99 under
// 100 ms (from 150 ms). It is measured (docs/benchmarks.md,
// scripts/bench/search-tiers), not enforced; the budgets below are
// derived from it.
const SearchP99Target = 100 * time.Millisecond // guide, search case study: p99 latency from 150 ms to 100 ms

// The tiers' default budgets. A request not answered within its tier's
// budget is answered 503 with Retry-After, naming the tier, at the
// budget; its work, whose context deadline reaches the cache's lease wait
// and the SQL query, is canceled on the database tierDrain later if it
// has not ended by then.
const (
	// DefaultSearchBudget is ten times the target (Strata's choice): the
	// backstop that frees a slot and a connection from a search gone
	// wrong (a lock, a runaway plan), loose enough that a busy moment
	// makes an answer late rather than an error: an answer past the
	// target has already missed it, and a 503 in its place helps no one.
	// At half a second, the demo's smoke run on SQLite under the race
	// detector, on a loaded machine, lost a few searches a run to it.
	DefaultSearchBudget = 10 * SearchP99Target
	// DefaultAutocompleteBudget is half the target, and tight on purpose
	// (Strata's choice): suggestions are asked for on every keystroke,
	// and one that arrives after the next keystroke is thrown away; a
	// fast typist types one every 100 to 150 ms, and the network needs
	// its share. Past it the client keeps the list it shows and asks
	// again on the next keystroke.
	DefaultAutocompleteBudget = SearchP99Target / 2
	// DefaultFacetsBudget is twice the search's (Strata's choice): a
	// faceted search runs the search and counts every match, not one
	// page of them.
	DefaultFacetsBudget = 2 * DefaultSearchBudget
)

// The tiers' default concurrency limits (Strata's choices). Each admitted
// request holds at most one database connection (a faceted search two,
// its search and its counts in parallel), so the three together hold at
// most 16 + 8 + 2×4 = 32: under a replica pool's 30 + 10 and the
// primary's 50 + 20 (the guide's pool sizes), leaving room for the rest
// of the API however hard search is pressed. Autocomplete's requests are
// the shortest (one index range scan), so 8 of them serve the most
// requests a second; faceted search's the longest.
const (
	DefaultSearchMaxInFlight       = 16
	DefaultAutocompleteMaxInFlight = 8
	DefaultFacetsMaxInFlight       = 4
)

// TierConfig is the resources of one search tier; a zero field means the
// tier's default.
type TierConfig struct {
	// MaxInFlight bounds the tier's requests being answered at once. A
	// request past it is refused at once with 503, Retry-After and a JSON
	// error naming the tier: nothing queues.
	MaxInFlight int
	// Budget bounds the answer to one request of the tier; past it the
	// request is answered 503 with Retry-After, naming the tier, and its
	// queries are canceled half a second later if still running.
	Budget time.Duration
}

// SearchTiers configures the search tiers: product search (defaults
// DefaultSearchMaxInFlight and DefaultSearchBudget), autocomplete
// (DefaultAutocompleteMaxInFlight, DefaultAutocompleteBudget) and faceted
// search (DefaultFacetsMaxInFlight, DefaultFacetsBudget).
type SearchTiers struct {
	Search, Autocomplete, Facets TierConfig
}

// ErrBadSearchTier is returned (wrapped) by [ParseSearchTiers].
var ErrBadSearchTier = errors.New("storefront: bad search tier")

// Bounds of the settings [ParseSearchTiers] accepts: MaxTierInFlight is
// far more than any pool has connections (Strata's choice); a budget past
// the bound of a whole request (10 s) would never be reached, one under
// a millisecond never met.
const (
	MaxTierInFlight = 10_000
	minTierBudget   = time.Millisecond
	maxTierBudget   = requestTimeout
)

// ParseSearchTiers reads the tiers' resources as flags give them, one
// spec each: "NAME=MAX_IN_FLIGHT" or "NAME=MAX_IN_FLIGHT/BUDGET", for
// example "autocomplete=8/50ms", where NAME is search, autocomplete or
// facets, MAX_IN_FLIGHT is 1 to MaxTierInFlight and BUDGET a Go duration
// from 1ms to 10s. A tier no spec names keeps its defaults; a tier named
// twice is an error. An error wraps ErrBadSearchTier and names the spec,
// by position, and what is wrong with it.
func ParseSearchTiers(specs ...string) (SearchTiers, error) {
	var out SearchTiers
	named := map[string]bool{}
	for i, spec := range specs {
		fail := func(format string, args ...any) (SearchTiers, error) {
			return SearchTiers{}, fmt.Errorf("%w %d, %s: %s", ErrBadSearchTier, i+1, quoteValue(spec), fmt.Sprintf(format, args...))
		}
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			return fail(`want NAME=MAX_IN_FLIGHT[/BUDGET], for example "autocomplete=8/50ms"`)
		}
		var c *TierConfig
		switch name {
		case TierSearch:
			c = &out.Search
		case TierAutocomplete:
			c = &out.Autocomplete
		case TierFacets:
			c = &out.Facets
		default:
			return fail("unknown tier %s (want %s, %s or %s)", quoteValue(name), TierSearch, TierAutocomplete, TierFacets)
		}
		if named[name] {
			return fail("the %s tier is set twice", name)
		}
		named[name] = true
		limit, budget, hasBudget := strings.Cut(value, "/")
		n, ok := canonicalPositive(limit)
		if !ok || n > MaxTierInFlight {
			return fail("the most requests in flight must be an integer between 1 and %d, got %s", MaxTierInFlight, quoteValue(limit))
		}
		c.MaxInFlight = int(n)
		if !hasBudget {
			continue
		}
		d, err := time.ParseDuration(budget)
		if err != nil || d < minTierBudget || d > maxTierBudget {
			return fail("the budget must be a duration between %v and %v, such as 50ms, got %s", minTierBudget, maxTierBudget, quoteValue(budget))
		}
		c.Budget = d
	}
	return out, nil
}

// tier is one search tier's admission and budget. slots is a semaphore
// with no queue: acquire never waits, so a full tier costs a refused
// request nothing but the refusal.
type tier struct {
	name   string
	slots  chan struct{}
	budget time.Duration

	inFlight           prometheus.Gauge
	rejected, timeouts prometheus.Counter
	duration           prometheus.Observer
}

// tiers are the handler's three search tiers.
type tiers struct {
	search, autocomplete, facets *tier
}

// newTiers resolves cfg's defaults and registers the tiers' metrics. A
// negative limit or budget is a programming error at registration time.
func newTiers(cfg SearchTiers, reg prometheus.Registerer) tiers {
	m := newTierMetrics(reg)
	mk := func(name string, c TierConfig, maxInFlight int, budget time.Duration) *tier {
		if c.MaxInFlight < 0 || c.Budget < 0 {
			panic(fmt.Sprintf("storefront: negative MaxInFlight (%d) or Budget (%v) of the %s tier in HandlerConfig.SearchTiers", c.MaxInFlight, c.Budget, name))
		}
		if c.MaxInFlight == 0 {
			c.MaxInFlight = maxInFlight
		}
		if c.Budget == 0 {
			c.Budget = budget
		}
		m.limit.WithLabelValues(name).Set(float64(c.MaxInFlight))
		return &tier{
			name: name, slots: make(chan struct{}, c.MaxInFlight), budget: c.Budget,
			inFlight: m.inFlight.WithLabelValues(name), rejected: m.rejected.WithLabelValues(name),
			timeouts: m.timeouts.WithLabelValues(name), duration: m.duration.WithLabelValues(name),
		}
	}
	return tiers{
		search:       mk(TierSearch, cfg.Search, DefaultSearchMaxInFlight, DefaultSearchBudget),
		autocomplete: mk(TierAutocomplete, cfg.Autocomplete, DefaultAutocompleteMaxInFlight, DefaultAutocompleteBudget),
		facets:       mk(TierFacets, cfg.Facets, DefaultFacetsMaxInFlight, DefaultFacetsBudget),
	}
}

// tierMetrics are the search tiers' metrics, labelled by tier.
type tierMetrics struct {
	inFlight, limit    *prometheus.GaugeVec
	rejected, timeouts *prometheus.CounterVec
	duration           *prometheus.HistogramVec
}

func newTierMetrics(reg prometheus.Registerer) tierMetrics {
	m := tierMetrics{
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_search_requests_in_flight",
			Help: "Search requests being answered now, by tier (search, autocomplete, facets).",
		}, []string{"tier"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_search_max_in_flight",
			Help: "The most requests a search tier answers at once; past it a request is refused with 503.",
		}, []string{"tier"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_search_rejected_total",
			Help: "Search requests refused with 503 because their tier was full.",
		}, []string{"tier"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_search_timeouts_total",
			Help: "Search requests that ran out of their tier's budget (answered 503).",
		}, []string{"tier"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_search_request_duration_seconds",
			Help:    "Time a search tier took to answer a request it admitted (at most about its budget), by tier.",
			Buckets: latencyBuckets(),
		}, []string{"tier"}),
	}
	// Every tier's series exist from the start, at 0, so a dashboard
	// shows 0 rather than no data before the first refusal.
	for _, name := range []string{TierSearch, TierAutocomplete, TierFacets} {
		m.inFlight.WithLabelValues(name)
		m.rejected.WithLabelValues(name)
		m.timeouts.WithLabelValues(name)
		m.duration.WithLabelValues(name)
	}
	reg.MustRegister(m.inFlight, m.limit, m.rejected, m.timeouts, m.duration)
	return m
}

// tierErrorBody is the body of a search tier's 503: errorBody's shape,
// with the tier that could not answer.
type tierErrorBody struct {
	Error string `json:"error"`
	Tier  string `json:"tier"`
}

// tierDrain is how long a tier's work may run on once its budget has
// been answered (Strata's choice). The answer leaves at the budget; the
// work keeps its slot and runs until it ends or this much later, when its
// context cancels the query. Canceling a query at the budget itself costs
// its connection (pgx closes a connection whose query is canceled), and
// a pool that must open connections within a 50 ms budget on a busy
// machine fails to, over and over: the benchmark (docs/benchmarks.md)
// saw sixteen times as many database sessions opened, and every tier's
// errors rise, before the drain was added. Half a second lets a
// connection open and a query slowed by a busy machine finish; a query
// stuck on a lock is still canceled, and its slot is held meanwhile, so a
// stuck tier refuses new work rather than piling it up.
const tierDrain = 500 * time.Millisecond

// tierResult is what a tier's work returned, or the panic it raised.
type tierResult struct {
	err      error
	panicked any
}

// runTierWork calls fn, turning a panic into a tierResult.
func runTierWork(ctx context.Context, fn func(ctx context.Context) error) (res tierResult) {
	defer func() {
		if v := recover(); v != nil {
			res = tierResult{panicked: v}
		}
	}()
	return tierResult{err: fn(ctx)}
}

// inTier runs fn as a request of tier t: at once 503 when the tier is
// full, else answered within the tier's budget. fn runs on a goroutine of
// its own, under the request's values, with a deadline of the budget plus
// tierDrain, and holds the tier's slot until it returns: past the budget
// the request is answered 503 naming the tier while fn drains. inTier
// answers fn's error itself and reports whether fn succeeded in time, in
// which case the caller writes the answer from what fn stored.
func (a *api) inTier(w http.ResponseWriter, r *http.Request, t *tier, fn func(ctx context.Context) error) bool {
	select {
	case t.slots <- struct{}{}:
	default:
		t.rejected.Inc()
		a.unavailable.warn(a.log, "search tier full; requests refused", "tier", t.name, "max_in_flight", cap(t.slots))
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeJSON(w, http.StatusServiceUnavailable, tierErrorBody{
			Error: fmt.Sprintf("the %s tier is full (%d requests in flight); retry in a moment", t.name, cap(t.slots)),
			Tier:  t.name,
		})
		return false
	}
	t.inFlight.Inc()
	// The work records how the caches served it into a holder of its own,
	// copied into the request's only if it answers in time: once the
	// request is answered, the work must not write into what the answer
	// was built from.
	var served []string
	ctx, cancel := context.WithTimeout(withCacheInfo(context.WithoutCancel(r.Context()), &served), t.budget+tierDrain)
	done := make(chan tierResult, 1)
	t0 := time.Now()
	go func() {
		res := runTierWork(ctx, fn)
		// The slot is free before the result is handed over: a request
		// answered in time leaves its tier as it found it.
		cancel()
		t.inFlight.Dec()
		<-t.slots
		done <- res
	}()
	budget := time.NewTimer(t.budget)
	defer budget.Stop()
	select {
	case res := <-done:
		t.duration.Observe(time.Since(t0).Seconds())
		if res.panicked != nil {
			panic(res.panicked) // to the handler's recover, as if fn had run here
		}
		if h, ok := r.Context().Value(infoKey{}).(*[]string); ok {
			*h = append(*h, served...)
		}
		if res.err != nil {
			a.fail(w, r, res.err)
			return false
		}
		return true
	case <-budget.C:
		t.duration.Observe(time.Since(t0).Seconds())
		t.timeouts.Inc()
		a.unavailable.warn(a.log, "search tier budget exceeded", "tier", t.name, "budget", t.budget, "path", r.URL.Path)
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeJSON(w, http.StatusServiceUnavailable, tierErrorBody{
			Error: fmt.Sprintf("the %s tier could not answer within its %v budget; retry in a moment", t.name, t.budget),
			Tier:  t.name,
		})
		return false
	case <-r.Context().Done():
		// The client is gone, or the request's own bound ran out: stop the work.
		cancel()
		a.fail(w, r, r.Context().Err())
		return false
	}
}

// search serves GET /search: product search, or with facets=category
// faceted search, the results and their counts by category, each in its
// tier. Input is checked before either tier is asked, so bad input is a
// 400 however busy the tiers are.
func (a *api) search(w http.ResponseWriter, r *http.Request) {
	q, aerr := query(r, "q", "limit", "facets")
	var text string
	var limit int
	var faceted bool
	if aerr == nil {
		var ok bool
		text, ok, aerr = param(q, "q")
		if aerr == nil && !ok {
			aerr = badRequest("q", "is required")
		}
	}
	if aerr == nil {
		limit, aerr = limitParam(q)
	}
	if aerr == nil {
		faceted, aerr = facetsParam(q)
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	if _, err := SearchTerms(text); err != nil {
		a.fail(w, r, err)
		return
	}
	var products []Product
	if !faceted {
		if a.inTier(w, r, a.tiers.search, func(ctx context.Context) (err error) {
			products, err = a.svc.Search(ctx, text, limit)
			return err
		}) {
			writeCacheable(w, r, publicCache, map[string]any{"query": text, "results": products})
		}
		return
	}
	var facets Facets
	if a.inTier(w, r, a.tiers.facets, func(ctx context.Context) error {
		return parallel(ctx,
			func(ctx context.Context) (err error) { products, err = a.svc.Search(ctx, text, limit); return err },
			func(ctx context.Context) (err error) { facets, err = a.svc.Facets(ctx, text); return err })
	}) {
		writeCacheable(w, r, publicCache, map[string]any{"query": text, "results": products, "facets": facets})
	}
}

// facetsParam reads facets=: absent means none, "category" the counts by
// category (the one facet there is).
func facetsParam(v url.Values) (bool, *apiError) {
	s, ok, aerr := param(v, "facets")
	if aerr != nil || !ok {
		return false, aerr
	}
	if s != FacetCategory {
		return false, badRequest("facets", "must be %q (the one facet counted), got %s", FacetCategory, quoteValue(s))
	}
	return true, nil
}

// parallel runs fns at once under ctx and returns the first error; the
// first to fail cancels the others, and all have returned when it does.
// Each records how the caches served it into a holder of its own, copied
// into the request's once all are done (the request's holder is not safe
// for concurrent use).
func parallel(ctx context.Context, fns ...func(ctx context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	served := make([][]string, len(fns))
	for i, fn := range fns {
		g.Go(func() error { return fn(withCacheInfo(gctx, &served[i])) })
	}
	err := g.Wait()
	if h, ok := ctx.Value(infoKey{}).(*[]string); ok {
		for _, s := range served {
			*h = append(*h, s...)
		}
	}
	return err
}

// suggest serves GET /search/suggest?prefix=…&limit=…: autocomplete, in
// its tier, with an edge cache as short as its cache TTL.
func (a *api) suggest(w http.ResponseWriter, r *http.Request) {
	q, aerr := query(r, "prefix", "limit")
	var prefix string
	var limit int
	if aerr == nil {
		var ok bool
		prefix, ok, aerr = param(q, "prefix")
		if aerr == nil && !ok {
			aerr = badRequest("prefix", "is required")
		}
	}
	if aerr == nil {
		limit, aerr = boundedLimitParam(q, DefaultSuggestLimit, MaxSuggestLimit)
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	if _, err := SuggestPrefix(prefix); err != nil {
		a.fail(w, r, err)
		return
	}
	var out []Suggestion
	if a.inTier(w, r, a.tiers.autocomplete, func(ctx context.Context) (err error) {
		out, err = a.svc.Suggest(ctx, prefix, limit)
		return err
	}) {
		policy := "public, max-age=" + strconv.Itoa(int(SuggestTTL/time.Second))
		writeCacheable(w, r, policy, map[string]any{"prefix": prefix, "suggestions": out})
	}
}

// boundedLimitParam reads limit=: absent means def, otherwise an integer
// in 1..most.
func boundedLimitParam(v url.Values, def, most int) (int, *apiError) {
	s, ok, aerr := param(v, "limit")
	if aerr != nil || !ok {
		return def, aerr
	}
	n, ok := canonicalPositive(s)
	if !ok || n > int64(most) {
		return 0, badRequest("limit", "must be an integer between 1 and %d, got %s", most, quoteValue(s))
	}
	return int(n), nil
}
