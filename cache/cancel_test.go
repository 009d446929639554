package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// blockingLoad is a loader that says when it starts and then waits for
// its context or for release, and reports how it ended on ended.
type blockingLoad struct {
	started, release chan struct{}
	ended            chan error
}

func newBlockingLoad() *blockingLoad {
	return &blockingLoad{started: make(chan struct{}, 1), release: make(chan struct{}), ended: make(chan error, 1)}
}

func (b *blockingLoad) load(ctx context.Context, key string) (string, error) {
	b.started <- struct{}{}
	select {
	case <-ctx.Done():
		b.ended <- ctx.Err()
		return "", ctx.Err()
	case <-b.release:
		b.ended <- nil
		return "v-" + key, nil
	}
}

// await receives from ch, or fails t after a deadline far beyond a normal
// run (it turns a lost event into a failure, it orders nothing).
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not within 30 s", what)
		panic("unreachable")
	}
}

// TestLoadCanceledWhenEveryCallerLeaves: a load whose only caller gives
// up is canceled (its query would stop), not left running for
// LoadTimeout, and the next caller of the key starts a load of its own
// instead of joining the canceled one; with Redis, the canceled load's
// lease is released at once, so another instance loads without waiting
// for the lease's TTL.
func TestLoadCanceledWhenEveryCallerLeaves(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "l1", true: "redis"}[withRedis], func(t *testing.T) {
			cfg := cache.Config[string]{L2Timeout: generous, LoadTimeout: time.Minute, LeaseTTL: time.Minute}
			if withRedis {
				cfg.Redis, cfg.Namespace = testdb.Redis(t), testdb.Namespace(t)
			}
			c := newCache(t, cfg)
			b := newBlockingLoad()
			ctx, cancel := context.WithCancel(context.Background())
			got := make(chan error, 1)
			go func() {
				_, _, err := c.Get(ctx, "k", b.load)
				got <- err
			}()
			await(t, b.started, "the load starting")
			cancel()
			if err := await(t, got, "the caller giving up"); !errors.Is(err, context.Canceled) {
				t.Fatalf("the caller's Get: %v, want context.Canceled", err)
			}
			if err := await(t, b.ended, "the abandoned load ending"); !errors.Is(err, context.Canceled) {
				t.Fatalf("the abandoned load ended with %v, want its context canceled", err)
			}
			// A new caller, and (with Redis) another instance, load afresh:
			// bounded far below the lease's minute, so a lease left behind
			// would fail the second instance's read.
			others := []*cache.Cache[string]{c}
			if withRedis {
				others = append(others, newCache(t, cfg))
			}
			for i, o := range others {
				fresh := newBlockingLoad()
				close(fresh.release)
				gctx, gcancel := context.WithTimeout(context.Background(), 10*time.Second)
				v, _, err := o.Get(gctx, "k", fresh.load)
				gcancel()
				if err != nil || v != "v-k" {
					t.Fatalf("caller %d after the abandoned load: %q, %v; want its own load's value", i, v, err)
				}
			}
		})
	}
}

// TestLoadGoesOnWhileACallerWaits: of two callers sharing a load, the one
// that gives up does not cancel it; the other gets the value.
func TestLoadGoesOnWhileACallerWaits(t *testing.T) {
	c := newCache(t, cache.Config[string]{LoadTimeout: time.Minute, LeaseTTL: time.Minute})
	b := newBlockingLoad()
	ctxA, cancelA := context.WithCancel(context.Background())
	gotA := make(chan error, 1)
	go func() {
		_, _, err := c.Get(ctxA, "k", b.load)
		gotA <- err
	}()
	await(t, b.started, "the load starting")
	type result struct {
		v   string
		err error
	}
	gotB := make(chan result, 1)
	go func() {
		v, _, err := c.Get(context.Background(), "k", b.load)
		gotB <- result{v, err}
	}()
	eventually(t, "the second caller joining the load", func() bool { return c.Stats().Deduped == 1 })
	cancelA()
	if err := await(t, gotA, "the first caller giving up"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the first caller's Get: %v, want context.Canceled", err)
	}
	select {
	case err := <-b.ended:
		t.Fatalf("the load ended (%v) while a caller still waited for it", err)
	default:
	}
	close(b.release)
	if r := await(t, gotB, "the second caller's value"); r.err != nil || r.v != "v-k" {
		t.Fatalf("the second caller: %q, %v; want v-k", r.v, r.err)
	}
	if err := await(t, b.ended, "the load ending"); err != nil {
		t.Fatalf("the load ended with %v, want released", err)
	}
}
