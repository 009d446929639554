package replica

import (
	"context"
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
