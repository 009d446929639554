package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// TestRedisKilledAndRestarted: killing Redis under a read load fails no
// read; the breaker opens within a second; once Redis is back the cache
// recovers by itself and reads are answered by the cache again.
func TestRedisKilledAndRestarted(t *testing.T) {
	r := testdb.StartRedis(t)
	o := newOrigin()
	for i := range 100 {
		o.put(fmt.Sprint(i), fmt.Sprint("v", i))
	}
	c := newCache(t, cache.Config[string]{Redis: r.Client(), Namespace: "fault", StalenessBound: 400 * time.Millisecond})
	waitBus(t, c)
	ctx := context.Background()

	var reads, failed, slow atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprint(rng.IntN(100))
				t0 := time.Now()
				v, _, err := c.Get(ctx, k, o.load)
				if err != nil || v != "v"+k {
					failed.Add(1)
				}
				if time.Since(t0) > 100*time.Millisecond {
					slow.Add(1)
				}
				reads.Add(1)
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	r.Kill()
	for c.Stats().L2Breaker != cache.BreakerOpen && time.Since(killed) < 2*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(killed); d > time.Second {
		t.Fatalf("breaker did not open within 1 s of the kill (state %v after %v)", c.Stats().L2Breaker, d)
	}
	t.Logf("breaker open %v after the kill", time.Since(killed))
	// During the outage L1 still shields the origin, with short lifetimes.
	time.Sleep(300 * time.Millisecond)
	outLoads, outReads := o.calls.Load(), reads.Load()
	time.Sleep(400 * time.Millisecond)
	outLoads, outReads = o.calls.Load()-outLoads, reads.Load()-outReads
	t.Logf("during the outage: %d reads, %d loads", outReads, outLoads)
	if outReads < 100 || float64(outLoads) > 0.25*float64(outReads) {
		t.Fatalf("during the outage %d of %d reads went to the origin", outLoads, outReads)
	}
	r.Start()

	// Recovery: the bus comes back, L1 is used again, and a window of reads
	// is answered mostly by the cache, not the origin.
	deadline := time.Now().Add(10 * time.Second)
	for !c.Stats().BusUp {
		if time.Now().After(deadline) {
			t.Fatal("bus not back 10 s after Redis restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	loads0, reads0 := o.calls.Load(), reads.Load()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	loads, n := o.calls.Load()-loads0, reads.Load()-reads0
	hitRatio := 1 - float64(loads)/float64(n)
	t.Logf("%d reads in all; after recovery %d reads, %d loads (hit ratio %.3f); %d reads over 100 ms", reads.Load(), n, loads, hitRatio, slow.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d reads failed while Redis was down", failed.Load(), reads.Load())
	}
	if n < 100 || hitRatio < 0.9 {
		t.Fatalf("hit ratio after recovery %.3f over %d reads, want ≥ 0.9", hitRatio, n)
	}
	// The breaker learns that Redis is back from the next L2 call. With
	// every read above an L1 hit there may have been none yet: make one.
	o.put("after-recovery", "v")
	if _, _, err := c.Get(ctx, "after-recovery", o.load); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.L2Breaker != cache.BreakerClosed {
		t.Fatalf("breaker %v after recovery", st.L2Breaker)
	}
}

// TestRandomisedRace runs fills, reads, writes and invalidations from many
// goroutines through three instances at once, with a loader that stalls at
// random, then checks that no instance holds a stale value.
func TestRandomisedRace(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	const keys = 16
	bound := 300 * time.Millisecond
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
		cs = append(cs, newCache(t, cache.Config[string]{Redis: rc, Namespace: ns, StalenessBound: bound,
			TTL: time.Hour, LeaseWait: 20 * time.Millisecond}))
	}
	waitBus(t, cs...)
	ctx := context.Background()
	var wg sync.WaitGroup
	var ops, writes atomic.Int64
	end := time.Now().Add(2 * time.Second)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for time.Now().Before(end) {
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
					writes.Add(1)
				default: // an invalidation without a write
					c.Delete(ctx, key)
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	time.Sleep(bound)
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
	t.Logf("%d operations, %d writes, %d stale sets or fills voided, %d stale values at the end", ops.Load(), writes.Load(), voided, stale)
}
