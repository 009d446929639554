package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// TestRedisKilledAndRestarted: killing Redis fails no read; the breaker
// opens after the first failed L2 calls and the bus goes down within the
// staleness bound; meanwhile L1 still shields the origin, keeping values
// half the bound; many failed invalidations and minutes of outage log a
// bounded number of lines; once Redis is back the cache recovers by
// itself (breaker closed, bus up, L1 lifetimes normal) and logs it once.
// Every step is ordered by the caches' clock, which moves only when the
// test moves it.
func TestRedisKilledAndRestarted(t *testing.T) {
	r := testdb.StartRedis(t)
	e := newEnv(t)
	log := &logs{}
	o := newOrigin()
	for i := range 100 {
		o.put(fmt.Sprint(i), fmt.Sprint("v", i))
	}
	bound := cache.DefaultStalenessBound
	// rueidis retries a read until its deadline while Redis is down, so
	// the timeout is a second: ample for a busy machine, short for a test.
	c := e.cache(cache.Config[string]{Redis: r.Client(), Namespace: "fault", L2Timeout: time.Second, Logger: slog.New(log)})
	e.waitBus(c)
	ctx := context.Background()
	readAll := func(what string) int64 {
		t.Helper()
		before := o.calls.Load()
		for i := range 100 {
			k := fmt.Sprint(i)
			if v, _, err := c.Get(ctx, k, o.load); err != nil || v != "v"+k {
				t.Fatalf("%s: read of %s = %q, %v", what, k, v, err)
			}
		}
		return o.calls.Load() - before
	}
	readAll("before the kill")

	r.Kill()
	// A read that misses L1 makes two L2 calls (a read, then a lease);
	// the third failure opens the breaker, during the second such read.
	for i := range 2 {
		if _, _, err := c.Get(ctx, fmt.Sprint("cold", i), o.load); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("read %d after the kill: %v, want the loader's not found", i, err)
		}
	}
	if st := c.Stats().L2Breaker; st != cache.BreakerOpen {
		t.Fatalf("breaker %v after three failed L2 calls", st)
	}
	// The bus: silent for half the bound, noticed at the next tick. It is
	// put down first, then L1 is flushed: wait for both.
	flushes := c.Stats().Flushes
	e.step(bound/2 + bound/8)
	eventually(t, "the bus goes down", func() bool { st := c.Stats(); return !st.BusUp && st.Flushes > flushes })
	if h := c.Health(); !h.Degraded() || h.L2 || h.Bus || !h.Connected || h.LastError == nil {
		t.Fatalf("health during the outage: %+v", h)
	}

	// L1 shields the origin, with values kept half the bound.
	if n := readAll("during the outage"); n != 100 {
		t.Fatalf("first reads after the flush: %d loads, want 100", n)
	}
	if n := readAll("during the outage, again"); n != 0 {
		t.Fatalf("second reads during the outage: %d loads, want 0 (L1)", n)
	}
	e.step(bound/2 + bound/8)
	if n := readAll("during the outage, half a bound later"); n != 100 {
		t.Fatalf("reads half a bound later: %d loads, want 100 (L1 lifetimes cut to half the bound)", n)
	}

	// Writes go on; their failed invalidations are counted, not logged.
	for i := range 500 {
		if _, err := c.Delete(ctx, fmt.Sprint(i%100)); !errors.Is(err, cache.ErrL2Unavailable) {
			t.Fatalf("Delete during the outage: %v, want ErrL2Unavailable", err)
		}
	}
	const minutes = 3
	e.step(minutes * time.Minute)

	r.Start()
	for i := 0; c.Health().Degraded(); i++ {
		if i == 600 { // 75 s on the caches' clock: a probe every second, a resubscription in real time
			t.Fatalf("not recovered: %+v", c.Health())
		}
		e.step(bound / 8)
	}
	if st := c.Stats(); st.L2Breaker != cache.BreakerClosed || !st.BusUp {
		t.Fatalf("after recovery: breaker %v, bus up %v", st.L2Breaker, st.BusUp)
	}
	readAll("after recovery")
	e.step(bound) // L1 keeps values its full lifetime again
	if n := readAll("after recovery, a bound later"); n != 0 {
		t.Fatalf("reads a bound after recovery: %d loads, want 0 (L1)", n)
	}
	for i, want := range []cache.Source{cache.SourceLoader, cache.SourceL1} {
		if _, info, err := c.Get(ctx, "cold-after", o.load); !errors.Is(err, cache.ErrNotFound) || info.Source != want {
			t.Fatalf("read %d of a new key after recovery: from %v, %v; want not found from %v", i, info.Source, err, want)
		}
	}

	// One warning when Redis went down, a reminder a minute at most, and
	// at most one more of each should a bus heartbeat come back late
	// during recovery.
	log.check(t, 1, 1+minutes+1, 1, 2)
}

// TestStartWithoutRedis: caches made while their Redis is not running
// start at once and serve reads from the loader and L1, degraded; their
// failed writes log nothing; when that Redis starts they recover L2 and
// the bus by themselves, without a restart.
func TestStartWithoutRedis(t *testing.T) {
	r := testdb.ReserveRedis(t)
	e := newEnv(t)
	log := &logs{}
	conn, err := cache.DialRedisAt(r.Options(), cache.RedisConnConfig{Logger: slog.New(log)}, e.clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ns := testdb.Namespace(t)
	cfg := cache.Config[string]{RedisConn: conn, Namespace: ns, L2Timeout: generous, Logger: slog.New(log)}
	a, b := e.cache(cfg), e.cache(cfg)
	ctx := context.Background()
	o := newOrigin()
	o.put("k", "v1")

	for i, want := range []cache.Source{cache.SourceLoader, cache.SourceL1} {
		if v, info, err := a.Get(ctx, "k", o.load); err != nil || v != "v1" || info.Source != want {
			t.Fatalf("read %d without Redis: %q from %v, %v; want v1 from %v", i, v, info.Source, err, want)
		}
	}
	if h := a.Health(); !h.Redis || h.Connected || h.L2 || h.Bus || !h.Degraded() {
		t.Fatalf("health without Redis: %+v", h)
	}
	for range 300 {
		if _, err := a.Delete(ctx, "k"); !errors.Is(err, cache.ErrL2Unavailable) {
			t.Fatalf("Delete without Redis: %v, want ErrL2Unavailable", err)
		}
		if _, err := b.InvalidateTags(ctx, "t"); !errors.Is(err, cache.ErrL2Unavailable) {
			t.Fatalf("InvalidateTags without Redis: %v, want ErrL2Unavailable", err)
		}
	}
	a.Get(ctx, "k", o.load)
	e.clk.Advance(cache.DefaultStalenessBound/2 + time.Millisecond) // the bus is down: L1 keeps values half the bound
	if _, info, _ := a.Get(ctx, "k", o.load); info.Source != cache.SourceLoader {
		t.Fatalf("half a bound later, read from %v; want the loader", info.Source)
	}
	const minutes = 3
	e.step(minutes * time.Minute)

	r.Start()
	// Each attempt is real work between two waits on the clock: move the
	// clock past the longest wait, then let the attempt it started finish.
	for i := 0; !conn.Status().Connected; i++ {
		if i == 20 {
			t.Fatalf("not connected after 20 attempts: %+v", conn.Status())
		}
		n := conn.Status().Attempts
		e.step(cache.DefaultRetryMax)
		eventually(t, "a connection attempt", func() bool { st := conn.Status(); return st.Connected || st.Attempts > n })
	}
	eventually(t, "both caches recover", func() bool { return !a.Health().Degraded() && !b.Health().Degraded() })

	// L2 is shared again, and the bus carries b's invalidation to a's L1.
	o.put("x", "1")
	if _, info, _ := a.Get(ctx, "x", o.load); info.Source != cache.SourceLoader {
		t.Fatalf("first read of x from %v", info.Source)
	}
	if _, info, _ := b.Get(ctx, "x", o.load); info.Source != cache.SourceL2 {
		t.Fatalf("the other instance read x from %v, want L2", info.Source)
	}
	if _, info, _ := a.Get(ctx, "x", o.load); info.Source != cache.SourceL1 {
		t.Fatalf("second read of x from %v, want L1", info.Source)
	}
	o.put("x", "2")
	if _, err := b.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b's invalidation reaches a", func() bool { v, _, _ := a.Get(ctx, "x", o.load); return v == "2" })

	// The conn's warning, and its reminder once a minute at most; its one
	// line when it connects. The caches, never served by Redis until
	// then, add nothing.
	log.check(t, 1, 1+minutes, 1, 1)
}

// TestRandomisedRace runs fills, reads, writes and invalidations from many
// goroutines through three instances at once, with a loader that stalls at
// random, then checks that no instance holds a stale value once every bus
// message has arrived.
func TestRandomisedRace(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	e := newEnv(t)
	const keys = 16
	var mu sync.Mutex
	version := make([]int, keys)
	load := func(ctx context.Context, key string) (string, error) {
		var i int
		fmt.Sscan(key, &i)
		mu.Lock()
		v := version[i]
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // the read is older than the return
		return fmt.Sprint(v), nil
	}
	var cs []*cache.Cache[string]
	for range 3 {
		cs = append(cs, e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous,
			TTL: time.Hour, LeaseWait: 20 * time.Millisecond}))
	}
	e.waitBus(cs...)
	ctx := context.Background()
	var wg sync.WaitGroup
	var writes int
	var wmu sync.Mutex
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range 250 {
				c, k := cs[rng.IntN(3)], rng.IntN(keys)
				key := fmt.Sprint(k)
				switch x := rng.IntN(10); {
				case x < 7:
					if _, _, err := c.Get(ctx, key, load); err != nil {
						t.Errorf("Get: %v", err)
						return
					}
				case x < 9: // a write: the database first, then the invalidation
					mu.Lock()
					version[k]++
					mu.Unlock()
					if _, err := c.Delete(ctx, key); err != nil {
						t.Errorf("Delete: %v", err)
						return
					}
					wmu.Lock()
					writes++
					wmu.Unlock()
				default: // an invalidation without a write
					c.Delete(ctx, key)
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, "every invalidation reaches every instance", func() bool { return cache.BusCaughtUp(false, cs...) })
	stale := 0
	for i, c := range cs {
		for k := range keys {
			v, info, err := c.Get(ctx, fmt.Sprint(k), load)
			mu.Lock()
			want := fmt.Sprint(version[k])
			mu.Unlock()
			if err != nil || v != want {
				stale++
				t.Errorf("instance %d key %d: %q from %v, want %q (%v)", i, k, v, info.Source, want, err)
			}
		}
	}
	var voided uint64
	for _, c := range cs {
		voided += c.Stats().VoidedSets + c.Stats().VoidedFills
	}
	t.Logf("2,000 operations, %d writes, %d stale sets or fills voided, %d stale values at the end", writes, voided, stale)
}
