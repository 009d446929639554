package replica

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-dev/strata/internal/deadline"
)

// TestDelayEstimate: the p95 of the recent samples, none below
// hedgeMinSamples, old samples aged out on the router's clock.
func TestDelayEstimate(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		samples []time.Duration // one per 10 ms of fake time, oldest first
		age     time.Duration   // then the clock moves on by this, and the p95 is recomputed
		want    time.Duration
	}{
		// Too few samples: no p95, so nothing on the replica is hedged.
		{"19 samples", repeat(ms, 19), 0, 0},
		// 20 equal samples: that value.
		{"20 equal", repeat(ms, 20), 0, ms},
		// 1..20 ms: the 19th of 20 (ceil(0.95 × 20)).
		{"1 to 20 ms", ramp(20), 0, 19 * ms},
		// 1..100 ms: the 95th.
		{"1 to 100 ms", ramp(100), 0, 95 * ms},
		// 200 samples: only the last 128 (73..200 ms) are kept; the 122nd of them.
		{"window of 128", ramp(200), 0, 194 * ms},
		// One slow sample in 40 is under the top 5 %: it does not lift the p95.
		{"one outlier in 40", append(repeat(ms, 39), time.Second), 0, ms},
		// Three in 40 are: the p95 is slow.
		{"three outliers in 40", append(repeat(ms, 37), repeat(time.Second, 3)...), 0, time.Second},
		// Samples older than hedgeWindowAge do not count: no p95 left.
		{"aged out", repeat(ms, 50), hedgeWindowAge, 0},
		// Just younger than that they still count.
		{"not yet aged", repeat(ms, 50), hedgeWindowAge - time.Second, ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewFakeClock()
			var e delayEstimate
			for _, d := range tc.samples {
				e.add(clk.Now(), d)
				clk.Advance(10 * time.Millisecond)
			}
			clk.Advance(tc.age)
			e.recompute(clk.Now())
			if got := e.get(); got != tc.want {
				t.Fatalf("p95 %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDelayEstimateRecomputes: the p95 follows the samples without a
// health check, every hedgeRecompute samples.
func TestDelayEstimateRecomputes(t *testing.T) {
	clk := NewFakeClock()
	var e delayEstimate
	for range 2 * hedgeRecompute { // 32 samples: recomputed at 16 (too few) and 32
		e.add(clk.Now(), time.Millisecond)
	}
	if got := e.get(); got != time.Millisecond {
		t.Fatalf("after %d samples, p95 %v; want 1ms without an explicit recompute", 2*hedgeRecompute, got)
	}
	for range hedgeRecompute { // now half the samples are 1 s
		e.add(clk.Now(), time.Second)
	}
	if got := e.get(); got != time.Second {
		t.Fatalf("p95 %v after slow samples, want 1s", got)
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = d
	}
	return s
}

func ramp(n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = time.Duration(i+1) * time.Millisecond
	}
	return s
}

// TestHedgeBudget: hedges never exceed the share of reads, from the first
// read on; a quiet spell saves up at most hedgeBurst.
func TestHedgeBudget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		share  float64
		reads  int
		burst  bool // every hedge is asked for after all the reads (a quiet spell, then a stall)
		hedges int  // hedges granted when one is asked for after every read
	}{
		// The default: one hedge per 20 reads.
		{"5 % of 1000", DefaultHedgeBudget, 1000, false, 50},
		// Fewer reads than one token takes: none.
		{"5 % of 19", DefaultHedgeBudget, 19, false, 0},
		// A share of 1: a hedge per read.
		{"100 % of 30", 1, 30, false, 30},
		// 1000 reads with no hedge asked for save up 10, not 50.
		{"burst after 1000 quiet reads", DefaultHedgeBudget, 1000, true, hedgeBurst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newHedgeBudget(tc.share)
			granted := 0
			for range tc.reads {
				b.deposit()
				if !tc.burst && b.take() {
					granted++
				}
			}
			for tc.burst && b.take() {
				granted++
			}
			if granted != tc.hedges {
				t.Fatalf("%d hedges granted, want %d", granted, tc.hedges)
			}
		})
	}
}

// TestHedgeBudgetConcurrent: from parallel readers, hedges stay within
// the share of the reads.
func TestHedgeBudgetConcurrent(t *testing.T) {
	b := newHedgeBudget(DefaultHedgeBudget)
	var granted atomic.Int64
	var wg sync.WaitGroup
	const workers, reads = 8, 5000
	for range workers {
		wg.Go(func() {
			for range reads {
				b.deposit()
				if b.take() {
					granted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if g, limit := granted.Load(), int64(DefaultHedgeBudget*workers*reads); g > limit || g < limit-hedgeBurst {
		t.Fatalf("%d hedges of %d reads; want at most %d (5 %%) and not much fewer", g, workers*reads, limit)
	}
}

// fakeServer is a database/sql driver standing in for one server: every
// query answers rows rows of (its name, row number), at once, or once
// gate is closed (or the query's context ends, unless deaf).
type fakeServer struct {
	name   string
	region string
	rows   int
	gate   chan struct{} // nil: answer at once
	deaf   bool          // answer only when gate closes, even after the query's context ended
	err    error         // answer this error (after the gate)
	// grace: a query whose context ends after its attempt lost still
	// waits this long for the gate, as pgx lets a lost attempt's query run
	// on (cancel.go); 0: canceled at once.
	grace time.Duration

	started     chan struct{} // closed when the first query arrives
	startedOnce sync.Once

	queries, canceled, rowsClosed, conns atomic.Int64
}

func newFake(name string) *fakeServer {
	return &fakeServer{name: name, rows: 1, started: make(chan struct{})}
}

func (s *fakeServer) Connect(context.Context) (driver.Conn, error) {
	s.conns.Add(1)
	return &fakeConn{s: s}, nil
}
func (s *fakeServer) Driver() driver.Driver { return fakeDriver{s} }

type fakeDriver struct{ s *fakeServer }

func (d fakeDriver) Open(string) (driver.Conn, error) { return d.s.Connect(context.Background()) }

type fakeConn struct{ s *fakeServer }

var errFake = errors.New("fake: not supported")

func (c *fakeConn) Prepare(string) (driver.Stmt, error) { return nil, errFake }
func (c *fakeConn) Close() error                        { c.s.conns.Add(-1); return nil }
func (c *fakeConn) Begin() (driver.Tx, error)           { return fakeTx{}, nil }
func (c *fakeConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	return fakeTx{}, nil
}
func (c *fakeConn) CheckNamedValue(*driver.NamedValue) error { return nil }
func (c *fakeConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(0), nil
}

func (c *fakeConn) QueryContext(ctx context.Context, _ string, _ []driver.NamedValue) (driver.Rows, error) {
	s := c.s
	s.queries.Add(1)
	s.startedOnce.Do(func() { close(s.started) })
	if s.gate != nil {
		if s.deaf {
			<-s.gate
		} else {
			select {
			case <-s.gate:
			case <-ctx.Done():
				if !s.graceful(ctx) {
					s.canceled.Add(1)
					return nil, ctx.Err()
				}
			}
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return &fakeRows{s: s}, nil
}

// graceful waits out a lost attempt's grace for the gate; false if it
// did not open (the query is canceled).
func (s *fakeServer) graceful(ctx context.Context) bool {
	if m, ok := ctx.Value(markKey{}).(*attemptMark); !ok || m.mode.Load() != endLost || s.grace == 0 {
		return false
	}
	select {
	case <-s.gate:
		return true
	case <-time.After(s.grace):
		return false
	}
}

type fakeTx struct{}

func (fakeTx) Commit() error   { return nil }
func (fakeTx) Rollback() error { return nil }

type fakeRows struct {
	s *fakeServer
	i int
}

func (r *fakeRows) Columns() []string { return []string{"server", "i"} }
func (r *fakeRows) Close() error      { r.s.rowsClosed.Add(1); return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.i >= r.s.rows {
		return io.EOF
	}
	dest[0], dest[1] = r.s.name, int64(r.i)
	r.i++
	return nil
}

// fakeRouter returns a router over fake servers, as Open would make it
// but for what needs PostgreSQL (the identity checks and the health
// loop): the first server is the primary, the others replicas.
func fakeRouter(t testing.TB, cfg Config, servers ...*fakeServer) *Router {
	t.Helper()
	cfg.Primary = "postgres://fake@127.0.0.1/" + servers[0].name
	for _, s := range servers[1:] {
		cfg.Replicas = append(cfg.Replicas, Replica{URL: "postgres://fake@127.0.0.1/" + s.name, Name: s.name, Region: s.region})
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Registerer = prometheus.NewPedanticRegistry()
	UseClock(&cfg, NewFakeClock())
	if err := cfg.resolve(); err != nil {
		t.Fatal(err)
	}
	life, cancel := context.WithCancel(context.Background())
	r := &Router{cfg: cfg, clk: cfg.clock, m: newMetrics(cfg.Registerer), cancel: cancel}
	r.fb.start = r.clk.Now()
	mk := func(idx int, s *fakeServer, p Pool) *node {
		return &node{idx: idx, name: s.name, region: s.region, display: s.name, db: sql.OpenDB(s), checkDB: sql.OpenDB(s),
			capacity: int64(p.Size + p.Overflow), acquire: p.AcquireTimeout, slots: deadline.New(life, p.AcquireTimeout),
			observer: r.m.queries.WithLabelValues(s.name), up: true}
	}
	r.primary = mk(-1, servers[0], cfg.PrimaryPool)
	for i, s := range servers[1:] {
		r.replicas = append(r.replicas, mk(i, s, cfg.ReplicaPool))
	}
	r.startHedging()
	if err := r.m.register(r); err != nil {
		t.Fatal(err)
	}
	r.rebuild()
	t.Cleanup(func() { r.Close() })
	return r
}

func (r *Router) nodeNamed(name string) *node {
	for _, n := range append([]*node{r.primary}, r.replicas...) {
		if n.name == name {
			return n
		}
	}
	return nil
}

// primeDelay gives replica name a p95 of d.
func (r *Router) primeDelay(name string, d time.Duration) {
	n := r.nodeNamed(name)
	for range hedgeMinSamples {
		n.est.add(r.clk.Now(), d)
	}
	n.est.recompute(r.clk.Now())
}

// scanRow is a read function that scans one row's server name into got.
func scanRow(got *string) func(ctx context.Context, q Querier) error {
	return func(ctx context.Context, q Querier) error {
		var i int64
		return q.QueryRowContext(ctx, "SELECT server, i").Scan(got, &i)
	}
}

// hedgeCase is one hedged read over a slow replica (in the router's
// region, so tried first) and a fast one.
type hedgeCase struct {
	name   string
	hedge  Hedge
	delay  time.Duration                 // the slow replica's p95
	setup  func(slow, fast *fakeServer)  // before the read
	on     map[string]func(c *caseState) // run when the router reports the event
	read   func(r *Router, c *caseState) error
	want   string         // the server whose answer the read got
	wantN  int            // rows the read got (default 1)
	errIs  error          // the read's error, if it fails
	counts map[string]int // hedge outcomes (the others 0)
	after  func(t *testing.T, r *Router, slow, fast *fakeServer)
}

// caseState is what a case's events and read share.
type caseState struct {
	r          *Router
	slow, fast *fakeServer
	cancel     context.CancelFunc
	got        []string
}

// TestHedgedRead: a hedged read gets exactly one answer per statement,
// the first that succeeds; the other attempt is canceled, its rows,
// answered late or not, never reach the read function, and every
// connection is released. Events are ordered by the router's own
// reports, not by sleeping.
func TestHedgedRead(t *testing.T) {
	on := Hedge{Enabled: true, Budget: 1, MinDelay: time.Millisecond}
	openGate := func(s func(c *caseState) *fakeServer) func(c *caseState) {
		return func(c *caseState) { close(s(c).gate) }
	}
	slowOf := func(c *caseState) *fakeServer { return c.slow }
	fastOf := func(c *caseState) *fakeServer { return c.fast }
	gated := func(slow, _ *fakeServer) { slow.gate = make(chan struct{}) }
	// hangs: the slow replica hangs, and the fast one answers only once
	// the slow one has the query, so that there is a query to cancel.
	hangs := func(slow, fast *fakeServer) { slow.gate, fast.gate = make(chan struct{}), slow.started }
	for _, tc := range []hedgeCase{
		// The first attempt hangs past the p95: the hedge answers, the
		// first attempt's query is canceled.
		{name: "hedge wins", hedge: on, delay: time.Millisecond, setup: hangs,
			want: "fast", counts: map[string]int{hedgeWon: 1},
			after: func(t *testing.T, r *Router, slow, _ *fakeServer) {
				r.hedge.cleanup.Wait()
				if slow.canceled.Load() != 1 {
					t.Errorf("the slow attempt's query was not canceled (%d)", slow.canceled.Load())
				}
			}},
		// A first attempt that answers after the hedge won (a server
		// that ignores the cancellation): its rows are closed, never
		// scanned into the read's variables (the race detector watches
		// them too).
		{name: "a late first answer never leaks", hedge: on, delay: time.Millisecond,
			setup: func(slow, fast *fakeServer) { hangs(slow, fast); slow.deaf = true },
			on:    map[string]func(*caseState){hedgeWon: openGate(slowOf)},
			want:  "fast", counts: map[string]int{hedgeWon: 1},
			after: func(t *testing.T, r *Router, slow, _ *fakeServer) {
				r.hedge.cleanup.Wait()
				if slow.rowsClosed.Load() != 1 {
					t.Errorf("the late answer's rows: %d closed, want 1", slow.rowsClosed.Load())
				}
			}},
		// A hedge that answers after the first attempt won (and it was
		// canceled): its rows are closed on its own goroutine, never
		// handed to the read.
		{name: "a late hedge never leaks", hedge: on, delay: time.Millisecond,
			setup: func(slow, fast *fakeServer) {
				slow.gate = make(chan struct{})
				fast.gate, fast.deaf = make(chan struct{}), true
			},
			on: map[string]func(*caseState){"sent": func(c *caseState) {
				<-c.fast.started // the hedge's query is on its server
				close(c.slow.gate)
			}},
			want: "slow", counts: map[string]int{hedgeLost: 1},
			after: func(t *testing.T, r *Router, _, fast *fakeServer) {
				close(fast.gate) // now it answers
				r.hedge.cleanup.Wait()
				if fast.rowsClosed.Load() != 1 {
					t.Errorf("the late hedge's rows: %d closed, want 1", fast.rowsClosed.Load())
				}
			}},
		// A hedge beaten by the first attempt is left to finish (within
		// its grace, pgx's part), not canceled at once: a query that ends
		// by itself costs the server less than a cancel.
		{name: "a lost hedge finishes by itself", hedge: on, delay: time.Millisecond,
			setup: func(slow, fast *fakeServer) {
				slow.gate, fast.gate, fast.grace = make(chan struct{}), make(chan struct{}), time.Minute
			},
			on: map[string]func(*caseState){"sent": func(c *caseState) {
				<-c.fast.started
				close(c.slow.gate)
			}},
			want: "slow", counts: map[string]int{hedgeLost: 1},
			after: func(t *testing.T, r *Router, _, fast *fakeServer) {
				close(fast.gate) // it answers, after the read
				r.hedge.cleanup.Wait()
				if fast.canceled.Load() != 0 || fast.rowsClosed.Load() != 1 {
					t.Errorf("the lost hedge: %d canceled, %d rows closed; want it left to answer (0, 1)", fast.canceled.Load(), fast.rowsClosed.Load())
				}
			}},
		// A first attempt beaten by the hedge has its grace (its replica's
		// delay, here 200 ms) to answer before it is canceled, the read
		// waiting for it meanwhile; answering within it, it keeps its
		// connection, and the read gets the hedge's answer, the first one.
		{name: "a beaten first attempt has its grace", hedge: on, delay: 200 * time.Millisecond, setup: hangs,
			on:   map[string]func(*caseState){hedgeWon: openGate(slowOf)},
			want: "fast", counts: map[string]int{hedgeWon: 1},
			after: func(t *testing.T, r *Router, slow, _ *fakeServer) {
				if slow.canceled.Load() != 0 || slow.rowsClosed.Load() != 1 {
					t.Errorf("the beaten first attempt: %d canceled, %d rows closed; want it left to answer (0, 1)", slow.canceled.Load(), slow.rowsClosed.Load())
				}
			}},
		// Answered within the p95: no hedge.
		{name: "no hedge when in time", hedge: on, delay: time.Minute, want: "slow"},
		// Past the p95 with the budget spent: the first attempt's answer.
		{name: "budget spent", hedge: Hedge{Enabled: true, Budget: 0.001, MinDelay: time.Millisecond}, delay: time.Millisecond, setup: gated,
			on:   map[string]func(*caseState){hedgeNoBudget: openGate(slowOf)},
			want: "slow", counts: map[string]int{hedgeNoBudget: 1}},
		// Refused by the budget, the statement asks again (at twice the
		// delay) and gets the token that came in meanwhile.
		{name: "budget refuses, then grants", hedge: Hedge{Enabled: true, Budget: 0.001, MinDelay: time.Millisecond}, delay: time.Millisecond,
			setup: hangs,
			on: map[string]func(*caseState){hedgeNoBudget: func(c *caseState) {
				c.r.hedge.budget.tokens.Add(tokenUnit) // another read's deposits
			}},
			want: "fast", counts: map[string]int{hedgeNoBudget: 1, hedgeWon: 1}},
		// A read carrying a token hedges only to a replica known to have
		// replayed it: here none.
		{name: "token not replayed elsewhere", hedge: on, delay: time.Millisecond, setup: gated,
			on: map[string]func(*caseState){hedgeNoReplica: openGate(slowOf)},
			read: func(r *Router, c *caseState) error {
				r.nodeNamed("slow").replay.Store(100)
				r.nodeNamed("fast").replay.Store(10)
				return r.Read(WithToken(context.Background(), 50), scanRow(&c.got[0]))
			},
			want: "slow", counts: map[string]int{hedgeNoReplica: 1}},
		// The only other replica is out of the rotation: no hedge (never the primary).
		{name: "no other replica", hedge: on, delay: time.Millisecond, setup: gated,
			on: map[string]func(*caseState){hedgeNoReplica: openGate(slowOf)},
			read: func(r *Router, c *caseState) error {
				r.eject(r.nodeNamed("fast"), "test")
				return r.Read(context.Background(), scanRow(&c.got[0]))
			},
			want: "slow", counts: map[string]int{hedgeNoReplica: 1},
			after: func(t *testing.T, r *Router, _, _ *fakeServer) {
				if n := r.nodeNamed("primary").calls.Load(); n != 0 {
					t.Errorf("%d calls on the primary, want none", n)
				}
			}},
		// The hedge fails (too many connections): the first attempt's answer,
		// and the failure counted on the hedge's replica.
		{name: "hedge fails", hedge: on, delay: time.Millisecond,
			setup: func(slow, fast *fakeServer) {
				slow.gate, fast.err = make(chan struct{}), &pgconn.PgError{Code: "53300"}
			},
			on:   map[string]func(*caseState){hedgeFailed: openGate(slowOf)},
			want: "slow", counts: map[string]int{hedgeFailed: 1},
			after: func(t *testing.T, r *Router, _, _ *fakeServer) {
				r.hedge.cleanup.Wait()
				if n := testutil.ToFloat64(r.m.errors.WithLabelValues("fast", kindRetryable)); n != 1 {
					t.Errorf("retryable errors on fast: %v, want 1", n)
				}
			}},
		// The first attempt fails (a recovery conflict) while the hedge
		// runs: the read waits for the hedge, which answers.
		{name: "first fails, hedge answers", hedge: on, delay: time.Millisecond,
			setup: func(slow, fast *fakeServer) {
				slow.gate, slow.err = make(chan struct{}), &pgconn.PgError{Code: "40001"}
				fast.gate = make(chan struct{})
			},
			on:   map[string]func(*caseState){"sent": openGate(slowOf), "first failed": openGate(fastOf)},
			want: "fast", counts: map[string]int{hedgeWon: 1},
			after: func(t *testing.T, r *Router, _, _ *fakeServer) {
				if n := testutil.ToFloat64(r.m.errors.WithLabelValues("slow", kindRetryable)); n != 1 {
					t.Errorf("retryable errors on slow: %v, want 1", n)
				}
			}},
		// Rows after the first stream from the winner, in order.
		{name: "the hedge's rows stream", hedge: on, delay: time.Millisecond,
			setup: func(slow, fast *fakeServer) { slow.gate, fast.rows = make(chan struct{}), 3 },
			read:  readRows, want: "fast", wantN: 3, counts: map[string]int{hedgeWon: 1}},
		// And from the first attempt when no hedge was needed.
		{name: "the first attempt's rows stream", hedge: on, delay: time.Minute,
			setup: func(slow, _ *fakeServer) { slow.rows = 3 },
			read:  readRows, want: "slow", wantN: 3},
		// The caller gives up while both hang: both are canceled and released.
		{name: "caller gives up", hedge: on, delay: time.Millisecond,
			setup: func(slow, fast *fakeServer) { slow.gate, fast.gate = make(chan struct{}), make(chan struct{}) },
			on: map[string]func(*caseState){"sent": func(c *caseState) {
				<-c.slow.started // both queries on their servers (the hedge's goroutine runs on)
				<-c.fast.started
				c.cancel()
			}},
			errIs: context.Canceled, counts: map[string]int{hedgeLost: 1},
			after: func(t *testing.T, r *Router, slow, fast *fakeServer) {
				r.hedge.cleanup.Wait()
				if slow.canceled.Load() != 1 || fast.canceled.Load() != 1 {
					t.Errorf("canceled queries: slow %d, fast %d; want 1 each", slow.canceled.Load(), fast.canceled.Load())
				}
			}},
		// After an Exec (which may set session state) nothing is hedged.
		{name: "exec pins the connection", hedge: on, delay: time.Millisecond, setup: gated,
			read: func(r *Router, c *caseState) error {
				timeout := time.AfterFunc(50*time.Millisecond, func() { close(c.slow.gate) }) // 50 × the hedge delay
				defer timeout.Stop()
				return r.Read(context.Background(), func(ctx context.Context, q Querier) error {
					if _, err := q.ExecContext(ctx, "SET application_name = 'x'"); err != nil {
						return err
					}
					return scanRow(&c.got[0])(ctx, q)
				})
			},
			want: "slow"},
		// A transaction's statements are never hedged (and its function
		// gets the *sql.Conn's transaction, as without hedging).
		{name: "ReadTx is not hedged", hedge: on, delay: time.Millisecond, setup: gated,
			read: func(r *Router, c *caseState) error {
				timeout := time.AfterFunc(50*time.Millisecond, func() { close(c.slow.gate) })
				defer timeout.Stop()
				return r.ReadTx(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
					var i int64
					return tx.QueryRowContext(ctx, "SELECT server, i").Scan(&c.got[0], &i)
				})
			},
			want: "slow"},
	} {
		t.Run(tc.name, func(t *testing.T) { runHedgeCase(t, tc) })
	}
}

// readRows reads every row of one query into c.got, checking the
// columns and the order.
func readRows(r *Router, c *caseState) error {
	return r.Read(context.Background(), func(ctx context.Context, q Querier) error {
		rows, err := q.QueryContext(ctx, "SELECT server, i")
		if err != nil {
			return err
		}
		defer rows.Close()
		if cols, _ := rows.Columns(); !slices.Equal(cols, []string{"server", "i"}) {
			return fmt.Errorf("columns %v", cols)
		}
		c.got = c.got[:0]
		for rows.Next() {
			var s string
			var i int64
			if err := rows.Scan(&s, &i); err != nil {
				return err
			}
			if int(i) != len(c.got) {
				return fmt.Errorf("row %d numbered %d", len(c.got), i)
			}
			c.got = append(c.got, s)
		}
		return rows.Err()
	})
}

func runHedgeCase(t *testing.T, tc hedgeCase) {
	slow, fast := newFake("slow"), newFake("fast")
	slow.region = "near"
	if tc.setup != nil {
		tc.setup(slow, fast)
	}
	r := fakeRouter(t, Config{Region: "near", Hedge: tc.hedge}, newFake("primary"), slow, fast)
	r.primeDelay("slow", tc.delay)
	c := &caseState{r: r, slow: slow, fast: fast, got: make([]string, 1)}
	var mu sync.Mutex
	var events []string
	r.hedge.event = func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		if f := tc.on[e]; f != nil {
			f(c)
		}
	}
	read := tc.read
	if read == nil {
		read = func(r *Router, c *caseState) error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c.cancel = cancel
			return r.Read(ctx, scanRow(&c.got[0]))
		}
	}
	err := read(r, c)
	switch {
	case tc.errIs != nil && !errors.Is(err, tc.errIs):
		t.Fatalf("err = %v, want %v", err, tc.errIs)
	case tc.errIs == nil && err != nil:
		t.Fatal(err)
	}
	if tc.after != nil { // before waiting for the cleanups: it may have to let one end
		tc.after(t, r, slow, fast)
	}
	r.hedge.cleanup.Wait()
	if tc.errIs == nil {
		want := repeatString(tc.want, max(tc.wantN, 1))
		if !slices.Equal(c.got, want) {
			t.Errorf("the read got %v, want %v (events %v)", c.got, want, events)
		}
	}
	for _, o := range []string{hedgeWon, hedgeLost, hedgeFailed, hedgeNoBudget, hedgeNoReplica} {
		if got := testutil.ToFloat64(r.m.hedges.WithLabelValues(o)); got != float64(tc.counts[o]) {
			t.Errorf("hedges{outcome=%s} = %v, want %d (events %v)", o, got, tc.counts[o], events)
		}
	}
	for _, n := range r.replicas {
		if in := n.inUse.Load(); in != 0 {
			t.Errorf("%s: %d calls still hold a connection", n.name, in)
		}
		if st := n.db.Stats(); st.InUse != 0 {
			t.Errorf("%s: %d pool connections in use", n.name, st.InUse)
		}
	}
}

func repeatString(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// BenchmarkHedgedReadFastPath: one single-row read on an in-memory
// driver (no I/O, so the router's own cost shows), with hedging off, and
// on with no hedge fired (the replica's p95 is a minute): the overhead
// hedging adds to every read it does not hedge. The read's context can
// be canceled, as a request's can (database/sql then watches it with a
// goroutine per query, hedged or not).
func BenchmarkHedgedReadFastPath(b *testing.B) {
	for _, bc := range []struct {
		name  string
		hedge Hedge
	}{
		{"off", Hedge{}},
		{"on", Hedge{Enabled: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := fakeRouter(b, Config{Hedge: bc.hedge}, newFake("primary"), newFake("replica1"), newFake("replica2"))
			if r.hedge != nil {
				r.primeDelay("replica1", time.Minute)
				r.primeDelay("replica2", time.Minute)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var got string
			fn := scanRow(&got)
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Read(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
