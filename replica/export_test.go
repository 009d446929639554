package replica

import (
	"context"
	"math"
	"sync"
	"time"
)

// FakeClock is a clock a test sets by hand. Its tickers never fire, so a
// router on it runs Open's health check and those the test asks for
// (CheckNow), and no others.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock at a fixed moment.
func NewFakeClock() *FakeClock { return &FakeClock{now: time.Unix(1_700_000_000, 0)} }

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// NewTicker returns a channel that never receives.
func (c *FakeClock) NewTicker(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }

// UseClock makes the router that cfg opens run on c.
func UseClock(cfg *Config, c *FakeClock) { cfg.clock = c }

// CheckNow runs one health check, as the health loop does every
// CheckInterval.
func (r *Router) CheckNow() { r.check(context.Background(), r.cfg.CheckInterval*4/5) }

// NewMemMarksOn returns a MemMarks on clock c.
func NewMemMarksOn(max int, c *FakeClock) *MemMarks { return newMemMarks(max, c) }

// SetLatency sets the moving average of the named server's call time.
func (r *Router) SetLatency(name string, d time.Duration) {
	for _, n := range r.replicas {
		if n.name == name {
			n.latency.Store(math.Float64bits(float64(d)))
		}
	}
}

// Latency returns the moving average of the named server's call time.
func (r *Router) Latency(name string) time.Duration {
	for _, n := range r.replicas {
		if n.name == name {
			return time.Duration(math.Float64frombits(n.latency.Load()))
		}
	}
	return -1
}

// HedgeCancelWait is how long a lost hedge's server has to abort its
// query before the router drops the connection.
const HedgeCancelWait = hedgeCancelWait
