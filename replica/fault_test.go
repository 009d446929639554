package replica_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/replica"
)

// private returns a router over a cluster of the test's own, which the
// test may kill and pause, with the kv table in place on every server and
// replayed by both replicas.
func private(t *testing.T, cfg replica.Config) (*testdb.PGCluster, *replica.Router) {
	t.Helper()
	c := testdb.StartPostgresCluster(t)
	cfg.Primary = c.PrimaryURL()
	for _, u := range c.ReplicaURLs() {
		cfg.Replicas = append(cfg.Replicas, replica.Replica{URL: u})
	}
	r := open(t, cfg)
	waitServing(t, c, r, setup(t, r))
	return c, r
}

// waitServing waits until both replicas have replayed tok and serve reads.
func waitServing(t testing.TB, c *testdb.PGCluster, r *replica.Router, tok replica.Token) {
	t.Helper()
	for _, u := range c.ReplicaURLs() {
		waitReplayed(t, u, tok)
	}
	// The router learns the replay positions; a check that timed out on a
	// loaded machine may have ejected a replica, which two good ones bring
	// back.
	waitFor(t, 30*time.Second, "both replicas serving, with the write replayed", func() bool {
		r.CheckNow()
		for _, s := range r.Status() {
			if !s.Serving || s.Replayed < tok {
				return false
			}
		}
		return true
	})
}

// The fake-clock tests check with these: time in them is the fake clock's,
// but each check's budget (four fifths of the interval) is real, and on a
// loaded machine a check may take a while.
const testInterval, testBound = 2 * time.Second, 4 * time.Second

// waitReplayed waits, at most 20 s, until the server at url has replayed
// tok: replication on a real server, which the test cannot step.
func waitReplayed(t testing.TB, url string, tok replica.Token) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var s sql.NullString
		err := db.QueryRow("SELECT pg_last_wal_replay_lsn()::text").Scan(&s)
		if err == nil && s.Valid {
			if got, err := replica.ParseToken(s.String); err == nil && got >= tok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has not replayed %v within 20 s (at %q, %v)", url, tok, s.String, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// position returns the server's current WAL insert position (a primary).
func position(t *testing.T, url string) replica.Token {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s string
	if err := db.QueryRow("SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		t.Fatal(err)
	}
	tok, err := replica.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func status(r *replica.Router, name string) replica.Status {
	for _, s := range r.Status() {
		if s.Name == name {
			return s
		}
	}
	return replica.Status{Reason: "no such replica"}
}

// waitFor polls cond until it holds, at most within (generous: it waits
// for real servers and the router's own health loop).
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counter returns a counter of reg with the given label, or 0.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// load reads kv from workers goroutines until stop is closed, counting
// reads and failures.
type load struct {
	reads, failed atomic.Int64
	firstErr      atomic.Value
	stop          chan struct{}
	wg            sync.WaitGroup
}

func startLoad(r *replica.Router, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := r.Read(ctx, func(ctx context.Context, q replica.Querier) error {
					var v int
					return q.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 1").Scan(&v)
				})
				cancel()
				l.reads.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err)
				}
				time.Sleep(time.Millisecond) // a steady load, not a flood
			}
		}()
	}
	return l
}

// more waits until the load has made n more reads.
func (l *load) more(t *testing.T, n int64) {
	t.Helper()
	target := l.reads.Load() + n
	waitFor(t, 30*time.Second, "the read load to go on", func() bool { return l.reads.Load() >= target })
}

func (l *load) end(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d reads failed; first: %v", n, l.reads.Load(), l.firstErr.Load())
	}
	t.Logf("%d reads, %d failed", l.reads.Load(), l.failed.Load())
}

// TestReplicaKilled: kill -9 of a replica's postmaster under a steady read
// load fails no read and ejects it; a restart brings it back into the
// rotation. It runs on the real clock, with the router's own health loop.
func TestReplicaKilled(t *testing.T) {
	c, r := private(t, replica.Config{})
	l := startLoad(r, 4)
	l.more(t, 50)
	c.Kill("replica1")
	killed := time.Now()
	waitFor(t, 10*time.Second, "replica1 ejected after kill -9", func() bool { return !status(r, "replica1").Serving })
	t.Logf("ejected %v after the kill", time.Since(killed))
	l.more(t, 50) // reads go on with one replica
	c.Start("replica1")
	waitFor(t, 30*time.Second, "replica1 serving again after its restart", func() bool { return status(r, "replica1").Serving })
	l.more(t, 50)
	l.end(t)
}

// TestPausedReplayEjectsAndReadYourWrites: a replica whose replay is
// paused is ejected once its lag passes the bound, and not before; all
// along, a session that writes and then reads with its token sees its own
// write. Time is the router's fake clock, a check per step.
func TestPausedReplayEjectsAndReadYourWrites(t *testing.T) {
	const bound, interval = testBound, testInterval
	clk := replica.NewFakeClock()
	cfg := replica.Config{LagBound: bound, CheckInterval: interval}
	replica.UseClock(&cfg, clk)
	c, r := private(t, cfg)
	c.PauseReplay("replica2")
	ctx := context.Background()
	var elapsed time.Duration
	for i := 1; ; i++ {
		tok, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, "UPDATE kv SET v = $1 WHERE k = 1", i)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var v int
		if err := r.Read(replica.WithToken(ctx, tok), func(ctx context.Context, q replica.Querier) error {
			return q.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 1").Scan(&v)
		}); err != nil {
			t.Fatal(err)
		}
		if v != i {
			t.Fatalf("write %d, then a read with its token saw %d", i, v)
		}
		waitReplayed(t, c.ReplicaURLs()[0], tok) // replica1 keeps up: only replica2 lags
		clk.Advance(interval)
		elapsed += interval
		r.CheckNow()
		if !status(r, "replica1").Serving {
			t.Fatalf("replica1, which keeps up, ejected: %s", status(r, "replica1").Reason)
		}
		s := status(r, "replica2")
		if s.Serving && elapsed > bound+2*interval {
			t.Fatalf("replica2 still serving %v after its replay paused (lag %.2fs); bound %v", elapsed, s.LagSeconds, bound)
		}
		if !s.Serving {
			if elapsed < bound {
				t.Fatalf("replica2 ejected %v after its replay paused, before the bound %v: %s", elapsed, bound, s.Reason)
			}
			t.Logf("replica2 ejected %v after the pause: %s", elapsed, s.Reason)
			break
		}
	}
	c.ResumeReplay("replica2")
	waitReplayed(t, c.ReplicaURLs()[1], position(t, c.PrimaryURL()))
	waitFor(t, 30*time.Second, "replica2 re-admitted after it caught up (two good checks)", func() bool {
		clk.Advance(interval)
		r.CheckNow()
		return status(r, "replica2").Serving
	})
}

// TestAllReplicasDown: with both replicas killed and the primary healthy,
// every read falls back to the primary and none fails, even just after a
// call of a second (as one stall of a loaded machine makes) has lifted the
// primary's mean call time past its bound: latency counts as pressure only
// while a quarter of the pool is in use. With the primary's pool under
// pressure, the cap refuses about half of the reads, with an error naming
// the cause.
func TestAllReplicasDown(t *testing.T) {
	clk := replica.NewFakeClock()
	// 16 connections: the idle half's three readers stay under a quarter.
	cfg := replica.Config{PrimaryPool: replica.Pool{Size: 12, Overflow: 4}, LagBound: testBound, CheckInterval: testInterval}
	replica.UseClock(&cfg, clk)
	c, r := private(t, cfg)
	c.Kill("replica1")
	c.Kill("replica2")
	ctx := context.Background()
	read := func(r *replica.Router) error {
		return r.Read(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := port(ctx, q)
			return err
		})
	}
	// One call of 1.2 s on the primary: its moving average of call time
	// (a tenth of the newest sample) is past 100 ms whatever it was.
	if _, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, "SELECT pg_sleep(1.2)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var l *load
	for i := range 200 {
		if i == 20 {
			l = startLoad(r, 2) // concurrent readers: still under a quarter of the pool
		}
		if err := read(r); err != nil {
			t.Fatalf("read %d with the replicas down and the primary's pool idle: %v", i, err)
		}
		clk.Advance(5 * time.Millisecond)
	}
	l.more(t, 20)
	l.end(t)

	// A router of its own, whose fallback share counts only what follows
	// (it opens with both replicas down, and warns of it): 12 of the
	// primary's 16 connections held put the primary under pressure.
	cfg.Primary, cfg.Replicas = c.PrimaryURL(), replicas(c.ReplicaURLs())
	r = open(t, cfg)
	const holders = 12
	hold, held := make(chan struct{}), make(chan struct{}, holders)
	var wg sync.WaitGroup
	for range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Until it holds a connection: on a loaded machine a new
			// connection may take longer than the acquire timeout.
			for got := false; !got; {
				_, _ = r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
					got = true
					held <- struct{}{}
					<-hold
					return nil
				})
			}
		}()
	}
	for range holders {
		<-held
	}
	ok, capped := 0, 0
	for range 200 {
		err := read(r)
		switch {
		case err == nil:
			ok++
		case errors.Is(err, replica.ErrFallbackCapped):
			capped++
			if !strings.Contains(err.Error(), "12 of its 16 connections in use") {
				t.Fatalf("capped read: %v; want the cause named", err)
			}
		default:
			t.Fatalf("read under pressure: %v", err)
		}
		clk.Advance(5 * time.Millisecond)
	}
	close(hold)
	wg.Wait()
	if ok < 80 || ok > 120 {
		t.Fatalf("under pressure, %d reads served by the primary and %d capped; want about half of 200 served", ok, capped)
	}
	if err := read(r); err != nil {
		t.Fatalf("a read once the pressure is gone: %v", err)
	}
}

// TestPrimaryDown: a primary killed, then one frozen, on one cluster (a
// cluster's start and stop are most of a fault test's time). Real clock:
// the router's own health loop and background probe.
func TestPrimaryDown(t *testing.T) {
	c, r := private(t, replica.Config{})
	if !t.Run("killed", func(t *testing.T) { testPrimaryKilled(t, c, r) }) {
		return
	}
	t.Run("frozen", func(t *testing.T) { testPrimaryFrozen(t, c, r) })
}

// testPrimaryKilled: with the primary killed, reads go on on the replicas;
// Write, WriteTx and Position fail with ErrPrimaryUnavailable well within
// a second, including a write whose connection fails under it; once the
// router knows, they fail at once; and once the primary is back, the
// router finds it by itself.
func testPrimaryKilled(t *testing.T, c *testdb.PGCluster, r *replica.Router) {
	ctx := context.Background()
	// Two writes hold a connection each when the primary dies under them.
	started, killed := make(chan struct{}, 2), make(chan struct{})
	errs := make(chan error, 2)
	go func() {
		_, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			started <- struct{}{}
			<-killed
			_, err := q.ExecContext(ctx, "UPDATE kv SET v = 7 WHERE k = 1")
			return err
		})
		errs <- err
	}()
	go func() {
		_, err := r.WriteTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, "UPDATE kv SET v = 8 WHERE k = 1"); err != nil {
				return err
			}
			started <- struct{}{}
			<-killed
			_, err := tx.ExecContext(ctx, "UPDATE kv SET v = 9 WHERE k = 1")
			return err
		})
		errs <- err
	}()
	<-started
	<-started
	c.Kill("primary")
	close(killed)
	for range 2 {
		if err := <-errs; !errors.Is(err, replica.ErrPrimaryUnavailable) {
			t.Fatalf("a write whose connection died under it: %v, want ErrPrimaryUnavailable", err)
		}
	}

	l := startLoad(r, 2)
	calls := []struct {
		name string
		call func() error
	}{
		{"Write", func() error {
			_, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
				_, err := q.ExecContext(ctx, "UPDATE kv SET v = 7 WHERE k = 1")
				return err
			})
			return err
		}},
		{"WriteTx", func() error {
			_, err := r.WriteTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "UPDATE kv SET v = 7 WHERE k = 1")
				return err
			})
			return err
		}},
		{"Position", func() error { _, err := r.Position(ctx); return err }},
	}
	for round := range 2 {
		if round == 1 {
			r.CheckNow() // the health check knows too: every call fails at once
			if err := r.PrimaryErr(); !errors.Is(err, replica.ErrPrimaryUnavailable) {
				t.Fatalf("PrimaryErr after a check = %v, want ErrPrimaryUnavailable", err)
			}
		}
		for _, c := range calls {
			t0 := time.Now()
			err := c.call()
			d := time.Since(t0)
			if !errors.Is(err, replica.ErrPrimaryUnavailable) {
				t.Fatalf("%s with the primary down: %v, want ErrPrimaryUnavailable", c.name, err)
			}
			if d > time.Second {
				t.Errorf("%s failed after %v; want well within a second", c.name, d)
			}
			if round == 1 && !strings.Contains(err.Error(), "fail at once") {
				t.Errorf("%s once the router knows: %v; want the known-down error", c.name, err)
			}
		}
	}
	l.more(t, 50)
	l.end(t)

	c.Start("primary")
	waitFor(t, 20*time.Second, "a write to succeed after the primary's restart", func() bool { return calls[0].call() == nil })
	if err := r.PrimaryErr(); err != nil {
		t.Fatalf("PrimaryErr after the primary answered: %v", err)
	}
}

// testPrimaryFrozen: a primary that stops answering without refusing
// anything (its processes stopped: connections stay open, the kernel
// accepts and acknowledges, nothing answers, as a hung server or a
// partition looks) is marked down by the health check's own timeouts:
// PrimaryErr says so, and Write, WriteTx and Position then fail with
// ErrPrimaryUnavailable at once instead of waiting on a pooled connection
// for their caller's whole deadline, while reads go on on the replicas. A
// write already running there is not interrupted: it completes once the
// primary is thawed, and the router finds the primary again by itself.
func testPrimaryFrozen(t *testing.T, c *testdb.PGCluster, r *replica.Router) {
	ctx := context.Background()
	// After testPrimaryKilled the replicas reconnect to the restarted
	// primary on their own: both must serve before the freeze, as the
	// reads during it go to them.
	tok, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, "UPDATE kv SET v = 1 WHERE k = 1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitServing(t, c, r, tok)
	// A write whose statement reaches the primary once it is frozen.
	started, frozen := make(chan struct{}), make(chan struct{})
	inflight := make(chan error, 1)
	go func() {
		_, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			close(started)
			<-frozen
			_, err := q.ExecContext(ctx, "UPDATE kv SET v = 42 WHERE k = 1")
			return err
		})
		inflight <- err
	}()
	<-started
	c.Freeze("primary")
	close(frozen)
	t0 := time.Now()
	// Two timed-out checks in a row: about 1.3 s; 15 s is the margin.
	waitFor(t, 15*time.Second, "PrimaryErr to report the frozen primary", func() bool { return r.PrimaryErr() != nil })
	t.Logf("primary known down %v after the freeze: %v", time.Since(t0), r.PrimaryErr())
	if err := r.PrimaryErr(); !errors.Is(err, replica.ErrPrimaryUnavailable) {
		t.Fatalf("PrimaryErr = %v, want ErrPrimaryUnavailable", err)
	}

	l := startLoad(r, 2)
	for _, call := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Write", func(ctx context.Context) error {
			_, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
				_, err := q.ExecContext(ctx, "UPDATE kv SET v = 7 WHERE k = 1")
				return err
			})
			return err
		}},
		{"WriteTx", func(ctx context.Context) error {
			_, err := r.WriteTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "UPDATE kv SET v = 7 WHERE k = 1")
				return err
			})
			return err
		}},
		{"Position", func(ctx context.Context) error { _, err := r.Position(ctx); return err }},
	} {
		// A long budget: a call that waited on the frozen primary would
		// use it up and fail with the deadline, not ErrPrimaryUnavailable.
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		t0 := time.Now()
		err := call.call(cctx)
		d := time.Since(t0)
		cancel()
		if !errors.Is(err, replica.ErrPrimaryUnavailable) {
			t.Fatalf("%s with the primary frozen: %v after %v, want ErrPrimaryUnavailable", call.name, err, d)
		}
		if d > time.Second {
			t.Errorf("%s failed after %v; the router knows the primary is down, want at once", call.name, d)
		}
	}
	l.more(t, 50) // reads go on on the replicas
	l.end(t)
	select {
	case err := <-inflight:
		t.Fatalf("the write in flight ended while the primary was frozen: %v", err)
	default:
	}

	c.Thaw("primary")
	if err := <-inflight; err != nil {
		t.Fatalf("the write in flight at the freeze, after the thaw: %v", err)
	}
	waitFor(t, 20*time.Second, "a write to succeed after the thaw", func() bool {
		_, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, "UPDATE kv SET v = 8 WHERE k = 1")
			return err
		})
		return err == nil
	})
	if err := r.PrimaryErr(); err != nil {
		t.Fatalf("PrimaryErr after the primary answered: %v", err)
	}
}

// TestPrimaryRestartKeepsReplicas: kill and restart the primary with no
// writes during the outage: the replicas, which get the restarted
// primary's WAL only when they reconnect (up to 5 s), are not ejected for
// it, while a replica whose replay is really paused is.
func TestPrimaryRestartKeepsReplicas(t *testing.T) {
	clk := replica.NewFakeClock()
	reg := prometheus.NewRegistry()
	cfg := replica.Config{Registerer: reg, LagBound: testBound, CheckInterval: testInterval}
	replica.UseClock(&cfg, clk)
	c, r := private(t, cfg)
	step := func() {
		clk.Advance(testInterval)
		r.CheckNow()
	}
	for range 3 {
		step()
	}
	// replica2 misses a write from before the outage.
	c.PauseReplay("replica2")
	tok, err := r.Write(context.Background(), func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, "UPDATE kv SET v = 1 WHERE k = 1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitReplayed(t, c.ReplicaURLs()[0], tok)
	step()
	c.Kill("primary")
	for range 5 { // 10 s of outage
		step()
	}
	for _, s := range r.Status() {
		if !s.Serving {
			t.Fatalf("%s ejected during the primary's outage: %s", s.Name, s.Reason)
		}
	}
	before := counter(t, reg, "strata_replica_ejections_total", "replica", "replica1")
	c.Start("primary")
	// Until replica1 has reconnected and replayed what the restarted
	// primary wrote, then a few checks more.
	after := position(t, c.PrimaryURL())
	deadline := time.Now().Add(30 * time.Second)
	for extra := 3; extra > 0; {
		step()
		if s := status(r, "replica1"); s.Replayed >= after {
			extra--
		}
		if s := status(r, "replica1"); !s.Serving {
			t.Fatalf("replica1 ejected after the primary's restart: %s", s.Reason)
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica1 has not replayed the restarted primary's WAL (%v) within 30 s", after)
		}
		time.Sleep(20 * time.Millisecond) // real time for replica1 to reconnect (a real server)
	}
	if n := counter(t, reg, "strata_replica_ejections_total", "replica", "replica1") - before; n != 0 {
		t.Fatalf("replica1 ejected %v times over the restart, want 0", n)
	}
	if s := status(r, "replica2"); s.Serving {
		t.Fatalf("replica2, its replay paused behind a write, still serving after the restart (lag %.2fs)", s.LagSeconds)
	}
}

// TestKeyedReadYourWrites: a write that names a key, then a read of that
// key without any token never returns the old row from a lagging replica
// (its replay paused), on the same router or another sharing the marks;
// once the mark has expired, the read goes to the replica again.
func TestKeyedReadYourWrites(t *testing.T) {
	clk := replica.NewFakeClock()
	c := testdb.StartPostgresCluster(t)
	marks := replica.NewMemMarksOn(0, clk) // shared by two routers, as by two instances
	cfg := replica.Config{Primary: c.PrimaryURL(), Replicas: []replica.Replica{{URL: c.ReplicaURLs()[1]}},
		FreshWait: 10 * time.Millisecond, Marks: marks, LagBound: testBound, CheckInterval: testInterval}
	replica.UseClock(&cfg, clk)
	r := open(t, cfg)
	other := open(t, cfg) // another instance, sharing the marks
	waitReplayed(t, c.ReplicaURLs()[1], setup(t, r))
	c.PauseReplay("replica2")
	ctx := context.Background()
	read := func(r *replica.Router, ctx context.Context) int {
		t.Helper()
		var v int
		if err := r.Read(ctx, func(ctx context.Context, q replica.Querier) error {
			return q.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 1").Scan(&v)
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i := 1; i <= 20; i++ {
		if _, err := r.Write(replica.WithKeys(ctx, "kv:1"), func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, "UPDATE kv SET v = $1 WHERE k = 1", i)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, rr := range []*replica.Router{r, other} {
			if v := read(rr, replica.WithKeys(ctx, "kv:1")); v != i {
				t.Fatalf("write %d to kv:1, then a read of kv:1 saw %d", i, v)
			}
		}
		if v := read(r, ctx); v != 0 {
			t.Fatalf("a read naming no key saw %d; want the paused replica's 0 (else this test proves nothing)", v)
		}
		if v := read(r, replica.WithKeys(ctx, "kv:2")); v != 0 {
			t.Fatalf("a read of another key saw %d; want the paused replica's 0", v)
		}
	}
	clk.Advance(3 * testBound) // the default MarkTTL
	if v := read(r, replica.WithKeys(ctx, "kv:1")); v != 0 {
		t.Fatalf("after the mark's TTL, a read of kv:1 saw %d; want the replica's 0 (the mark expired)", v)
	}
	// Mark, for a write made elsewhere (here through the primary's pool).
	if _, err := r.Primary().Exec("UPDATE kv SET v = 100 WHERE k = 1"); err != nil {
		t.Fatal(err)
	}
	tok, err := r.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Mark(ctx, tok, "kv:1"); err != nil {
		t.Fatal(err)
	}
	if v := read(other, replica.WithKeys(ctx, "kv:1")); v != 100 {
		t.Fatalf("after Mark, a read of kv:1 saw %d, want 100", v)
	}
}
