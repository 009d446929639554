package cache

import (
	"context"
	"fmt"
	"time"
)

// BatchLoaderFunc loads many keys from the origin at once. Keys missing
// from the returned map do not exist (they are cached as not found).
type BatchLoaderFunc[V any] func(ctx context.Context, keys []string) (map[string]V, error)

// GetMany returns the values of keys that exist: from L1, then from L2 in
// one pipelined round trip, then from one call of load for the rest. Keys
// that do not exist are absent from the result. As with Get, loads take
// leases so that an invalidation during the load voids the writes, and a
// loader error is returned and never cached; a key another instance is
// loading is loaded here too, but written only by its lease holder.
func (c *Cache[V]) GetMany(ctx context.Context, keys []string, load BatchLoaderFunc[V]) (map[string]V, error) {
	out := make(map[string]V, len(keys))
	var missing []string
	seen := make(map[string]bool, len(keys))
	now := c.clock.nowNano()
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if c.l1 != nil {
			if e, ok := c.l1.GetIfPresent(k); ok && len(e.tags) == 0 && now < e.soft {
				if !e.notFound {
					out[k] = e.value
				}
				continue
			}
		}
		missing = append(missing, k)
	}
	if len(missing) == 0 {
		return out, nil
	}
	gens := make([]uint64, len(missing))
	for i, k := range missing {
		gens[i] = c.stripes.gen(k)
	}

	// L2, one pipelined read.
	if c.l2 != nil {
		datas, err := c.l2.mget(ctx, missing)
		if err == nil {
			rest, restGens := missing[:0:0], gens[:0:0]
			for i, k := range missing {
				if e := c.decodeValid(datas[i], nil, nil); e != nil && c.clock.nowNano() < e.soft {
					c.ctr.l2Hits.Add(1)
					c.fillL1(k, e, gens[i])
					if !e.notFound {
						out[k] = e.value
					}
					continue
				}
				c.ctr.l2Misses.Add(1)
				rest, restGens = append(rest, k), append(restGens, gens[i])
			}
			missing, gens = rest, restGens
		} else {
			c.ctr.l2Errors.Add(1)
		}
		if len(missing) == 0 {
			return out, nil
		}
	}

	// The origin, once, under leases.
	token := randomToken()
	var leased []bool
	if c.l2 != nil {
		var err error
		if leased, err = c.l2.leaseMany(ctx, missing, token, c.cfg.LeaseTTL); err != nil {
			leased = nil // Redis down: load and fill L1 only
		}
	}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.LoadTimeout)
	defer cancel()
	t0 := time.Now()
	vals, err := load(lctx, missing)
	c.cfg.Recorder.ObserveLoad(time.Since(t0))
	c.ctr.loads.Add(1)
	if err != nil {
		c.ctr.loadErrors.Add(1)
		for i, k := range missing {
			if leased != nil && leased[i] {
				_ = c.l2.release(ctx, k, token)
			}
		}
		return out, fmt.Errorf("cache: batch load: %w", err)
	}
	envs := make([]*envelope[V], len(missing))
	var wkeys []string
	var wdata [][]byte
	var wttl []time.Duration
	var widx []int
	for i, k := range missing {
		v, ok := vals[k]
		envs[i] = c.newEnvelope(v, !ok, nil, nil)
		if ok {
			out[k] = v
		}
		if leased != nil && leased[i] {
			data, err := encodeEnvelope(envs[i], c.cfg.Codec)
			if err != nil {
				return out, err
			}
			wkeys, wdata = append(wkeys, k), append(wdata, data)
			wttl, widx = append(wttl, time.Duration(envs[i].hard-c.clock.nowNano())), append(widx, i)
		}
	}
	void := make([]bool, len(missing))
	if len(wkeys) > 0 {
		stored, err := c.l2.setManyIfLeased(ctx, wkeys, token, wdata, wttl)
		if err == nil {
			for j, i := range widx {
				if !stored[j] { // an invalidation took the lease: cache it nowhere
					void[i] = true
					c.ctr.voidedSets.Add(1)
				}
			}
		}
	}
	for i, k := range missing {
		if !void[i] {
			c.fillL1(k, envs[i], gens[i])
		}
	}
	return out, nil
}
