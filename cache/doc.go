// Package cache is Strata's multi-level read-through cache: the guide's
// "Comprehensive Caching Strategies" as a library.
//
// A [Cache] reads L1 (in-process), then L2 (Redis, shared by every
// instance), then calls the loader once, and fills the levels on the way
// back (the guide's _populate_cache_hierarchy). [Cache.Get] reports which
// level answered and how long each took ([Info], the guide's
// cache_metadata).
//
// # The query-result level
//
// [Cache.Query] is the guide's query cache (L3) on the same machinery: the
// key is a hash of the normalised SQL ([NormalizeSQL]) and its arguments,
// and the value is tagged with what the query reads, as the caller
// declares it: tables read by scan, rows read by key. [Cache.Wrote] after
// a committed write bumps exactly the tags that write touched, so a write
// to user 42 makes stale the queries that read user 42 by key and the
// queries that scanned the users table, and no other. Use
// DefaultQueryTTL (guide: 60 s) as such a cache's TTL.
//
// # Expiry
//
// Every entry has two expiries, both jittered: after TTL a read serves the
// old value and starts one background refresh (stale-while-revalidate);
// after TTL+StaleTTL nothing is served. L1 keeps an entry at most L1TTL
// (guide: 60 s). A loader's ErrNotFound is cached for NotFoundTTL; a loader
// error is returned and never cached.
//
// # Stampedes and stale sets
//
// Concurrent misses of one key in one process share one load. Across
// instances, a miss in L2 takes a lease on the key in Redis (the lease of
// "Scaling Memcache at Facebook"): one instance loads while the others wait
// up to LeaseWait for its value. The holder's write to L2 succeeds only if
// its lease token is still there, and an invalidation deletes the lease, so
// a load that raced with a write can never store the old value. In L1 the
// same guarantee comes from a generation per lock stripe, read before the
// load and checked, under the stripe's lock, before the fill.
//
// # Invalidation and the staleness bound
//
// [Cache.Delete] drops keys from L1, deletes them (and their leases) from
// L2, and broadcasts them on the invalidation bus (Redis pub/sub, one
// channel per Namespace; see bus.go for why pub/sub). [Cache.InvalidateTags]
// does the same for every value stamped with a tag, in O(1) per tag, by
// bumping the tag's epoch in Redis rather than finding keys.
//
// The bound: once Delete or InvalidateTags has returned without error, no
// instance serves the old value from any level more than StalenessBound
// (default 1 s) later. L2 is cleaned before the call returns; the broadcast
// normally arrives within milliseconds; an instance that misses a message
// (a sequence gap) or stops hearing its own heartbeat for StalenessBound/2
// empties its L1, and until the bus delivers again keeps each value in L1
// at most StalenessBound/2, so that L1 still shields the origin during a
// Redis outage.
//
// The bound also needs loaders that read data at least as new as the last
// invalidation: a miss that cannot be read at such a position (a replica
// read while the primary's WAL position is unknown, say) must be answered
// outside the cache and not cached, which a loader does by returning an
// error and its caller by reading the origin itself.
//
// # Invalidations that fail
//
// An invalidation that cannot reach Redis (the breaker open, Redis down,
// a timeout) returns an error, and its keys and tags stay pending in this
// instance (at most 10,000; past that, it forgets them and will flush its
// whole namespace in L2 instead). Meanwhile this instance reads neither
// those keys nor values with those tags from L2, and it replays the DELs
// and epoch bumps, then broadcasts them, once a breaker cooldown (1 s) and
// whenever its bus comes back; its own breaker is probed again only once
// nothing is pending. Other instances cannot know of a pending
// invalidation, so an instance whose breaker opened or whose bus went
// down (which trips the breaker) admits L2 reads again only two cooldowns
// after Redis answered its probe: time for the failing instance, which
// tries every cooldown, to replay first. [Stats] reports what is pending.
//
// What is left, honestly: (1) an outage so short that another instance
// neither failed an L2 call nor lost its bus (under half the staleness
// bound) lets that instance read the old value from L2 from the moment
// Redis answers until the replay lands, about a cooldown later at most,
// and serve it from L1 until the replay's broadcast reaches it; (2) a replay that takes longer than the grace (its own
// writes failing while other instances' probes succeed) leaves the same
// window open until it lands; (3) an instance cut off from Redis while
// the others are not cannot warn them: they serve the old value until it
// reconnects and replays, or until its TTL; (4) an instance that stops
// with invalidations pending loses them: their old values live until
// their TTLs.
//
// # Warming and tiering
//
// With TrackHot, a fixed-size count-min sketch (aged every half HotWindow,
// default 24 h) estimates how often each key is read, and a bounded set of
// candidates yields the hot set: [Cache.Hot], [Cache.WarmHot] (the guide's
// "pre-warm the top 1,000"). With AutoWarm the cache warms its hot set by
// itself when the read rate rises more than 50 % above its baseline (the
// guide's peak-traffic preparation), and, given known Peaks (see
// [ParsePeak]), PeakLead (30 minutes) before each of them (the guide's
// Prime Video case). With Redis, every instance publishes
// its hot set; [Cache.WarmFromPublished] lets a fresh instance load it, and
// [CopyKeys] copies hot entries to another Redis (the guide's new-region
// warming). AdmitAfter is hot/cold tiering: only keys read at least that
// often in the window enter L1; colder ones are served from L2.
//
// # Failures
//
// Every Redis call is bounded by L2Timeout (50 ms) and goes through a
// circuit breaker that opens after 3 consecutive failures (or when the bus
// goes down), so a dead Redis costs a read nothing once the breaker is
// open: reads fall through to the loader (fail open). While it is open the
// cache probes Redis once a second by itself (reads never probe: a probe's
// answer is not served), and the breaker closes two seconds after a probe
// succeeds, whether or not reads come by; the bus resubscribes by itself.
// Failed background refreshes are logged like outages: the first at once,
// then at most one a minute with the count of those not logged; every
// loader error is counted in [Stats].LoadErrors.
//
// Redis is a cache level, so a service need not wait for it: [DialRedis]
// connects in the background and a cache given it as Config.RedisConn
// starts at once, degraded (no L2, the bus down, L1 keeping values at most
// StalenessBound/2), and recovers by itself when Redis answers.
// [Cache.Health] says which of L2 and the bus a cache is using, for a
// readiness probe: degraded, but ready. Outages are logged once, with a
// reminder at most once a minute and one line when Redis is back, however
// many reads and writes fail meanwhile.
//
// Everything in the cache that depends on time (expiry, the breaker and
// its grace, the bus watchdog and its backoff, replays, connection
// retries, log limits) reads one
// clock, which the package's tests replace with one they move by hand; only
// the deadlines of network calls and loads run on real time.
//
// # Tracing
//
// With Config.TracerProvider, a read under a caller's span (a request's)
// is a span of its own, cache.Get or cache.Query, saying which level
// answered (strata.cache.level: l1, l2, loader) and whether the value was
// shared or stale; the wait for another instance's lease is a
// cache.lease_wait span (its outcome: filled, timeout, canceled, l2_error;
// and how long), and the loader call a cache.load span, under which the
// loader's own spans (the database's) hang. A load that callers share
// runs under the span of the one that started it. Background work
// (refreshes, warming) makes no spans. Nil, tracing is off and the L1 hit
// path is what it was before tracing: whether tracing is on is asked only
// after an L1 miss (docs/benchmarks.md, "Tracing off").
//
// # Choices, measured
//
// L1 is otter v2: in one sitting on this project's machine, a parallel hit
// took 30 ns with otter and 38 ns with ristretto, and ristretto's admission
// policy had dropped 98 % of the 10,000 entries just set, which a cache that
// must hold what it was given cannot accept. L2 uses rueidis: 64 goroutines
// doing GETs ran at 1.9 times go-redis v9's throughput (auto-pipelining),
// with 1 allocation per call against 7. The figures and commands are in
// docs/benchmarks.md.
package cache
