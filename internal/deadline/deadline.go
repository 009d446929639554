// Package deadline hands out shared timeout contexts, so that a hot path
// bounded by a fixed timeout does not pay for a context and a timer per
// call (context.WithTimeout costs several allocations and a timer).
package deadline

import (
	"context"
	"sync/atomic"
	"time"
)

// SlotLength is how long one shared context is handed out: every context
// Get returns ends between timeout and timeout+SlotLength after the call.
const SlotLength = 5 * time.Millisecond

// Slots hands out shared contexts that end about timeout after they are
// handed out; a new one is made at most once per SlotLength, however many
// calls there are.
type Slots struct {
	base    context.Context
	timeout time.Duration
	cur     atomic.Pointer[slot]
}

type slot struct {
	ctx    context.Context
	cancel context.CancelFunc // fired by the deadline; kept to satisfy the contract
	until  int64              // unix ns after which the slot is not handed out
}

// New returns Slots whose contexts derive from base (ending them all when
// base ends) and end timeout (plus at most SlotLength) after Get.
func New(base context.Context, timeout time.Duration) *Slots {
	return &Slots{base: base, timeout: timeout}
}

// Get returns a context that ends between timeout and timeout+SlotLength
// from now. It reads the real clock: a coarse clock that a starved
// goroutine updates late would hand out deadlines already past.
func (s *Slots) Get() context.Context {
	now := time.Now().UnixNano()
	if sl := s.cur.Load(); sl != nil && now < sl.until {
		return sl.ctx
	}
	ctx, cancel := context.WithDeadline(s.base, time.Unix(0, now).Add(s.timeout+SlotLength))
	s.cur.Store(&slot{ctx: ctx, cancel: cancel, until: now + int64(SlotLength)})
	return ctx
}

// For returns Get's context, or, when ctx ends sooner than the timeout,
// a context of ctx's own with the timeout and its cancel function. The
// shared context does not see ctx's cancellation; callers use For where
// waiting out the timeout after a cancellation is acceptable.
func (s *Slots) For(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < s.timeout {
		return context.WithTimeout(ctx, s.timeout)
	}
	return s.Get(), nil
}
