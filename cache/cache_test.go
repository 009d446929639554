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

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// origin is a fake database: versioned values, a call counter and an
// optional delay, so tests can see exactly how often the cache loads.
type origin struct {
	mu    sync.Mutex
	vals  map[string]string
	calls atomic.Int64
	delay time.Duration
}

func newOrigin() *origin { return &origin{vals: map[string]string{}} }

func (o *origin) put(k, v string) { o.mu.Lock(); o.vals[k] = v; o.mu.Unlock() }

func (o *origin) load(ctx context.Context, key string) (string, error) {
	o.calls.Add(1)
	o.mu.Lock()
	v, ok := o.vals[key]
	delay := o.delay
	o.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if !ok {
		return "", cache.ErrNotFound
	}
	return v, nil
}

func newCache(t testing.TB, cfg cache.Config[string]) *cache.Cache[string] {
	t.Helper()
	c, err := cache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitBus waits until a Redis-backed cache's bus delivers.
func waitBus(t testing.TB, cs ...*cache.Cache[string]) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range cs {
		for !c.Stats().BusUp {
			if time.Now().After(deadline) {
				t.Fatal("bus did not come up within 5 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

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
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	o := newOrigin()
	o.put("k", "v1")
	c := newCache(t, cache.Config[string]{TTL: time.Minute, StaleTTL: time.Minute, L1TTL: time.Hour, Jitter: -1, Now: clock})
	ctx := context.Background()
	c.Get(ctx, "k", o.load)

	o.put("k", "v2")
	advance(61 * time.Second) // past TTL, within StaleTTL
	v, info, _ := c.Get(ctx, "k", o.load)
	if v != "v1" || !info.Stale {
		t.Fatalf("stale read = %q %+v, want v1 stale", v, info)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, info, _ = c.Get(ctx, "k", o.load)
		if v == "v2" && !info.Stale {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refresh never landed: %q %+v", v, info)
		}
		time.Sleep(time.Millisecond)
	}
	if o.calls.Load() != 2 {
		t.Fatalf("loads = %d, want 2 (one refresh)", o.calls.Load())
	}
	o.put("k", "v3")
	advance(3 * time.Minute) // past hard expiry: a plain miss
	if v, info, _ := c.Get(ctx, "k", o.load); v != "v3" || info.Stale || info.Source != cache.SourceLoader {
		t.Fatalf("after hard expiry: %q %+v", v, info)
	}
}

// TestStampedeOneProcess: 1,000 concurrent gets of one missing key make one
// loader call, with and without L2.
func TestStampedeOneProcess(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", withRedis), func(t *testing.T) {
			o := newOrigin()
			o.put("hot", "v")
			o.delay = 50 * time.Millisecond
			cfg := cache.Config[string]{}
			if withRedis {
				cfg.Redis, cfg.Namespace = testdb.Redis(t), testdb.Namespace(t)
			}
			c := newCache(t, cfg)
			var wg sync.WaitGroup
			var failed atomic.Int64
			for range 1000 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if v, _, err := c.Get(context.Background(), "hot", o.load); err != nil || v != "v" {
						failed.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := o.calls.Load(); n != 1 || failed.Load() != 0 {
				t.Fatalf("loader calls = %d (want 1), failed reads = %d", n, failed.Load())
			}
		})
	}
}

// TestStampedeAcrossInstances: three caches with their own L1s, one Redis:
// 1,000 concurrent gets spread over them make one loader call in total
// while the lease holds.
func TestStampedeAcrossInstances(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	o := newOrigin()
	o.put("hot", "v")
	o.delay = 200 * time.Millisecond
	var cs []*cache.Cache[string]
	for range 3 {
		cs = append(cs, newCache(t, cache.Config[string]{Redis: rc, Namespace: ns, LeaseWait: 3 * time.Second}))
	}
	waitBus(t, cs...)
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
	wg.Wait()
	if n := o.calls.Load(); n != 1 || failed.Load() != 0 {
		t.Fatalf("loader calls = %d (want 1 in total), failed reads = %d", n, failed.Load())
	}
	var waits uint64
	for _, c := range cs {
		waits += c.Stats().LeaseWaits
	}
	if waits != 2 {
		t.Fatalf("lease waits = %d, want 2 (the two instances without the lease)", waits)
	}
}

// TestDeleteDuringLoadPreventsStaleSet: a write and its invalidation that
// land while a slow load is in flight void that load's sets, in L2 and L1.
func TestDeleteDuringLoadPreventsStaleSet(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	o := newOrigin()
	o.put("k", "old")
	o.delay = 300 * time.Millisecond
	a := newCache(t, cache.Config[string]{Redis: rc, Namespace: ns})
	b := newCache(t, cache.Config[string]{Redis: rc, Namespace: ns})
	waitBus(t, a, b)
	ctx := context.Background()

	got := make(chan string, 1)
	go func() { v, _, _ := a.Get(ctx, "k", o.load); got <- v }()
	time.Sleep(100 * time.Millisecond) // the load has read "old" and sleeps
	o.put("k", "new")
	if _, err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "old" {
		t.Fatalf("the in-flight read returned %q; it read before the write, so old is right", v)
	}
	o.delay = 0
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
// within the staleness bound, both when the bus delivers and when B's
// subscription is cut just before the invalidation.
func TestInvalidationAcrossInstances(t *testing.T) {
	// A private server: the test kills every pub/sub connection on it.
	rc, ns := testdb.StartRedis(t).Client(), testdb.Namespace(t)
	o := newOrigin()
	bound := 400 * time.Millisecond
	a := newCache(t, cache.Config[string]{Redis: rc, Namespace: ns, StalenessBound: bound})
	b := newCache(t, cache.Config[string]{Redis: rc, Namespace: ns, StalenessBound: bound})
	waitBus(t, a, b)
	ctx := context.Background()

	for round, fault := range []string{"none", "connections cut", "subscription deaf"} {
		cut := fault != "none"
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
		start := time.Now()
		if _, err := a.Delete(ctx, key); err != nil && !cut {
			t.Fatal(err)
		}
		for {
			v, _, err := b.Get(ctx, key, o.load)
			if err != nil {
				t.Fatal(err)
			}
			if v == "v2" {
				break
			}
			if time.Since(start) > bound {
				t.Fatalf("round %d (fault %q): B still serves %q %v after the write", round, fault, v, time.Since(start))
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("fault %q: B saw the write after %v", fault, time.Since(start))
		cache.SetDeaf(b, false)
		waitBus(t, a, b)
	}
}

// TestTags: InvalidateTags makes every value stamped with the tag stale,
// here and in other instances, without knowing their keys.
func TestTags(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", withRedis), func(t *testing.T) {
			o := newOrigin()
			cfg := cache.Config[string]{}
			var rc rueidis.Client
			if withRedis {
				rc = testdb.Redis(t)
				cfg.Redis, cfg.Namespace = rc, testdb.Namespace(t)
			}
			a := newCache(t, cfg)
			caches := []*cache.Cache[string]{a}
			if withRedis {
				caches = append(caches, newCache(t, cfg))
				waitBus(t, caches...)
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
			deadline := time.Now().Add(time.Second)
			for _, c := range caches {
				for {
					v1, _, _ := c.Get(ctx, "q1", o.load, cache.Tags("products"))
					v2, _, _ := c.Get(ctx, "q2", o.load, cache.Tags("products", "user:5"))
					if v1 == "r1'" && v2 == "r2'" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("tagged values not invalidated: %q %q", v1, v2)
					}
					time.Sleep(time.Millisecond)
				}
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
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := c.Stats()
		if st.L1Bytes > 0 && st.L1Bytes <= 64<<10 && st.L1Entries < 100 {
			t.Logf("L1 holds %d entries, %d bytes", st.L1Entries, st.L1Bytes)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("L1 holds %d entries, %d bytes; bound is %d bytes", st.L1Entries, st.L1Bytes, 64<<10)
		}
	}
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
