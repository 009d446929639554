package storefront

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/cache/cachemetrics"
	"github.com/strata-dev/strata/overload"
	"github.com/strata-dev/strata/replica"
)

// Cache lifetimes of stage 2, from the guide.
const (
	UserTTL   = 300 * time.Second // guide, Stage 2: cache.set(cache_key, user, ttl=300)
	QueryTTL  = 60 * time.Second  // guide, Stage 4: query cache 60 s (recommendations are a query result)
	SearchTTL = 15 * time.Minute  // guide, search case study: popular query results cached 15 minutes
	EdgeTTL   = 600 * time.Second // guide, Stage 4: edge (CDN) cache 600 s, for catalogue data only
	// SuggestTTL is the autocomplete tier's: the guide's query cache, 60
	// s. Its keys are every prefix typed, so entries live briefly and
	// the cache holds the prefixes being typed now.
	SuggestTTL = QueryTTL // guide, Stage 4: query cache 60 s
	// FacetsTTL is the faceted search tier's: facet counts are results
	// of the same popular queries as the search results.
	FacetsTTL = SearchTTL // guide, search case study: popular query results cached 15 minutes
)

// CacheConfig configures the stage-2 storefront.
type CacheConfig struct {
	// Redis, when set, adds L2, cross-instance leases and the invalidation
	// bus; nil means L1 only (one instance).
	Redis rueidis.Client
	// RedisConn, set instead of Redis, adds the same through a connection
	// made in the background (cache.DialRedis): the service starts while
	// Redis is down, runs degraded (no L2, the bus down, short L1 life)
	// and recovers by itself when Redis answers.
	RedisConn *cache.RedisConn
	// Namespace prefixes the Redis keys; default "storefront".
	Namespace string
	// StalenessBound: see the cache package; 0 means its default (1 s).
	StalenessBound time.Duration
	// WarmPeaks are known traffic peaks (cache.ParsePeak): the users and
	// products caches warm their hot sets WarmLead before each, beside
	// the warm-up they run when traffic surges. None by default.
	WarmPeaks []cache.Peak
	// WarmLead is how long before a peak the warm-up runs; 0 means
	// cache.DefaultPeakLead (30 minutes, the guide's Prime Video case).
	WarmLead time.Duration
	// SearchCacheTTL, SuggestCacheTTL and FacetsCacheTTL are the cache
	// lifetimes of the three search tiers' answers (product search,
	// autocomplete, facet counts), each in a cache of its own; 0 means
	// SearchTTL, SuggestTTL and FacetsTTL. A write to the catalogue
	// makes all three stale at once, whatever their TTL.
	SearchCacheTTL, SuggestCacheTTL, FacetsCacheTTL time.Duration
	// NoPrefetch turns off predictive prefetch: by default, after a
	// user's recommendations are read, the first PrefetchTop recommended
	// products are loaded into the products cache in the background
	// (the guide's stage-5 predictive prefetch: the user's likely next
	// reads), bounded by maxPrefetch at once.
	NoPrefetch bool
	// Overload, when set, is the service's overload limiter: each
	// prefetch asks it for room as sheddable work and is skipped when
	// refused, so prefetch stops first when the service is overloaded.
	Overload *overload.Limiter
	// Registerer receives the cache metrics; nil means none.
	Registerer prometheus.Registerer
	// Logger receives background errors; nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, makes spans of the caches' reads under a
	// request's span (package cache); nil means off.
	TracerProvider trace.TracerProvider
}

// Cached is the storefront at stage 2 of the guide: the [Store] read
// through a multi-level cache. Users and products are cached by key;
// recommendations and the answers of the three search tiers (results,
// suggestions, facet counts, each tier in a cache of its own with its own
// TTL) are query results, tagged by what they read, so that a write
// invalidates exactly them. Every write goes to
// the store first and then invalidates what it changed, here and, through
// the bus, in every other instance.
type Cached struct {
	store    *Store
	users    *cache.Cache[User]
	products *cache.Cache[Product]
	recs     *cache.Cache[[]Recommendation]
	search   *cache.Cache[[]Product]
	suggest  *cache.Cache[[]Suggestion]
	facets   *cache.Cache[Facets]

	ctx     context.Context // canceled by Close: stops background warming
	cancel  context.CancelFunc
	metrics *cachemetrics.Metrics // nil without a Registerer

	warming     chan struct{} // a slot per personalisation warming running
	warmSkipped atomic.Int64  // warmings skipped because every slot was busy

	prefetching     chan struct{}                         // a slot per prefetch running; nil: prefetch off
	prefetchSkipped atomic.Int64                          // prefetches skipped because every slot was busy or the limiter refused them
	limiter         *overload.Limiter                     // nil: prefetch asks no limiter
	onPrefetch      func(keys []string, n int, err error) // tests: after each prefetch

	// mu orders background's wg.Add before Close's wg.Wait: once closed
	// is set under mu, no new background work starts, so Wait cannot race
	// an Add (which the sync package forbids).
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

var _ Service = (*Cached)(nil)

// NewCached wraps s in the stage-2 caches. Close the result before s.
func NewCached(s *Store, cfg CacheConfig) (*Cached, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = "storefront"
	}
	for _, ttl := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"SearchCacheTTL", &cfg.SearchCacheTTL, SearchTTL}, {"SuggestCacheTTL", &cfg.SuggestCacheTTL, SuggestTTL}, {"FacetsCacheTTL", &cfg.FacetsCacheTTL, FacetsTTL}} {
		if *ttl.v < 0 {
			return nil, fmt.Errorf("storefront: CacheConfig.%s is negative (%v)", ttl.name, *ttl.v)
		}
		if *ttl.v == 0 {
			*ttl.v = ttl.def
		}
	}
	c := &Cached{store: s, warming: make(chan struct{}, maxWarming), limiter: cfg.Overload}
	if !cfg.NoPrefetch {
		c.prefetching = make(chan struct{}, maxPrefetch)
	}
	if cfg.Registerer != nil {
		m, err := cachemetrics.New(cfg.Registerer)
		if err != nil {
			return nil, fmt.Errorf("storefront: cache metrics: %w", err)
		}
		c.metrics = m
	}
	m := c.metrics
	c.ctx, c.cancel = context.WithCancel(background())
	var err error
	if c.users, err = newLevel(cfg, m, "users", UserTTL, c.loadUser); err != nil {
		c.Close()
		return nil, err
	}
	if c.products, err = newLevel(cfg, m, "products", UserTTL, c.loadProduct); err != nil {
		c.Close()
		return nil, err
	}
	if c.recs, err = newLevel[[]Recommendation](cfg, m, "recommendations", QueryTTL, nil); err != nil {
		c.Close()
		return nil, err
	}
	if c.search, err = newLevel[[]Product](cfg, m, "search", cfg.SearchCacheTTL, nil); err != nil {
		c.Close()
		return nil, err
	}
	if c.suggest, err = newLevel[[]Suggestion](cfg, m, "suggest", cfg.SuggestCacheTTL, nil); err != nil {
		c.Close()
		return nil, err
	}
	if c.facets, err = newLevel[Facets](cfg, m, "facets", cfg.FacetsCacheTTL, nil); err != nil {
		c.Close()
		return nil, err
	}
	if cfg.Redis != nil || cfg.RedisConn != nil {
		// A fresh instance loads the hot users and products other
		// instances published, instead of waiting for traffic to find them.
		c.background(func(ctx context.Context) {
			if cfg.RedisConn != nil { // connected in the background: wait for it
				select {
				case <-cfg.RedisConn.Ready():
				case <-ctx.Done():
					return
				}
			}
			c.users.WarmFromPublished(ctx, c.loadUser)
			c.products.WarmFromPublished(ctx, c.loadProduct)
		})
	}
	return c, nil
}

// newLevel makes one of the stage's caches. Caches keyed by id track
// hotness and warm their hot set when traffic surges (autoWarm) and ahead
// of the known peaks; query results are not warmed, since their keys
// carry arguments.
func newLevel[V any](cfg CacheConfig, m *cachemetrics.Metrics, name string, ttl time.Duration, autoWarm cache.LoaderFunc[V]) (*cache.Cache[V], error) {
	cc := cache.Config[V]{
		Namespace: cfg.Namespace + ":" + name, TTL: ttl, Redis: cfg.Redis, RedisConn: cfg.RedisConn,
		StalenessBound: cfg.StalenessBound, Logger: cfg.Logger, TracerProvider: cfg.TracerProvider,
		TrackHot: autoWarm != nil, AutoWarm: autoWarm,
	}
	if autoWarm != nil {
		cc.Peaks, cc.PeakLead = cfg.WarmPeaks, cfg.WarmLead
	}
	if m != nil {
		cc.Recorder = m.Recorder(name)
	}
	c, err := cache.New(cc)
	if err != nil {
		return nil, fmt.Errorf("storefront: %s cache: %w", name, err)
	}
	if m != nil {
		m.Watch(name, c)
	}
	return c, nil
}

// Close stops the caches' background work. It does not close the store.
func (c *Cached) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	if c.users != nil {
		c.users.Close()
	}
	if c.products != nil {
		c.products.Close()
	}
	if c.recs != nil {
		c.recs.Close()
	}
	if c.search != nil {
		c.search.Close()
	}
	if c.suggest != nil {
		c.suggest.Close()
	}
	if c.facets != nil {
		c.facets.Close()
	}
	if c.metrics != nil {
		// The registry may serve a new Cached next (a restart of the
		// stage in the same process): leave nothing of this one behind.
		c.metrics.Unregister()
	}
	return nil
}

// maxWarming bounds the personalisation warmings running at once
// (Strata's choice): enough to keep ahead of new sessions at a steady
// rate, few enough that a surge of new users does not queue background
// queries behind the requests. A warming that finds them all busy is
// skipped: the recommendations load on their first read instead.
const maxWarming = 4

// warm runs fn in the background unless maxWarming warmings already run.
func (c *Cached) warm(fn func(ctx context.Context)) {
	select {
	case c.warming <- struct{}{}:
	default:
		c.warmSkipped.Add(1)
		return
	}
	c.background(func(ctx context.Context) {
		defer func() { <-c.warming }()
		fn(ctx)
	})
}

// PrefetchTop is how many of a user's recommended products predictive
// prefetch loads: the top of the list, which a page shows first and a user
// opens most (Strata's choice; the guide names the idea, not a number).
const PrefetchTop = 5

// maxPrefetch bounds the prefetches running at once (Strata's choice).
// Each reads its products one at a time, so prefetch holds at most
// maxPrefetch database connections of the primary pool's 50, and one that
// finds every slot busy is skipped, not queued: under load, prefetch gives
// way to live traffic rather than adding to it.
const maxPrefetch = 2

// prefetch loads the first PrefetchTop products of recs into the products
// cache in the background (keys L1 already holds fresh are skipped), one
// at a time, unless maxPrefetch prefetches already run, the overload
// limiter refuses it sheddable room, or ctx is itself background work.
// Errors are left to the product's own read: a prefetch is a guess.
func (c *Cached) prefetch(ctx context.Context, recs []Recommendation) {
	if c.prefetching == nil || len(recs) == 0 || Background(ctx) {
		return
	}
	select {
	case c.prefetching <- struct{}{}:
	default:
		c.prefetchSkipped.Add(1)
		return
	}
	var tok *overload.Token // nil without a limiter: its methods do nothing
	if c.limiter != nil {
		var err error
		if tok, err = c.limiter.Acquire(ctx, overload.Sheddable); err != nil {
			<-c.prefetching
			c.prefetchSkipped.Add(1)
			return
		}
	}
	keys := make([]string, 0, min(len(recs), PrefetchTop))
	for _, r := range first(recs, PrefetchTop) {
		keys = append(keys, productKey(r.Product.ID))
	}
	started := c.background(func(ctx context.Context) {
		defer func() { <-c.prefetching }()
		defer tok.Ignore() // background work: its time is not the live traffic's latency
		var n int
		var firstErr error
		for _, k := range keys {
			got, err := c.products.Warm(ctx, []string{k}, c.loadProduct)
			n += got
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if ctx.Err() != nil {
				break
			}
		}
		if c.onPrefetch != nil {
			c.onPrefetch(keys, n, firstErr)
		}
	})
	if !started { // closed: give back what the prefetch took
		tok.Ignore()
		<-c.prefetching
	}
}

// background runs fn on a goroutine that Close waits for, and says
// whether it did: after Close it does nothing.
func (c *Cached) background(fn func(ctx context.Context)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.ctx)
	}()
	return true
}

// keyID parses the id at the end of a key such as "user:42".
func keyID(key string) (int64, error) {
	i := strings.LastIndexByte(key, ':')
	id, err := strconv.ParseInt(key[i+1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("storefront: bad cache key %q", key)
	}
	return id, nil
}

// loadUser and loadProduct are the loaders warming uses, keyed like the
// caches.
func (c *Cached) loadUser(ctx context.Context, key string) (User, error) {
	id, err := keyID(key)
	if err != nil {
		return User{}, err
	}
	ctx, err = c.fresh(ctx, id)
	if err != nil {
		return User{}, err
	}
	u, err := c.store.GetUser(ctx, id)
	return u, notFound(err)
}

func (c *Cached) loadProduct(ctx context.Context, key string) (Product, error) {
	id, err := keyID(key)
	if err != nil {
		return Product{}, err
	}
	ctx, err = c.fresh(ctx, 0)
	if err != nil {
		return Product{}, err
	}
	p, err := c.store.GetProduct(ctx, id)
	return p, notFound(err)
}

// infoKey carries a *cache.Info holder from the HTTP handler to the
// service, so the response can say how it was served.
type infoKey struct{}

// withCacheInfo returns a context in which the stage-2 service records how
// each read was served.
func withCacheInfo(ctx context.Context, holder *[]string) context.Context {
	return context.WithValue(ctx, infoKey{}, holder)
}

func note(ctx context.Context, what string, info cache.Info) {
	if h, ok := ctx.Value(infoKey{}).(*[]string); ok {
		*h = append(*h, what+": "+info.String())
	}
}

func userKey(id int64) string            { return "user:" + strconv.FormatInt(id, 10) }
func productKey(id int64) string         { return "product:" + strconv.FormatInt(id, 10) }
func actionsTag(userID int64) string     { return "actions:user:" + strconv.FormatInt(userID, 10) }
func recsKey(id int64, limit int) string { return userKey(id) + ":recs:" + strconv.Itoa(limit) }

// notFound turns the store's not-found into the cache's, so it is cached.
func notFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", cache.ErrNotFound, err)
	}
	return err
}

// GetUser reads a user through the cache.
func (c *Cached) GetUser(ctx context.Context, id int64) (User, error) {
	if err := checkID("id", id); err != nil {
		return User{}, err
	}
	if c.bypass(ctx, id) {
		return c.store.GetUser(ctx, id)
	}
	u, info, err := c.users.Get(ctx, userKey(id), c.loadUser)
	note(ctx, "user", info)
	if errors.Is(err, errFillUnsafe) {
		return c.store.GetUser(ctx, id)
	}
	if errors.Is(err, cache.ErrNotFound) {
		return User{}, &NotFoundError{Kind: "user", ID: id}
	}
	if err == nil && info.Source == cache.SourceLoader && !info.Shared {
		// The guide's personalisation warming: a user no level knew is
		// likely starting a session, so compute their recommendations now.
		// It is best effort and bounded: a surge of new users must not
		// double the database's load with background work.
		c.warm(func(ctx context.Context) {
			c.recs.Warm(ctx, []string{recsKey(id, DefaultLimit)}, func(ctx context.Context, _ string) ([]Recommendation, error) {
				return c.loadRecs(ctx, id, DefaultLimit)
			}, cache.Tags(actionsTag(id)))
		})
	}
	return u, err
}

// CreateUser writes to the store and drops any cached "not found" for the
// new id (its user and its recommendations).
func (c *Cached) CreateUser(ctx context.Context, n NewUser) (User, error) {
	u, err := c.store.CreateUser(ctx, n)
	if err != nil {
		return u, err
	}
	c.invalidate(ctx, func() (cache.Invalidation, error) { return c.users.Delete(ctx, userKey(u.ID)) })
	c.invalidate(ctx, func() (cache.Invalidation, error) { return c.recs.InvalidateTags(ctx, actionsTag(u.ID)) })
	return u, nil
}

// UpdateUser writes to the store, then invalidates the user everywhere.
func (c *Cached) UpdateUser(ctx context.Context, id int64, p UserPatch) (User, error) {
	u, err := c.store.UpdateUser(ctx, id, p)
	if err != nil {
		return u, err
	}
	c.invalidate(ctx, func() (cache.Invalidation, error) { return c.users.Delete(ctx, userKey(id)) })
	return u, nil
}

// RecordAction writes to the store, then invalidates the user's cached
// recommendations (every limit) by their tag.
func (c *Cached) RecordAction(ctx context.Context, userID, productID int64, kind ActionKind) (Action, error) {
	a, err := c.store.RecordAction(ctx, userID, productID, kind)
	if err != nil {
		return a, err
	}
	c.invalidate(ctx, func() (cache.Invalidation, error) { return c.recs.InvalidateTags(ctx, actionsTag(userID)) })
	return a, nil
}

// partialRecs is returned by the recommendations loader for a list made
// partly of fallbacks (a shard did not answer in time): the caller serves
// it, but it is not cached, so the next request asks the shards again.
type partialRecs struct {
	recs  []Recommendation
	notes []string
}

func (p *partialRecs) Error() string {
	return "storefront: recommendations made partly of fallbacks: " + strings.Join(p.notes, "; ")
}

// errFillUnsafe is returned (wrapped) by a loader that could not read the
// primary's WAL position: the caller serves the read from the store (a
// replica) without caching it.
var errFillUnsafe = errors.New("storefront: the primary's WAL position cannot be read, so the value is served from a replica but not cached")

// fresh prepares a loader's context. With replicas, a value loaded into
// the cache must not be older than a write another instance made before
// the load began (that write's invalidation may already have passed): the
// load reads at or after the primary's current WAL position, which costs
// one small primary query per miss. userID names whose rows the load
// reads (0: the main database's, products and search): on a sharded store
// the position is that user's shard's, and rows without replicas need none.
//
// With the primary down (or failing over) that position cannot be read.
// The read is still served, from a replica (reads must go on while a
// healthy server can answer them), but nothing is cached: a value of
// unknown age in the cache would outlive the staleness bound. fresh then
// returns an error wrapping errFillUnsafe, and the caller reads the store
// directly.
func (c *Cached) fresh(ctx context.Context, userID int64) (context.Context, error) {
	r := c.store.replicatedFor(userID)
	if r == nil {
		return ctx, nil
	}
	tok, err := r.Position(ctx)
	if err != nil {
		if ctx.Err() != nil { // the caller's own deadline or cancellation
			return ctx, fmt.Errorf("storefront: cache fill needs the primary's WAL position: %w", err)
		}
		// Anything else (the primary down, in recovery after a failover,
		// slow to answer): the replicas can still serve the read.
		return ctx, fmt.Errorf("%w: %w", errFillUnsafe, err)
	}
	return replica.WithToken(ctx, tok), nil
}

// bypass reports whether a read must skip the cache: with replicas, when
// it carries a read-your-writes token (its session wrote recently), since
// a cached value, or a load already in flight, may predate that write on
// this instance until the invalidation arrives. The store honours the
// token. Without replicas tokens mean nothing and are ignored, so a client
// cannot turn the cache off by sending one.
func (c *Cached) bypass(ctx context.Context, userID int64) bool {
	return replica.TokenFrom(ctx) != 0 && c.store.replicatedFor(userID) != nil
}

// invalidate runs an invalidation after a committed write. The write
// stands whatever happens; a level the invalidation could not reach keeps
// its values until their TTL (the cache bounds what other instances serve
// meanwhile, and logs the outage itself, rate-limited), so this logs at
// debug level only.
func (c *Cached) invalidate(ctx context.Context, fn func() (cache.Invalidation, error)) {
	inv, err := fn()
	if err != nil {
		c.store.log.Debug("storefront: invalidation incomplete; affected values expire with their TTL",
			"keys", inv.Keys, "tags", inv.Tags, "levels", inv.Levels, "err", err)
	}
}

// GetProduct reads a product through the cache.
func (c *Cached) GetProduct(ctx context.Context, id int64) (Product, error) {
	if err := checkID("id", id); err != nil {
		return Product{}, err
	}
	if c.bypass(ctx, 0) {
		return c.store.GetProduct(ctx, id)
	}
	p, info, err := c.products.Get(ctx, productKey(id), c.loadProduct)
	note(ctx, "product", info)
	if errors.Is(err, errFillUnsafe) {
		return c.store.GetProduct(ctx, id)
	}
	if errors.Is(err, cache.ErrNotFound) {
		return Product{}, &NotFoundError{Kind: "product", ID: id}
	}
	return p, err
}

// Search reads a query's results through the query-result level.
func (c *Cached) Search(ctx context.Context, q string, limit int) ([]Product, error) {
	terms, err := SearchTerms(q)
	if err != nil {
		return nil, err
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	return throughQuery(ctx, c, c.search, "search", c.store.d.searchSQL, []any{c.store.d.searchArg(terms), limit},
		func(ctx context.Context) ([]Product, error) { return c.store.Search(ctx, q, limit) })
}

// Suggest reads an autocomplete answer through the autocomplete tier's
// query-result level, keyed by the prefix as [SuggestPrefix] folds it.
func (c *Cached) Suggest(ctx context.Context, prefix string, limit int) ([]Suggestion, error) {
	p, err := SuggestPrefix(prefix)
	if err != nil {
		return nil, err
	}
	if err := checkSuggestLimit(limit); err != nil {
		return nil, err
	}
	return throughQuery(ctx, c, c.suggest, "suggest", c.store.d.suggestSQL, []any{p, limit},
		func(ctx context.Context) ([]Suggestion, error) { return c.store.Suggest(ctx, p, limit) })
}

// Facets reads a query's facet counts through the faceted search tier's
// query-result level.
func (c *Cached) Facets(ctx context.Context, q string) (Facets, error) {
	terms, err := SearchTerms(q)
	if err != nil {
		return nil, err
	}
	return throughQuery(ctx, c, c.facets, "facets", c.store.d.facetSQL, []any{c.store.d.searchArg(terms), MaxFacetValues},
		func(ctx context.Context) (Facets, error) { return c.store.Facets(ctx, q) })
}

// throughQuery reads a catalogue query's result through level, a
// query-result level: keyed by the SQL the store runs (sql) and its
// arguments, stale after any write to the catalogue. load is the store's
// read. what names the read in CacheHeader.
func throughQuery[V any](ctx context.Context, c *Cached, level *cache.Cache[V], what, sql string, args []any, load func(ctx context.Context) (V, error)) (V, error) {
	if c.bypass(ctx, 0) {
		return load(ctx)
	}
	query := cache.Query{SQL: sql, Args: args, Tables: []string{"products"}}
	res, info, err := level.Query(ctx, query, func(ctx context.Context) (V, error) {
		ctx, err := c.fresh(ctx, 0)
		if err != nil {
			var zero V
			return zero, err
		}
		return load(ctx)
	})
	note(ctx, what, info)
	if errors.Is(err, errFillUnsafe) {
		return load(ctx)
	}
	return res, err
}

// Recommend reads a user's recommendations through the cache, tagged with
// the user's actions, so the user's next action makes them stale at once.
func (c *Cached) Recommend(ctx context.Context, userID int64, limit int) ([]Recommendation, error) {
	if err := checkID("id", userID); err != nil {
		return nil, err
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	if c.bypass(ctx, userID) {
		return c.store.Recommend(ctx, userID, limit)
	}
	recs, info, err := c.recs.Get(ctx, recsKey(userID, limit), func(ctx context.Context, _ string) ([]Recommendation, error) {
		return c.loadRecs(ctx, userID, limit)
	}, cache.Tags(actionsTag(userID)))
	note(ctx, "recommendations", info)
	if errors.Is(err, errFillUnsafe) {
		return c.store.Recommend(ctx, userID, limit)
	}
	if pr := (*partialRecs)(nil); errors.As(err, &pr) {
		for _, n := range pr.notes {
			noteFallback(ctx, n)
		}
		return pr.recs, nil
	}
	if errors.Is(err, cache.ErrNotFound) {
		return nil, &NotFoundError{Kind: "user", ID: userID}
	}
	if err == nil {
		c.prefetch(ctx, recs)
	}
	return recs, err
}

// loadRecs is the recommendations loader, for reads and for warming. A
// list made partly of fallbacks is returned as a *partialRecs error, so
// that no cache level keeps it: the next request asks the shards again.
func (c *Cached) loadRecs(ctx context.Context, userID int64, limit int) ([]Recommendation, error) {
	ctx, err := c.fresh(ctx, userID)
	if err != nil {
		return nil, err
	}
	fb := new(fallbacks)
	recs, err := c.store.Recommend(withFallbacks(ctx, fb), userID, limit)
	if notes := fb.list(); err == nil && len(notes) > 0 {
		return nil, &partialRecs{recs: recs, notes: notes}
	}
	return recs, notFound(err)
}

// Degraded lists what is down while the service still serves: the
// store's parts (see [Store.Degraded]) and the cache's Redis, which is a
// cache level: without it reads go on from L1 and the database.
func (c *Cached) Degraded(ctx context.Context) []string {
	out := c.store.Degraded(ctx)
	// The caches share one Redis; the users cache speaks for them.
	if h := c.users.Health(); h.Degraded() {
		var lost []string
		if !h.L2 {
			lost = append(lost, "L2 skipped")
		}
		if !h.Bus {
			lost = append(lost, "invalidation bus down, L1 entries short-lived")
		}
		msg := "cache: Redis unavailable since " + h.Since.UTC().Format(time.RFC3339) + " (" + strings.Join(lost, ", ") + ")"
		if h.LastError != nil {
			msg += ": " + clipReport(h.LastError.Error())
		}
		out = append(out, msg)
	}
	return out
}

// Ping checks the database.
func (c *Cached) Ping(ctx context.Context) error { return c.store.Ping(ctx) }
