// Package storefront is Strata's reference service: the running example of
// the guide "Performance & Scale" (users, user actions, products,
// recommendations, search), built so that it can run at each stage of the
// guide's scale journey and be measured there.
//
// At stage 1, the monolith, a [Store] reads and writes one database through
// database/sql: SQLite (the embedded default) or PostgreSQL, with one set of
// queries and the few differences in dialect.go. [NewHandler] serves the
// store as an HTTP JSON API with Prometheus metrics, [Seed] fills a database
// with realistic data, and the schema is migrated when a store opens.
//
// At stage 2, [NewCached] puts the multi-level cache in front of the store,
// and Config.Replicas routes reads to PostgreSQL streaming replicas.
//
// Search is the guide's search case study: three tiers, product search,
// autocomplete ([Store.Suggest], a range scan of a title prefix index) and
// faceted search ([Store.Facets]), each with a concurrency limit, a budget
// ([SearchTiers]) and, through the cache, a query-result cache and TTL of
// its own, so that a burst in one tier is refused there and the others
// answer on. A faceted search runs its search and its counts in parallel
// through golang.org/x/sync/errgroup, the Go team's group with a shared
// cancellation, rather than a WaitGroup and a hand-made cancel.
//
// At stage 5, Config.Shards shards users and their actions by user id over
// independent PostgreSQL primaries (package shard routes each user to the
// primary that owns the user's virtual shard), while the main database
// keeps the products every shard shares, the shard map, and the global id
// allocators and email directory that one identity column per shard could
// not give. A user's requests touch the user's shard only (and the main
// database for products); recommendations, which read other users'
// purchases, ask every shard at once within the guide's 500 ms budget for
// non-critical work and fall back to popular products for the shards that
// did not answer, saying so in [FallbackHeader]. Nothing spans shards in
// one transaction: the email directory is claimed before the shard's write
// and released after it, and a claim left by a write that died between the
// two goes stale and is reused.
//
// With a TracerProvider in HandlerConfig, CacheConfig and Config (strata
// serve --otlp-endpoint), every request to a route is traced through the
// cache, the shard and replica routers and the SQL (see trace.go).
//
// Numbers taken from the guide say so where they are defined; the rest are
// this package's own choices, bounded so that one request cannot do
// unbounded work.
package storefront
