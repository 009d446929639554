// Package replica routes a service's SQL between one PostgreSQL primary and
// its streaming replicas: the guide's HighPerformanceConnectionManager and
// stage 2's read/write split, inside the service, without a proxy hop.
//
// # Intent, not SQL
//
// The caller says what it wants: [Router.Read] and [Router.ReadTx] for
// reads, [Router.Write] and [Router.WriteTx] for writes. The router never
// looks at the SQL text. A call runs on one connection (or one
// transaction) of one pool from start to end.
//
// # Pools
//
// Each server gets a database/sql pool (pgx v5). The guide's numbers map
// onto database/sql like this: size + overflow is SetMaxOpenConns, size is
// SetMaxIdleConns (so overflow connections close when they fall idle),
// recycle is SetConnMaxLifetime. database/sql has no acquire timeout; the
// router bounds the wait for a connection (db.Conn with a deadline), not
// the query: 0.5 s on the primary, 0.1 s on a replica (the guide's fast
// fail).
//
// # Choice
//
// A read goes to the replica with the lowest load factor (calls in flight
// over pool capacity), then the lowest latency (a moving average of call
// time), a latency counting as lower only under half of the other's, and
// ties broken at random so that callers do not herd. A replica in the caller's region
// (Config.Region) is preferred while one is healthy. The routing state is
// an immutable snapshot swapped atomically on each health change; a pick
// reads atomics only.
//
// # Fast fail and fallback
//
// A replica that hands out no connection within its acquire timeout, or
// fails with a connection error, a recovery conflict or "too many
// connections", is skipped and the read runs on the next one, then on the
// primary, within the caller's deadline; a connection failure also ejects
// the replica at once. The query's own errors (bad SQL, constraint
// violations) are returned as they are. At most FallbackShare of the reads
// of a second may fall back to the primary; past that such reads fail at
// once with [ErrFallbackCapped], so a replica outage cannot flood the
// primary. Read functions must be safe to run more than once.
//
// # Health and lag
//
// Every CheckInterval (500 ms) the router reads the primary's WAL position
// (pg_current_wal_lsn) and each replica's replay position
// (pg_last_wal_replay_lsn), each on a connection of its own, apart from
// the pool, so that a busy pool does not fail its check. Lag in bytes is
// the difference; lag in time is how long ago the primary was at the
// position the replica has replayed, interpolated in the router's own
// history of primary positions (replay timestamps would call an idle
// replica of an idle primary minutes behind). A replica
// past LagBound (1 s) is ejected and re-admitted once it is within half of
// it for two checks in a row; a replica whose check fails is ejected and
// re-admitted the same way. While the primary cannot be reached, lag
// cannot grow and replicas keep serving.
//
// # Read-your-writes
//
// A write returns a [Token], the primary's WAL insert position after it. A read
// whose context carries it ([WithToken]) goes only to a replica known to
// have replayed it, or waits up to FreshWait on the best replica for it,
// then reads from the primary (not counted against the cap). Each URL must
// name one server: the router remembers how far each has replayed. A session that
// keeps its newest token never reads older data than it wrote.
//
// # Metrics
//
// strata_replica_* (query time, errors by kind, acquire timeouts,
// fallbacks by reason, ejections, re-admissions, lag in seconds and bytes)
// and, per pool, strata_db_* (connections open, in use and idle; acquire
// waits and wait time).
package replica
