package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a bus listener that notes, in order, what the bus told it.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) note(e string) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

func (r *recorder) dropLocal(keys []string)      { r.note(fmt.Sprint("drop ", keys)) }
func (r *recorder) setEpochs([]string, []uint64) { r.note("epochs") }
func (r *recorder) flushLocal(reason string)     { r.note("flush: " + reason) }
func (r *recorder) setBusHealthy(ok bool)        { r.note(fmt.Sprint("up ", ok)) }
func (r *recorder) observeBusLag(time.Duration)  {}
func msg(t *testing.T, origin string, seq uint64) []byte {
	t.Helper()
	b, err := json.Marshal(busMsg{Origin: origin, Seq: seq, Keys: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBusHealth drives the bus's health through its transitions, on a
// clock of the test's own and without Redis (the bus has no connection,
// so its heartbeats are never sent and only the watchdog runs).
func TestBusHealth(t *testing.T) {
	clk := NewFakeClock()
	bound := time.Second
	rec := &recorder{}
	r := &redisLevel{conn: &RedisConn{ready: make(chan struct{})}}
	b := newBus(r, "ns", "me", bound, clk, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.heartbeat(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); clk.Pending() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // the heartbeat never started its ticker
			t.Fatal("no heartbeat ticker")
		}
	}
	// settle waits for the heartbeat goroutine to finish the tick it was
	// handed: Advance returns once the tick is received, and the next
	// tick can be received only once the last one was handled.
	settle := func() { clk.Advance(bound / 8); clk.Advance(bound / 8) }

	steps := []struct {
		name string
		do   func()
		want []string
	}{
		// The first confirmed subscription: messages sent before it are lost to us.
		{"subscribed", b.subscribed, []string{"flush: bus subscribed", "up true"}},
		// rueidis resubscribed after a reconnection: the gap may have lost messages.
		{"resubscribed", b.subscribed, []string{"flush: bus subscribed"}},
		// A message from another instance drops its keys.
		{"message", func() { b.deliver(msg(t, "other", 1)) }, []string{"drop [k]"}},
		// A sequence gap means a lost message: flush, then apply this one.
		{"gap", func() { b.deliver(msg(t, "other", 3)) }, []string{"flush: bus gap", "drop [k]"}},
		// Silence for less than half the bound is not yet down (2 × bound/8 since subscribed).
		{"short silence", settle, nil},
		// Past half the bound, the watchdog puts the bus down before it flushes, so
		// that fills after the flush get short lives.
		{"long silence", func() { settle(); settle() }, []string{"up false", "flush: bus silent"}},
		// Our own heartbeat coming back puts it up again, after a flush.
		{"own heartbeat", func() { b.deliver(msg(t, "me", 1)) }, []string{"flush: bus back", "up true"}},
		// A subscription that ends puts it down at once.
		{"lost", func() { b.lost("bus subscription ended") }, []string{"up false", "flush: bus subscription ended"}},
		// Lost again while down: nothing more to do.
		{"lost again", func() { b.lost("bus subscription ended") }, nil},
	}
	for _, s := range steps {
		s.do()
		if got := rec.take(); !slices.Equal(got, s.want) {
			t.Fatalf("%s: events %q, want %q", s.name, got, s.want)
		}
	}
}
