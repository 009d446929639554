package replica

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// admitFallback decides whether a read that no replica served may run on
// the primary. It may while the primary has headroom by its own bounds
// (pressure reports none): a healthy primary serves every read the
// replicas cannot. Under pressure at most FallbackShare of the reads of
// the last second or two fall back, and the rest are refused with an error
// that names the cause. A negative FallbackShare refuses every fallback
// and 1 admits every one, as before.
func (r *Router) admitFallback(now time.Time) error {
	share := r.cfg.FallbackShare
	switch {
	case share >= 1:
		return nil
	case share < 0:
		return fmt.Errorf("%w: FallbackShare is negative, so no read falls back to the primary", ErrFallbackCapped)
	}
	cause := r.pressure()
	if cause == "" {
		return nil
	}
	if r.fb.allow(share, now) {
		return nil
	}
	return fmt.Errorf("%w: the primary is under pressure (%s) and %.0f%% of reads already fall back to it", ErrFallbackCapped, cause, share*100)
}

// pressure says why the primary has no headroom for fallback reads, or ""
// when it has: its pool is at least primaryBusyShare in use (calls holding
// or waiting for a connection, against size + overflow), or the moving
// average of its call time is past PrimaryLatencyBound while at least
// latencyBusyShare of its pool is in use. Latency alone, with the pool
// nearly idle, is not pressure that fallback reads would worsen: the
// router is not what loads the primary, and one stall of the machine (a
// second, say) lifts the average past the bound for many calls after.
func (r *Router) pressure() string {
	p := r.primary
	in := p.inUse.Load()
	if float64(in) >= primaryBusyShare*float64(p.capacity) {
		return fmt.Sprintf("%d of its %d connections in use, %.0f%% or more", in, p.capacity, primaryBusyShare*100)
	}
	if bound := r.cfg.PrimaryLatencyBound; bound > 0 && float64(in) >= latencyBusyShare*float64(p.capacity) {
		if lat := time.Duration(math.Float64frombits(p.latency.Load())); lat > bound {
			return fmt.Sprintf("mean call time %v, past its bound %v, with %d of its %d connections in use", lat.Round(time.Millisecond), bound, in, p.capacity)
		}
	}
	return ""
}

// fallbackLimiter measures, over the current and the previous window, the
// share of reads that fell back to the primary while it was under
// pressure. Fallbacks to a primary with headroom are not counted: the cap
// is about what a primary under pressure is asked to carry.
type fallbackLimiter struct {
	reads atomic.Int64 // reads in the current window
	mu    sync.Mutex
	start time.Time // of the current window
	fell  int64     // fallbacks admitted under pressure in the current window
	prevR int64     // reads and such fallbacks in the previous window
	prevF int64
}

func (f *fallbackLimiter) read() { f.reads.Add(1) }

// allow reports whether one more fallback keeps the share at most share
// (0 <= share < 1), counting it if so; now is the router's clock.
func (f *fallbackLimiter) allow(share float64, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if el := now.Sub(f.start); el >= fallbackWindow {
		// The reads counted since the last rotation, scaled to one window:
		// after a quiet hour they are an hour's reads, not a second's.
		reads := f.reads.Swap(0)
		f.prevR = int64(float64(reads) * float64(fallbackWindow) / float64(el))
		f.prevF = f.fell
		if el >= 2*fallbackWindow { // the previous window saw no fallbacks
			f.prevF = 0
		}
		f.fell, f.start = 0, now
	}
	// +1: the read asking, which a rotation just above may have moved
	// into the scaled previous count.
	reads := f.reads.Load() + f.prevR + 1
	if float64(f.fell+f.prevF+1) > share*float64(reads) {
		return false
	}
	f.fell++
	return true
}
