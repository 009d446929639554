package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	otterstats "github.com/maypok86/otter/v2/stats"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/deadline"
	"github.com/strata-dev/strata/internal/spans"
)

// Defaults, from the guide's caching sections where it gives a number.
const (
	DefaultL1Size         = 10_000                 // guide, Multi-Level Caching: LRUCache(maxsize=10000)
	DefaultL1TTL          = 60 * time.Second       // guide, Multi-Level Caching: local_cache.set(..., ttl=60) on fill from Redis
	DefaultTTL            = 300 * time.Second      // guide, Stage 2: user entry cached 300 s; Stage 4: application cache 300 s
	DefaultStaleTTL       = 60 * time.Second       // Strata: how long past TTL a value may be served while it refreshes
	DefaultNotFoundTTL    = 10 * time.Second       // Strata: "not found" is cached briefly
	DefaultJitter         = 0.1                    // Strata: ±10 % on every expiry, so entries filled together do not expire together
	DefaultL2Timeout      = 50 * time.Millisecond  // Strata: bound on every Redis call
	DefaultLeaseTTL       = 5 * time.Second        // Strata: a crashed lease holder blocks nobody longer than this
	DefaultLeaseWait      = 250 * time.Millisecond // Strata: how long a non-holder waits for the holder's value
	DefaultLoadTimeout    = 5 * time.Second        // Strata: bound on one loader call; at most LeaseTTL
	DefaultStalenessBound = time.Second            // Strata: see the package doc
	DefaultHotWindow      = 24 * time.Hour         // guide, Cache Warming: hot content over a 24-hour window
	DefaultWarmTopN       = 1000                   // guide, Cache Warming: pre-warm the top 1,000 items
	DefaultWarmRise       = 0.5                    // guide, Cache Warming: traffic more than 50 % above baseline
	GuideHotPerDay        = 100                    // guide, DynamoDB example: a hot product is read more than 100 times a day
	warmInterval          = 10 * time.Second
	publishHotEvery       = 30 * time.Second
	warmWorkers           = 8
	breakerFailures       = 3
	breakerCooldown       = time.Second
	breakerGrace          = 2 * breakerCooldown // after a successful probe, time for other instances to replay their failed invalidations (pending.go)
	leasePoll             = 5 * time.Millisecond
	clockResolution       = time.Millisecond
)

// ErrNotFound is what a loader returns (possibly wrapped) for a key that
// does not exist; the cache remembers it for NotFoundTTL and returns an
// error matching ErrNotFound from then on.
var ErrNotFound = errors.New("cache: not found")

// Config holds a cache's settings. The zero value is an L1-only cache with
// the defaults above; set Redis or RedisConn to add L2, leases and the
// invalidation bus.
type Config[V any] struct {
	// Namespace prefixes every Redis key and names the bus channel; caches
	// of different value types must use different namespaces. Default
	// "strata".
	Namespace string
	// Codec encodes values for L2; nil means JSON.
	Codec Codec[V]

	// TTL is how long a value is fresh; StaleTTL how long after that it is
	// still served (once, with a background refresh) before it is a miss.
	TTL, StaleTTL time.Duration
	// NotFoundTTL is how long a "not found" is remembered.
	NotFoundTTL time.Duration
	// Jitter spreads every expiry by ±Jitter of its length; 0 means the
	// default, negative means none.
	Jitter float64

	// L1Size bounds the in-process level by entries; L1MaxBytes, when set,
	// bounds it by the encoded size of keys and values instead (setting
	// both is an error). L1TTL caps how long an entry stays in L1.
	// DisableL1 turns the level off.
	L1Size     int
	L1MaxBytes int64
	L1TTL      time.Duration
	DisableL1  bool

	// Redis, when set, is L2 (a single node or a cluster), through a client
	// the caller connected. The cache does not close it.
	Redis rueidis.Client
	// RedisConn, when set instead of Redis, is L2 through a connection made
	// in the background ([DialRedis]): the cache starts at once, runs
	// degraded while Redis cannot be reached (see [Cache.Health]) and
	// recovers by itself. The cache does not close it.
	RedisConn *RedisConn
	// L2Timeout bounds every Redis call.
	L2Timeout time.Duration
	// LeaseTTL is how long a lease on a missing key holds; LeaseWait how
	// long another instance waits for the holder's value before it loads
	// (or serves stale) itself.
	LeaseTTL, LeaseWait time.Duration
	// LoadTimeout bounds one loader call, whoever asked for it.
	LoadTimeout time.Duration
	// StalenessBound is the longest an instance may serve a value from L1
	// after another instance invalidated it (see the package doc).
	StalenessBound time.Duration

	// TrackHot turns on hotness tracking, which Hot, WarmHot, tiering
	// (AdmitAfter) and AutoWarm need: a count-min sketch of fixed size
	// counts every L1 miss and one L1 hit in 16. It adds a few
	// nanoseconds to an L1 hit on average. With Redis, the hot set is also
	// published every 30 s for fresh instances (see WarmFromPublished).
	TrackHot bool
	// HotWindow is the window hotness is measured over (default 24 h).
	HotWindow time.Duration
	// AdmitAfter is hot/cold tiering: with TrackHot, a key enters L1 only
	// once it was read at least AdmitAfter times in HotWindow; colder keys
	// are served from L2. 0 admits every key. The guide's threshold is
	// GuideHotPerDay over a 24-hour window; scale it to your traffic.
	AdmitAfter uint32
	// AutoWarm, with TrackHot, is the loader used to warm the hottest
	// WarmTopN keys whenever the read rate rises more than WarmRise above
	// its baseline (the guide's peak-traffic preparation); nil turns it off.
	AutoWarm LoaderFunc[V]
	// WarmTopN is how many hot keys warming loads (default 1,000).
	WarmTopN int
	// WarmRise is the rise over the baseline read rate that triggers
	// AutoWarm (default 0.5, i.e. 50 %).
	WarmRise float64
	// Peaks are known traffic peaks (see [ParsePeak]): with TrackHot and
	// AutoWarm, the cache warms its hottest WarmTopN keys with AutoWarm
	// PeakLead before each occurrence of each, once per occurrence, beside
	// the surge trigger (the guide's Prime Video case: prepare ahead of a
	// known peak rather than react to it). Counted in
	// [Stats.ScheduledWarmups].
	Peaks []Peak
	// PeakLead is how long before a peak the scheduled warm-up runs
	// (default DefaultPeakLead, 30 minutes).
	PeakLead time.Duration

	// Recorder receives latencies; nil means none. Counters are always kept
	// and read with [Cache.Stats].
	Recorder Recorder
	// Logger receives what the cache cannot return, rate-limited: failed
	// background refreshes (the first at once, then at most one a minute
	// with the count of those not logged, whatever the loader's error,
	// since a failing origin fails every refresh alike), and Redis outages
	// (one warning when Redis stops serving the cache, a reminder at most
	// once a minute with the count of failures not logged, one info line
	// when it is back); nil means slog.Default(). Callers need not log the
	// errors of Delete, InvalidateTags, Wrote and Set themselves.
	Logger *slog.Logger
	// TracerProvider, when set, makes spans of reads under a caller's
	// span (see trace.go): cache.Get and cache.Query with the level that
	// answered, cache.lease_wait, cache.load. Nil means off, at no cost on
	// the L1 hit path.
	TracerProvider trace.TracerProvider

	clock       timeSource                     // tests (export_test.go); nil means real time
	beatTimeout time.Duration                  // tests: bound on one heartbeat's publish; 0 means StalenessBound/4
	onPeakWarm  func(peak time.Time, keys int) // tests: called after each scheduled warm-up
}

func (c *Config[V]) resolve() error {
	for _, step := range []func() error{c.resolveDurations, c.resolveL1, c.resolveWarming, c.resolveRest} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// resolveDurations checks the durations and fills in their defaults.
func (c *Config[V]) resolveDurations() error {
	dur := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"TTL", &c.TTL, DefaultTTL}, {"StaleTTL", &c.StaleTTL, DefaultStaleTTL},
		{"NotFoundTTL", &c.NotFoundTTL, DefaultNotFoundTTL}, {"L1TTL", &c.L1TTL, DefaultL1TTL},
		{"L2Timeout", &c.L2Timeout, DefaultL2Timeout}, {"LeaseTTL", &c.LeaseTTL, DefaultLeaseTTL},
		{"LeaseWait", &c.LeaseWait, DefaultLeaseWait}, {"LoadTimeout", &c.LoadTimeout, DefaultLoadTimeout},
		{"StalenessBound", &c.StalenessBound, DefaultStalenessBound},
		{"HotWindow", &c.HotWindow, DefaultHotWindow}, {"PeakLead", &c.PeakLead, DefaultPeakLead},
	}
	for _, d := range dur {
		if *d.v < 0 {
			return fmt.Errorf("cache: %s is negative (%v)", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.LeaseTTL < c.LoadTimeout {
		return fmt.Errorf("cache: LeaseTTL (%v) is shorter than LoadTimeout (%v): a slow load would lose its lease to a second one", c.LeaseTTL, c.LoadTimeout)
	}
	if c.StalenessBound < 8*time.Millisecond {
		return fmt.Errorf("cache: StalenessBound must be at least 8ms, got %v", c.StalenessBound)
	}
	return nil
}

// resolveL1 checks L1's bounds and the jitter.
func (c *Config[V]) resolveL1() error {
	switch {
	case c.L1Size < 0:
		return fmt.Errorf("cache: L1Size is negative (%d)", c.L1Size)
	case c.L1MaxBytes < 0:
		return fmt.Errorf("cache: L1MaxBytes is negative (%d)", c.L1MaxBytes)
	case c.L1Size > 0 && c.L1MaxBytes > 0:
		return errors.New("cache: both L1Size and L1MaxBytes are set; choose one bound")
	case c.L1Size == 0 && c.L1MaxBytes == 0:
		c.L1Size = DefaultL1Size
	}
	switch {
	case math.IsNaN(c.Jitter) || c.Jitter >= 0.5:
		return fmt.Errorf("cache: Jitter must be below 0.5, got %v", c.Jitter)
	case c.Jitter == 0:
		c.Jitter = DefaultJitter
	case c.Jitter < 0:
		c.Jitter = 0
	}
	return nil
}

// resolveWarming checks hotness tracking, tiering and warming.
func (c *Config[V]) resolveWarming() error {
	switch {
	case c.WarmTopN < 0:
		return fmt.Errorf("cache: WarmTopN is negative (%d)", c.WarmTopN)
	case c.WarmTopN == 0:
		c.WarmTopN = DefaultWarmTopN
	}
	switch {
	case math.IsNaN(c.WarmRise) || c.WarmRise < 0:
		return fmt.Errorf("cache: WarmRise must not be negative, got %v", c.WarmRise)
	case c.WarmRise == 0:
		c.WarmRise = DefaultWarmRise
	}
	if !c.TrackHot && (c.AdmitAfter > 0 || c.AutoWarm != nil) {
		return errors.New("cache: AdmitAfter and AutoWarm need TrackHot")
	}
	if len(c.Peaks) > 0 && c.AutoWarm == nil {
		return errors.New("cache: Peaks need AutoWarm (the loader warming uses) and TrackHot")
	}
	for i, p := range c.Peaks {
		if p.IsZero() {
			return fmt.Errorf("cache: Peaks[%d] is the zero Peak; make peaks with ParsePeak", i)
		}
	}
	return nil
}

// resolveRest checks Redis and the namespace and fills in the remaining
// defaults.
func (c *Config[V]) resolveRest() error {
	if c.Redis != nil && c.RedisConn != nil {
		return errors.New("cache: both Redis and RedisConn are set; choose one")
	}
	if c.Namespace == "" {
		c.Namespace = "strata"
	}
	if strings.ContainsAny(c.Namespace, "{} \n") {
		return fmt.Errorf("cache: Namespace %q may not contain braces or spaces", c.Namespace)
	}
	if c.Codec == nil {
		c.Codec = JSON[V]{}
	}
	if c.Recorder == nil {
		c.Recorder = nopRecorder{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.clock == nil {
		c.clock = realTime{}
	}
	return nil
}

// Cache is a typed, multi-level read-through cache. It is safe for
// concurrent use; see the package doc for how the levels work together.
type Cache[V any] struct {
	cfg   Config[V]
	clock clock      // by value: one less pointer on the hit path
	ts    timeSource // the breaker, the bus, the tickers, the health log

	l1      *otter.Cache[string, *envelope[V]] // nil when disabled
	hitL1   *otter.Cache[string, *envelope[V]] // what Get reads first: l1, or nil while tracing (see get)
	l1Stats *otterstats.Counter
	busDown atomic.Bool  // while set, L1 keeps entries at most StalenessBound/2
	tr      spans.Tracer // off unless Config.TracerProvider

	l2     *redisLevel // nil without Redis
	bus    *bus        // nil without Redis
	health redisHealth // with Redis: its state, and its rate-limited log

	stripes stripes
	flights flights[V]
	tags    *tagEpochs
	hot     *hotness // nil unless TrackHot
	ctr     counters
	pend    pending // invalidations that did not reach Redis (pending.go)

	kick       chan struct{} // asks the watch goroutine to replay pending invalidations now
	kicks      atomic.Uint64 // kicks sent, and ...
	kicksDone  atomic.Uint64 // ... handled (tests)
	watchMark  tickMark      // the watch goroutine's ticks (tests)
	refreshLog logLimit      // failed background refreshes
	panicLog   logLimit      // loaders that panicked in a background refresh

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	lifeMu sync.Mutex // orders goroutine starts against Close
}

// ErrClosed is returned by reads that need a load after Close.
var ErrClosed = errors.New("cache: closed")

// spawn runs fn on a goroutine that Close waits for; it reports false
// (and runs nothing) once Close has begun. A panic in fn is recovered and
// handed to onPanic, so a panicking loader fails its callers instead of
// the process.
func (c *Cache[V]) spawn(fn func(), onPanic func(any)) bool {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.closed.Load() {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				onPanic(r)
			}
		}()
		fn()
	}()
	return true
}

// New validates cfg and returns a cache. With Redis set it subscribes to
// the invalidation bus before returning; with RedisConn it subscribes as
// soon as the connection is made.
func New[V any](cfg Config[V]) (*Cache[V], error) {
	if err := cfg.resolve(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache[V]{cfg: cfg, ctx: ctx, cancel: cancel, ts: cfg.clock, tr: spans.New(cfg.TracerProvider, tracerScope)}
	c.flights.m = map[string]*flight[V]{}
	var fake timeSource
	if _, real := cfg.clock.(realTime); !real {
		fake = cfg.clock
	}
	c.clock.init(fake)
	if !cfg.DisableL1 {
		if err := c.newL1(fake); err != nil {
			cancel()
			return nil, err
		}
	}
	if !c.tr.On() {
		c.hitL1 = c.l1
	}
	c.stripes.seed = maphash.MakeSeed()
	c.tags = newTagEpochs()
	switch {
	case cfg.Redis != nil:
		c.startRedis(connectedConn(cfg.Redis))
	case cfg.RedisConn != nil:
		c.startRedis(cfg.RedisConn)
	}
	if cfg.TrackHot {
		c.hot = newHotness()
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.hotLoop(ctx) }()
		if len(cfg.Peaks) > 0 {
			c.wg.Add(1)
			go func() { defer c.wg.Done(); c.peakLoop(ctx) }()
		}
	}
	c.clock.start(ctx, &c.wg)
	return c, nil
}

// newL1 makes the in-process level; fake, when set, is its clock.
func (c *Cache[V]) newL1(fake timeSource) error {
	c.l1Stats = otterstats.NewCounter()
	now := c.clock.nowNano
	opts := &otter.Options[string, *envelope[V]]{
		MaximumSize:   c.cfg.L1Size,
		StatsRecorder: c.l1Stats,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *envelope[V]]) time.Duration {
			return time.Duration(e.Value.l1Until - now())
		}),
	}
	if fake != nil {
		opts.Clock = otterClock{fake}
	}
	if c.cfg.L1MaxBytes > 0 {
		opts.MaximumWeight = uint64(c.cfg.L1MaxBytes)
		opts.Weigher = func(key string, e *envelope[V]) uint32 {
			return uint32(min(int64(len(key))+e.size+envelopeOverhead, math.MaxUint32))
		}
	}
	var err error
	if c.l1, err = otter.New(opts); err != nil {
		return fmt.Errorf("cache: L1: %w", err)
	}
	return nil
}

// startRedis adds L2 and the bus over conn, and starts their goroutines.
// The breaker, the bus and the health log run on the cache's timeSource,
// at full resolution (the coarse expiry clock can lag under CPU
// starvation); L2 deadlines run on real time.
func (c *Cache[V]) startRedis(conn *RedisConn) {
	now := func() int64 { return c.ts.Now().UnixNano() }
	c.l2 = &redisLevel{conn: conn, ns: c.cfg.Namespace, timeout: c.cfg.L2Timeout,
		br:      newBreaker(breakerFailures, breakerCooldown, breakerGrace, now, c.health.update),
		slots:   deadline.New(c.ctx, c.cfg.L2Timeout),
		noteErr: c.health.noteErr}
	c.bus = newBus(c.l2, c.cfg.Namespace, randomToken(), c.cfg.StalenessBound, c.ts, c)
	if c.cfg.beatTimeout > 0 {
		c.bus.beatTimeout = c.cfg.beatTimeout
	}
	c.kick = make(chan struct{}, 1)
	c.busDown.Store(true) // until the bus proves it delivers
	c.health.init(c.ts.Now, c.cfg.Logger, c.cfg.Namespace, c.redisState)
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.bus.run(c.ctx) }()
	go func() { defer c.wg.Done(); c.bus.heartbeat(c.ctx) }()
	go func() { defer c.wg.Done(); c.watchRedis(c.ctx) }()
}

// Close stops the background work (bus, refreshes, clock). It does not
// close the Redis client.
func (c *Cache[V]) Close() error {
	c.lifeMu.Lock()
	first := c.closed.CompareAndSwap(false, true)
	c.lifeMu.Unlock()
	if first {
		c.cancel()
		c.wg.Wait()
		if c.l1 != nil {
			c.l1.StopAllGoroutines()
		}
	}
	return nil
}

// Source says which level answered a read.
type Source uint8

// The levels a value can come from.
const (
	SourceNone   Source = iota
	SourceL1            // the in-process level
	SourceL2            // Redis
	SourceLoader        // the loader (the origin)
)

// String returns the level's name: "l1", "l2", "loader" or "none".
func (s Source) String() string {
	switch s {
	case SourceL1:
		return "l1"
	case SourceL2:
		return "l2"
	case SourceLoader:
		return "loader"
	}
	return "none"
}

// Info describes how a read was served: the guide's cache_metadata.
type Info struct {
	Source Source
	// Stale is set when the value was past its TTL and a refresh was
	// started in the background.
	Stale bool
	// Shared is set when the value came from a load another caller started
	// (in this process, or in another instance holding the lease).
	Shared bool
	// Time spent in L2 calls, waiting for another's lease, and loading.
	L2, LeaseWait, Load time.Duration
}

// String renders Info for a debug header: "l1", "l2 l2=0.42ms",
// "loader l2=0.31ms load=4.1ms", "l1 stale".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Source.String())
	if i.Stale {
		b.WriteString(" stale")
	}
	if i.Shared {
		b.WriteString(" shared")
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"l2", i.L2}, {"lease_wait", i.LeaseWait}, {"load", i.Load}} {
		if d.d > 0 {
			fmt.Fprintf(&b, " %s=%.2fms", d.name, float64(d.d)/1e6)
		}
	}
	return b.String()
}

// LoaderFunc loads the value of a key from the origin. It returns
// ErrNotFound (possibly wrapped) for a key that does not exist.
type LoaderFunc[V any] func(ctx context.Context, key string) (V, error)

// Option adjusts one read.
type Option func(*readOpts)

type readOpts struct {
	tags []string
}

// Tags stamps the loaded value with the current epochs of these tags: the
// value stays valid until one of them is invalidated with
// [Cache.InvalidateTags]. This is how the query-result level knows which
// cached queries a write made stale.
func Tags(tags ...string) Option { return func(o *readOpts) { o.tags = append(o.tags, tags...) } }

// Get returns the value of key, reading L1, then L2, then calling load
// once, however many callers (and, with Redis, instances) ask at once.
// Loader errors are returned and never cached.
func (c *Cache[V]) Get(ctx context.Context, key string, load LoaderFunc[V], opts ...Option) (V, Info, error) {
	return c.get(ctx, key, load, opts, c.hitL1, false) // one call: Get inlines into its caller
}

// get is Get, reading l1 first: Get's hitL1, which is nil while tracing is
// on, so that a traced read starts its span (getTraced) before it reads
// again, inSpan, from c.l1. Tracing off, the L1 hit path is what it was
// before tracing: the same nil check of the L1 (made on the argument), no
// check of the tracer; that comes only on a miss.
func (c *Cache[V]) get(ctx context.Context, key string, load LoaderFunc[V], opts []Option, l1 *otter.Cache[string, *envelope[V]], inSpan bool) (V, Info, error) {
	// The L1 hit path: no allocation, no clock call, one atomic load.
	if l1 != nil {
		if e, ok := l1.GetIfPresent(key); ok && (len(e.tags) == 0 || c.tags.valid(e.tags)) {
			if c.hot != nil && mrand.Uint32()%hotSample == 0 {
				c.hot.add(key, hotSample)
			}
			if now := c.clock.nowNano(); now < e.soft && !e.notFound {
				return e.value, Info{Source: SourceL1}, nil
			} else if now < e.hard {
				return c.l1Stale(e, now, key, load, opts)
			}
		}
	}
	if !inSpan && c.tr.On() {
		return c.getTraced(ctx, spanGet, key, load, opts)
	}
	return c.miss(ctx, key, load, opts)
}

// l1Stale answers a not-found entry, or a stale one while it refreshes.
func (c *Cache[V]) l1Stale(e *envelope[V], now int64, key string, load LoaderFunc[V], opts []Option) (V, Info, error) {
	info := Info{Source: SourceL1}
	if now >= e.soft {
		c.refreshInBackground(key, load, readOptions(opts))
		info.Stale = true
	}
	return c.result(e, info)
}

func readOptions(opts []Option) readOpts {
	if len(opts) == 0 {
		return readOpts{} // no options: no escaping pointer, no allocation
	}
	var ro readOpts
	for _, o := range opts {
		o(&ro)
	}
	return ro
}

// miss handles an L1 miss: an L2 read in the caller's goroutine (cheap,
// and concurrent callers may all do it), then, on an L2 miss, one shared
// fetch per key.
func (c *Cache[V]) miss(ctx context.Context, key string, load LoaderFunc[V], opts []Option) (V, Info, error) {
	ro := readOptions(opts)
	if c.hot != nil {
		c.hot.add(key, 1)
	}
	if c.l2 != nil && len(ro.tags) == 0 && !c.pend.hasKey(key) {
		var gen uint64
		if c.l1 != nil {
			gen = c.stripes.gen(key)
		}
		t0 := time.Now()
		data, found, err := c.l2.get(ctx, key)
		d := time.Since(t0)
		c.cfg.Recorder.ObserveL2(d)
		if err == nil && found {
			var e envelope[V] // on the stack unless it goes into L1
			if c.decodeValidInto(data, nil, nil, &e) && c.clock.nowNano() < e.soft {
				c.ctr.l2Hits.Add(1)
				if c.l1 != nil {
					kept := e
					c.fillL1(key, &kept, gen)
				}
				return c.result(&e, Info{Source: SourceL2, L2: d})
			}
		}
	}
	return c.loadShared(ctx, key, load, ro)
}

func (c *Cache[V]) result(e *envelope[V], info Info) (V, Info, error) {
	if info.Stale {
		c.ctr.stale.Add(1)
	}
	if e.notFound {
		var zero V
		return zero, info, ErrNotFound
	}
	return e.value, info, nil
}

// flights are the loads in progress in this process, one per key.
type flights[V any] struct {
	mu sync.Mutex
	m  map[string]*flight[V]
}

// finish removes f, the flight of key (unless its last waiter left and
// another flight took its place), and wakes its waiters.
func (fs *flights[V]) finish(key string, f *flight[V]) {
	fs.mu.Lock()
	if fs.m[key] == f {
		delete(fs.m, key)
	}
	fs.mu.Unlock()
	close(f.done)
}

// leave records that a waiter of f gave up. When the last one leaves a
// flight callers started, its fetch is canceled (its query and its wait
// for another instance's lease stop) and taken out of the map, so the
// next caller starts afresh instead of joining a canceled fetch. A
// background refresh (no cancel) has no waiters of its own and runs on.
func (fs *flights[V]) leave(key string, f *flight[V]) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f.waiters--
	if f.waiters > 0 || f.cancel == nil {
		return
	}
	if fs.m[key] == f {
		delete(fs.m, key)
	}
	f.cancel()
}

type flight[V any] struct {
	done chan struct{}
	e    *envelope[V]
	info Info
	err  error
	// cancel stops the fetch of a flight callers started; nil for a
	// background refresh. waiters counts the callers still waiting.
	// Both under flights.mu.
	cancel  context.CancelFunc
	waiters int
}

// loadShared makes concurrent callers for one key share one fetch. The
// fetch runs detached from any one caller's context, bounded by
// LoadTimeout, so a caller that gives up does not fail the others; once
// every caller has given up, it is canceled (a caller's budget reaches
// the loader's query through the last one to leave).
//
// A caller that missed L1 just before a flight for its key finished finds
// no flight, but the value is in L1 by then (a flight fills L1 before it
// ends): so L1 is read again under the flights' lock before a new flight
// starts, and a stampede makes one load, not two.
func (c *Cache[V]) loadShared(ctx context.Context, key string, load LoaderFunc[V], ro readOpts) (V, Info, error) {
	c.flights.mu.Lock()
	f, shared := c.flights.m[key]
	if !shared {
		if e := c.l1Fresh(key); e != nil {
			c.flights.mu.Unlock()
			return c.result(e, Info{Source: SourceL1})
		}
		fctx, cancel := context.WithCancel(c.ctx)
		fctx = c.tr.Carry(fctx, ctx) // traced, the fetch's spans are the first caller's span's children
		f = &flight[V]{done: make(chan struct{}), cancel: cancel, waiters: 1}
		c.flights.m[key] = f
		c.flights.mu.Unlock()
		finish := func() { cancel(); c.flights.finish(key, f) }
		started := c.spawn(func() {
			f.e, f.info, f.err = c.fetch(fctx, key, load, ro, false)
			finish()
		}, func(p any) {
			f.e, f.err = nil, fmt.Errorf("cache: loader for %q panicked: %v", key, p)
			finish()
		})
		if !started {
			f.err = ErrClosed
			finish()
		}
	} else {
		f.waiters++
		c.flights.mu.Unlock()
		c.ctr.deduped.Add(1)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		c.flights.leave(key, f)
		var zero V
		return zero, Info{}, ctx.Err()
	}
	if f.err != nil {
		var zero V
		return zero, f.info, f.err
	}
	info := f.info
	info.Shared = info.Shared || shared
	return c.result(f.e, info)
}

// l1Fresh returns key's entry in L1 if it is fresh and its tags current.
// It reads quietly: the read it serves was already counted as a miss.
func (c *Cache[V]) l1Fresh(key string) *envelope[V] {
	if c.l1 == nil {
		return nil
	}
	ent, ok := c.l1.GetEntryQuietly(key)
	e := ent.Value
	if !ok || (len(e.tags) > 0 && !c.tags.valid(e.tags)) || c.clock.nowNano() >= e.soft {
		return nil
	}
	return e
}

// refreshInBackground refreshes a stale key once, whoever asks. As in
// loadShared, a caller that saw the stale entry just before a refresh
// ended finds no flight but a fresh entry, and starts nothing.
func (c *Cache[V]) refreshInBackground(key string, load LoaderFunc[V], ro readOpts) {
	c.flights.mu.Lock()
	if _, busy := c.flights.m[key]; busy || c.closed.Load() || c.l1Fresh(key) != nil {
		c.flights.mu.Unlock()
		return
	}
	f := &flight[V]{done: make(chan struct{})}
	c.flights.m[key] = f
	c.flights.mu.Unlock()
	c.ctr.refreshes.Add(1)
	finish := func() { c.flights.finish(key, f) }
	started := c.spawn(func() {
		f.e, f.info, f.err = c.fetch(c.ctx, key, load, ro, true)
		if f.err != nil && !errors.Is(f.err, ErrNotFound) {
			if ok, held := c.refreshLog.allow(c.ts.Now()); ok {
				c.cfg.Logger.Warn("cache: background refresh failed; the stale value stays until it expires",
					"namespace", c.cfg.Namespace, "key", key, "err", f.err, "failures_not_logged", held)
			}
		}
		finish()
	}, func(p any) {
		f.e, f.err = nil, fmt.Errorf("cache: loader for %q panicked: %v", key, p)
		if ok, held := c.panicLog.allow(c.ts.Now()); ok {
			c.cfg.Logger.Error("cache: loader panicked in a background refresh",
				"namespace", c.cfg.Namespace, "key", key, "panic", p, "panics_not_logged", held)
		}
		finish()
	})
	if !started {
		finish()
	}
}

// fetch reads L2 and, on a miss, loads under a lease. skipStaleL2 makes a
// refresh ignore an L2 value that is itself past its TTL.
func (c *Cache[V]) fetch(parent context.Context, key string, load LoaderFunc[V], ro readOpts, skipStaleL2 bool) (*envelope[V], Info, error) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.LoadTimeout)
	defer cancel()
	var info Info
	gen := c.stripes.gen(key) // before any read: a later invalidation voids our fill

	if c.l2 == nil || c.pend.hasKey(key) { // a pending key: L2 may hold the old value
		return c.loadAndFill(ctx, key, load, ro, gen, "", info)
	}
	epochs, err := c.currentEpochs(ctx, ro.tags)
	if err != nil {
		// Without trustworthy epochs a tagged value cannot be validated:
		// load it and cache it nowhere.
		return c.loadUncached(ctx, key, load, info)
	}
	token := randomToken()
	t0 := time.Now()
	state, data, err := c.l2.getOrLease(ctx, key, token, c.cfg.LeaseTTL)
	info.L2 += time.Since(t0)
	c.cfg.Recorder.ObserveL2(time.Since(t0))
	if err != nil { // Redis down: fail open to the loader, fill L1 only
		c.ctr.l2Errors.Add(1)
		return c.loadAndFill(ctx, key, load, ro, gen, "", info)
	}
	switch state {
	case l2Hit:
		if e := c.decodeValid(data, epochs, ro.tags); e != nil && (!skipStaleL2 || c.clock.nowNano() < e.soft) {
			c.ctr.l2Hits.Add(1)
			c.fillL1(key, e, gen)
			info.Source = SourceL2
			return e, info, nil
		}
		// Unusable (stale tags, corrupt, or stale for a refresh): replace
		// it, under a lease like any miss, so that one load refills L2 for
		// everyone and an invalidation meanwhile still voids the write.
		c.ctr.l2Misses.Add(1)
		if got, err := c.l2.leaseMany(ctx, []string{key}, token, c.cfg.LeaseTTL); err == nil && got[0] {
			c.ctr.leases.Add(1)
			return c.loadAndFill(ctx, key, load, ro, gen, token, info)
		}
		return c.loadAndFill(ctx, key, load, ro, gen, "", info)
	case l2Leased:
		c.ctr.l2Misses.Add(1)
		c.ctr.leases.Add(1)
		return c.loadAndFill(ctx, key, load, ro, gen, token, info)
	default: // another instance holds the lease: wait for its value
		c.ctr.l2Misses.Add(1)
		c.ctr.leaseWaits.Add(1)
		if e, err := c.waitLease(ctx, key, epochs, ro, gen, &info); e != nil || err != nil {
			return e, info, err
		}
		c.ctr.leaseTimeouts.Add(1)
		// Serve what L1 still holds, even past its hard expiry? No: past
		// hard nothing is served. Load ourselves, without writing L2.
		return c.loadAndFill(ctx, key, load, ro, gen, "", info)
	}
}

// waitLease waits up to LeaseWait for the value of the instance that
// holds key's lease, polling L2; it returns nil, nil when the wait ends
// without it (the holder is slow or gone, or L2 failed).
func (c *Cache[V]) waitLease(ctx context.Context, key string, epochs []uint64, ro readOpts, gen uint64, info *Info) (e *envelope[V], err error) {
	outcome := leaseTimedOut
	if c.tr.On() {
		var span trace.Span
		ctx, span = c.tr.Start(ctx, spanLeaseWait, attrNamespace.String(c.cfg.Namespace))
		defer func() { endLeaseWait(span, outcome, info.LeaseWait, err) }()
	}
	wait0 := time.Now()
	deadline := wait0.Add(c.cfg.LeaseWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			outcome = leaseCanceled
			return nil, ctx.Err()
		case <-time.After(leasePoll):
		}
		data, found, err := c.l2.get(ctx, key)
		if err != nil {
			outcome = leaseL2Failed
			break
		}
		if e := c.decodeValid(data, epochs, ro.tags); found && e != nil {
			info.LeaseWait = time.Since(wait0)
			c.cfg.Recorder.ObserveLeaseWait(info.LeaseWait)
			c.fillL1(key, e, gen)
			info.Source, info.Shared = SourceL2, true
			outcome = leaseFilled
			return e, nil
		}
	}
	info.LeaseWait = time.Since(wait0)
	c.cfg.Recorder.ObserveLeaseWait(info.LeaseWait)
	return nil, nil
}

// decodeValid decodes an L2 entry and checks its expiry and tag epochs.
func (c *Cache[V]) decodeValid(data []byte, epochs []uint64, tags []string) *envelope[V] {
	e := new(envelope[V])
	if !c.decodeValidInto(data, epochs, tags, e) {
		return nil
	}
	return e
}

// decodeValidInto is decodeValid into the caller's envelope.
func (c *Cache[V]) decodeValidInto(data []byte, epochs []uint64, tags []string, e *envelope[V]) bool {
	if data == nil {
		return false
	}
	if err := decodeEnvelopeInto(data, c.cfg.Codec, e); err != nil {
		c.ctr.corrupt.Add(1)
		return false
	}
	now := c.clock.nowNano()
	if now >= e.hard || !stampsMatch(e.tags, tags, epochs) {
		return false
	}
	if c.l1 != nil {
		e.l1Until = min(e.hard, now+int64(c.jitter(c.cfg.L1TTL)))
	}
	return true
}

// loadAndFill calls the loader and stores the result: in L2 when token
// holds the lease (and only if it still does), and in L1 if no
// invalidation of the key happened since gen was read.
func (c *Cache[V]) loadAndFill(ctx context.Context, key string, load LoaderFunc[V], ro readOpts, gen uint64, token string, info Info) (*envelope[V], Info, error) {
	release := func() {
		if token != "" {
			// Also after a cancel (every caller gone): released now, the
			// lease does not keep other instances waiting for its TTL
			// (the call is bounded by L2Timeout).
			_ = c.l2.release(context.WithoutCancel(ctx), key, token)
		}
	}
	epochs, err := c.currentEpochs(ctx, ro.tags)
	if err != nil {
		release()
		return c.loadUncached(ctx, key, load, info)
	}
	e, info, err := c.callLoader(ctx, key, load, info, ro.tags, epochs)
	if err != nil {
		release()
		return nil, info, err
	}
	if token != "" {
		data, err := encodeEnvelope(e, c.cfg.Codec)
		if err != nil {
			release()
			return nil, info, err
		}
		t1 := time.Now()
		stored, err := c.l2.setIfLeased(ctx, key, token, data, time.Duration(e.hard-c.clock.nowNano()))
		info.L2 += time.Since(t1)
		if err != nil {
			// Give the lease up, if Redis lets us, rather than make other
			// instances wait on it until it expires (LeaseTTL).
			release()
		}
		if err == nil && !stored {
			// An invalidation took our lease: the value may predate the
			// write. Hand it to this caller, cache it nowhere.
			c.ctr.voidedSets.Add(1)
			return e, info, nil
		}
	}
	c.fillL1(key, e, gen)
	return e, info, nil
}

// loadUncached calls the loader and caches nothing.
func (c *Cache[V]) loadUncached(ctx context.Context, key string, load LoaderFunc[V], info Info) (*envelope[V], Info, error) {
	return c.callLoader(ctx, key, load, info, nil, nil)
}

// callLoader calls load once, times and counts it, and wraps a value or a
// not-found in an envelope stamped with tags at epochs. Other errors are
// returned as they are.
func (c *Cache[V]) callLoader(ctx context.Context, key string, load LoaderFunc[V], info Info, tags []string, epochs []uint64) (*envelope[V], Info, error) {
	t0 := time.Now()
	v, err := c.callTraced(ctx, key, load)
	info.Load, info.Source = time.Since(t0), SourceLoader
	c.cfg.Recorder.ObserveLoad(info.Load)
	c.ctr.loads.Add(1)
	notFound := errors.Is(err, ErrNotFound)
	if err != nil && !notFound {
		c.ctr.loadErrors.Add(1)
		return nil, info, err
	}
	return c.newEnvelope(v, notFound, tags, epochs), info, nil
}

func (c *Cache[V]) newEnvelope(v V, notFound bool, tags []string, epochs []uint64) *envelope[V] {
	now := c.clock.nowNano()
	e := &envelope[V]{value: v, notFound: notFound, created: now}
	if notFound {
		var zero V
		e.value = zero
		e.soft = now + int64(c.jitter(c.cfg.NotFoundTTL))
		e.hard = e.soft
	} else {
		e.soft = now + int64(c.jitter(c.cfg.TTL))
		e.hard = e.soft + int64(c.jitter(c.cfg.StaleTTL))
	}
	for i, t := range tags {
		e.tags = append(e.tags, tagStamp{tag: t, epoch: epochs[i]})
	}
	e.l1Until = min(e.hard, now+int64(c.jitter(c.cfg.L1TTL)))
	return e
}

// jitter returns d moved by a random fraction of at most ±Jitter.
func (c *Cache[V]) jitter(d time.Duration) time.Duration {
	if c.cfg.Jitter == 0 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + c.cfg.Jitter*(2*mrand.Float64()-1)))
}

// fillL1 stores e in L1 unless the key was invalidated since gen was read.
// The stripe lock makes the check and the store one step with respect to
// invalidate, which bumps the generation and deletes under the same lock.
func (c *Cache[V]) fillL1(key string, e *envelope[V], gen uint64) {
	if c.l1 == nil {
		return
	}
	if c.cfg.AdmitAfter > 0 && c.hot.estimate(key) < c.cfg.AdmitAfter {
		c.ctr.coldSkipped.Add(1) // cold: served from L2, kept out of L1
		return
	}
	if c.cfg.L1MaxBytes > 0 && e.size == 0 && !e.notFound {
		if data, err := c.cfg.Codec.Encode(e.value); err == nil {
			sized := *e
			sized.size = int64(len(data))
			e = &sized
		}
	}
	if c.busDown.Load() {
		// Invalidations may not reach this instance: keep the value in L1
		// only briefly, so that it cannot outlive the staleness bound.
		if limit := c.clock.nowNano() + int64(c.cfg.StalenessBound/2); e.l1Until > limit {
			short := *e
			short.l1Until = limit
			e = &short
		}
	}
	s := c.stripes.of(key)
	s.mu.Lock()
	if s.gen == gen {
		c.l1.Set(key, e)
	} else {
		c.ctr.voidedFills.Add(1)
	}
	s.mu.Unlock()
}

// Set stores v under key at every level, as if it had just been loaded. It
// voids any load of the key in flight (its lease is dropped) and tells the
// other instances to drop their L1 copies, which they then refill from L2.
func (c *Cache[V]) Set(ctx context.Context, key string, v V) error {
	c.dropLocal([]string{key}) // voids local loads in flight
	gen := c.stripes.gen(key)
	e := c.newEnvelope(v, false, nil, nil)
	if c.l2 != nil {
		data, err := encodeEnvelope(e, c.cfg.Codec)
		if err != nil {
			return err
		}
		if err := c.l2.set(ctx, key, data, time.Duration(e.hard-c.clock.nowNano())); err != nil {
			c.notReached([]string{key}, nil)
			c.dropLocal([]string{key}) // a read since the first drop may have refilled L1 from L2
			c.health.failed(err)
			return fmt.Errorf("cache: set in L2: %w", err)
		}
		if err := c.bus.publish(ctx, busMsg{Keys: []string{key}}); err != nil {
			c.notReached([]string{key}, nil)
			c.health.failed(err)
			return fmt.Errorf("cache: broadcast: %w", err)
		}
	}
	c.fillL1(key, e, gen)
	return nil
}

// Level names, as reported in an [Invalidation].
const (
	LevelL1  = "l1"
	LevelL2  = "l2"
	LevelBus = "bus"
)

// Invalidation reports what an invalidation reached: the guide's
// invalidation_results.
type Invalidation struct {
	Keys   []string
	Tags   []string
	Levels []string // LevelL1, LevelL2, LevelBus: the levels that were invalidated
}

// Delete removes keys from every level here, voids loads in flight for
// them (here and, through their leases, in other instances) and broadcasts
// the invalidation to the other instances. An error means Redis or the bus
// was not reached: the keys are then kept pending, this instance reads
// them from the origin only, and the invalidation is replayed when Redis
// answers (see the package doc for what other instances may serve
// meanwhile).
func (c *Cache[V]) Delete(ctx context.Context, keys ...string) (Invalidation, error) {
	inv := Invalidation{Keys: keys}
	c.dropLocal(keys)
	inv.Levels = append(inv.Levels, LevelL1)
	if c.l2 == nil {
		return inv, nil
	}
	var errs []error
	if err := c.l2.del(ctx, keys); err != nil {
		errs = append(errs, fmt.Errorf("cache: delete from L2: %w", err))
		c.notReached(keys, nil) // before the second drop: no read refills L1 from L2 after it
	} else {
		inv.Levels = append(inv.Levels, LevelL2)
	}
	// Again: a read of this instance may have refilled L1 from L2 between
	// the first drop and the L2 delete, and this instance ignores its own
	// broadcast.
	c.dropLocal(keys)
	if err := c.bus.publish(ctx, busMsg{Keys: keys}); err != nil {
		errs = append(errs, fmt.Errorf("cache: broadcast: %w", err))
		if len(errs) == 1 {
			c.notReached(keys, nil)
		}
	} else {
		inv.Levels = append(inv.Levels, LevelBus)
		c.ctr.invSent.Add(1)
	}
	err := errors.Join(errs...)
	if err != nil {
		c.health.failed(err)
	}
	return inv, err
}

// InvalidateTags makes every value stamped with one of tags stale, at every
// level and in every instance, in O(1) per tag: it bumps the tag's epoch
// rather than finding the keys. An error means Redis or the bus was not
// reached: the tags are then kept pending, as Delete keeps keys.
func (c *Cache[V]) InvalidateTags(ctx context.Context, tags ...string) (Invalidation, error) {
	inv := Invalidation{Tags: tags}
	if c.l2 == nil {
		c.tags.bumpLocal(tags)
		inv.Levels = append(inv.Levels, LevelL1)
		return inv, nil
	}
	epochs, err := c.l2.bumpTags(ctx, tags)
	if err != nil {
		// The epochs in Redis could not move: make sure at least this
		// instance stops serving the tagged values, and replays the bump.
		c.notReached(nil, tags)
		c.tags.bumpLocal(tags)
		c.flushLocal("tag bump failed")
		inv.Levels = append(inv.Levels, LevelL1)
		c.health.failed(err)
		return inv, fmt.Errorf("cache: bump tags in L2: %w", err)
	}
	c.tags.set(tags, epochs)
	inv.Levels = append(inv.Levels, LevelL1, LevelL2)
	if err := c.bus.publish(ctx, busMsg{Tags: tags, Epochs: epochs}); err != nil {
		c.notReached(nil, tags)
		c.health.failed(err)
		return inv, fmt.Errorf("cache: broadcast: %w", err)
	}
	inv.Levels = append(inv.Levels, LevelBus)
	c.ctr.invSent.Add(1)
	return inv, nil
}

// currentEpochs returns the epochs of tags, from Redis for tags this
// instance has not seen (or cannot trust while the bus is down).
func (c *Cache[V]) currentEpochs(ctx context.Context, tags []string) ([]uint64, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	if c.l2 == nil {
		return c.tags.local(tags), nil
	}
	if c.pend.hasTag(tags) {
		return nil, errPending
	}
	if epochs, ok := c.tags.known(tags, c.busDown.Load()); ok {
		return epochs, nil
	}
	gen := c.tags.gen.Load()
	epochs, err := c.l2.tagEpochs(ctx, tags)
	if err != nil {
		return nil, err
	}
	c.tags.setIfCurrent(gen, tags, epochs)
	return epochs, nil
}

// dropLocal deletes keys from L1 and voids in-flight fills of them.
func (c *Cache[V]) dropLocal(keys []string) {
	for _, k := range keys {
		s := c.stripes.of(k)
		s.mu.Lock()
		s.gen++
		if c.l1 != nil {
			c.l1.Invalidate(k)
		}
		s.mu.Unlock()
	}
}

// flushLocal empties L1 and voids every in-flight fill.
func (c *Cache[V]) flushLocal(reason string) {
	for i := range c.stripes.s {
		c.stripes.s[i].mu.Lock()
	}
	for i := range c.stripes.s {
		c.stripes.s[i].gen++
	}
	if c.l1 != nil {
		c.l1.InvalidateAll()
	}
	for i := range c.stripes.s {
		c.stripes.s[i].mu.Unlock()
	}
	c.tags.forget()
	c.ctr.flushes.Add(1)
	c.cfg.Logger.Debug("cache: L1 flushed", "namespace", c.cfg.Namespace, "reason", reason)
}

func (c *Cache[V]) setEpochs(tags []string, epochs []uint64) { c.tags.set(tags, epochs) }

// setBusHealthy switches L1's lifetimes with the bus: while it is down, L1
// keeps values at most StalenessBound/2.
//
// A bus that goes down is also evidence that Redis may be unreachable,
// and that other instances' invalidations may be failing: the breaker is
// tripped, so L2 reads resume only after a probe and the breaker's grace
// (see pending.go). A bus that comes back up replays this instance's
// pending invalidations at once.
func (c *Cache[V]) setBusHealthy(ok bool) {
	c.busDown.Store(!ok)
	if ok {
		c.kickReplay()
	} else {
		c.l2.br.trip()
	}
	c.health.update()
}

func (c *Cache[V]) observeBusLag(d time.Duration) {
	c.ctr.invReceived.Add(1)
	c.cfg.Recorder.ObserveBusLag(d)
}

// stripes serialise L1 fills against invalidations of the same key. Each
// stripe has a generation, bumped by every invalidation of a key hashing to
// it; a fill that read the generation before loading stores its value only
// if the generation has not moved. Collisions cost a spurious skipped fill,
// never a stale one.
type stripes struct {
	seed maphash.Seed
	s    [256]stripe
}

type stripe struct {
	mu  sync.Mutex
	gen uint64
	_   [48]byte // keep stripes on separate cache lines
}

func (s *stripes) of(key string) *stripe {
	return &s.s[maphash.String(s.seed, key)%uint64(len(s.s))]
}

func (s *stripes) gen(key string) uint64 {
	st := s.of(key)
	st.mu.Lock()
	g := st.gen
	st.mu.Unlock()
	return g
}

func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
