package replica_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/replica"
)

// private returns a router over a cluster of the test's own, which the
// test may kill and pause, with the kv table in place on every server.
func private(t *testing.T, cfg replica.Config) (*testdb.PGCluster, *replica.Router) {
	t.Helper()
	c := testdb.StartPostgresCluster(t)
	cfg.Primary = c.PrimaryURL()
	for _, u := range c.ReplicaURLs() {
		cfg.Replicas = append(cfg.Replicas, replica.Replica{URL: u})
	}
	r := open(t, cfg)
	tok := setup(t, r)
	waitServing(t, r, 5*time.Second, "replica1", "replica2")
	// Every replica has replayed the table before the test starts (the
	// health check reports each one's replay position).
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range r.Status() {
		for {
			if st := status(r, s.Name); st.Replayed >= tok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has not replayed the setup within 5 s", s.Name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return c, r
}

func status(r *replica.Router, name string) replica.Status {
	for _, s := range r.Status() {
		if s.Name == name {
			return s
		}
	}
	return replica.Status{}
}

// serving reports whether the named replica gets reads, and why not.
func serving(r *replica.Router, name string) (bool, string) {
	for _, s := range r.Status() {
		if s.Name == name {
			return s.Serving, s.Reason
		}
	}
	return false, "no such replica"
}

func waitServing(t *testing.T, r *replica.Router, within time.Duration, names ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, name := range names {
		for {
			ok, why := serving(r, name)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not serving within %v: %s", name, within, why)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
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
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
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
// load fails no read, ejects it within a second, and a restart brings it
// back into the rotation.
func TestReplicaKilled(t *testing.T) {
	c, r := private(t, replica.Config{})
	l := startLoad(r, 4)
	time.Sleep(300 * time.Millisecond)
	c.Kill("replica1")
	killed := time.Now()
	for {
		if ok, _ := serving(r, "replica1"); !ok {
			break
		}
		if time.Since(killed) > time.Second {
			t.Fatal("replica1 still serving 1 s after kill -9")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("ejected %v after the kill", time.Since(killed))
	time.Sleep(500 * time.Millisecond) // reads go on with one replica
	c.Start("replica1")
	waitServing(t, r, 10*time.Second, "replica1")
	time.Sleep(300 * time.Millisecond)
	l.end(t)
}

// TestPausedReplayEjectsAndReadYourWrites: a replica whose replay is
// paused is ejected once past the lag bound; all along, a session that
// writes and then reads with its token sees its own write.
func TestPausedReplayEjectsAndReadYourWrites(t *testing.T) {
	bound := 500 * time.Millisecond
	c, r := private(t, replica.Config{LagBound: bound, CheckInterval: 100 * time.Millisecond})
	c.PauseReplay("replica2")
	paused := time.Now()
	ctx := context.Background()
	ejected := time.Duration(0)
	for i := 1; time.Since(paused) < 3*time.Second; i++ {
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
		if ok, why := serving(r, "replica2"); !ok && ejected == 0 {
			ejected = time.Since(paused)
			t.Logf("replica2 ejected %v after the pause: %s", ejected, why)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ejected == 0 {
		t.Fatal("replica2 never ejected while its replay was paused")
	}
	if limit := bound + 4*100*time.Millisecond; ejected > limit {
		t.Errorf("replica2 ejected %v after the pause; want within %v", ejected, limit)
	}
	c.ResumeReplay("replica2")
	waitServing(t, r, 5*time.Second, "replica2")
}

// TestAllReplicasDown: with no replica, reads fall back to the primary up
// to the cap, and the rest fail fast with ErrFallbackCapped.
func TestAllReplicasDown(t *testing.T) {
	c, r := private(t, replica.Config{FallbackShare: 0.5})
	c.Kill("replica1")
	c.Kill("replica2")
	ok, capped := 0, 0
	for range 200 {
		t0 := time.Now()
		err := r.Read(context.Background(), func(ctx context.Context, q replica.Querier) error {
			_, err := port(ctx, q)
			return err
		})
		switch {
		case err == nil:
			ok++
		case errors.Is(err, replica.ErrFallbackCapped):
			capped++
			if d := time.Since(t0); d > replica.ReplicaAcquireTimeout*3 {
				t.Errorf("a capped read took %v; it should fail fast", d)
			}
		default:
			t.Fatalf("read: %v", err)
		}
	}
	if ok < 80 || ok > 120 || ok+capped != 200 {
		t.Fatalf("%d reads served by the primary, %d capped; want about half of 200 served", ok, capped)
	}
}

// TestPrimaryDown: reads keep working on the replicas; writes fail within
// the primary's acquire timeout with ErrPrimaryUnavailable.
func TestPrimaryDown(t *testing.T) {
	c, r := private(t, replica.Config{})
	c.Kill("primary")
	l := startLoad(r, 2)
	for i := range 5 {
		t0 := time.Now()
		_, err := r.Write(context.Background(), func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, "UPDATE kv SET v = 7 WHERE k = 1")
			return err
		})
		d := time.Since(t0)
		if !errors.Is(err, replica.ErrPrimaryUnavailable) {
			t.Fatalf("write %d with the primary down: %v, want ErrPrimaryUnavailable", i, err)
		}
		if d > replica.PrimaryAcquireTimeout+200*time.Millisecond {
			t.Errorf("write %d failed after %v; want within the acquire timeout %v", i, d, replica.PrimaryAcquireTimeout)
		}
	}
	time.Sleep(time.Second)
	l.end(t)
}
