package cache_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
)

// TestRefreshFailuresRateLimited: with the origin down, every read of a
// stale key starts a background refresh that fails; the log gets the
// first failure at once, then at most one line a minute, which counts the
// failures not logged meanwhile, however many there are.
func TestRefreshFailuresRateLimited(t *testing.T) {
	e := newEnv(t)
	log := &logs{}
	c := e.cache(cache.Config[string]{TTL: time.Second, StaleTTL: time.Hour, L1TTL: time.Hour, Jitter: -1, Logger: slog.New(log)})
	ctx := context.Background()
	var down atomic.Bool
	load := func(context.Context, string) (string, error) {
		if down.Load() {
			return "", errors.New("origin down")
		}
		return "v", nil
	}
	if _, _, err := c.Get(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	e.clk.Advance(2 * time.Second) // past the TTL: reads serve it stale and refresh it
	// fail reads the stale key until n more refreshes have failed.
	fail := func(n uint64) {
		t.Helper()
		target := c.Stats().LoadErrors + n
		eventually(t, "refreshes fail", func() bool {
			if v, info, err := c.Get(ctx, "k", load); err != nil || v != "v" || !info.Stale {
				t.Fatalf("read of a stale key: %q, %+v, %v", v, info, err)
			}
			return c.Stats().LoadErrors >= target
		})
	}
	warnings := func() []slogRecord {
		log.mu.Lock()
		defer log.mu.Unlock()
		var out []slogRecord
		for _, r := range log.recs {
			if r.Level == slog.LevelWarn {
				out = append(out, slogRecord{r.Message, attr(r, "failures_not_logged")})
			}
		}
		return out
	}

	fail(1)
	eventually(t, "the first failure is logged at once", func() bool { return len(warnings()) == 1 })
	fail(100)
	e.clk.Advance(59 * time.Second)
	fail(1)
	if w := warnings(); len(w) != 1 {
		t.Fatalf("%d warnings within a minute of the first, want 1: %v", len(w), w)
	}
	e.clk.Advance(time.Second) // a minute after the first
	fail(1)
	eventually(t, "a minute later, one more line", func() bool { return len(warnings()) == 2 })
	if w := warnings(); w[1].notLogged < 101 {
		t.Fatalf("the second warning counts %d failures not logged, want at least 101: %v", w[1].notLogged, w)
	}
	fail(10)
	if w := warnings(); len(w) != 2 {
		t.Fatalf("%d warnings, want 2: %v", len(w), w)
	}
}

// slogRecord is a warning's message and its failures_not_logged.
type slogRecord struct {
	msg       string
	notLogged int64
}

// attr returns the integer attribute key of r, or -1.
func attr(r slog.Record, key string) int64 {
	v := int64(-1)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.Int64()
			return false
		}
		return true
	})
	return v
}
