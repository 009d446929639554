package cache

import (
	"sync/atomic"
	"time"
)

// BreakerState is the state of a level's circuit breaker.
type BreakerState int32

// Breaker states.
const (
	BreakerClosed   BreakerState = iota // calls go through
	BreakerOpen                         // calls fail at once
	BreakerHalfOpen                     // one probe call goes through
)

// String returns "closed", "open" or "half-open".
func (s BreakerState) String() string {
	switch s {
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// breaker keeps a dead or slow level from costing every request a timeout.
// After failures consecutive errors it opens: calls fail at once for
// cooldown, then one probe is let through; a success closes it, a failure
// opens it again. With the default L2 timeout of 50 ms and 3 failures it
// trips within 150 ms of Redis going silent, and within a millisecond when
// connections are refused.
type breaker struct {
	failures int32
	cooldown time.Duration
	now      func() int64
	changed  func() // called after it opens from closed, and after it closes

	state    atomic.Int32  // BreakerState
	fails    atomic.Int32  // consecutive failures while closed
	openedAt atomic.Int64  // unix ns of the last opening
	probing  atomic.Bool   // a half-open probe is in flight
	epoch    atomic.Uint64 // bumped on every transition; outcomes of calls from an older epoch are ignored
}

// newBreaker returns a closed breaker; changed, when not nil, is called
// after each change between open and closed (a failed probe, which leaves
// it open, is no change).
func newBreaker(failures int, cooldown time.Duration, now func() int64, changed func()) *breaker {
	if changed == nil {
		changed = func() {}
	}
	return &breaker{failures: int32(failures), cooldown: cooldown, now: now, changed: changed}
}

// allow reports whether a call may go through now, and the epoch it was
// allowed in. A caller that was allowed must report the outcome with done.
func (b *breaker) allow() (uint64, bool) {
	switch BreakerState(b.state.Load()) {
	case BreakerClosed:
		return b.epoch.Load(), true
	case BreakerOpen:
		if b.now()-b.openedAt.Load() < int64(b.cooldown) {
			return 0, false
		}
		if b.probing.CompareAndSwap(false, true) {
			b.state.Store(int32(BreakerHalfOpen))
			return b.epoch.Add(1), true
		}
		return 0, false
	default: // half-open: the probe is out
		return 0, false
	}
}

// done reports the outcome of a call allowed in epoch. An outcome from an
// older epoch (a call let through before the last transition that finished
// late) is ignored: it says nothing about the probe now out.
func (b *breaker) done(epoch uint64, ok bool) {
	if epoch != b.epoch.Load() {
		return
	}
	state := BreakerState(b.state.Load())
	if ok {
		b.fails.Store(0)
		if state == BreakerHalfOpen {
			b.epoch.Add(1)
			b.state.Store(int32(BreakerClosed))
			b.probing.Store(false)
			b.changed()
		}
		return
	}
	if state == BreakerHalfOpen || b.fails.Add(1) >= b.failures {
		b.epoch.Add(1)
		b.openedAt.Store(b.now())
		b.state.Store(int32(BreakerOpen))
		b.probing.Store(false)
		b.fails.Store(0)
		if state == BreakerClosed {
			b.changed()
		}
	}
}

// State returns the breaker's current state.
func (b *breaker) State() BreakerState { return BreakerState(b.state.Load()) }
