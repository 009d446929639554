package cache

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// startGrace is how long a new cache may wait for its bus before a
// connected Redis that does not serve it is worth a warning.
const startGrace = 10 * time.Second

// Health is a cache's view of its Redis, for a readiness probe. Redis is a
// cache level: a cache whose Redis is down still answers every read (from
// L1 and the loader), so it is degraded, not unready.
type Health struct {
	Redis     bool      // the cache has Redis (Config.Redis or RedisConn); false for an L1-only cache, and the rest is zero
	Connected bool      // its client is connected (always true with Config.Redis)
	L2        bool      // reads use L2: connected and the circuit breaker closed
	Bus       bool      // the invalidation bus delivers
	Since     time.Time // when the cache last became healthy or degraded
	LastError error     // the last Redis error seen while degraded; nil when healthy
}

// Degraded reports whether the cache runs without part of Redis: L2
// skipped, or the bus down (L1 then keeps values at most half the
// staleness bound), or both.
func (h Health) Degraded() bool { return h.Redis && !(h.L2 && h.Bus) }

// Health returns the state of the cache's Redis; it is cheap enough for
// every readiness probe.
func (c *Cache[V]) Health() Health {
	if c.l2 == nil {
		return Health{}
	}
	c.health.update()
	connected, l2, bus := c.redisState()
	h := &c.health
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Health{Redis: true, Connected: connected, L2: l2, Bus: bus, Since: h.since}
	if out.Degraded() {
		out.LastError = h.lastErr
	}
	return out
}

// redisState reads the live state of the cache's Redis.
func (c *Cache[V]) redisState() (connected, l2, bus bool) {
	connected = c.l2.conn.Client() != nil
	return connected, connected && c.l2.br.State() == BreakerClosed, c.bus.healthy.Load()
}

// watchRedis runs once a breaker cooldown: it replays pending
// invalidations, then, once nothing is pending, probes L2 while its
// breaker is open (so that the breaker closes when Redis answers even if
// no read comes by), ends the breaker's grace, and keeps the health log
// current. A kick (the bus came back) replays at once.
func (c *Cache[V]) watchRedis(ctx context.Context) {
	tick, stop := c.ts.NewTicker(breakerCooldown)
	defer stop()
	c.watchMark.started(tick)
	ready := c.l2.conn.Ready()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ready:
			ready = nil
			c.health.update()
		case <-c.kick:
			if c.l2.conn.Client() != nil {
				c.replay(ctx)
			}
			c.kicksDone.Add(1)
		case at := <-tick:
			c.l2.br.settle()
			if c.l2.conn.Client() != nil && c.replay(ctx) && c.l2.br.State() == BreakerOpen {
				_ = c.l2.ping(ctx)
			}
			c.health.remind()
			c.watchMark.handled(at)
		}
	}
}

// redisHealth follows whether Redis serves a cache, and logs it without
// flooding: one warning when the cache becomes degraded, a reminder at
// most once a minute while it stays so (with the count of failures not
// logged meanwhile), and one info line when it recovers. A warning that
// would come within a minute of the last one (a flapping Redis) is
// counted instead and given as the next reminder.
//
// While the cache's RedisConn has never connected, the conn logs and the
// cache stays quiet.
type redisHealth struct {
	now   func() time.Time
	log   *slog.Logger
	ns    string
	state func() (connected, l2, bus bool)

	mu          sync.Mutex
	degraded    bool
	healthyOnce bool      // it has been healthy since the start
	connectedAt time.Time // when it was first seen connected (zero: not yet)
	since       time.Time // when the current state began
	lastErr     error     // last Redis error, cleared on recovery
	warned      bool      // the current outage has been logged
	lastWarn    time.Time // zero: never
	suppressed  int       // failures and changes not logged since the last warning
}

func (h *redisHealth) init(now func() time.Time, log *slog.Logger, ns string, state func() (bool, bool, bool)) {
	h.now, h.log, h.ns, h.state = now, log, ns, state
	h.degraded, h.since = true, now() // until the bus is up
}

// limited reports whether a warning now would come too soon after the last.
func (h *redisHealth) limited(now time.Time) bool {
	return !h.lastWarn.IsZero() && now.Sub(h.lastWarn) < logEvery
}

// update compares the live state with the last one seen and logs a change.
func (h *redisHealth) update() {
	connected, l2, bus := h.state()
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if connected && h.connectedAt.IsZero() {
		h.connectedAt = now
	}
	degraded := !(l2 && bus)
	if degraded == h.degraded {
		return
	}
	h.degraded, h.since = degraded, now
	if !degraded {
		if h.warned {
			h.log.Info("cache: Redis is back; L2 and the invalidation bus are in use again",
				"namespace", h.ns, "failures_not_logged", h.suppressed)
			h.suppressed = 0
		}
		h.warned, h.lastErr, h.healthyOnce = false, nil, true
		return
	}
	if !connected {
		return
	}
	if h.limited(now) {
		h.suppressed++
		return
	}
	h.warnDown(now, l2, bus, "cache: Redis unavailable; serving from L1 and the loader, and retrying")
}

// warnDown logs the current outage; h.mu is held.
func (h *redisHealth) warnDown(now time.Time, l2, bus bool, msg string) {
	args := []any{"namespace", h.ns, "l2", l2, "bus", bus}
	if d := now.Sub(h.since); d >= time.Second {
		args = append(args, "down_for", d.Round(time.Second))
	}
	args = append(args, "failures_not_logged", h.suppressed)
	if h.lastErr != nil {
		args = append(args, "err", h.lastErr)
	}
	h.log.Warn(msg, args...)
	h.warned, h.lastWarn, h.suppressed = true, now, 0
}

// remind logs an outage not yet logged, or a reminder of one that was,
// when the rate limit allows.
func (h *redisHealth) remind() {
	h.update()
	connected, l2, bus := h.state()
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.degraded || !connected || h.limited(now):
	case !h.healthyOnce && now.Sub(h.connectedAt) < startGrace: // the bus is still coming up
	case h.warned:
		h.warnDown(now, l2, bus, "cache: Redis still unavailable; serving from L1 and the loader")
	default:
		h.warnDown(now, l2, bus, "cache: Redis unavailable; serving from L1 and the loader, and retrying")
	}
}

// failed records an invalidation that did not reach Redis. While the
// cache is degraded it is only counted; otherwise it is logged, at most
// once a minute.
func (h *redisHealth) failed(err error) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	if h.degraded || h.limited(now) {
		h.suppressed++
		return
	}
	h.log.Warn("cache: an invalidation did not reach Redis; other instances may serve the old value until it expires",
		"namespace", h.ns, "err", err, "failures_not_logged", h.suppressed)
	h.lastWarn, h.suppressed = now, 0
}

// noteErr records a failed L2 call, for Health.
func (h *redisHealth) noteErr(err error) {
	h.mu.Lock()
	h.lastErr = err
	h.mu.Unlock()
}

// logLimit lets a repeated log line through at once, then at most once a
// logEvery, and counts the lines it held back meanwhile.
type logLimit struct {
	mu   sync.Mutex
	last time.Time // zero: never logged
	held int
}

// allow reports whether a line may be logged now, and how many were held
// back since the last one (the count starts again from zero).
func (l *logLimit) allow(now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.held++
		return false, 0
	}
	held, l.last, l.held = l.held, now, 0
	return true, held
}

// tickMark records the last tick a background loop finished handling, so
// that a test on a fake clock can wait until every tick it fired has been
// handled (export_test.go's Settled).
type tickMark struct {
	c  atomic.Pointer[<-chan time.Time] // the loop's ticker; nil until it started
	at atomic.Int64                     // unix ns of the last tick handled
}

func (m *tickMark) started(c <-chan time.Time) { m.c.Store(&c) }
func (m *tickMark) handled(at time.Time)       { m.at.Store(at.UnixNano()) }
