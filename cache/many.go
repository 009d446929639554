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
	missing := c.manyFromL1(keys, out)
	if len(missing) == 0 {
		return out, nil
	}
	gens := make([]uint64, len(missing))
	for i, k := range missing {
		gens[i] = c.stripes.gen(k) // before any read: a later invalidation voids our fill
	}
	if c.l2 != nil {
		if missing, gens = c.manyFromL2(ctx, missing, gens, out); len(missing) == 0 {
			return out, nil
		}
	}
	return out, c.manyFromLoader(ctx, missing, gens, load, out)
}

// manyFromL1 puts in out the keys L1 holds fresh and untagged, and returns
// the others, each once.
func (c *Cache[V]) manyFromL1(keys []string, out map[string]V) []string {
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
	return missing
}

// manyFromL2 reads the missing keys from L2 in one round trip, puts the
// fresh ones in out and in L1, and returns the keys (and generations)
// still missing. With L2 down it returns them all; keys whose invalidation
// is pending are not read.
func (c *Cache[V]) manyFromL2(ctx context.Context, missing []string, gens []uint64, out map[string]V) ([]string, []uint64) {
	rest, restGens := missing[:0:0], gens[:0:0]
	if c.pend.n.Load() != 0 {
		readable, readableGens := missing[:0:0], gens[:0:0]
		for i, k := range missing {
			if c.pend.hasKey(k) {
				rest, restGens = append(rest, k), append(restGens, gens[i])
			} else {
				readable, readableGens = append(readable, k), append(readableGens, gens[i])
			}
		}
		if missing, gens = readable, readableGens; len(missing) == 0 {
			return rest, restGens
		}
	}
	datas, err := c.l2.mget(ctx, missing)
	if err != nil {
		c.ctr.l2Errors.Add(1)
		return append(rest, missing...), append(restGens, gens...)
	}
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
	return rest, restGens
}

// manyFromLoader loads the missing keys with one call of load, under
// leases where L2 gives them, puts them in out and stores them.
func (c *Cache[V]) manyFromLoader(ctx context.Context, missing []string, gens []uint64, load BatchLoaderFunc[V], out map[string]V) error {
	token := randomToken()
	var leased []bool
	if c.l2 != nil {
		var err error
		if leased, err = c.leaseMissing(ctx, missing, token); err != nil {
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
		return fmt.Errorf("cache: batch load: %w", err)
	}
	envs := make([]*envelope[V], len(missing))
	for i, k := range missing {
		v, ok := vals[k]
		envs[i] = c.newEnvelope(v, !ok, nil, nil)
		if ok {
			out[k] = v
		}
	}
	return c.storeMany(ctx, missing, gens, envs, leased, token)
}

// storeMany writes the loaded envelopes to L2 where this call holds the
// lease (and still does), then to L1 unless an invalidation voided them.
func (c *Cache[V]) storeMany(ctx context.Context, keys []string, gens []uint64, envs []*envelope[V], leased []bool, token string) error {
	var wkeys []string
	var wdata [][]byte
	var wttl []time.Duration
	var widx []int
	for i, k := range keys {
		if leased == nil || !leased[i] {
			continue
		}
		data, err := encodeEnvelope(envs[i], c.cfg.Codec)
		if err != nil {
			return err
		}
		wkeys, wdata = append(wkeys, k), append(wdata, data)
		wttl, widx = append(wttl, time.Duration(envs[i].hard-c.clock.nowNano())), append(widx, i)
	}
	void := make([]bool, len(keys))
	if len(wkeys) > 0 {
		if stored, err := c.l2.setManyIfLeased(ctx, wkeys, token, wdata, wttl); err == nil {
			for j, i := range widx {
				if !stored[j] { // an invalidation took the lease: cache it nowhere
					void[i] = true
					c.ctr.voidedSets.Add(1)
				}
			}
		} else {
			for _, k := range wkeys { // give the leases up rather than make others wait until they expire
				_ = c.l2.release(ctx, k, token)
			}
		}
	}
	for i, k := range keys {
		if !void[i] {
			c.fillL1(k, envs[i], gens[i])
		}
	}
	return nil
}

// leaseMissing takes the leases of keys with token, pipelined, and
// reports which it got; keys whose invalidation is pending get none, so
// they are neither read nor written in L2.
func (c *Cache[V]) leaseMissing(ctx context.Context, keys []string, token string) ([]bool, error) {
	if c.pend.n.Load() == 0 {
		return c.l2.leaseMany(ctx, keys, token, c.cfg.LeaseTTL)
	}
	var want []string
	var idx []int
	for i, k := range keys {
		if !c.pend.hasKey(k) {
			want, idx = append(want, k), append(idx, i)
		}
	}
	leased := make([]bool, len(keys))
	if len(want) == 0 {
		return leased, nil
	}
	got, err := c.l2.leaseMany(ctx, want, token, c.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		leased[i] = got[j]
	}
	return leased, nil
}
