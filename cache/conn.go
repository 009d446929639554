package cache

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Defaults of [DialRedis]'s retries.
const (
	DefaultRetryMin = 100 * time.Millisecond // Strata: first wait after a failed connection attempt
	DefaultRetryMax = 5 * time.Second        // Strata: the wait doubles up to this, so a Redis that starts is found within it
	logEvery        = time.Minute            // Strata: while Redis stays down, at most one reminder this often
)

// errNotConnected is returned (wrapping ErrL2Unavailable) by L2 calls of a
// cache whose RedisConn has not connected yet.
var errNotConnected = errors.New("not connected to Redis yet")

// RedisConnConfig holds the optional settings of [DialRedis]; the zero
// value means the defaults.
type RedisConnConfig struct {
	// Logger receives one warning when Redis cannot be reached, a reminder
	// at most once a minute while it stays unreachable, and one info line
	// when it connects; nil means slog.Default().
	Logger *slog.Logger
	// RetryMin is the wait after the first failed attempt (default
	// DefaultRetryMin); it doubles after each failure up to RetryMax
	// (default DefaultRetryMax).
	RetryMin, RetryMax time.Duration

	clock timeSource // tests; nil means real time
}

// RedisConn is a Redis client for caches that connects in the background,
// so that a service can start while Redis is down: Redis is a cache level,
// and the caches run degraded without it (no L2, the invalidation bus
// down, L1 keeping values at most half the staleness bound) until it
// answers, then recover by themselves. Give it to caches as
// [Config.RedisConn]; several caches may share one.
//
// Once connected it stays connected: rueidis reconnects by itself, and
// later outages show in each cache's [Cache.Health].
type RedisConn struct {
	opt    rueidis.ClientOption
	cfg    RedisConnConfig
	ts     timeSource
	client atomic.Pointer[clientRef] // nil until connected
	ready  chan struct{}             // closed once connected
	owned  bool                      // made by DialRedis: Close closes the client

	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed when the connecting goroutine has returned
	closeOnce sync.Once

	mu       sync.Mutex
	attempts int       // failed attempts so far
	since    time.Time // when the first attempt failed, or when it connected
	lastErr  error     // of the last failed attempt
}

type clientRef struct{ c rueidis.Client }

// RedisStatus is a snapshot of a RedisConn.
type RedisStatus struct {
	Connected bool      // a client is connected (rueidis reconnects it from then on)
	Attempts  int       // failed connection attempts before it connected (or so far)
	Since     time.Time // when it connected, or when the first attempt failed
	LastError error     // the last failed attempt's error; nil once connected
}

// DialRedis returns a RedisConn that connects to Redis with opt in the
// background and returns at once, whether Redis answers or not. Until the
// first attempt succeeds it retries, waiting RetryMin after the first
// failure and twice as long after each next one, up to RetryMax;
// [RedisConn.Ready] is closed when it connects. It fails only for options
// that can never work (no address). Close it after the caches that use it;
// Close waits for an attempt in progress, which the dial timeout bounds
// (a dial still connecting is abandoned at once).
func DialRedis(opt rueidis.ClientOption, cfg RedisConnConfig) (*RedisConn, error) {
	if len(opt.InitAddress) == 0 {
		return nil, errors.New("cache: DialRedis: the Redis options name no address (InitAddress is empty)")
	}
	switch {
	case cfg.RetryMin < 0 || cfg.RetryMax < 0:
		return nil, errors.New("cache: DialRedis: RetryMin and RetryMax must not be negative")
	case cfg.RetryMin == 0:
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.RetryMax < cfg.RetryMin {
		return nil, errors.New("cache: DialRedis: RetryMax is shorter than RetryMin")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &RedisConn{opt: opt, cfg: cfg, ts: cfg.clock, ready: make(chan struct{}), owned: true, done: make(chan struct{})}
	if r.ts == nil {
		r.ts = realTime{}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.opt.DialCtxFn = r.dialer(opt)
	go r.connect()
	return r, nil
}

// connectedConn wraps a client the caller connected (Config.Redis); the
// cache never closes it.
func connectedConn(c rueidis.Client) *RedisConn {
	r := &RedisConn{ready: make(chan struct{}), done: make(chan struct{}), ts: realTime{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.client.Store(&clientRef{c})
	close(r.ready)
	close(r.done)
	return r
}

// dialer returns a dial function that also gives up when r is closed, so
// that Close does not wait out a dial to a silent address.
func (r *RedisConn) dialer(opt rueidis.ClientOption) func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error) {
	return func(ctx context.Context, dst string, d *net.Dialer, tc *tls.Config) (net.Conn, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(r.ctx, cancel)
		defer stop()
		switch {
		case opt.DialCtxFn != nil:
			return opt.DialCtxFn(ctx, dst, d, tc)
		case opt.DialFn != nil:
			return opt.DialFn(dst, d, tc)
		case tc != nil:
			return (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", dst)
		}
		return d.DialContext(ctx, "tcp", dst)
	}
}

// connect tries until it connects or r is closed.
func (r *RedisConn) connect() {
	defer close(r.done)
	wait := r.cfg.RetryMin
	var lastLog time.Time
	for {
		c, err := rueidis.NewClient(r.opt)
		if r.ctx.Err() != nil {
			if err == nil {
				c.Close()
			}
			return
		}
		now := r.ts.Now()
		if err == nil {
			r.connected(c, now, !lastLog.IsZero())
			return
		}
		r.mu.Lock()
		r.attempts++
		r.lastErr = err
		if r.attempts == 1 {
			r.since = now
		}
		attempts, since := r.attempts, r.since
		r.mu.Unlock()
		switch {
		case lastLog.IsZero():
			lastLog = now
			r.cfg.Logger.Warn("cache: cannot reach Redis; caches run without L2 and the invalidation bus (L1 keeps values briefly) and keep trying",
				"addr", r.addr(), "err", err)
		case now.Sub(lastLog) >= logEvery:
			lastLog = now
			r.cfg.Logger.Warn("cache: still cannot reach Redis; caches run degraded",
				"addr", r.addr(), "attempts", attempts, "down_for", now.Sub(since).Round(time.Second), "err", err)
		}
		if !sleepOn(r.ctx, r.ts, wait, nil) {
			return
		}
		wait = min(2*wait, r.cfg.RetryMax)
	}
}

func (r *RedisConn) connected(c rueidis.Client, now time.Time, warned bool) {
	r.mu.Lock()
	attempts, since := r.attempts, r.since
	r.since, r.lastErr = now, nil
	r.mu.Unlock()
	r.client.Store(&clientRef{c})
	close(r.ready)
	if warned {
		r.cfg.Logger.Info("cache: connected to Redis; caches recover L2 and the invalidation bus",
			"addr", r.addr(), "failed_attempts", attempts, "down_for", now.Sub(since).Round(time.Millisecond))
	} else {
		r.cfg.Logger.Debug("cache: connected to Redis", "addr", r.addr(), "failed_attempts", attempts)
	}
}

func (r *RedisConn) addr() string { return strings.Join(r.opt.InitAddress, ",") }

// Client returns the connected client, or nil before the first successful
// attempt.
func (r *RedisConn) Client() rueidis.Client {
	if ref := r.client.Load(); ref != nil {
		return ref.c
	}
	return nil
}

// Ready returns a channel that is closed once r has connected.
func (r *RedisConn) Ready() <-chan struct{} { return r.ready }

// Status returns a snapshot of r's connection.
func (r *RedisConn) Status() RedisStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RedisStatus{Connected: r.Client() != nil, Attempts: r.attempts, Since: r.since, LastError: r.lastErr}
}

// Close stops connecting and closes the client DialRedis made. It is
// idempotent; close the caches that use r first.
func (r *RedisConn) Close() {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		if c := r.Client(); r.owned && c != nil {
			c.Close()
		}
	})
}
