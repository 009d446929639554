package cache

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	now := int64(0)
	changes := 0
	b := newBreaker(3, time.Second, func() int64 { return now }, func() { changes++ })
	steps := []struct {
		failures int // failed calls to report first
		advance  time.Duration
		allow    bool // then: is a call allowed?
		ok       bool // and its outcome, if allowed
		state    BreakerState
		changes  int // open/closed changes reported so far
	}{
		{0, 0, true, true, BreakerClosed, 0},                       // healthy calls pass
		{2, 0, true, true, BreakerClosed, 0},                       // two failures do not trip it; a success resets
		{3, 0, false, false, BreakerOpen, 1},                       // three consecutive failures open it, and say so
		{0, 500 * time.Millisecond, false, false, BreakerOpen, 1},  // still cooling down
		{0, 600 * time.Millisecond, true, false, BreakerOpen, 1},   // one probe after the cooldown; it fails: open again, no change
		{0, 1100 * time.Millisecond, true, true, BreakerClosed, 2}, // the next probe succeeds: closed, and says so
	}
	for i, s := range steps {
		for range s.failures {
			if e, ok := b.allow(); ok {
				b.done(e, false)
			}
		}
		now += int64(s.advance)
		epoch, got := b.allow()
		if got != s.allow {
			t.Fatalf("step %d: allow = %v, want %v (state %v)", i, got, s.allow, b.State())
		}
		if got {
			if b.State() == BreakerOpen {
				t.Fatalf("step %d: allowed while open", i)
			}
			// Only one probe at a time while half-open.
			if _, again := b.allow(); b.State() == BreakerHalfOpen && again {
				t.Fatalf("step %d: a second probe was allowed", i)
			}
			b.done(epoch, s.ok)
		}
		if b.State() != s.state || changes != s.changes {
			t.Fatalf("step %d: state %v after %d changes, want %v after %d", i, b.State(), changes, s.state, s.changes)
		}
	}
}

// TestBreakerIgnoresLateOutcomes: a call let through while closed that
// fails after the breaker opened and a probe went out does not reopen it
// or decide for the probe.
func TestBreakerIgnoresLateOutcomes(t *testing.T) {
	now := int64(0)
	b := newBreaker(1, time.Second, func() int64 { return now }, nil)
	early, _ := b.allow() // a slow call, let through while closed
	e, _ := b.allow()
	b.done(e, false) // another call fails: open
	now += int64(2 * time.Second)
	probe, ok := b.allow()
	if !ok || b.State() != BreakerHalfOpen {
		t.Fatalf("no probe after the cooldown: %v", b.State())
	}
	b.done(early, false) // the slow call finally fails
	if b.State() != BreakerHalfOpen {
		t.Fatalf("a late outcome changed the state to %v", b.State())
	}
	b.done(probe, true)
	if b.State() != BreakerClosed {
		t.Fatalf("the probe's success left the breaker %v", b.State())
	}
}
