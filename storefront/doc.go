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
// Numbers taken from the guide say so where they are defined; the rest are
// this package's own choices, bounded so that one request cannot do
// unbounded work.
package storefront
