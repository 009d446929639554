package replica

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Hedged read defaults. The guide has no hedging; issue 16 asks for it,
// after "The Tail at Scale" (Dean and Barroso, 2013).
const (
	DefaultHedgeBudget   = 0.05                  // issue 16: hedges add at most 5 % more reads
	DefaultHedgeMinDelay = 10 * time.Millisecond // Strata: a tenth of the guide's query-time p95 warning (Monitoring, 100 ms); hedging a faster statement costs a second query, and when the first attempt loses, a cancel request, for little gain
	hedgeQuantile        = 0.95                  // issue 16: a statement slower than its replica's recent p95 is hedged
	hedgeWindow          = 128                   // Strata: samples of time to first answer kept per replica
	hedgeWindowAge       = 10 * time.Second      // Strata: samples older than this are not recent
	hedgeMinSamples      = 20                    // Strata: with fewer recent samples a replica has no p95, and nothing on it is hedged
	hedgeRecompute       = 16                    // Strata: the p95 is recomputed every this many samples (and at each health check)
	hedgeBurst           = 10                    // Strata: hedges the budget saves up at most, for a burst after a quiet spell
	hedgeLoserGrace      = time.Second           // Strata: a hedge that lost may run this long before it is canceled (a healthy replica answers well within it)
	hedgeBeatenAfter     = 4                     // Strata: a first attempt the hedge beat is canceled this many of its replica's delays after it started
	hedgeAbortWait       = 2                     // Strata: and the read waits this many delays more for its server to abort it
)

// Hedge outcomes (the "outcome" label of strata_replica_hedges_total).
const (
	hedgeWon       = "won"                // the hedge answered first; the first attempt ends by itself or is canceled
	hedgeLost      = "lost"               // the first attempt answered first (or the caller gave up); the hedge ends by itself or is canceled
	hedgeFailed    = "failed"             // the hedge got no connection or failed; the first attempt's answer was used
	hedgeNoBudget  = "skipped_budget"     // a statement passed its replica's p95, but the budget had no hedge left (it asks again later)
	hedgeNoReplica = "skipped_no_replica" // a statement passed its replica's p95, but no other replica could take a hedge
)

// Hedge configures hedged reads (see the package doc). The zero value
// leaves them off.
type Hedge struct {
	// Enabled turns hedged reads on. They need two replicas or more: a
	// hedge goes to another replica, never to the primary.
	Enabled bool
	// Budget caps hedges at this share of the reads (0 < Budget <= 1).
	// Default DefaultHedgeBudget (5 %).
	Budget float64
	// MinDelay is the least time a statement runs before it is hedged,
	// however low its replica's p95. Default DefaultHedgeMinDelay (10 ms).
	MinDelay time.Duration
}

// resolve applies the defaults and refuses values out of range.
func (h *Hedge) resolve() error {
	switch {
	case h.Budget < 0 || h.Budget > 1:
		return fmt.Errorf("%w: Hedge.Budget: %v is not a share between 0 and 1", ErrBadConfig, h.Budget)
	case h.MinDelay < 0:
		return fmt.Errorf("%w: Hedge.MinDelay: negative (%v)", ErrBadConfig, h.MinDelay)
	}
	if h.Budget == 0 {
		h.Budget = DefaultHedgeBudget
	}
	if h.MinDelay == 0 {
		h.MinDelay = DefaultHedgeMinDelay
	}
	return nil
}

// hedging is a router's hedged-read state; nil while hedging is off.
type hedging struct {
	cfg     Hedge
	budget  *hedgeBudget
	replay  *sql.DB        // replays winners' answers as *sql.Rows (replay.go)
	cleanup sync.WaitGroup // hedges running, and beaten first attempts' connections held back; Close waits for them
	// event, when set (tests), is told of each hedge sent ("sent") and
	// each outcome counted.
	event func(string)
}

// startHedging turns hedging on for r's replicas, when configured and
// there are two replicas or more.
func (r *Router) startHedging() {
	if !r.cfg.Hedge.Enabled {
		return
	}
	if len(r.replicas) < 2 {
		r.cfg.Logger.Warn("replica: hedged reads need two replicas or more (a hedge never goes to the primary); none will be hedged",
			"replicas", len(r.replicas))
		return
	}
	replay := sql.OpenDB(replayConnector{})
	replay.SetMaxIdleConns(replayIdle)
	r.hedge = &hedging{cfg: r.cfg.Hedge, budget: newHedgeBudget(r.cfg.Hedge.Budget), replay: replay}
	for _, n := range r.replicas {
		n.est = &delayEstimate{}
	}
}

// replayIdle is how many replay connections (objects in memory) are kept
// between hedged statements.
const replayIdle = 64

// outcome counts a hedge outcome.
func (h *hedging) outcome(r *Router, o string) {
	r.m.hedges.WithLabelValues(o).Inc()
	h.note(o)
}

func (h *hedging) note(e string) {
	if h.event != nil {
		h.event(e)
	}
}

// hedgeDelay is how long a statement on n runs before it is hedged; 0: n
// has no p95 yet, and nothing on it is hedged.
func (r *Router) hedgeDelay(n *node) time.Duration {
	p := n.est.get()
	if p <= 0 {
		return 0
	}
	return max(p, r.hedge.cfg.MinDelay)
}

// attempt is one copy of a statement: the first on the read's connection,
// or the hedge on a connection of another replica.
type attempt struct {
	n      *node
	conn   *sql.Conn          // a hedge's is set by its goroutine before done closes
	cancel context.CancelFunc // a hedge's context's
	// mark says how its query ends when its context does (cancel.go).
	mark attemptMark
	ans  *answer       // a hedge's, set before done closes
	done chan struct{} // a hedge's: closed once it has answered and settled
}

// Who answered a hedged statement first (race.winner).
const (
	noWinner int32 = iota
	firstWins
	hedgeWins
)

// race is one hedged statement: the first attempt, running on the read's
// goroutine, and the hedge a timer may send. The first success claims
// the statement (winner); the other attempt gets a grace to end by itself
// before it is canceled, and settles: a hedge that lost closes its rows
// and releases its connection on its own goroutine, and a first attempt
// that lost is closed and released by the read. A first attempt's error
// claims it too, unless it is its server's failure (a connection error, a
// recovery conflict) while a hedge may yet answer.
type race struct {
	winner      atomic.Int32
	first       *node              // the first attempt's replica
	start       time.Time          // when the first attempt started
	mark        attemptMark        // how the first attempt ends when canceled (cancel.go)
	cancelFirst context.CancelFunc // cancels the first attempt
	mu          sync.Mutex
	closed      bool          // the first attempt has answered: no hedge is sent
	h           *attempt      // the hedge, once sent
	wait        time.Duration // the timer's last delay
	again       *time.Timer   // the timer that asks the budget again, if any
	refused     bool          // the budget refused once (counted once)
}

// hedgeSession is the Querier a hedged read's function runs on. Each
// query runs on the read's connection; one that has no answer (its first
// row, or its whole answer when it has none) after the replica's recent
// p95 is sent again to another replica, within the budget, and the first
// answer is the function's: the other attempt is canceled, and its rows,
// read or not, never reach the function. The function runs once, on one
// goroutine, and only the winner's answer is handed to it.
//
// A hedge that answers first becomes the read's connection: the
// function's next statements run there. After ExecContext (which may set
// session state, such as SET, on the connection) nothing more in the read
// is hedged. The read's connection is released when the function returns;
// a hedge that lost releases its own when its canceled query returns.
type hedgeSession struct {
	r     *Router
	tok   Token
	tried *uint64 // the read's tried replicas; hedges add theirs
	mu    sync.Mutex
	cur   *attempt    // the server and connection the read runs on
	open  []*sql.Rows // live rows and replays handed to the function, closed when it returns
	// done cancels the winners' contexts once the function has returned:
	// their rows stream under them until then.
	done []context.CancelFunc
	// Room for a read's first statements, so that open and done do not
	// allocate for them.
	openRoom [2]*sql.Rows
	doneRoom [2]context.CancelFunc
	// pinned: an Exec ran; the rest runs on cur unhedged.
	pinned bool
}

var _ Querier = (*hedgeSession)(nil)

// ExecContext runs on the read's connection, unhedged, and ends hedging
// for the rest of the read: it may have set state on the connection.
func (s *hedgeSession) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pinned = true
	return s.cur.conn.ExecContext(ctx, query, args...)
}

// QueryContext runs query, hedged (see hedgeSession).
func (s *hedgeSession) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pinned {
		return s.cur.conn.QueryContext(ctx, query, args...)
	}
	a := s.query(ctx, query, args)
	if a.err != nil {
		return nil, a.err
	}
	rows, err := s.r.hedge.replay.QueryContext(context.Background(), "", a)
	if err != nil { // not expected: the replay pool does no I/O
		return nil, err
	}
	s.open = append(s.open, rows) // closed with the function's return, if it leaves them open
	return rows, nil
}

// QueryRowContext runs query, hedged (see hedgeSession).
func (s *hedgeSession) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pinned {
		return s.cur.conn.QueryRowContext(ctx, query, args...)
	}
	a := s.query(ctx, query, args)
	// Background: the replay has no I/O to cancel, and a context that can
	// end would cost database/sql a goroutine per row.
	return s.r.hedge.replay.QueryRowContext(context.Background(), "", a)
}

// query runs one statement, hedged, and returns the answer the function
// gets; an answer with live rows is tracked in s.open. The first attempt
// runs on this goroutine, so that a statement answered in time costs no
// hand-off between goroutines: a timer sends the hedge, and a hedge that
// wins cancels the first attempt if it has not answered within its grace
// (see beaten). Under s.mu.
func (s *hedgeSession) query(ctx context.Context, query string, args []any) *answer {
	a := s.cur
	rc := &race{first: a.n, start: time.Now()}
	actx, cancel := context.WithCancel(context.WithValue(ctx, markKey{}, &rc.mark))
	rc.cancelFirst = cancel
	var timer *time.Timer
	if d := s.r.hedgeDelay(a.n); d > 0 {
		rc.wait = d
		timer = time.AfterFunc(d, func() { s.fire(ctx, rc, query, args) })
	}
	ans := firstAnswer(actx, a.conn, query, args)
	s.r.sampleHedge(a.n, ans.took) // also when a hedge canceled it: it took at least that long
	if timer == nil || timer.Stop() {
		return s.keep(ans, cancel) // answered before the timer: nothing else ran
	}
	rc.mu.Lock() // after the timer's fire, if it runs at all
	rc.closed = true
	if rc.again != nil {
		rc.again.Stop()
	}
	h := rc.h
	rc.mu.Unlock()
	if h == nil {
		return s.keep(ans, cancel) // the timer fired but sent no hedge (counted)
	}
	// Its server's own failure (not a cancellation by the hedge or the
	// caller): the hedge may yet answer.
	waiting := ans.err != nil && actx.Err() == nil && classify(ans.err) != ""
	if !waiting && rc.winner.CompareAndSwap(noWinner, firstWins) {
		s.lose(h) // it settles itself, counted lost
		return s.keep(ans, cancel)
	}
	if waiting {
		s.r.hedge.note("first failed") // its server's failure: the hedge may yet answer
		select {
		case <-h.done:
		case <-ctx.Done():
		}
		if !rc.winner.CompareAndSwap(noWinner, firstWins) && rc.winner.Load() == hedgeWins {
			s.judge(a.n, ans) // a failure the function does not see
		}
	}
	if rc.winner.Load() != hedgeWins {
		h.cancel()
		return s.keep(ans, cancel) // the hedge failed too, or the caller gave up
	}
	// The hedge won: the first attempt's answer, if any, is dropped.
	<-h.done
	if ans.rows != nil {
		_ = ans.rows.Close()
	}
	cancel()
	s.releaseFirst(rc, a)
	s.cur = h
	return s.keep(h.ans, h.cancel)
}

// releaseFirst releases the connection of a first attempt the hedge beat:
// at once, or, if a cancel request may have been sent for it (beaten),
// hedgeCancelSettle later, so that a request that lands late cannot
// cancel the connection's next query.
func (s *hedgeSession) releaseFirst(rc *race, a *attempt) {
	if rc.mark.mode.Load() != endBeaten {
		s.r.release(a.n, a.conn)
		return
	}
	h := s.r.hedge
	h.cleanup.Add(1)
	time.AfterFunc(hedgeCancelSettle, func() {
		defer h.cleanup.Done()
		s.r.release(a.n, a.conn)
	})
}

// keep tracks the answer the function gets: its live rows, closed when
// the function returns, and the cancel function of the context they
// stream under, called then.
func (s *hedgeSession) keep(ans *answer, cancel context.CancelFunc) *answer {
	if ans.rows != nil {
		s.open = append(s.open, ans.rows)
		s.done = append(s.done, cancel)
	} else {
		cancel()
	}
	return ans
}

// fire runs when a statement has had no answer within its replica's
// delay: it sends the hedge, unless the first attempt has answered
// meanwhile, no other replica can take it, or the budget is spent (both
// counted). A statement the budget refused asks again after twice the
// last wait, for as long as it runs: about 5 % of statements pass their
// replica's p95, as many as the default budget allows, and the ones that
// keep running (a stalled replica, the case hedging is for) are the ones
// worth the tokens that come in meanwhile. It runs on the timer's
// goroutine, while the read's is in the first attempt.
func (s *hedgeSession) fire(ctx context.Context, rc *race, query string, args []any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.closed {
		return
	}
	r := s.r
	n := s.target()
	switch {
	case n == nil:
		r.hedge.outcome(r, hedgeNoReplica)
		return
	case !r.hedge.budget.take():
		if !rc.refused {
			rc.refused = true
			r.hedge.outcome(r, hedgeNoBudget)
		}
		rc.wait *= 2
		rc.again = time.AfterFunc(rc.wait, func() { s.fire(ctx, rc, query, args) })
		return
	}
	*s.tried |= 1 << n.idx
	h := &attempt{n: n, done: make(chan struct{})}
	hctx, cancel := context.WithCancel(context.WithValue(ctx, markKey{}, &h.mark))
	h.cancel = cancel
	rc.h = h
	r.hedge.cleanup.Add(1)
	go s.runHedge(ctx, hctx, rc, h, query, args)
	r.hedge.note("sent")
}

// runHedge runs the hedge h on a connection of its replica, claims the
// statement if it answers first, and otherwise settles itself: its rows
// closed, its connection released, its outcome counted.
func (s *hedgeSession) runHedge(ctx, hctx context.Context, rc *race, h *attempt, query string, args []any) {
	r := s.r
	defer r.hedge.cleanup.Done()
	var ans *answer
	if conn, err := r.acquire(hctx, h.n); err != nil { // it counts and judges its own failures
		ans = &answer{err: err, counted: true}
	} else {
		h.conn = conn
		ans = firstAnswer(hctx, conn, query, args)
	}
	h.ans = ans
	if ans.err == nil && rc.winner.CompareAndSwap(noWinner, hedgeWins) {
		r.sampleHedge(h.n, ans.took)
		r.hedge.outcome(r, hedgeWon)
		close(h.done) // the read takes the answer, the connection and h.cancel
		time.AfterFunc(time.Until(rc.start.Add(hedgeBeatenAfter*s.grace(rc.first))), func() { s.beaten(rc) })
		return
	}
	// Its rows are closed before its context is canceled: a query whose
	// context ends while its rows are open is canceled on the server.
	if ans.rows != nil {
		_ = ans.rows.Close()
	}
	h.cancel()
	switch {
	case rc.winner.Load() == firstWins || ctx.Err() != nil:
		r.hedge.outcome(r, hedgeLost)
	default:
		s.judge(h.n, ans)
		r.hedge.outcome(r, hedgeFailed)
	}
	if h.conn != nil {
		r.release(h.n, h.conn)
	}
	close(h.done)
}

// An attempt that lost is not canceled outright: one that ends by itself
// costs PostgreSQL far less than a canceled one. A cancel request is a
// new connection (a process forked on the server, and pgx then holds the
// canceled connection for 100 ms), and a connection pgx cannot wait for
// is dropped and later opened again (another fork). Most attempts that
// lose were merely slow, not stalled (with replicas alike about half the
// hedges win, and most of the others lose by a little): canceling them
// at once cost more than the hedges themselves (docs/benchmarks.md).
//
// lose gives up a hedge that the first attempt beat: it is marked lost
// and its context canceled, which pgx answers by letting its query run
// for hedgeLoserGrace more, canceling it on the server past that, and
// keeping the connection (cancel.go). Its goroutine then closes its rows
// and releases its connection; no read waits for it.
func (s *hedgeSession) lose(h *attempt) {
	h.mark.mode.Store(endLost)
	h.cancel()
}

// grace is the unit of a beaten first attempt's time on n: n's delay, at
// least Hedge.MinDelay. The first attempt runs on the read's goroutine,
// so the read waits for it even when the hedge has answered: until
// hedgeBeatenAfter delays after it started, by when a statement merely
// slow has ended by itself, then hedgeAbortWait more for its server to
// abort it on a cancel request. A stalled first attempt so costs the read
// at most 6 delays (60 ms at the default floor), and a cancel request
// (a process forked on the server) is spent only on one that needs it.
func (s *hedgeSession) grace(n *node) time.Duration {
	return max(s.r.hedgeDelay(n), s.r.hedge.cfg.MinDelay)
}

// beaten cancels a first attempt the hedge beat, once its time is over
// (a no-op if it has answered): a cancel request, which keeps the
// connection, and pgx drops the connection if the server has not aborted
// the query hedgeAbortWait delays later (a stopped server, a cut link).
func (s *hedgeSession) beaten(rc *race) {
	rc.mark.abort.Store(int64(hedgeAbortWait * s.grace(rc.first)))
	rc.mark.mode.Store(endBeaten)
	rc.cancelFirst()
}

// target picks the hedge's replica as a read picks its own: in the
// region first, then any, by load and latency, leaving out the replicas
// the read has tried, and, for a read carrying a token, those not known
// to have replayed it (a hedge does not wait for replay).
func (s *hedgeSession) target() *node {
	v := s.r.view.Load()
	for _, cands := range [][]*node{v.local, v.healthy} {
		if n := pick(cands, *s.tried, s.tok); n != nil {
			return n
		}
	}
	return nil
}

// judge counts a failure of n that the function does not see (it got the
// other attempt's answer), and ejects n on a connection failure, as a
// read's own failure would.
func (s *hedgeSession) judge(n *node, ans *answer) {
	if ans == nil || ans.err == nil || ans.counted {
		return
	}
	s.r.countError(n, ans.err)
	if classify(ans.err) == kindConnection {
		s.r.eject(n, ans.err.Error())
	}
}

// finish closes the live rows the function was handed (closing them is
// what lets a connection go) and releases the read's connection.
func (s *hedgeSession) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rows := range s.open {
		_ = rows.Close()
	}
	for _, cancel := range s.done {
		cancel()
	}
	s.open, s.done = nil, nil
	s.r.release(s.cur.n, s.cur.conn)
}

// sampleHedge records one time to first answer on n for its p95.
func (r *Router) sampleHedge(n *node, d time.Duration) {
	n.est.add(r.clk.Now(), d)
}

// runHedged is run for a hedged read (Config.Hedge): fn runs on a
// hedgeSession over a connection of n. The call's time counts on n, the
// replica the read started on (a hedge that won shortens it); a failure
// is n's or, after a hedge won, the hedge replica's.
func (r *Router) runHedged(ctx context.Context, n *node, tok Token, tried *uint64, fn func(ctx context.Context, q Querier) error) (retry bool, err error) {
	conn, err := r.acquire(ctx, n)
	if err != nil {
		return ctx.Err() == nil, err
	}
	s := &hedgeSession{r: r, tok: tok, tried: tried, cur: &attempt{n: n, conn: conn}}
	s.open, s.done = s.openRoom[:0], s.doneRoom[:0]
	defer s.finish()
	if tok != 0 && Token(n.replay.Load()) < tok {
		if err := r.waitReplay(ctx, n, conn, tok); err != nil {
			return ctx.Err() == nil, err
		}
	}
	t0 := time.Now()
	err = fn(ctx, s)
	s.mu.Lock()
	on := s.cur.n
	s.mu.Unlock()
	r.observeTime(n, t0)
	if err == nil {
		return false, nil
	}
	r.countError(on, err)
	if ctx.Err() != nil {
		return false, err
	}
	kind := classify(err)
	if kind == "" {
		return false, err // the query's own error: the same everywhere
	}
	if kind == kindConnection {
		r.eject(on, err.Error())
	}
	return true, &serverError{node: on.name, kind: kind, err: err}
}
