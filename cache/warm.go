package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Hot returns up to n of the most read keys in the current window, most
// read first. It needs TrackHot.
func (c *Cache[V]) Hot(n int) []string {
	if c.hot == nil {
		return nil
	}
	return c.hot.top(n)
}

// Warm reads keys through the cache with load, so that every level holds
// them: L2 hits fill L1, misses load (under leases, like any read). Keys
// L1 already holds fresh are skipped; opts apply to every key, as in Get.
// It returns how many keys it read.
func (c *Cache[V]) Warm(ctx context.Context, keys []string, load LoaderFunc[V], opts ...Option) (int, error) {
	var warmed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	next := make(chan string)
	var wg sync.WaitGroup
	for range min(warmWorkers, max(1, len(keys))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				if c.l1 != nil {
					if e, ok := c.l1.GetIfPresent(k); ok && c.clock.nowNano() < e.soft {
						continue
					}
				}
				if _, _, err := c.miss(ctx, k, load, opts); err != nil && !errors.Is(err, ErrNotFound) {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("cache: warm %q: %w", k, err)
					}
					mu.Unlock()
					continue
				}
				warmed.Add(1)
				c.ctr.warmed.Add(1)
			}
		}()
	}
	for _, k := range keys {
		select {
		case next <- k:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return int(warmed.Load()), firstErr
}

// WarmHot warms the n hottest keys (the guide's "pre-warm the top 1,000").
func (c *Cache[V]) WarmHot(ctx context.Context, n int, load LoaderFunc[V]) (int, error) {
	return c.Warm(ctx, c.Hot(n), load)
}

// hotKey is where an instance publishes its hot set in Redis.
func (c *Cache[V]) hotKey() string { return c.cfg.Namespace + ":hot" }

// hotSetTTL is how long a published hot set is kept.
const hotSetTTL = 10 * time.Minute

// PublishHot stores this instance's n hottest keys in Redis, where a fresh
// instance finds them ([Cache.WarmFromPublished]).
func (c *Cache[V]) PublishHot(ctx context.Context, n int) error {
	if c.l2 == nil || c.hot == nil {
		return errors.New("cache: PublishHot needs Redis and TrackHot")
	}
	keys := c.hot.top(n)
	if len(keys) == 0 {
		return nil
	}
	data, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	return c.l2.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		return cl.Do(ctx, cl.B().Set().Key(c.hotKey()).Value(rueidis.BinaryString(data)).Px(hotSetTTL).Build()).Error()
	})
}

// PublishedHot returns the hot set last published by any instance.
func (c *Cache[V]) PublishedHot(ctx context.Context) ([]string, error) {
	if c.l2 == nil {
		return nil, errors.New("cache: PublishedHot needs Redis")
	}
	var data []byte
	err := c.l2.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		var err error
		data, err = cl.Do(ctx, cl.B().Get().Key(c.hotKey()).Build()).AsBytes()
		return err
	})
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []string
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, fmt.Errorf("cache: published hot set: %w", err)
	}
	return keys, nil
}

// WarmFromPublished loads the published hot set into this instance, so a
// fresh instance reaches its steady L1 hit ratio without waiting for
// traffic to find the hot keys. The values come from L2 when it has them.
func (c *Cache[V]) WarmFromPublished(ctx context.Context, load LoaderFunc[V]) (int, error) {
	keys, err := c.PublishedHot(ctx)
	if err != nil {
		return 0, err
	}
	return c.Warm(ctx, keys, load)
}

// CopyKeys copies the L2 entries of keys in namespace from the Redis src
// to the Redis dst, keeping each entry's remaining lifetime: the guide's
// new-region warming. It returns how many entries were copied; keys src
// does not hold are skipped.
func CopyKeys(ctx context.Context, src, dst rueidis.Client, namespace string, keys []string) (int, error) {
	r := &redisLevel{ns: namespace}
	copied := 0
	for _, k := range keys {
		vk := r.valueKey(k)
		res := src.DoMulti(ctx, src.B().Get().Key(vk).Build(), src.B().Pttl().Key(vk).Build())
		data, err := res[0].AsBytes()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			return copied, fmt.Errorf("cache: copy %q: read: %w", k, err)
		}
		ttl, err := res[1].AsInt64()
		if err != nil {
			return copied, fmt.Errorf("cache: copy %q: ttl: %w", k, err)
		}
		if ttl <= 0 {
			continue // expiring now, or kept without expiry by someone else
		}
		if err := dst.Do(ctx, dst.B().Set().Key(vk).Value(rueidis.BinaryString(data)).Px(time.Duration(ttl)*time.Millisecond).Build()).Error(); err != nil {
			return copied, fmt.Errorf("cache: copy %q: write: %w", k, err)
		}
		copied++
	}
	return copied, nil
}

// hotLoop ages the hotness estimates every half window, publishes the hot
// set (with Redis), and runs AutoWarm when the read rate jumps.
func (c *Cache[V]) hotLoop(ctx context.Context) {
	decay, stopDecay := c.ts.NewTicker(c.cfg.HotWindow / 2)
	defer stopDecay()
	publish, stopPublish := c.ts.NewTicker(publishHotEvery)
	defer stopPublish()
	watch, stopWatch := c.ts.NewTicker(warmInterval)
	defer stopWatch()
	var w rateWatch
	for {
		select {
		case <-ctx.Done():
			return
		case <-decay:
			c.hot.decay()
		case <-publish:
			if c.l2 != nil {
				if err := c.PublishHot(ctx, c.cfg.WarmTopN); err != nil {
					c.cfg.Logger.Debug("cache: publishing the hot set failed", "err", err)
				}
			}
		case <-watch:
			if w.surge(c.hot.reads(), c.cfg.WarmRise) && c.cfg.AutoWarm != nil {
				n, err := c.WarmHot(ctx, c.cfg.WarmTopN, c.cfg.AutoWarm)
				c.cfg.Logger.Info("cache: read rate surged; warmed the hot set", "namespace", c.cfg.Namespace, "keys", n, "err", err)
			}
		}
	}
}

// rateWatch keeps a baseline of the read rate (an exponentially weighted
// average of the intervals that are not surges) and reports a surge once,
// when an interval's reads exceed the baseline by more than rise.
type rateWatch struct {
	last     uint64
	baseline float64
	surging  bool
}

// surge takes the running total of reads and reports whether this
// interval starts a surge.
func (w *rateWatch) surge(total uint64, rise float64) bool {
	n := float64(total - w.last)
	w.last = total
	switch {
	case w.baseline == 0:
		w.baseline = n
		return false
	case n > (1+rise)*w.baseline:
		start := !w.surging
		w.surging = true
		return start
	default:
		w.surging = false
		w.baseline = 0.8*w.baseline + 0.2*n
		return false
	}
}
