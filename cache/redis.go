package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/internal/deadline"
)

// ErrL2Unavailable is returned (wrapped) by L2 operations while the L2
// breaker is open.
var ErrL2Unavailable = errors.New("cache: L2 unavailable")

// Lua scripts run atomically in Redis. A value and its lease share a hash
// tag, so they live in one slot of a Redis Cluster.
var (
	// getOrLease returns {1, value} on a hit, {2, ""} when this caller now
	// holds the lease on the missing key, {3, ""} when another caller does.
	getOrLeaseScript = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {3, ''}`)
	// setIfLeased writes the value only while the caller's lease token is
	// still the key's lease: an invalidation deletes the lease, so a load
	// that raced with a write can never store its stale value.
	setIfLeasedScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0`)
	// releaseScript gives up a lease the caller still holds.
	releaseScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// Results of getOrLease.
const (
	l2Hit       = 1
	l2Leased    = 2
	l2LeaseHeld = 3
)

// redisLevel is L2: one Redis server or cluster shared by every instance.
// Every call is bounded by timeout and goes through the breaker; before
// the connection is made, every call fails at once.
type redisLevel struct {
	conn    *RedisConn
	ns      string
	timeout time.Duration
	br      *breaker
	slots   *deadline.Slots
	noteErr func(error) // records a failed call for Health
}

// client returns the connected client, or nil before the connection.
func (r *redisLevel) client() rueidis.Client { return r.conn.Client() }

// unavailable wraps a failure of a call that reached (or tried to reach)
// Redis, and records it.
func (r *redisLevel) unavailable(err error) error {
	r.noteErr(err)
	return fmt.Errorf("%w: %v", ErrL2Unavailable, err)
}

func (r *redisLevel) valueKey(key string) string { return "{" + r.ns + ":" + key + "}" }
func (r *redisLevel) leaseKey(key string) string { return "{" + r.ns + ":" + key + "}:lease" }
func (r *redisLevel) tagKey(tag string) string   { return r.ns + ":tag:" + tag }

// call runs fn with the level's timeout if the breaker allows it, and
// reports the outcome to the breaker.
//
// The timeout comes from a shared deadline slot rather than a context per
// call: a per-call timer cost 5 allocations and a fifth of the L2 hit
// path's throughput. The caller's own context is used instead only when its
// deadline is sooner; its cancellation is otherwise not consulted, since an
// L2 call never outlives the timeout anyway.
func (r *redisLevel) call(ctx context.Context, fn func(context.Context, rueidis.Client) error) error {
	return r.gated(ctx, r.br.allow, fn)
}

// gated is call with the breaker's gate given: allow for ordinary calls,
// probe for the ping that tests an open breaker.
func (r *redisLevel) gated(ctx context.Context, gate func() (uint64, bool), fn func(context.Context, rueidis.Client) error) error {
	cl := r.client()
	if cl == nil {
		return fmt.Errorf("%w: %v", ErrL2Unavailable, errNotConnected)
	}
	epoch, ok := gate()
	if !ok {
		return ErrL2Unavailable
	}
	callCtx, cancel := r.slots.For(ctx)
	err := fn(callCtx, cl)
	if cancel != nil {
		cancel()
	}
	// A caller that gave up says nothing about Redis.
	r.br.done(epoch, err == nil || rueidis.IsRedisNil(err) || ctx.Err() != nil)
	if err != nil && !rueidis.IsRedisNil(err) {
		return r.unavailable(err)
	}
	return err
}

// ping probes Redis through the breaker: the one call that may go through
// an open breaker once its cooldown is over.
func (r *redisLevel) ping(ctx context.Context) error {
	return r.gated(ctx, r.br.probe, func(ctx context.Context, cl rueidis.Client) error {
		return cl.Do(ctx, cl.B().Ping().Build()).Error()
	})
}

// get returns the stored bytes of key; found is false on a miss. It is
// the L2 hit path, so it spells out what call does, without a closure.
func (r *redisLevel) get(ctx context.Context, key string) (data []byte, found bool, err error) {
	cl := r.client()
	if cl == nil {
		return nil, false, fmt.Errorf("%w: %v", ErrL2Unavailable, errNotConnected)
	}
	epoch, ok := r.br.allow()
	if !ok {
		return nil, false, ErrL2Unavailable
	}
	callCtx, cancel := r.slots.For(ctx)
	data, err = cl.Do(callCtx, cl.B().Get().Key(r.valueKey(key)).Build()).AsBytes()
	if cancel != nil {
		cancel()
	}
	nilReply := rueidis.IsRedisNil(err)
	r.br.done(epoch, err == nil || nilReply || ctx.Err() != nil)
	switch {
	case nilReply:
		return nil, false, nil
	case err != nil:
		return nil, false, r.unavailable(err)
	}
	return data, true, nil
}

// mget returns the stored bytes of each key (nil for a miss), pipelined.
func (r *redisLevel) mget(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	err := r.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			cmds[i] = cl.B().Get().Key(r.valueKey(k)).Build()
		}
		for i, res := range cl.DoMulti(ctx, cmds...) {
			b, err := res.AsBytes()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return err
			}
			out[i] = b
		}
		return nil
	})
	return out, err
}

// getOrLease reads key and, on a miss, tries to take its lease with token.
func (r *redisLevel) getOrLease(ctx context.Context, key, token string, ttl time.Duration) (state int, data []byte, err error) {
	err = r.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		vals, err := getOrLeaseScript.Exec(ctx, cl, []string{r.valueKey(key), r.leaseKey(key)},
			[]string{token, strconv.FormatInt(ttl.Milliseconds(), 10)}).ToArray()
		if err != nil {
			return err
		}
		if len(vals) != 2 {
			return fmt.Errorf("getOrLease: %d results", len(vals))
		}
		n, err := vals[0].AsInt64()
		if err != nil {
			return err
		}
		state = int(n)
		if state == l2Hit {
			data, err = vals[1].AsBytes()
		}
		return err
	})
	return state, data, err
}

// setIfLeased stores data under key for ttl if token still holds the lease.
func (r *redisLevel) setIfLeased(ctx context.Context, key, token string, data []byte, ttl time.Duration) (bool, error) {
	var stored bool
	err := r.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		n, err := setIfLeasedScript.Exec(ctx, cl, []string{r.valueKey(key), r.leaseKey(key)},
			[]string{token, rueidis.BinaryString(data), strconv.FormatInt(max(1, ttl.Milliseconds()), 10)}).AsInt64()
		stored = n == 1
		return err
	})
	return stored, err
}

// release gives up the lease on key if token holds it.
func (r *redisLevel) release(ctx context.Context, key, token string) error {
	return r.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		return releaseScript.Exec(ctx, cl, []string{r.leaseKey(key)}, []string{token}).Error()
	})
}

// set stores data under key for ttl unconditionally and drops the key's
// lease, so a load in flight cannot overwrite it with older data.
func (r *redisLevel) set(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	return r.write(ctx, func(ctx context.Context, cl rueidis.Client) error {
		for _, res := range cl.DoMulti(ctx,
			cl.B().Set().Key(r.valueKey(key)).Value(rueidis.BinaryString(data)).Px(max(time.Millisecond, ttl)).Build(),
			cl.B().Del().Key(r.leaseKey(key)).Build()) {
			if err := res.Error(); err != nil {
				return err
			}
		}
		return nil
	})
}

// invalidationTimeout bounds an invalidation's Redis calls. They bypass the
// breaker: a write's invalidation is worth a try even while reads are
// being shed, since skipping it leaves other instances stale for a TTL.
const invalidationTimeout = 500 * time.Millisecond

// write runs an invalidation-side call (delete, tag bump, publish, set)
// without consulting the breaker, with its own timeout, retried once.
func (r *redisLevel) write(ctx context.Context, fn func(context.Context, rueidis.Client) error) error {
	cl := r.client()
	if cl == nil {
		return fmt.Errorf("%w: %v", ErrL2Unavailable, errNotConnected)
	}
	var err error
	for attempt := range 2 {
		if attempt > 0 && ctx.Err() != nil {
			break
		}
		wctx, cancel := context.WithTimeout(ctx, invalidationTimeout)
		err = fn(wctx, cl)
		cancel()
		if err == nil {
			return nil
		}
	}
	return r.unavailable(err)
}

// del deletes the values and leases of keys. Deleting the lease voids any
// load in flight for the key.
func (r *redisLevel) del(ctx context.Context, keys []string) error {
	return r.write(ctx, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			cmds[i] = cl.B().Del().Key(r.valueKey(k), r.leaseKey(k)).Build()
		}
		for _, res := range cl.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				return err
			}
		}
		return nil
	})
}

// tagEpochs reads the current epoch of each tag (0 if never bumped).
func (r *redisLevel) tagEpochs(ctx context.Context, tags []string) ([]uint64, error) {
	out := make([]uint64, len(tags))
	err := r.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, len(tags))
		for i, t := range tags {
			cmds[i] = cl.B().Get().Key(r.tagKey(t)).Build()
		}
		for i, res := range cl.DoMulti(ctx, cmds...) {
			n, err := res.AsUint64()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return err
			}
			out[i] = n
		}
		return nil
	})
	return out, err
}

// bumpTags increments the epoch of each tag and returns the new epochs.
func (r *redisLevel) bumpTags(ctx context.Context, tags []string) ([]uint64, error) {
	out := make([]uint64, len(tags))
	err := r.write(ctx, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, len(tags))
		for i, t := range tags {
			cmds[i] = cl.B().Incr().Key(r.tagKey(t)).Build()
		}
		for i, res := range cl.DoMulti(ctx, cmds...) {
			n, err := res.AsUint64()
			if err != nil {
				return err
			}
			out[i] = n
		}
		return nil
	})
	return out, err
}

// publish sends msg on channel.
func (r *redisLevel) publish(ctx context.Context, channel string, msg []byte) error {
	return r.write(ctx, func(ctx context.Context, cl rueidis.Client) error {
		return cl.Do(ctx, cl.B().Publish().Channel(channel).Message(rueidis.BinaryString(msg)).Build()).Error()
	})
}

// leaseMany tries to take the lease of each key with token, pipelined, and
// reports which it got.
func (r *redisLevel) leaseMany(ctx context.Context, keys []string, token string, ttl time.Duration) ([]bool, error) {
	got := make([]bool, len(keys))
	err := r.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			cmds[i] = cl.B().Set().Key(r.leaseKey(k)).Value(token).Nx().Px(ttl).Build()
		}
		for i, res := range cl.DoMulti(ctx, cmds...) {
			err := res.Error()
			if rueidis.IsRedisNil(err) {
				continue // NX: someone else holds it
			}
			if err != nil {
				return err
			}
			got[i] = true
		}
		return nil
	})
	return got, err
}

// setManyIfLeased writes each value under its key while token still holds
// its lease, pipelined, and reports which were stored.
func (r *redisLevel) setManyIfLeased(ctx context.Context, keys []string, token string, data [][]byte, ttls []time.Duration) ([]bool, error) {
	stored := make([]bool, len(keys))
	err := r.call(ctx, func(ctx context.Context, cl rueidis.Client) error {
		execs := make([]rueidis.LuaExec, len(keys))
		for i, k := range keys {
			execs[i] = rueidis.LuaExec{Keys: []string{r.valueKey(k), r.leaseKey(k)},
				Args: []string{token, rueidis.BinaryString(data[i]), strconv.FormatInt(max(1, ttls[i].Milliseconds()), 10)}}
		}
		for i, res := range setIfLeasedScript.ExecMulti(ctx, cl, execs...) {
			n, err := res.AsInt64()
			if err != nil {
				return err
			}
			stored[i] = n == 1
		}
		return nil
	})
	return stored, err
}

// flushBatch is how many keys one SCAN step of flushNamespace asks for
// and deletes in one pipeline.
const flushBatch = 1000

// flushNamespace deletes every value and lease of the namespace, on every
// node (a cluster's too), without the breaker: the fallback for more
// failed invalidations than this instance remembers (see pending.go).
// Tag epochs and the published hot set stay.
func (r *redisLevel) flushNamespace(ctx context.Context) error {
	cl := r.client()
	if cl == nil {
		return fmt.Errorf("%w: %v", ErrL2Unavailable, errNotConnected)
	}
	pattern := "{" + globEscape(r.ns) + ":*"
	for _, node := range cl.Nodes() {
		for cursor := uint64(0); ; {
			var entry rueidis.ScanEntry
			err := r.write(ctx, func(ctx context.Context, _ rueidis.Client) error {
				var err error
				entry, err = node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(flushBatch).Build()).AsScanEntry()
				return err
			})
			if err != nil {
				return err
			}
			if len(entry.Elements) > 0 {
				if err := r.write(ctx, func(ctx context.Context, cl rueidis.Client) error {
					cmds := make(rueidis.Commands, len(entry.Elements))
					for i, k := range entry.Elements {
						cmds[i] = cl.B().Unlink().Key(k).Build() // one key a command: keys of a cluster lie in many slots
					}
					for _, res := range cl.DoMulti(ctx, cmds...) {
						if err := res.Error(); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					return err
				}
			}
			if cursor = entry.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
}

// globEscape quotes the characters special to Redis's MATCH patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^-`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
