package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// TestFailedInvalidationReplayed: an invalidation that cannot reach Redis
// (killed) is kept pending and replayed once Redis is back, before any
// instance reads L2 again. Redis comes back holding the old values (it
// persists its data, as one cut off by the network would), yet neither
// the instance whose invalidation failed nor a second instance on the
// same Redis serves an old value at any step of the outage or the
// recovery, even when the first instance's replay is late (its writes
// fail until the second instance has probed Redis: the second one's
// breaker grace covers it). Both caches run without L1, so that every
// read the breaker admits reaches L2. Every step is ordered by the
// caches' clock.
func TestFailedInvalidationReplayed(t *testing.T) {
	tagged := cache.Tags("t")
	cases := []struct {
		name       string
		invalidate func(ctx context.Context, a *cache.Cache[string]) (cache.Invalidation, error)
		flushed    bool // the namespace was flushed in L2: even untouched keys are gone
	}{
		// A Delete's DEL and broadcast fail: the key is replayed.
		{"delete", func(ctx context.Context, a *cache.Cache[string]) (cache.Invalidation, error) {
			return a.Delete(ctx, "k")
		}, false},
		// A tag's epoch bump fails: the bump is replayed.
		{"tags", func(ctx context.Context, a *cache.Cache[string]) (cache.Invalidation, error) {
			return a.InvalidateTags(ctx, "t")
		}, false},
		// More keys fail than an instance remembers: it flushes its
		// namespace in L2 instead.
		{"overflow", func(ctx context.Context, a *cache.Cache[string]) (cache.Invalidation, error) {
			keys := []string{"k"}
			for i := range 10_000 {
				keys = append(keys, fmt.Sprint("x", i))
			}
			if _, err := a.Delete(ctx, keys...); err == nil {
				return cache.Invalidation{}, errors.New("the Delete of 10,001 keys succeeded with Redis down")
			}
			return a.InvalidateTags(ctx, "t")
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testdb.StartPersistentRedis(t)
			e := newEnv(t)
			log := &logs{}
			bound := cache.DefaultStalenessBound
			// rueidis retries a read until its deadline while Redis is
			// down: a second is ample for a busy machine, short for a test.
			cfg := cache.Config[string]{Namespace: "replay", DisableL1: true, L2Timeout: time.Second, Logger: slog.New(log)}
			failReplay := new(atomic.Bool)
			cfg.Redis = failingWrites{Client: r.Client(), fail: failReplay}
			a := e.cache(cfg)
			cfg.Redis = r.Client() // the second instance has a connection of its own
			b := e.cache(cfg)
			e.waitBus(a, b)
			ctx := context.Background()
			o := newOrigin()
			o.put("k", "v1")
			o.put("q", "v1")
			o.put("other", "v1")
			for _, c := range []*cache.Cache[string]{a, b} {
				c.Get(ctx, "k", o.load)
				c.Get(ctx, "q", o.load, tagged)
				c.Get(ctx, "other", o.load)
			}
			if _, info, _ := b.Get(ctx, "q", o.load, tagged); info.Source != cache.SourceL2 {
				t.Fatalf("before the outage, B read q from %v, want L2", info.Source)
			}
			// check fails the test if a or b serves an old value.
			check := func(when string) {
				t.Helper()
				for name, c := range map[string]*cache.Cache[string]{"A": a, "B": b} {
					for _, read := range []struct {
						key  string
						opts []cache.Option
					}{{"k", nil}, {"q", []cache.Option{tagged}}} {
						if v, info, err := c.Get(ctx, read.key, o.load, read.opts...); err != nil || v != "v2" {
							t.Fatalf("%s: %s read %s = %q from %v (%v); want v2: the old value came back (A: %+v)",
								when, name, read.key, v, info.Source, err, a.Stats())
						}
					}
				}
			}

			r.Kill()
			// Both buses go down (at once, or after half the bound's silence),
			// which trips both breakers.
			e.step(bound/2 + bound/8)
			eventually(t, "both buses go down", func() bool {
				return !a.Stats().BusUp && !b.Stats().BusUp && a.Stats().L2Breaker == cache.BreakerOpen && b.Stats().L2Breaker == cache.BreakerOpen
			})
			o.put("k", "v2")
			o.put("q", "v2")
			if _, err := tc.invalidate(ctx, a); !errors.Is(err, cache.ErrL2Unavailable) {
				t.Fatalf("invalidation with Redis down: %v, want ErrL2Unavailable", err)
			}
			if tc.name != "overflow" {
				// The other one of k and q: only one of them was invalidated.
				if tc.name == "delete" {
					_, _ = a.InvalidateTags(ctx, "t")
				} else {
					_, _ = a.Delete(ctx, "k")
				}
			}
			if n := a.Stats().PendingInvalidations; n == 0 {
				t.Fatal("no invalidation pending after failed ones")
			}
			check("during the outage")
			e.step(1500 * time.Millisecond) // a watch tick: a replay that fails
			check("later in the outage")

			// Redis is back, but A's replays fail until B has probed it: B
			// then waits out its breaker's grace, while A's next replay
			// (a cooldown later) gets through.
			failReplay.Store(true)
			r.Start()
			for i := 0; b.Stats().L2Breaker != cache.BreakerHalfOpen; i++ {
				if i == 600 {
					t.Fatalf("B never probed Redis: %+v", b.Health())
				}
				e.step(bound / 8)
				check(fmt.Sprintf("step %d after the restart", i))
			}
			if a.Stats().PendingInvalidations == 0 {
				t.Fatal("A replayed its invalidations although their writes failed")
			}
			failReplay.Store(false)
			for i := 0; a.Health().Degraded() || b.Health().Degraded(); i++ {
				if i == 600 { // 75 s on the caches' clock: a probe every second, a resubscription in real time
					t.Fatalf("not recovered: A %+v, B %+v", a.Health(), b.Health())
				}
				e.step(bound / 8)
				check(fmt.Sprintf("step %d of the recovery", i))
			}
			check("after recovery")
			if st := a.Stats(); st.PendingInvalidations != 0 || st.Replays == 0 {
				t.Fatalf("after recovery: %d invalidations pending, %d replays", st.PendingInvalidations, st.Replays)
			}
			// L2 serves again: B's read of k refilled it (under its lease).
			if v, info, _ := b.Get(ctx, "k", o.load); v != "v2" || info.Source != cache.SourceL2 {
				t.Fatalf("after recovery, B read k = %q from %v; want v2 from L2 (B: %+v)", v, info, b.Stats())
			}
			want := cache.SourceL2
			if tc.flushed {
				want = cache.SourceLoader
			}
			if _, info, _ := b.Get(ctx, "other", o.load); info.Source != want {
				t.Fatalf("after recovery, B read an untouched key from %v, want %v", info.Source, want)
			}
			if _, msgs := log.count(slog.LevelWarn); tc.flushed != strings.Contains(strings.Join(msgs, "|"), "more invalidations failed") {
				t.Fatalf("overflow warned %v, want %v: %q", !tc.flushed, tc.flushed, msgs)
			}
		})
	}
}

// failingWrites is a Redis client whose pipelined DEL, UNLINK and INCR
// fail while fail is set, as on a connection not yet remade: a replay's
// writes, not its reads.
type failingWrites struct {
	rueidis.Client
	fail *atomic.Bool
}

func (f failingWrites) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	if f.fail.Load() && slices.ContainsFunc(cmds, func(c rueidis.Completed) bool {
		name := c.Commands()[0]
		return name == "DEL" || name == "UNLINK" || name == "INCR"
	}) {
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		ctx = canceled
	}
	return f.Client.DoMulti(ctx, cmds...)
}
