package cache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// TestRedisCluster runs the cache's cross-instance guarantees on a real
// three-master Redis Cluster: a value and its lease share a hash slot, tag
// epochs and multi-key reads cross slots, and the bus is cluster pub/sub.
func TestRedisCluster(t *testing.T) {
	rc := testdb.StartRedisCluster(t)
	ns := testdb.Namespace(t)
	e := newEnv(t)
	o := newOrigin()
	for i := range 20 {
		o.put(fmt.Sprint(i), fmt.Sprint("v", i))
	}
	cfg := cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous,
		LeaseWait: time.Minute, LoadTimeout: time.Minute, LeaseTTL: 2 * time.Minute}
	a, b := e.cache(cfg), e.cache(cfg)
	e.waitBus(a, b)
	ctx := context.Background()

	// One load across both instances: it is held until every read started.
	_, release := o.hold()
	var wg, started sync.WaitGroup
	var failed atomic.Int64
	for i := range 200 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			c := a
			if i%2 == 1 {
				c = b
			}
			if v, _, err := c.Get(ctx, "7", o.load); err != nil || v != "v7" {
				failed.Add(1)
			}
		}()
	}
	started.Wait()
	release()
	wg.Wait()
	if o.calls.Load() != 1 || failed.Load() != 0 {
		t.Fatalf("%d loads, %d failed reads", o.calls.Load(), failed.Load())
	}
	o.mu.Lock()
	o.entered, o.gate = nil, nil
	o.mu.Unlock()

	// Invalidation reaches the other instance, through the bus: the
	// caches' clock does not move, so no expiry or watchdog can do it.
	o.put("7", "v7'")
	if _, err := a.Delete(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the invalidation reaches the other instance", func() bool {
		v, _, _ := b.Get(ctx, "7", o.load)
		return v == "v7'"
	})

	// Keys spread over every slot: GetMany and tags.
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	got, err := a.GetMany(ctx, keys, func(ctx context.Context, ks []string) (map[string]string, error) {
		out := map[string]string{}
		for _, k := range ks {
			v, _ := o.load(ctx, k)
			out[k] = v
		}
		return out, nil
	})
	if err != nil || len(got) != 20 {
		t.Fatalf("GetMany on the cluster: %d values, %v", len(got), err)
	}
	b.Get(ctx, "q", func(context.Context, string) (string, error) { return "r1", nil }, cache.Tags("products", "user:1", "user:2"))
	if _, err := a.InvalidateTags(ctx, "user:2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tag invalidation reaches the other instance", func() bool {
		v, _, _ := b.Get(ctx, "q", func(context.Context, string) (string, error) { return "r2", nil }, cache.Tags("products", "user:1", "user:2"))
		return v == "r2"
	})
}
