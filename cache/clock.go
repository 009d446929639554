package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// timeSource is the cache's time. Expiry, the breaker, the bus watchdog
// and its resubscribe backoff, Redis connection retries, log rate limits
// and the background tickers all read it, so that a test can drive them
// with a clock of its own (export_test.go) instead of sleeping.
//
// Deadlines of calls (L2Timeout, LeaseWait, LoadTimeout, the heartbeat's
// publish) stay on real time: they bound waits on the network and the
// loader, which a test's clock must neither stretch nor stop.
type timeSource interface {
	Now() time.Time
	// NewTimer returns a channel that receives once, d from now, and a
	// function that stops the timer.
	NewTimer(d time.Duration) (<-chan time.Time, func())
	// NewTicker returns a channel that receives every d, and a function
	// that stops the ticker.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// realTime is the production timeSource: the time package.
type realTime struct{}

func (realTime) Now() time.Time { return time.Now() }

func (realTime) NewTimer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

func (realTime) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// sleepOn waits d on ts, or until ctx ends or wake is closed (a nil wake
// never is); it reports false if ctx ended.
func sleepOn(ctx context.Context, ts timeSource, d time.Duration, wake <-chan struct{}) bool {
	c, stop := ts.NewTimer(d)
	defer stop()
	select {
	case <-ctx.Done():
		return false
	case <-c:
	case <-wake:
	}
	return true
}

// clock is the expiry clock read on the hit path. In production it is a
// millisecond-resolution copy of the real time, read with one atomic load,
// so an L1 hit does not pay for time.Now; under a test's timeSource it
// reads that source.
type clock struct {
	t    atomic.Int64
	fake timeSource // nil in production
}

func (c *clock) init(fake timeSource) {
	c.fake = fake
	c.t.Store(time.Now().UnixNano())
}

// nowNano returns the time in unix nanoseconds.
func (c *clock) nowNano() int64 {
	if c.fake != nil {
		return c.fake.Now().UnixNano()
	}
	return c.t.Load()
}

// start keeps the production clock current until ctx ends.
func (c *clock) start(ctx context.Context, wg *sync.WaitGroup) {
	if c.fake != nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(clockResolution)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				c.t.Store(now.UnixNano())
			}
		}
	}()
}

// otterClock gives L1 a test's timeSource, so that entries expire on the
// test's time. It has no ticks: L1 then expires entries when they are
// read, and does without periodic clean-ups.
type otterClock struct{ ts timeSource }

func (o otterClock) NowNano() int64                      { return o.ts.Now().UnixNano() }
func (o otterClock) Tick(time.Duration) <-chan time.Time { return nil }
