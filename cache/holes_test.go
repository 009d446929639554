package cache_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// heldDel is a Redis client whose first pipelined DEL reports on started
// and then waits for proceed: a test puts reads exactly between the start
// of an invalidation and its L2 delete. Its zero value stands in for a
// client in configurations refused before any call.
type heldDel struct {
	rueidis.Client
	started chan struct{}
	proceed chan struct{}
	once    *sync.Once
}

func (s heldDel) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	for _, c := range cmds {
		if slices.Contains(c.Commands(), "DEL") {
			s.once.Do(func() { s.started <- struct{}{}; <-s.proceed })
			break
		}
	}
	return s.Client.DoMulti(ctx, cmds...)
}

// TestDeleteRacesOwnReads: a read on the deleting instance that refills L1
// from L2 after Delete dropped the key from L1 but before the L2 delete
// lands must not keep the old value once Delete returns.
func TestDeleteRacesOwnReads(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	e := newEnv(t)
	o := newOrigin()
	o.put("k", "v1")
	held := heldDel{Client: rc, started: make(chan struct{}), proceed: make(chan struct{}), once: new(sync.Once)}
	a := e.cache(cache.Config[string]{Redis: held, Namespace: ns, L2Timeout: generous})
	e.waitBus(a)
	ctx := context.Background()
	a.Get(ctx, "k", o.load)
	o.put("k", "v2")
	done := make(chan struct{})
	go func() { a.Delete(ctx, "k"); close(done) }()
	<-held.started // L1 dropped, the L2 delete not yet sent
	if v, info, _ := a.Get(ctx, "k", o.load); v != "v1" || info.Source != cache.SourceL2 {
		t.Fatalf("the read inside the delete: %q from %v; want v1 refilled from L2", v, info.Source)
	}
	close(held.proceed)
	<-done
	if v, info, _ := a.Get(ctx, "k", o.load); v != "v2" {
		t.Fatalf("after Delete returned, the deleting instance serves %q from %v", v, info.Source)
	}
}

// TestSetReachesOtherInstances: Set through B replaces the value A holds
// in its L1, through the bus (the caches' clock does not move, so no
// expiry or watchdog can do it).
func TestSetReachesOtherInstances(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	e := newEnv(t)
	o := newOrigin()
	o.put("k", "v1")
	a := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous})
	b := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous})
	e.waitBus(a, b)
	ctx := context.Background()
	a.Get(ctx, "k", o.load)
	if _, info, _ := a.Get(ctx, "k", o.load); info.Source != cache.SourceL1 {
		t.Fatalf("A does not hold the key in L1 (%v)", info.Source)
	}
	if err := b.Set(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A serves B's Set", func() bool { v, _, _ := a.Get(ctx, "k", o.load); return v == "v2" })
}
