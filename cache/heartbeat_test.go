package cache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// stalledPublish is a Redis client whose next PUBLISH, once armed, is held
// for stall before it is sent: a machine too busy to run the heartbeat in
// time.
type stalledPublish struct {
	rueidis.Client
	armed *atomic.Bool
	stall time.Duration
}

func (s stalledPublish) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if cmd.Commands()[0] == "PUBLISH" && s.armed.CompareAndSwap(true, false) {
		time.Sleep(s.stall) // the injected stall, not an ordering
	}
	return s.Client.Do(ctx, cmd)
}

// TestHeartbeatStall: a heartbeat held up longer than a quarter of the
// staleness bound in real time is neither dropped (which would make a
// sequence gap and flush L1) nor outrun by the test's clock: the test's
// step waits for the beat in flight, and on a fake clock beats have a
// generous real-time bound. An L1 hit stays an L1 hit.
func TestHeartbeatStall(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	e := newEnv(t)
	armed := new(atomic.Bool)
	bound := cache.DefaultStalenessBound
	c := e.cache(cache.Config[string]{Redis: stalledPublish{Client: rc, armed: armed, stall: bound/4 + 200*time.Millisecond},
		Namespace: ns, L2Timeout: generous})
	e.waitBus(c)
	ctx := context.Background()
	o := newOrigin()
	o.put("k", "v")
	c.Get(ctx, "k", o.load)
	e.step(bound / 4) // a heartbeat heard: the next sequence number is expected
	flushes := c.Stats().Flushes
	armed.Store(true)
	e.step(bound / 4) // a heartbeat, stalled
	e.step(bound / 4) // the next one, which would show a gap
	if armed.Load() {
		t.Fatal("no heartbeat was sent")
	}
	if st := c.Stats(); st.Flushes != flushes || !st.BusUp {
		t.Fatalf("after a stalled heartbeat: %d flushes (was %d), bus up %v", st.Flushes, flushes, st.BusUp)
	}
	if _, info, _ := c.Get(ctx, "k", o.load); info.Source != cache.SourceL1 || o.calls.Load() != 1 {
		t.Fatalf("read from %v after a stalled heartbeat, %d loads; want L1, 1", info.Source, o.calls.Load())
	}
}
