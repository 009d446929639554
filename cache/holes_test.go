package cache_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// slowDel is a Redis client whose pipelined DELs take 50 ms longer, so a
// test can interleave reads with an invalidation deterministically.
type slowDel struct{ rueidis.Client }

func (s slowDel) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	for _, c := range cmds {
		if slices.Contains(c.Commands(), "DEL") {
			time.Sleep(50 * time.Millisecond)
			break
		}
	}
	return s.Client.DoMulti(ctx, cmds...)
}

// TestDeleteRacesOwnReads: reads on the deleting instance that refill L1
// from L2 before the L2 delete lands must not keep the old value.
func TestDeleteRacesOwnReads(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	o := newOrigin()
	o.put("k", "v1")
	a := newCache(t, cache.Config[string]{Redis: slowDel{rc}, Namespace: ns})
	waitBus(t, a)
	ctx := context.Background()
	a.Get(ctx, "k", o.load)
	o.put("k", "v2")
	done := make(chan struct{})
	go func() { a.Delete(ctx, "k"); close(done) }()
	for reading := true; reading; { // read while the delete is under way
		select {
		case <-done:
			reading = false
		default:
			a.Get(ctx, "k", o.load)
		}
	}
	if v, info, _ := a.Get(ctx, "k", o.load); v != "v2" {
		t.Fatalf("after Delete returned, the deleting instance serves %q from %v", v, info.Source)
	}
}

// TestSetReachesOtherInstances: Set through B replaces the value A holds
// in its L1 within the staleness bound.
func TestSetReachesOtherInstances(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	o := newOrigin()
	o.put("k", "v1")
	bound := 400 * time.Millisecond
	a := newCache(t, cache.Config[string]{Redis: rc, Namespace: ns, StalenessBound: bound})
	b := newCache(t, cache.Config[string]{Redis: rc, Namespace: ns, StalenessBound: bound})
	waitBus(t, a, b)
	ctx := context.Background()
	a.Get(ctx, "k", o.load)
	if err := b.Set(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		v, _, _ := a.Get(ctx, "k", o.load)
		if v == "v2" {
			return
		}
		if time.Since(start) > bound {
			t.Fatalf("A still serves %q %v after B's Set", v, time.Since(start))
		}
		time.Sleep(time.Millisecond)
	}
}
