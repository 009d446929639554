package replica

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/database"
	"github.com/strata-dev/strata/internal/deadline"
	"github.com/strata-dev/strata/internal/spans"
)

// Querier is what a read or write function runs its SQL on: a connection
// pinned for the call (*sql.Conn) or a transaction (*sql.Tx).
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Router sends reads to replicas and writes to the primary. See the
// package doc for how it chooses and when it falls back.
type Router struct {
	cfg       Config
	clk       clock
	primary   *node
	replicas  []*node
	view      atomic.Pointer[view]
	fb        fallbackLimiter
	m         *metrics
	down      atomic.Pointer[primaryDown] // set while the primary is known to be unreachable
	lastWrite atomic.Uint64               // the newest token this router handed out or marked
	hedge     *hedging                    // nil: reads are not hedged (Config.Hedge)
	tr        spans.Tracer                // off unless Config.TracerProvider

	mu   sync.Mutex // health state of the nodes; view rebuilds; hist
	hist lagHistory

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// node is one pool and what the router knows of it.
type node struct {
	idx      int // bit in a read's tried mask; -1 for the primary
	name     string
	region   string
	display  string // its URL without the password
	db       *sql.DB
	checkDB  *sql.DB // one connection for the health check, apart from db so that a busy pool does not fail it
	capacity int64   // Size + Overflow
	acquire  time.Duration
	slots    *deadline.Slots     // shared acquire deadlines
	observer prometheus.Observer // its query-time histogram

	inUse   atomic.Int64   // calls holding or waiting for one of its connections
	latency atomic.Uint64  // moving average of call time, float64 ns bits
	calls   atomic.Uint64  // calls observed, for the health check's starvation rule
	replay  atomic.Uint64  // last replay position seen (replicas)
	est     *delayEstimate // recent p95 of time to first answer (replicas, with hedging)

	// Health, under Router.mu.
	callsSeen    uint64 // calls at the last health check
	up           bool
	good         int // consecutive good checks while out
	lagSeconds   float64
	lagBytes     uint64
	everChecked  bool
	healthReason string
}

// view is the routing state a read uses, swapped whole on a change.
type view struct {
	healthy []*node // replicas that get reads
	local   []*node // the healthy ones in Config.Region
}

// Open opens the primary's and replicas' pools with the configured sizes,
// checks what each server is, and starts the health checker.
//
// A replica that answers must be a streaming standby of the primary (in
// recovery, with the primary's system identifier): otherwise Open fails
// with ErrNotStandby naming it; a primary that is in recovery fails it
// with ErrNotPrimary. A server that does not answer within the connect
// timeout (5 s) is not an error: it is reported on Config.Logger as a
// warning, starts ejected (a replica) or known down (the primary), and is
// admitted once it answers and passes the same checks.
func Open(ctx context.Context, cfg Config) (*Router, error) {
	if err := cfg.resolve(); err != nil {
		return nil, err
	}
	life, cancel := context.WithCancel(context.Background())
	r := &Router{cfg: cfg, clk: cfg.clock, m: newMetrics(cfg.Registerer), cancel: cancel, tr: spans.New(cfg.TracerProvider, tracerScope)}
	r.fb.start = r.clk.Now()
	fail := func(err error) (*Router, error) {
		cancel()
		r.m.unregister()
		_ = r.closePools()
		return nil, err
	}
	var err error
	if r.primary, err = r.newNode(life, -1, "primary", "", cfg.Primary, "Primary", cfg.PrimaryPool); err != nil {
		return fail(err)
	}
	r.primary.up = true
	for i, rc := range cfg.Replicas {
		n, err := r.newNode(life, i, rc.Name, rc.Region, rc.URL, fmt.Sprintf("Replicas[%d].URL", i), cfg.ReplicaPool)
		if err != nil {
			return fail(err)
		}
		r.replicas = append(r.replicas, n)
	}
	if err := r.verify(ctx); err != nil {
		return fail(err)
	}
	r.startHedging()
	if err := r.m.register(r); err != nil {
		return fail(err)
	}
	r.rebuild()
	// One check before returning, so that healthy replicas get reads at once.
	r.check(ctx, openCheckTimeout)
	r.wg.Add(1)
	go r.checkLoop(life)
	return r, nil
}

// newNode opens the pool and the health-check connection of one server.
func (r *Router) newNode(life context.Context, idx int, name, region, raw, field string, p Pool) (*node, error) {
	t, err := database.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, field, err)
	}
	if t.Kind != database.Postgres {
		return nil, fmt.Errorf("%w: %s: %s is not PostgreSQL; replicas need WAL positions", ErrBadConfig, field, t.Display)
	}
	pc, err := pgx.ParseConfig(t.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s: %v", ErrBadConfig, field, t.Display, err)
	}
	tuneConnConfig(pc)
	traced := *pc // the pool's statements make spans; the health check's do not
	traced.Tracer = spans.SQL(r.cfg.TracerProvider)
	db := stdlib.OpenDB(traced)
	db.SetMaxOpenConns(p.Size + p.Overflow)
	db.SetMaxIdleConns(p.Size)
	db.SetConnMaxLifetime(p.Recycle)
	check := stdlib.OpenDB(*pc)
	check.SetMaxOpenConns(1)
	check.SetMaxIdleConns(1)
	check.SetConnMaxLifetime(p.Recycle)
	return &node{idx: idx, name: name, region: region, display: t.Display, db: db, checkDB: check,
		capacity: int64(p.Size + p.Overflow), acquire: p.AcquireTimeout, slots: deadline.New(life, p.AcquireTimeout),
		observer: r.m.queries.WithLabelValues(name)}, nil
}

// Close stops the health checker, unregisters the router's metrics and
// closes every pool. It is idempotent: later calls return the first's
// result.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		if r.hedge != nil {
			// Hedges that lost finish or are canceled within their grace
			// and release their connections; before the router's life
			// ends, so that none fails on it.
			r.hedge.cleanup.Wait()
		}
		r.cancel()
		r.wg.Wait()
		r.m.unregister()
		r.closeErr = r.closePools()
	})
	return r.closeErr
}

func (r *Router) closePools() error {
	var errs []error
	for _, n := range append([]*node{r.primary}, r.replicas...) {
		if n != nil {
			errs = append(errs, n.db.Close(), n.checkDB.Close())
		}
	}
	if r.hedge != nil {
		errs = append(errs, r.hedge.replay.Close())
	}
	return errors.Join(errs...)
}

// Primary returns the primary's pool, for what the router does not cover
// (migrations, COPY). Writes made through it return no token.
func (r *Router) Primary() *sql.DB { return r.primary.db }

// Read runs fn on a connection of the best replica, or, if none can serve
// it, of the primary (see the package doc). fn may run more than once, on
// different servers, when a server fails under it: it must start afresh
// each time and must not write. A read whose context carries a Token
// (WithToken), or names keys (WithKeys), sees at least that write, or
// the newest write marked for those keys.
//
// A read refused by the primary fallback's cap fails with
// ErrFallbackCapped, one the primary cannot serve with
// ErrPrimaryUnavailable; both mean "try again shortly" (503).
//
// With Config.Hedge on, a statement of fn that is slow on its replica
// may be sent to another one too (see the package doc); fn still runs
// once, sees one answer per statement, and q is then not a *sql.Conn.
func (r *Router) Read(ctx context.Context, fn func(ctx context.Context, q Querier) error) (err error) {
	if r.tr.On() {
		var span trace.Span
		ctx, span = r.tr.Start(ctx, spanRead)
		defer func() { spans.End(span, err) }()
	}
	return r.read(ctx, fn, r.hedge != nil)
}

// read is Read; hedged says whether fn's statements on replicas are
// hedged.
func (r *Router) read(ctx context.Context, fn func(ctx context.Context, q Querier) error, hedged bool) error {
	if len(r.replicas) == 0 {
		_, err := r.run(ctx, r.primary, 0, fn)
		return err
	}
	r.fb.read()
	if hedged {
		r.hedge.budget.deposit()
	}
	tok := r.readToken(ctx)
	r.traceToken(ctx, tok)
	v := r.view.Load()
	var tried uint64
	var lastErr error
	reason := reasonNoReplica
candidates:
	for _, cands := range [][]*node{v.local, v.healthy} {
		for {
			n := pick(cands, tried, tok)
			if n == nil && tok != 0 {
				// None is known to have replayed the token: try the best
				// one, which waits up to FreshWait for it.
				n = pick(cands, tried, 0)
			}
			if n == nil {
				break
			}
			tried |= 1 << n.idx
			var retry bool
			var err error
			if hedged {
				retry, err = r.runHedged(ctx, n, tok, &tried, fn)
			} else {
				retry, err = r.run(ctx, n, tok, fn)
			}
			if err == nil || !retry {
				return err
			}
			lastErr, reason = err, reasonOf(err)
			r.traceSkipped(ctx, n, reason)
			if reason == kindStale {
				break candidates // one FreshWait per read, then the primary
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// A read carrying a token that no replica has replayed in time is not
	// counted against the cap: the primary is the only correct answer.
	if tok == 0 {
		if err := r.admitFallback(r.clk.Now()); err != nil {
			r.traceFallback(ctx, reasonCapped)
			r.m.fallbacks.WithLabelValues(reasonCapped).Inc()
			if lastErr == nil {
				return err
			}
			return fmt.Errorf("%w (last replica error: %w)", err, lastErr)
		}
	}
	r.traceFallback(ctx, reason)
	r.m.fallbacks.WithLabelValues(reason).Inc()
	_, err := r.run(ctx, r.primary, 0, fn)
	return err
}

// readToken returns the newest of the context's token and the marks of
// its keys. A key whose mark cannot be read (a shared KeyMarks that is
// down) counts as marked with the newest token this router has seen
// written: conservative, but blind to other routers' writes.
func (r *Router) readToken(ctx context.Context) Token {
	tok := TokenFrom(ctx)
	for _, k := range KeysFrom(ctx) {
		t, err := r.cfg.Marks.Get(ctx, k)
		if err != nil {
			r.m.markErrors.WithLabelValues("get").Inc()
			t = Token(r.lastWrite.Load())
		}
		tok = max(tok, t)
	}
	return tok
}

// Mark records tok as the newest write to each of keys, so that reads
// naming one of them (WithKeys) see it. Write and WriteTx on a context
// with keys do it themselves; Mark is for writes made elsewhere. Without
// replicas it does nothing: every read goes to the primary.
func (r *Router) Mark(ctx context.Context, tok Token, keys ...string) error {
	storeMax(&r.lastWrite, uint64(tok))
	if len(r.replicas) == 0 || tok == 0 {
		return nil
	}
	var errs []error
	for _, k := range keys {
		if err := r.cfg.Marks.Mark(ctx, k, tok, r.cfg.MarkTTL); err != nil {
			r.m.markErrors.WithLabelValues("mark").Inc()
			errs = append(errs, fmt.Errorf("key %q: %w", k, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrNoMark, errors.Join(errs...))
	}
	return nil
}

// ReadTx runs fn in a read-only, repeatable-read transaction on a replica
// (or the primary), chosen as Read chooses; fn may run more than once.
// A transaction's statements are never hedged: they share one snapshot
// on one server.
func (r *Router) ReadTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return r.read(ctx, func(ctx context.Context, q Querier) error {
		return inTx(ctx, q.(*sql.Conn), &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}, fn)
	}, false)
}

// Write runs fn on a primary connection and returns the WAL position
// after it, the token that makes later reads see it (WithToken). fn runs
// once; statements in it commit one by one (use WriteTx for one commit).
// On a context with keys (WithKeys) the token marks each key; if that
// fails, Write returns the token and an error wrapping ErrNoMark. A router
// without replicas returns token 0 and marks nothing: its reads all go to
// the primary, which has every write. With the
// primary down it fails with ErrPrimaryUnavailable, at once when the
// health check already knows (also of a primary that stops answering),
// else within the acquire timeout. A write already running when the
// primary stops answering waits for it, within ctx (see the package doc).
func (r *Router) Write(ctx context.Context, fn func(ctx context.Context, q Querier) error) (Token, error) {
	return r.write(ctx, func(ctx context.Context, c *sql.Conn) error { return fn(ctx, c) })
}

// WriteTx runs fn in a transaction on the primary, commits it if fn
// returns nil, and returns the commit's token, as Write does.
func (r *Router) WriteTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) (Token, error) {
	return r.write(ctx, func(ctx context.Context, c *sql.Conn) error { return inTx(ctx, c, nil, fn) })
}

func (r *Router) write(ctx context.Context, fn func(ctx context.Context, c *sql.Conn) error) (tok Token, err error) {
	if r.tr.On() {
		var span trace.Span
		ctx, span = r.tr.Start(ctx, spanWrite, attrPool.String(r.primary.name))
		defer func() { endWrite(span, tok, err) }()
	}
	n := r.primary
	conn, err := r.acquire(ctx, n)
	if err != nil {
		return 0, err
	}
	defer r.release(n, conn)
	t0 := time.Now()
	err = fn(ctx, conn)
	r.observe(n, t0, err)
	if err != nil {
		if ctx.Err() == nil && classify(err) == kindConnection {
			// Whether a write whose connection broke committed is unknown;
			// the caller must not assume either way.
			return 0, fmt.Errorf("%w: the connection failed during the write (it may or may not have committed): %w", ErrPrimaryUnavailable, err)
		}
		if ctx.Err() != nil {
			return 0, err
		}
		return 0, primaryError(err, "the write")
	}
	if len(r.replicas) == 0 {
		// Every read goes to the primary, which has the write: no token is
		// needed, and none is read (a round trip saved on every write).
		return 0, nil
	}
	tok, err = insertPosition(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	return tok, r.Mark(ctx, tok, KeysFrom(ctx)...)
}

// insertPosition reads the primary's WAL insert position on q. The insert
// position, not the write position: with synchronous_commit off a commit
// record may not be written yet when the commit returns.
func insertPosition(ctx context.Context, q Querier) (Token, error) {
	var s string
	if err := q.QueryRowContext(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		return 0, err
	}
	return ParseToken(s)
}

// Position returns the primary's current WAL position: a read carrying it
// (WithToken) sees every write committed anywhere before Position was
// called. It costs one small query on the primary, within the primary's
// acquire timeout; with the primary down it fails with
// ErrPrimaryUnavailable, as Write does.
func (r *Router) Position(ctx context.Context) (tok Token, err error) {
	if r.tr.On() {
		var span trace.Span
		ctx, span = r.tr.Start(ctx, spanPosition, attrPool.String(r.primary.name))
		defer func() { endWrite(span, tok, err) }()
	}
	conn, err := r.acquire(ctx, r.primary)
	if err != nil {
		return 0, err
	}
	defer r.release(r.primary, conn)
	tok, err = insertPosition(ctx, conn)
	if err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		return 0, fmt.Errorf("replica: primary position: %w", primaryError(err, "the position query"))
	}
	return tok, nil
}

func inTx(ctx context.Context, c *sql.Conn, opts *sql.TxOptions, fn func(ctx context.Context, tx *sql.Tx) error) error {
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	// Also when fn panics: an open transaction would hold the connection
	// (and its Close) forever. After Commit it is a no-op.
	defer func() { _ = tx.Rollback() }()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// acquire gets a connection of n within its acquire timeout (and the
// caller's deadline). n.inUse counts the caller from here on, so that
// concurrent pickers see the load at once. The wait is bounded by a shared
// deadline (package deadline), so a caller's cancellation, as opposed to
// its deadline, is seen only when the wait ends. A primary the health
// check knows to be down is refused at once.
func (r *Router) acquire(ctx context.Context, n *node) (*sql.Conn, error) {
	if n == r.primary {
		if d := r.down.Load(); d != nil {
			r.m.errors.WithLabelValues(n.name, kindDown).Inc()
			return nil, d.error()
		}
	}
	n.inUse.Add(1)
	actx, cancel := n.slots.For(ctx)
	conn, err := n.db.Conn(actx)
	if cancel != nil {
		cancel()
	}
	if err == nil {
		return conn, nil
	}
	n.inUse.Add(-1)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	kind := classify(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		kind = kindAcquireTimeout
		r.m.acquireTimeouts.WithLabelValues(n.name).Inc()
	case kind == "":
		kind = kindConnection // a failed connect is a connection failure
	}
	r.m.errors.WithLabelValues(n.name, kind).Inc()
	if n == r.primary {
		if kind == kindConnection {
			r.setPrimaryDown(err)
		}
		return nil, fmt.Errorf("%w: no connection within %v: %w", ErrPrimaryUnavailable, n.acquire, err)
	}
	if kind == kindConnection {
		r.eject(n, err.Error())
	}
	return nil, &serverError{node: n.name, kind: kind, err: err}
}

func (r *Router) release(n *node, c *sql.Conn) {
	_ = c.Close()
	n.inUse.Add(-1)
}

// run runs fn on a connection of n; for a replica and a token, only once
// n has replayed it. retry says whether another server may succeed.
func (r *Router) run(ctx context.Context, n *node, tok Token, fn func(ctx context.Context, q Querier) error) (retry bool, err error) {
	conn, err := r.acquire(ctx, n)
	if err != nil {
		return n != r.primary && ctx.Err() == nil, err
	}
	defer r.release(n, conn)
	r.traceChoice(ctx, n)
	if tok != 0 && Token(n.replay.Load()) < tok {
		if err := r.tokenWait(ctx, n, conn, tok); err != nil {
			return ctx.Err() == nil, err
		}
	}
	t0 := time.Now()
	err = fn(ctx, conn)
	r.observe(n, t0, err)
	if err == nil || ctx.Err() != nil {
		return false, err
	}
	if n == r.primary {
		return false, primaryError(err, "the read")
	}
	kind := classify(err)
	if kind == "" {
		return false, err // the query's own error: the same everywhere
	}
	if kind == kindConnection {
		r.eject(n, err.Error())
	}
	return true, &serverError{node: n.name, kind: kind, err: err}
}

// waitReplay waits up to FreshWait for n to replay tok.
func (r *Router) waitReplay(ctx context.Context, n *node, conn *sql.Conn, tok Token) error {
	deadline := time.Now().Add(r.cfg.FreshWait)
	for {
		var s string
		if err := conn.QueryRowContext(ctx, "SELECT COALESCE(pg_last_wal_replay_lsn()::text, '')").Scan(&s); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if classify(err) == kindConnection {
				r.eject(n, err.Error())
			}
			return &serverError{node: n.name, kind: kindConnection, err: err}
		}
		if lsn, err := ParseToken(s); err == nil {
			storeMax(&n.replay, uint64(lsn))
			if lsn >= tok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return &serverError{node: n.name, kind: kindStale, err: fmt.Errorf("has not replayed %v within %v", tok, r.cfg.FreshWait)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(freshPoll):
		}
	}
}

func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// observe records one call's time in n's moving average and histogram,
// and its failure, if any, in n's errors.
func (r *Router) observe(n *node, t0 time.Time, err error) {
	r.observeTime(n, t0)
	if err != nil {
		r.countError(n, err)
	}
}

// countError counts a failed call on n by kind.
func (r *Router) countError(n *node, err error) {
	if k := classify(err); k != "" {
		r.m.errors.WithLabelValues(n.name, k).Inc()
	} else {
		r.m.errors.WithLabelValues(n.name, kindQuery).Inc()
	}
}

// observeTime records one call's time in n's moving average and histogram.
func (r *Router) observeTime(n *node, t0 time.Time) {
	d := time.Since(t0)
	n.observer.Observe(d.Seconds())
	n.calls.Add(1)
	for {
		old := n.latency.Load()
		avg := math.Float64frombits(old)
		next := float64(d)
		if old != 0 {
			next = avg + latencyWeight*(float64(d)-avg)
		}
		if n.latency.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// pick returns the candidate with the lowest load factor (calls in flight
// over pool capacity), then the lowest latency, skipping tried ones and,
// with a token, those not known to have replayed it. A latency counts as
// lower only below latencyEdge of the other (a slow replica is slower by
// multiples; small differences are noise, such as a fresh connection's
// first calls), and the scan starts at a random candidate,
// so that equal candidates share the reads instead of all callers herding
// onto one. A replica that loses every read on latency has no new samples
// to show it recovered; the health check resets its average (see
// unstarveLocked). It reads atomics only and allocates nothing.
func pick(cands []*node, tried uint64, tok Token) *node {
	if len(cands) == 0 {
		return nil
	}
	var best *node
	var bestLoad int64
	var bestLat float64
	start := mrand.IntN(len(cands))
	for i := range cands {
		n := cands[(start+i)%len(cands)]
		if tried&(1<<n.idx) != 0 || tok != 0 && Token(n.replay.Load()) < tok {
			continue
		}
		load := n.inUse.Load() * 1024 / max(n.capacity, 1)
		lat := math.Float64frombits(n.latency.Load())
		if best == nil || load < bestLoad || load == bestLoad && lat < latencyEdge*bestLat {
			best, bestLoad, bestLat = n, load, lat
		}
	}
	return best
}
