package cache

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	now := int64(0)
	changes := 0
	b := newBreaker(3, time.Second, 2*time.Second, func() int64 { return now }, func() { changes++ })
	steps := []struct {
		failures int // failed calls to report first
		advance  time.Duration
		probe    bool // then: a probe (a ping) instead of an ordinary call
		trip     bool // or: trip the breaker instead of a call
		allow    bool // is the call allowed?
		ok       bool // and its outcome, if allowed
		state    BreakerState
		changes  int // open/closed changes reported so far
	}{
		{allow: true, ok: true, state: BreakerClosed},                                                              // healthy calls pass
		{failures: 2, allow: true, ok: true, state: BreakerClosed},                                                 // two failures do not trip it; a success resets
		{failures: 3, state: BreakerOpen, changes: 1},                                                              // three consecutive failures open it, and say so
		{advance: 500 * time.Millisecond, probe: true, state: BreakerOpen, changes: 1},                             // still cooling down: no probe
		{advance: 600 * time.Millisecond, state: BreakerOpen, changes: 1},                                          // cooled down, but an ordinary call never probes
		{probe: true, allow: true, ok: false, state: BreakerOpen, changes: 1},                                      // one probe after the cooldown; it fails: open again, no change
		{advance: 1100 * time.Millisecond, probe: true, allow: true, ok: true, state: BreakerHalfOpen, changes: 1}, // the next probe succeeds: the grace begins
		{advance: 1900 * time.Millisecond, state: BreakerHalfOpen, changes: 1},                                     // within the grace, calls are still refused
		{advance: 100 * time.Millisecond, allow: true, ok: true, state: BreakerClosed, changes: 2},                 // after it, the first call closes it, and says so
		{trip: true, state: BreakerOpen, changes: 3},                                                               // a trip opens a closed breaker at once, and says so
		{advance: time.Second, probe: true, allow: true, ok: true, state: BreakerHalfOpen, changes: 3},             // a probe after the cooldown: grace again
		{trip: true, state: BreakerOpen, changes: 3},                                                               // a trip during the grace opens it again, no change
	}
	for i, s := range steps {
		for range s.failures {
			if e, ok := b.allow(); ok {
				b.done(e, false)
			}
		}
		now += int64(s.advance)
		if s.trip {
			b.trip()
		} else {
			gate := b.allow
			if s.probe {
				gate = b.probe
			}
			epoch, got := gate()
			if got != s.allow {
				t.Fatalf("step %d: allowed = %v, want %v (state %v)", i, got, s.allow, b.State())
			}
			if got {
				if b.State() == BreakerOpen {
					t.Fatalf("step %d: allowed while open", i)
				}
				// Only one probe at a time while half-open.
				if _, again := b.probe(); b.State() == BreakerHalfOpen && again {
					t.Fatalf("step %d: a second probe was allowed", i)
				}
				b.done(epoch, s.ok)
			}
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
	b := newBreaker(1, time.Second, 0, func() int64 { return now }, nil)
	early, _ := b.allow() // a slow call, let through while closed
	e, _ := b.allow()
	b.done(e, false) // another call fails: open
	now += int64(2 * time.Second)
	probe, ok := b.probe()
	if !ok || b.State() != BreakerHalfOpen {
		t.Fatalf("no probe after the cooldown: %v", b.State())
	}
	b.done(early, false) // the slow call finally fails
	if b.State() != BreakerHalfOpen {
		t.Fatalf("a late outcome changed the state to %v", b.State())
	}
	b.done(probe, true)
	if b.State() != BreakerClosed {
		t.Fatalf("the probe's success left the breaker %v (no grace)", b.State())
	}
}
