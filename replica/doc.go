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
// # Open
//
// Open asks every server what it is: a replica must be a streaming
// standby (pg_is_in_recovery) of the primary's cluster (the system
// identifier of pg_control_system), or Open fails with [ErrNotStandby]
// naming its URL, password removed; a primary in recovery fails it with
// [ErrNotPrimary]. A server that does not answer is a warning on
// Config.Logger, not an error: it starts out of the rotation and the
// health check, which asks the same questions, admits it when it is up.
//
// # Fast fail and fallback
//
// A replica that hands out no connection within its acquire timeout, or
// fails with a connection error, a recovery conflict or "too many
// connections", is skipped and the read runs on the next one, then on the
// primary, within the caller's deadline; a connection failure also ejects
// the replica at once. The query's own errors (bad SQL, constraint
// violations) are returned as they are. Read functions must be safe to run
// more than once.
//
// Falling back is load-aware. While the primary has headroom by its own
// bounds every read that no replica served runs there: a healthy primary
// serves reads when both replicas are down. It is under pressure while 75 %
// or more of its pool (size + overflow) is in use, or while the moving
// average of its call time is past PrimaryLatencyBound (100 ms) and a
// quarter or more of its pool is in use; then at most FallbackShare
// (half) of the reads of a second may fall back, and the rest fail at once
// with [ErrFallbackCapped], whose message names the cause (pool use, or
// latency and pool use), so that a replica outage cannot flood a primary
// that is already busy. Latency alone, with the pool nearly idle, is not
// such pressure: the primary is slow for reasons this router does not add
// to, and one stall of a loaded machine lifts the moving average past the
// bound for many calls after, which would refuse reads an idle pool can
// serve.
//
// # Primary down
//
// Every failure of the primary, at connect or in the middle of a call
// (refused, reset, closed, shutting down, too many connections), is
// returned as [ErrPrimaryUnavailable], within the acquire timeout (0.5 s).
// Once a connect fails or the health check cannot reach it, the router
// knows the primary is down: Write, WriteTx, Position and fallback reads
// fail at once, and a probe every CheckInterval/4 finds it when it is back
// ([Router.PrimaryErr] says which state it is in). Both errors mean "try
// again shortly": a service answers them with 503 and Retry-After.
//
// A primary that stops answering without refusing anything (a hung
// server, a host cut off by a partition) counts as down once its health
// check times out on its own budget (four fifths of CheckInterval) twice
// in a row, the second try at once: about a second after it stops, new
// calls fail at once instead of waiting on a pooled connection for their
// caller's deadline. Twice, because one stall of a loaded machine can time
// out one check. A call already running on it is not interrupted (it may
// yet commit) and ends with its caller's deadline or when the server
// answers, except that every connection the router opens has TCP
// keepalive (after 5 s of silence, a probe a second, five probes) and, on
// Linux, TCP_USER_TIMEOUT (10 s): a call on a connection whose peer is
// gone (a dead host, a cut link) fails within about 10 s, as
// ErrPrimaryUnavailable on the primary. A live server's kernel answers
// probes and acknowledges data at once however long its query runs, so
// neither changes what a query means; a statement timeout would, and the
// router sets none.
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
// replica of an idle primary minutes behind). A replica past LagBound
// (1 s) is ejected and re-admitted once it is within half of it for two
// checks in a row; a replica whose check fails is ejected and re-admitted
// the same way.
//
// Lag is measured, never inferred from a gap in the sampling. While the
// primary cannot be reached, lag cannot grow and replicas keep serving.
// Samples on either side of a gap are not interpolated: a replica between
// them counts as behind since the later one. When the primary restarts
// (pg_postmaster_start_time changes) the history starts again, and a
// replica that had replayed the WAL from before the restart (up to the
// latest checkpoint's redo position and the last sample) counts as caught
// up with the position the restarted primary began at: the WAL the restart
// writes reaches replicas only when they reconnect, up to 5 s later, and
// holds no data they lack. What the primary writes after that counts.
//
// # Read-your-writes
//
// A write returns a [Token], the primary's WAL insert position after it. A
// read whose context carries it ([WithToken]) goes only to a replica known
// to have replayed it, or waits up to FreshWait on the best replica for
// it, then reads from the primary (not counted against the cap). Each URL
// must name one server: the router remembers how far each has replayed. A
// session that keeps its newest token never reads older data than it
// wrote.
//
// Per entity, with nothing from the client: a write on a context that
// names keys ([WithKeys], such as "user:42") marks each key with its token
// in Config.Marks ([KeyMarks]; by default an in-process [MemMarks]), and a
// read that names a key routes as if it carried the newest token marked
// for it. Marks last MarkTTL (3 × LagBound, and at least LagBound +
// CheckInterval + FreshWait: by then any replica still serving has
// replayed them, or a read has waited its FreshWait for it), and the
// in-process store keeps at most DefaultMaxMarks, answering
// conservatively for keys it had to drop. A
// KeyMarks shared by every instance (on Redis, say) gives read-your-writes
// per entity across instances.
//
// # Hedged reads
//
// Off by default; Config.Hedge turns them on (strata serve --hedge). A
// statement of a Read that has no answer (its first row, or its whole
// answer when it has none) after its replica's recent p95 is sent to
// another replica too, and the first answer that succeeds is the read's.
// The read function does not change: it runs once, on its own goroutine,
// and each of its QueryContext and QueryRowContext calls gets exactly one
// answer, as a *sql.Rows or *sql.Row, from the attempt that won (the
// winner's first row, copied, then the rest as the server sends it); the
// other attempt's rows, read or not, are closed and never reach it. A
// hedge that wins becomes the read's connection for its next statements.
//
// The first attempt runs on the read's goroutine, so a statement answered
// in time pays only a timer, a cancelable context and the copy of its
// first row (docs/benchmarks.md); the hedge runs on a goroutine of its
// own. The attempt that lost is canceled on its server, but not at once:
// a cancel request is a new connection (PostgreSQL forks a process for
// it) and a connection pgx gives up on is dropped and opened again later,
// while most attempts that lose were merely slow and end by themselves in
// a few milliseconds. A hedge that lost, which no read waits for, runs on
// for up to a second, then gets a cancel request and keeps its
// connection. A first attempt the hedge beat is waited for by the read
// until four of its replica's delays after it began, then gets a cancel
// request, and pgx drops its connection only if the server has not
// aborted it two delays later (a stopped server, a cut link): a stalled
// replica costs a hedged read at most six delays, 60 ms at the default
// floor, where an unhedged one waits for as long as the stall lasts.
//
// What is never hedged: writes; ReadTx (a transaction's statements share
// one snapshot on one server); a statement after ExecContext in the same
// read (it may have set session state, SET or a temporary table); a read
// that fell back to the primary. A hedge goes to another replica, never
// to the primary, which carries the writes and the reads no replica can
// serve: hedging needs two replicas or more, and with fewer none is sent.
// It goes where a read would (the caller's region first, then by load and
// latency), to a replica the read has not tried, and, for a read carrying
// a token, only to one known to have replayed it (a hedge does not wait
// for replay). An answer that fails on its server (a connection error, a
// recovery conflict) does not end the statement while the other attempt
// may still succeed; the query's own errors do.
//
// The delay is per replica: the p95 of its last 128 times to first
// answer younger than 10 s (none with fewer than 20 of them, and then no
// hedge), at least Hedge.MinDelay (10 ms, a tenth of the guide's query
// time warning: hedging a faster statement buys little for a second
// query). A first attempt that lost counts with the time it had taken, a
// lower bound of its own. A bounded window, not a quantile sketch: it is
// exact at this size, a sample costs a short lock, and it forgets by age
// without the rotating windows and merges a t-digest or an HdrHistogram
// would need.
//
// The extra load is bounded by Hedge.Budget (5 % of reads): a token
// bucket that reads fill, not time. Each hedged-mode Read adds Budget of
// a token, each hedge takes one, and the bucket starts empty and holds at
// most 10, so hedges never exceed Budget times the reads, and a quiet
// spell saves up at most 10. About 5 % of statements pass their replica's
// p95 by definition, as many as the default budget pays for, so a
// statement the budget refuses asks again after twice its last wait for
// as long as it runs: the stalled ones, which hedging is for, get the
// tokens that come in meanwhile. Hedging helps when one replica is slow
// for a while; when every server is saturated it adds work where there is
// no spare capacity (docs/benchmarks.md measures both).
// # Tracing
//
// With Config.TracerProvider, a Read under a caller's span is a
// replica.Read span with the pool that served it (strata.replica.pool,
// strata.replica.role), the replicas it skipped and why (events), the
// reason it fell back to the primary (strata.replica.fallback_reason) and
// the read-your-writes token it carried, and the wait for a replica to
// replay that token is a replica.token_wait span (replayed or timeout);
// Write, WriteTx and Position are spans too. Each statement a pool runs is
// an SQL span from pgx's query tracer: db.system.name, the statement
// normalised with its constants replaced (db.query.text), never its
// arguments, the rows returned or changed. The health check's statements
// make none.
//
// # Metrics
//
// strata_replica_* (query time, errors by kind, acquire timeouts,
// fallbacks by reason, ejections, re-admissions, lag in seconds and bytes,
// key mark errors, hedges by outcome) and, per pool, strata_db_*
// (connections open, in use and idle; acquire waits and wait time).
// Close unregisters them (after waiting for hedges that lost to release
// their connections).
package replica
