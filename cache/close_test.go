package cache_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// TestCloseStopsEverything: after Close, none of the cache's goroutines
// (bus, heartbeat, Redis watch, clock, hotness loop, loads, refreshes) is
// left running, even with a load in flight at Close. It runs on real time,
// so that the real tickers are the ones stopped.
func TestCloseStopsEverything(t *testing.T) {
	rc := testdb.Redis(t)
	goroutines := func() int { runtime.GC(); return runtime.NumGoroutine() }
	before := goroutines()
	for range 3 {
		o := newOrigin()
		o.put("k", "v")
		c, err := cache.New(cache.Config[string]{Redis: rc, Namespace: testdb.Namespace(t), TrackHot: true, AutoWarm: o.load})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		c.Get(ctx, "k", o.load)
		entered, release := o.hold()
		done := make(chan struct{})
		go func() { c.Get(ctx, "other", o.load); close(done) }()
		<-entered // a load is in flight, held until Close ends its context
		c.Close()
		c.Close() // idempotent
		<-done
		release()
		if _, _, err := c.Get(ctx, "new", o.load); err == nil {
			t.Fatal("a load after Close succeeded")
		}
	}
	// Goroutines of the client's closed subscriptions wind down by
	// themselves; the caches' own must all be gone.
	if !within(30*time.Second, func() bool { return goroutines() <= before+2 }) {
		t.Fatalf("%d goroutines before, %d after three caches were closed", before, goroutines())
	}
}
