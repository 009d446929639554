package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  cache.Config[string]
		want string
	}{
		{"negative TTL", cache.Config[string]{TTL: -time.Second}, "TTL is negative"},             // durations must not be negative
		{"negative L1Size", cache.Config[string]{L1Size: -1}, "L1Size is negative"},              // nor sizes
		{"huge jitter", cache.Config[string]{Jitter: 0.7}, "Jitter"},                             // jitter could make an expiry negative
		{"tiny bound", cache.Config[string]{StalenessBound: time.Millisecond}, "StalenessBound"}, // the heartbeat needs room
		{"namespace with brace", cache.Config[string]{Namespace: "a{b"}, "Namespace"},            // braces would break hash tags
		{"lease shorter than load", cache.Config[string]{LeaseTTL: time.Second}, "LeaseTTL"},     // a slow load would lose its lease
		{"tiering without tracking", cache.Config[string]{AdmitAfter: 3}, "TrackHot"},            // admission needs the sketch
		{"negative warm rise", cache.Config[string]{TrackHot: true, WarmRise: -1}, "WarmRise"},   // a rise is a rise
		// Which one would be L2?
		{"two Redis clients", cache.Config[string]{Redis: heldDel{}, RedisConn: &cache.RedisConn{}}, "both Redis and RedisConn"},
	}
	for _, c := range cases {
		if _, err := cache.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

func TestL1ReadThrough(t *testing.T) {
	o := newOrigin()
	o.put("a", "1")
	c := newCache(t, cache.Config[string]{})
	ctx := context.Background()

	v, info, err := c.Get(ctx, "a", o.load)
	if err != nil || v != "1" || info.Source != cache.SourceLoader {
		t.Fatalf("first Get = %q, %v, %v", v, info, err)
	}
	v, info, err = c.Get(ctx, "a", o.load)
	if err != nil || v != "1" || info.Source != cache.SourceL1 || o.calls.Load() != 1 {
		t.Fatalf("second Get = %q, %v, %v after %d loads", v, info, err, o.calls.Load())
	}
	// Not found is cached too, and reported as ErrNotFound.
	for range 3 {
		if _, _, err := c.Get(ctx, "missing", o.load); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("missing key: err = %v", err)
		}
	}
	if o.calls.Load() != 2 {
		t.Fatalf("loads = %d, want 2 (not-found cached)", o.calls.Load())
	}
	// Loader errors are returned and never cached.
	boom := errors.New("boom")
	fails := 0
	failing := func(context.Context, string) (string, error) { fails++; return "", boom }
	for range 2 {
		if _, _, err := c.Get(ctx, "x", failing); !errors.Is(err, boom) {
			t.Fatalf("loader error: %v", err)
		}
	}
	if fails != 2 {
		t.Fatalf("failing loader called %d times, want 2 (errors not cached)", fails)
	}
	// Delete reaches L1.
	o.put("a", "2")
	inv, err := c.Delete(ctx, "a")
	if err != nil || len(inv.Levels) != 1 || inv.Levels[0] != cache.LevelL1 {
		t.Fatalf("Delete = %+v, %v", inv, err)
	}
	if v, _, _ := c.Get(ctx, "a", o.load); v != "2" {
		t.Fatalf("after Delete: %q, want 2", v)
	}
}

// TestSoftAndHardExpiry: past TTL the old value is served once while one
// background refresh runs; past TTL+StaleTTL nothing stale is served.
func TestSoftAndHardExpiry(t *testing.T) {
	e := newEnv(t)
	o := newOrigin()
	o.put("k", "v1")
	c := e.cache(cache.Config[string]{TTL: time.Minute, StaleTTL: time.Minute, L1TTL: time.Hour, Jitter: -1})
	ctx := context.Background()
	c.Get(ctx, "k", o.load)

	o.put("k", "v2")
	entered, release := o.hold()
	e.clk.Advance(61 * time.Second) // past TTL, within StaleTTL
	for range 3 {                   // the refresh is held: every read is stale, and starts no second one
		v, info, _ := c.Get(ctx, "k", o.load)
		if v != "v1" || !info.Stale {
			t.Fatalf("stale read = %q %+v, want v1 stale", v, info)
		}
	}
	<-entered
	release()
	var v string
	var info cache.Info
	eventually(t, "the refresh lands", func() bool {
		v, info, _ = c.Get(ctx, "k", o.load)
		return v == "v2" && !info.Stale
	})
	if o.calls.Load() != 2 {
		t.Fatalf("loads = %d, want 2 (one refresh)", o.calls.Load())
	}
	o.put("k", "v3")
	e.clk.Advance(3 * time.Minute) // past hard expiry: a plain miss
	if v, info, _ := c.Get(ctx, "k", o.load); v != "v3" || info.Stale || info.Source != cache.SourceLoader {
		t.Fatalf("after hard expiry: %q %+v", v, info)
	}
}

// TestStampedeOneProcess: 1,000 concurrent gets of one missing key make one
// loader call, with and without L2. The load is held until every get has
// started, so they all overlap it.
func TestStampedeOneProcess(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", withRedis), func(t *testing.T) {
			e := newEnv(t)
			o := newOrigin()
			o.put("hot", "v")
			cfg := cache.Config[string]{L2Timeout: generous}
			if withRedis {
				cfg.Redis, cfg.Namespace = testdb.Redis(t), testdb.Namespace(t)
			}
			c := e.cache(cfg)
			if withRedis {
				e.waitBus(c)
			}
			_, release := o.hold()
			var wg, started sync.WaitGroup
			var failed atomic.Int64
			for range 1000 {
				wg.Add(1)
				started.Add(1)
				go func() {
					defer wg.Done()
					started.Done()
					if v, _, err := c.Get(context.Background(), "hot", o.load); err != nil || v != "v" {
						failed.Add(1)
					}
				}()
			}
			started.Wait()
			release()
			wg.Wait()
			if n := o.calls.Load(); n != 1 || failed.Load() != 0 {
				t.Fatalf("loader calls = %d (want 1), failed reads = %d", n, failed.Load())
			}
		})
	}
}

// TestStampedeAcrossInstances: three caches with their own L1s, one Redis:
// 1,000 concurrent gets spread over them make one loader call in total
// while the lease holds. The load is held until both other instances wait
// for its lease; the waits and loads are bounded by far more than the
// test needs, so a busy machine cannot time them out.
func TestStampedeAcrossInstances(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	e := newEnv(t)
	o := newOrigin()
	o.put("hot", "v")
	var cs []*cache.Cache[string]
	for range 3 {
		cs = append(cs, e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous,
			LeaseWait: time.Minute, LoadTimeout: time.Minute, LeaseTTL: 2 * time.Minute}))
	}
	e.waitBus(cs...)
	_, release := o.hold()
	defer release()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, _, err := cs[i%3].Get(context.Background(), "hot", o.load); err != nil || v != "v" {
				failed.Add(1)
			}
		}()
	}
	waits := func() uint64 {
		var n uint64
		for _, c := range cs {
			n += c.Stats().LeaseWaits
		}
		return n
	}
	eventually(t, "two instances wait for the lease", func() bool { return waits() >= 2 })
	release()
	wg.Wait()
	if n := o.calls.Load(); n != 1 || failed.Load() != 0 {
		t.Fatalf("loader calls = %d (want 1 in total), failed reads = %d", n, failed.Load())
	}
	if waits := waits(); waits != 2 {
		t.Fatalf("lease waits = %d, want 2 (the two instances without the lease)", waits)
	}
}

// TestDeleteDuringLoadPreventsStaleSet: a write and its invalidation that
// land while a slow load is in flight void that load's sets, in L2 and L1.
func TestDeleteDuringLoadPreventsStaleSet(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	e := newEnv(t)
	o := newOrigin()
	o.put("k", "old")
	a := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous})
	b := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous})
	e.waitBus(a, b)
	ctx := context.Background()

	entered, release := o.hold()
	got := make(chan string, 1)
	go func() { v, _, _ := a.Get(ctx, "k", o.load); got <- v }()
	<-entered // the load has read "old" and is held
	o.put("k", "new")
	if _, err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	release()
	if v := <-got; v != "old" {
		t.Fatalf("the in-flight read returned %q; it read before the write, so old is right", v)
	}
	eventually(t, "the invalidation reaches A", func() bool { return cache.BusCaughtUp(false, a, b) })
	o.mu.Lock()
	o.entered, o.gate = nil, nil
	o.mu.Unlock()
	for name, c := range map[string]*cache.Cache[string]{"a": a, "b": b} {
		if v, _, _ := c.Get(ctx, "k", o.load); v != "new" {
			t.Fatalf("instance %s serves %q after the write: the stale set was not prevented", name, v)
		}
	}
	if a.Stats().VoidedSets != 1 {
		t.Fatalf("VoidedSets = %d, want 1", a.Stats().VoidedSets)
	}
}

// TestInvalidationAcrossInstances: an update through A is seen through B
// when the bus delivers, when every pub/sub connection is cut just before
// the invalidation (B's resubscription flushes its L1, whether or not the
// message was lost), and, within the staleness bound on the caches' clock,
// when B's subscription silently stops delivering (B's watchdog).
func TestInvalidationAcrossInstances(t *testing.T) {
	// A private server: the test kills every pub/sub connection on it.
	rc, ns := testdb.StartRedis(t).Client(), testdb.Namespace(t)
	e := newEnv(t)
	o := newOrigin()
	bound := 400 * time.Millisecond
	a := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, StalenessBound: bound, L2Timeout: generous})
	b := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, StalenessBound: bound, L2Timeout: generous})
	e.waitBus(a, b)
	ctx := context.Background()

	for round, fault := range []string{"none", "connections cut", "subscription deaf"} {
		key := fmt.Sprintf("user:%d", round)
		o.put(key, "v1")
		for _, c := range []*cache.Cache[string]{a, b} {
			c.Get(ctx, key, o.load)
		}
		if _, info, _ := b.Get(ctx, key, o.load); info.Source != cache.SourceL1 {
			t.Fatalf("round %d: B does not hold the key in L1 (%v)", round, info)
		}
		switch fault {
		case "connections cut":
			// Drop every pub/sub connection: the invalidation below may be
			// lost for B, which must then notice by itself.
			if err := rc.Do(ctx, rc.B().ClientKill().TypePubsub().Build()).Error(); err != nil {
				t.Fatal(err)
			}
		case "subscription deaf":
			// B's subscription silently stops delivering: the invalidation
			// is surely lost, and only B's watchdog can save it.
			cache.SetDeaf(b, true)
		}
		o.put(key, "v2")
		// A cut connection may fail the invalidation; a caller retries it.
		eventually(t, "the invalidation succeeds", func() bool { _, err := a.Delete(ctx, key); return err == nil })
		if fault == "subscription deaf" {
			if v, _, _ := b.Get(ctx, key, o.load); v != "v1" {
				t.Fatalf("a deaf B saw the write (%q) before its watchdog could", v)
			}
			e.step(bound/2 + bound/8) // silence for half the bound, noticed at the next tick
		}
		eventually(t, fmt.Sprintf("round %d (fault %q): B serves the write", round, fault), func() bool {
			v, _, err := b.Get(ctx, key, o.load)
			if err != nil {
				t.Fatal(err)
			}
			return v == "v2"
		})
		cache.SetDeaf(b, false)
		e.waitBus(a, b)
	}
}

// TestTags: InvalidateTags makes every value stamped with the tag stale,
// here and in other instances, without knowing their keys.
func TestTags(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", withRedis), func(t *testing.T) {
			e := newEnv(t)
			o := newOrigin()
			cfg := cache.Config[string]{L2Timeout: generous}
			if withRedis {
				cfg.Redis, cfg.Namespace = testdb.Redis(t), testdb.Namespace(t)
			}
			a := e.cache(cfg)
			caches := []*cache.Cache[string]{a}
			if withRedis {
				caches = append(caches, e.cache(cfg))
				e.waitBus(caches...)
			}
			ctx := context.Background()
			o.put("q1", "r1")
			o.put("q2", "r2")
			o.put("q3", "r3")
			for _, c := range caches {
				c.Get(ctx, "q1", o.load, cache.Tags("products"))
				c.Get(ctx, "q2", o.load, cache.Tags("products", "user:5"))
				c.Get(ctx, "q3", o.load, cache.Tags("users"))
			}
			before := o.calls.Load()
			o.put("q1", "r1'")
			o.put("q2", "r2'")
			if _, err := a.InvalidateTags(ctx, "products"); err != nil {
				t.Fatal(err)
			}
			for _, c := range caches {
				eventually(t, "the tagged values are invalidated", func() bool {
					v1, _, _ := c.Get(ctx, "q1", o.load, cache.Tags("products"))
					v2, _, _ := c.Get(ctx, "q2", o.load, cache.Tags("products", "user:5"))
					return v1 == "r1'" && v2 == "r2'"
				})
				if _, info, _ := c.Get(ctx, "q3", o.load, cache.Tags("users")); info.Source == cache.SourceLoader {
					t.Fatalf("untouched tag was reloaded")
				}
			}
			if o.calls.Load() <= before {
				t.Fatal("nothing reloaded")
			}
		})
	}
}

// TestL1ByteBound: an L1 bounded by bytes keeps its weighed size under
// the bound however many values arrive.
func TestL1ByteBound(t *testing.T) {
	o := newOrigin()
	big := strings.Repeat("x", 1000)
	for i := range 500 {
		o.put(fmt.Sprint(i), big)
	}
	c := newCache(t, cache.Config[string]{L1MaxBytes: 64 << 10})
	ctx := context.Background()
	for i := range 500 {
		if _, _, err := c.Get(ctx, fmt.Sprint(i), o.load); err != nil {
			t.Fatal(err)
		}
	}
	cache.CleanUpL1(c) // the evictions L1 still owes
	st := c.Stats()
	if st.L1Bytes == 0 || st.L1Bytes > 64<<10 || st.L1Entries >= 100 {
		t.Fatalf("L1 holds %d entries, %d bytes; bound is %d bytes", st.L1Entries, st.L1Bytes, 64<<10)
	}
	t.Logf("L1 holds %d entries, %d bytes", st.L1Entries, st.L1Bytes)
}

// TestLoaderPanic: a panicking loader fails its callers with an error; the
// process and the cache carry on.
func TestLoaderPanic(t *testing.T) {
	c := newCache(t, cache.Config[string]{})
	ctx := context.Background()
	_, _, err := c.Get(ctx, "k", func(context.Context, string) (string, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("err = %v, want a panic turned into an error", err)
	}
	if v, _, err := c.Get(ctx, "k", func(context.Context, string) (string, error) { return "ok", nil }); err != nil || v != "ok" {
		t.Fatalf("after the panic: %q, %v", v, err)
	}
}
