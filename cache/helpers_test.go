package cache_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
)

// origin is a fake database: versioned values and a call counter, so
// tests can see exactly how often the cache loads. A load can be held:
// with entered set it sends its key there once it has read the value, and
// with gate set it then waits for gate to close (or its context to end),
// so a test orders its events around a load in flight without sleeping.
type origin struct {
	mu      sync.Mutex
	vals    map[string]string
	calls   atomic.Int64
	entered chan string
	gate    chan struct{}
}

func newOrigin() *origin { return &origin{vals: map[string]string{}} }

func (o *origin) put(k, v string) { o.mu.Lock(); o.vals[k] = v; o.mu.Unlock() }

// hold makes every load from now on report itself on the returned channel
// and wait until release is called.
func (o *origin) hold() (entered <-chan string, release func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.entered, o.gate = make(chan string, 1024), make(chan struct{})
	gate := o.gate
	var once sync.Once
	return o.entered, func() { once.Do(func() { close(gate) }) }
}

func (o *origin) load(ctx context.Context, key string) (string, error) {
	o.calls.Add(1)
	o.mu.Lock()
	v, ok := o.vals[key]
	entered, gate := o.entered, o.gate
	o.mu.Unlock()
	if entered != nil {
		entered <- key
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if !ok {
		return "", cache.ErrNotFound
	}
	return v, nil
}

// generous is the L2 timeout of tests that count loads exactly: a busy
// machine must not turn a slow Redis reply into an extra load.
const generous = 5 * time.Second

func newCache(t testing.TB, cfg cache.Config[string]) *cache.Cache[string] {
	t.Helper()
	c, err := cache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it holds. The deadline is far beyond any
// normal run: it turns a lost event into a failure instead of a hang, and
// orders nothing (channels and the fake clock do that).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !within(30*time.Second, cond) {
		t.Fatalf("%s: not after 30 s", what)
	}
}

// within polls cond for at most d and reports whether it came to hold.
func within(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// env is one test's clock: the caches it makes run on it, so that the
// breaker, the bus watchdog, retries, expiry and the log limits move only
// when the test moves them.
type env struct {
	t     testing.TB
	clk   *cache.FakeClock
	bound time.Duration
	all   []*cache.Cache[string]
}

func newEnv(t testing.TB) *env {
	return &env{t: t, clk: cache.NewFakeClock()}
}

// cache makes a cache on the env's clock. Every cache of one env must
// have the same StalenessBound.
func (e *env) cache(cfg cache.Config[string]) *cache.Cache[string] {
	e.t.Helper()
	cache.UseClock(&cfg, e.clk)
	if cfg.StalenessBound == 0 {
		cfg.StalenessBound = cache.DefaultStalenessBound
	}
	if e.bound != 0 && e.bound != cfg.StalenessBound {
		e.t.Fatalf("env: caches with bounds %v and %v", e.bound, cfg.StalenessBound)
	}
	e.bound = cfg.StalenessBound
	c := newCache(e.t, cfg)
	e.all = append(e.all, c)
	return c
}

// step moves the clock d forward in steps of StalenessBound/8 (the bus's
// tick), and after each step lets the caches finish what it started, as
// they would in the real time between two ticks: every heartbeat and
// watch tick handled (a publish, a probe, a replay) and every heartbeat
// published back at its sender (see cache.Settled). Without that wait a
// fast-forwarded clock would outrun the network and make the watchdogs
// see silence. Work that does not finish within 30 s fails the test.
func (e *env) step(d time.Duration) {
	e.t.Helper()
	tick := e.bound / 8
	if tick == 0 {
		tick = time.Second
	}
	for d > 0 {
		s := min(d, tick)
		e.clk.Advance(s)
		d -= s
		e.settle()
	}
}

// settle waits until every cache of the env has finished the work the
// clock handed it.
func (e *env) settle() {
	e.t.Helper()
	var late *cache.Cache[string]
	if !within(30*time.Second, func() bool {
		for _, c := range e.all {
			if !cache.Settled(c, e.clk) {
				late = c
				return false
			}
		}
		return true
	}) {
		e.t.Fatalf("a cache did not finish its heartbeat, probe or replay within 30 s: %+v", late.Stats())
	}
}

// waitBus waits until the buses of cs deliver. A bus comes up when its
// subscription is confirmed, or, after the watchdog put it down, when its
// own heartbeat comes back, which needs the clock to move: it steps the
// clock a tick at a time while some bus is down.
func (e *env) waitBus(cs ...*cache.Cache[string]) {
	e.t.Helper()
	up := func() bool {
		for _, c := range cs {
			if !c.Stats().BusUp {
				return false
			}
		}
		return true
	}
	for i := 0; !within(100*time.Millisecond, up); i++ {
		if i == 300 {
			e.t.Fatal("the bus did not come up")
		}
		e.step(e.bound / 8)
	}
}

// logs is a slog handler that keeps what it is given, for tests that
// count log lines.
type logs struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

// count returns how many records of the level were logged, and their
// messages.
func (l *logs) count(level slog.Level) (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var msgs []string
	for _, r := range l.recs {
		if r.Level == level {
			msgs = append(msgs, r.Message)
		}
	}
	return len(msgs), msgs
}

// discard is a logger that drops everything.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// check fails t unless the warnings and info lines logged are within the
// bounds given.
func (l *logs) check(t testing.TB, minWarn, maxWarn, minInfo, maxInfo int) {
	t.Helper()
	warns, wmsgs := l.count(slog.LevelWarn)
	infos, imsgs := l.count(slog.LevelInfo)
	t.Logf("%d warnings %q, %d info lines %q", warns, wmsgs, infos, imsgs)
	if warns < minWarn || warns > maxWarn || infos < minInfo || infos > maxInfo {
		t.Fatalf("logged %d warnings (want %d to %d) and %d info lines (want %d to %d)", warns, minWarn, maxWarn, infos, minInfo, maxInfo)
	}
}
