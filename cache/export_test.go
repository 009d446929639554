package cache

import (
	"sort"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// SetDeaf makes c's bus drop every incoming message, as a subscription
// that silently stopped delivering would.
func SetDeaf[V any](c *Cache[V], deaf bool) { c.bus.deaf.Store(deaf) }

// UseClock makes a cache made from cfg run on clk: expiry, L1, the
// breaker, the bus watchdog and backoff, the health log and the tickers.
// Its heartbeats get a generous real-time bound (beatTimeout): on clk,
// bound/4 of real time means nothing, and a heartbeat dropped by a stalled
// machine would make a sequence gap and flush every L1.
func UseClock[V any](cfg *Config[V], clk *FakeClock) {
	cfg.clock = clk
	cfg.beatTimeout = 30 * time.Second
}

// OnPeakWarm makes a cache made from cfg call fn after each scheduled
// warm-up (Config.Peaks), with the peak it warmed for and the keys read.
func OnPeakWarm[V any](cfg *Config[V], fn func(peak time.Time, keys int)) { cfg.onPeakWarm = fn }

// DialRedisAt is DialRedis on clk.
func DialRedisAt(opt rueidis.ClientOption, cfg RedisConnConfig, clk *FakeClock) (*RedisConn, error) {
	cfg.clock = clk
	return DialRedis(opt, cfg)
}

// BusCaughtUp reports whether every cache of cs has heard the last
// message every other one published (and, with own, its own last one):
// a fence after which no bus message is still in flight between them.
func BusCaughtUp[V any](own bool, cs ...*Cache[V]) bool {
	for _, c := range cs {
		for _, from := range cs {
			if c == from && !own {
				continue
			}
			sent := from.bus.seq.Load()
			if sent == 0 {
				continue
			}
			c.bus.mu.Lock()
			heard := c.bus.lastSeq[from.bus.origin].seq
			c.bus.mu.Unlock()
			if heard < sent {
				return false
			}
		}
	}
	return true
}

// Settled reports whether c, on clk, has finished the work clk's last
// Advance handed it: its heartbeat and watch loops have handled the last
// tick clk fired for them (a heartbeat's publish, a probe, a replay), a
// replay asked for by the bus is done, and its own last message that
// Redis accepted has come back (if only to be dropped by a deaf bus),
// unless it cannot (no subscription, or one confirmed since it was
// sent). Trivially true without Redis.
func Settled[V any](c *Cache[V], clk *FakeClock) bool {
	if c.bus == nil {
		return true
	}
	if !clk.handled(&c.bus.beatMark) || !clk.handled(&c.watchMark) || c.kicksDone.Load() < c.kicks.Load() {
		return false
	}
	b := c.bus
	if !b.listening.Load() {
		return true
	}
	published := b.published.Load()
	if published <= b.subSeq.Load() {
		return true
	}
	return b.ownArrived.Load() >= published
}

// handled reports whether the loop of m has handled the last tick clk
// fired on its ticker (true before the loop started its ticker: none can
// have fired).
func (f *FakeClock) handled(m *tickMark) bool {
	c := m.c.Load()
	if c == nil {
		return true
	}
	f.mu.Lock()
	var last time.Time
	for t := range f.timers {
		if (<-chan time.Time)(t.c) == *c {
			last = t.last
		}
	}
	f.mu.Unlock()
	return last.IsZero() || m.at.Load() == last.UnixNano()
}

// CleanUpL1 runs L1's pending maintenance (evictions) now.
func CleanUpL1[V any](c *Cache[V]) { c.l1.CleanUp() }

// FakeClock is a clock that moves only when a test says so. Its timers and
// tickers fire during Advance, in time order, and each fired tick is
// handed to a goroutine waiting on it before Advance goes on, so that
// Advance returns only once every goroutine it woke has its tick. A timer
// stopped while Advance waits on it is skipped.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]bool
	adv    sync.Mutex // one Advance at a time
}

type fakeTimer struct {
	at     time.Time
	last   time.Time     // when it last fired (zero: never)
	period time.Duration // 0 for a timer
	c      chan time.Time
	stop   chan struct{}
	once   sync.Once
}

// NewFakeClock returns a clock at a fixed, arbitrary time.
func NewFakeClock() *FakeClock {
	return &FakeClock{now: time.Unix(1_700_000_000, 0), timers: map[*fakeTimer]bool{}}
}

// Now returns the clock's time.
func (f *FakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *FakeClock) add(d, period time.Duration) (<-chan time.Time, func()) {
	t := &fakeTimer{period: period, c: make(chan time.Time), stop: make(chan struct{})}
	f.mu.Lock()
	t.at = f.now.Add(d)
	f.timers[t] = true
	f.mu.Unlock()
	return t.c, func() {
		f.mu.Lock()
		delete(f.timers, t)
		f.mu.Unlock()
		t.once.Do(func() { close(t.stop) })
	}
}

// NewTimer implements timeSource.
func (f *FakeClock) NewTimer(d time.Duration) (<-chan time.Time, func()) { return f.add(d, 0) }

// NewTicker implements timeSource.
func (f *FakeClock) NewTicker(d time.Duration) (<-chan time.Time, func()) { return f.add(d, d) }

// Advance moves the clock d forward, firing what falls due on the way.
func (f *FakeClock) Advance(d time.Duration) {
	f.adv.Lock()
	defer f.adv.Unlock()
	f.mu.Lock()
	end := f.now.Add(d)
	f.mu.Unlock()
	for {
		f.mu.Lock()
		var due []*fakeTimer
		for t := range f.timers {
			if !t.at.After(end) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			f.now = end
			f.mu.Unlock()
			return
		}
		sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
		t := due[0]
		if t.at.After(f.now) {
			f.now = t.at
		}
		at := t.at
		t.last = at
		if t.period > 0 {
			for !t.at.After(f.now) {
				t.at = t.at.Add(t.period)
			}
		} else {
			delete(f.timers, t)
		}
		f.mu.Unlock()
		select {
		case t.c <- at:
		case <-t.stop:
		}
	}
}

// Pending returns how many timers and tickers are running.
func (f *FakeClock) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}
