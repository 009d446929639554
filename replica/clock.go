package replica

import "time"

// clock is the router's time seam. The health loop's ticks, the lag
// history, the fallback limiter's windows and the in-process key marks
// read it, so that tests drive time instead of sleeping. The length of a
// call (latency, acquire deadlines, FreshWait) is measured on the real
// clock: it times a real server.
type clock interface {
	Now() time.Time
	// NewTicker returns a channel that receives every d, and a function
	// that stops it.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
