package cache

import (
	"sync"
	"sync/atomic"
	"time"
)

// BreakerState is the state of a level's circuit breaker.
type BreakerState int32

// Breaker states.
const (
	BreakerClosed   BreakerState = iota // calls go through
	BreakerOpen                         // calls fail at once
	BreakerHalfOpen                     // a probe is out, or one succeeded and the breaker waits out its grace before it admits calls
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
// After failures consecutive errors it opens: calls fail at once. Once it
// has been open for cooldown, one probe (a ping, never a read: its answer
// would be served) may go through; a failed probe opens it again, and a
// successful one admits calls again after grace more, time for every
// instance that failed to invalidate something while the level was
// unreachable to replay it (see pending.go). With the default L2 timeout
// of 50 ms and 3 failures it trips within 150 ms of Redis going silent,
// and within a millisecond when connections are refused; trip opens it at
// once, on other evidence that the level is unreachable (the bus going
// down).
//
// The closed path of allow and done is lock-free; transitions take mu.
type breaker struct {
	failures int32
	cooldown time.Duration
	grace    time.Duration
	now      func() int64
	changed  func() // called after it opens from closed, and after it closes

	state    atomic.Int32  // BreakerState
	fails    atomic.Int32  // consecutive failures while closed
	openedAt atomic.Int64  // unix ns of the last opening
	admitAt  atomic.Int64  // half-open after a successful probe: unix ns from which calls are admitted; 0 otherwise
	epoch    atomic.Uint64 // bumped on every transition; outcomes of calls from an older epoch are ignored

	mu      sync.Mutex
	probing bool // a probe is out
}

// newBreaker returns a closed breaker; changed, when not nil, is called
// after each change between open and closed (a failed probe, which leaves
// it open, is no change).
func newBreaker(failures int, cooldown, grace time.Duration, now func() int64, changed func()) *breaker {
	if changed == nil {
		changed = func() {}
	}
	return &breaker{failures: int32(failures), cooldown: cooldown, grace: grace, now: now, changed: changed}
}

// allow reports whether a call may go through now, and the epoch it was
// allowed in: only while closed (or once the grace after a successful
// probe is over). A caller that was allowed must report the outcome with
// done.
func (b *breaker) allow() (uint64, bool) {
	if BreakerState(b.state.Load()) == BreakerClosed {
		return b.epoch.Load(), true
	}
	if b.settle() {
		return b.epoch.Load(), true
	}
	return 0, false
}

// probe is allow for a call that tests the level: while open, once the
// cooldown is over, it lets one through and the breaker is half-open
// until its outcome is reported.
func (b *breaker) probe() (uint64, bool) {
	if e, ok := b.allow(); ok {
		return e, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if BreakerState(b.state.Load()) != BreakerOpen || b.probing || b.now()-b.openedAt.Load() < int64(b.cooldown) {
		return 0, false
	}
	b.probing = true
	b.admitAt.Store(0)
	b.state.Store(int32(BreakerHalfOpen))
	return b.epoch.Add(1), true
}

// settle closes a half-open breaker whose grace is over, and reports
// whether the breaker is closed.
func (b *breaker) settle() bool {
	switch BreakerState(b.state.Load()) {
	case BreakerClosed:
		return true
	case BreakerOpen:
		return false
	}
	if at := b.admitAt.Load(); at == 0 || b.now() < at {
		return false
	}
	b.mu.Lock()
	closed := false
	if BreakerState(b.state.Load()) == BreakerHalfOpen && !b.probing && b.admitAt.Load() != 0 && b.now() >= b.admitAt.Load() {
		b.close()
		closed = true
	}
	b.mu.Unlock()
	if closed {
		b.changed()
	}
	return BreakerState(b.state.Load()) == BreakerClosed
}

// done reports the outcome of a call allowed in epoch. An outcome from an
// older epoch (a call let through before the last transition that finished
// late) is ignored: it says nothing about the probe now out.
func (b *breaker) done(epoch uint64, ok bool) {
	if epoch != b.epoch.Load() {
		return
	}
	if ok && BreakerState(b.state.Load()) == BreakerClosed {
		if b.fails.Load() != 0 {
			b.fails.Store(0)
		}
		return
	}
	b.mu.Lock()
	if epoch != b.epoch.Load() {
		b.mu.Unlock()
		return
	}
	state, changed := BreakerState(b.state.Load()), false
	switch {
	case state == BreakerHalfOpen && ok: // the probe succeeded
		b.probing = false
		if b.grace <= 0 {
			b.close()
			changed = true
		} else {
			b.epoch.Add(1)
			b.admitAt.Store(b.now() + int64(b.grace))
		}
	case state == BreakerHalfOpen: // the probe failed: open again, no change
		b.open()
	case state == BreakerClosed && !ok && b.fails.Add(1) >= b.failures:
		b.open()
		changed = true
	}
	b.mu.Unlock()
	if changed {
		b.changed()
	}
}

// trip opens the breaker now, whatever its state, on evidence other than
// its own calls that the level is unreachable.
func (b *breaker) trip() {
	b.mu.Lock()
	was := BreakerState(b.state.Load())
	if was != BreakerOpen {
		b.open()
	}
	b.mu.Unlock()
	if was == BreakerClosed {
		b.changed()
	}
}

// open moves to open; b.mu is held.
func (b *breaker) open() {
	b.epoch.Add(1)
	b.openedAt.Store(b.now())
	b.admitAt.Store(0)
	b.probing = false
	b.fails.Store(0)
	b.state.Store(int32(BreakerOpen))
}

// close moves to closed; b.mu is held.
func (b *breaker) close() {
	b.epoch.Add(1)
	b.admitAt.Store(0)
	b.probing = false
	b.fails.Store(0)
	b.state.Store(int32(BreakerClosed))
}

// State returns the breaker's current state.
func (b *breaker) State() BreakerState { return BreakerState(b.state.Load()) }
