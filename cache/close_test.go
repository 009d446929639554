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
// (bus, heartbeat, clock, hotness loop, loads, refreshes) is left running.
func TestCloseStopsEverything(t *testing.T) {
	rc := testdb.Redis(t)
	settle := func() int {
		var n int
		for range 50 { // goroutines of closed clients and timers wind down
			runtime.GC()
			n = runtime.NumGoroutine()
			time.Sleep(10 * time.Millisecond)
		}
		return n
	}
	before := settle()
	for range 3 {
		o := newOrigin()
		o.put("k", "v")
		o.delay = 20 * time.Millisecond
		c, err := cache.New(cache.Config[string]{Redis: rc, Namespace: testdb.Namespace(t), TrackHot: true, AutoWarm: o.load})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		c.Get(ctx, "k", o.load)
		go c.Get(ctx, "other", o.load) // a load still in flight at Close
		time.Sleep(5 * time.Millisecond)
		c.Close()
		c.Close() // idempotent
		if _, _, err := c.Get(ctx, "new", o.load); err == nil {
			t.Fatal("a load after Close succeeded")
		}
	}
	if after := settle(); after > before+2 {
		t.Fatalf("%d goroutines before, %d after three caches were closed", before, after)
	}
}
