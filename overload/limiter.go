package overload

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/monitor"
)

// Class is the priority of a piece of work.
type Class uint8

// The priority classes, most important first.
const (
	// Critical work may fill the whole limit and waits first in the
	// queue: it is refused last of all. The user of a page, a product.
	Critical Class = iota
	// Normal work is refused once in-flight work reaches NormalShare of
	// the limit: writes, searches, recommendations asked for directly.
	Normal
	// Sheddable work has a fallback or can be skipped: it is refused
	// first, once in-flight work reaches SheddableShare of the limit, and
	// never waits. The recommendations of a composite page, prefetching.
	Sheddable
)

// numClasses is how many classes there are.
const numClasses = 3

// String returns the class's name, as the metrics' class label has it.
func (c Class) String() string {
	switch c {
	case Critical:
		return "critical"
	case Normal:
		return "normal"
	case Sheddable:
		return "sheddable"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// The defaults of a zero Config.
const (
	DefaultTarget         = monitor.DefaultLatencyThreshold                // guide, Load Testing: p99 < 100 ms, the SLA
	DefaultQuantile       = float64(monitor.DefaultLatencyObjective) / 100 // guide, Load Testing: the p99 of that SLA
	DefaultInitialLimit   = 20                                             // Netflix concurrency-limits: Gradient2's initial limit
	DefaultMinLimit       = 4                                              // Strata: normal work keeps three in flight under any latency, sheddable two
	DefaultCriticalFloor  = 20                                             // Netflix concurrency-limits: Gradient2's minimum, kept for critical work: a latency the limit cannot cure (a starved CPU) must not shed critical reads
	DefaultMaxLimit       = 1000                                           // Strata: far above what a 2-core instance serves at once
	DefaultNormalShare    = 0.8                                            // Strata: critical work keeps a fifth of the limit to itself
	DefaultSheddableShare = 0.5                                            // Strata: work with a fallback stops at half the limit, Gradient2's app-limited mark
	DefaultQueueSize      = 32                                             // Strata: a small queue smooths bursts and holds no backlog
	DefaultQueueTimeout   = DefaultTarget / 10                             // Strata: a tenth of the SLA at most in the queue
	DefaultWindow         = 250 * time.Millisecond                         // Strata: four limit updates a second
	DefaultRateWindow     = 10 * time.Second                               // Strata: utilisation is the offered rate over the last 10 s
	minWindowSamples      = 20                                             // Strata: a window shorter than this many samples is extended
	maxWindowSamples      = 1000                                           // Strata: a window ends at this many samples, however short
	growBelow             = 0.8                                            // guide, Monitoring: the warning at 80 % of capacity; the limit grows only under 80 % of the target
	minGradient           = 0.5                                            // Netflix Gradient2: one window at most halves the limit
	rateSlots             = int(DefaultRateWindow/time.Second) + 1         // the complete seconds of the rate window, and the current one
	unlimitedQueue        = -1                                             // QueueSize: no queue at all
)

// Config holds a Limiter's settings; the zero value means the documented
// defaults.
type Config struct {
	// Target is the latency the admitted work must stay within, the
	// SLA; zero means DefaultTarget (100 ms). Quantile is which quantile
	// of a window's latencies is held to it; zero means DefaultQuantile
	// (0.99).
	Target   time.Duration
	Quantile float64
	// InitialLimit is the limit at start; MinLimit and MaxLimit bound it.
	// Zero means DefaultInitialLimit (20), DefaultMinLimit (4) and
	// DefaultMaxLimit (1,000).
	InitialLimit, MinLimit, MaxLimit int
	// CriticalFloor is the concurrency critical work may always reach:
	// it is admitted while fewer than the larger of the limit and
	// CriticalFloor are in flight, so that a limit cut by a latency it
	// cannot cure (a CPU starved by other work) sheds normal work, not
	// critical reads. Zero means DefaultCriticalFloor (20), at most
	// MaxLimit.
	CriticalFloor int
	// NormalShare and SheddableShare are the shares of the limit that
	// Normal and Sheddable work may fill (Critical work may fill all of
	// it), 0 < SheddableShare ≤ NormalShare ≤ 1; zero means
	// DefaultNormalShare (0.8) and DefaultSheddableShare (0.5).
	NormalShare, SheddableShare float64
	// QueueSize bounds the Critical and Normal work waiting for room;
	// zero means DefaultQueueSize (32), negative means no queue.
	// QueueTimeout bounds one wait; zero means DefaultQueueTimeout
	// (10 ms). Sheddable work never waits.
	QueueSize    int
	QueueTimeout time.Duration
	// Window is the shortest sample window; zero means DefaultWindow
	// (250 ms). A window also needs 20 samples, and ends at 1,000.
	Window time.Duration
	// CapacityRPS is the rate this instance serves within the SLA, the
	// breaking point a load test measured; with it, Stats.Utilisation and
	// strata_overload_utilisation_ratio are the offered rate over it.
	// Zero means unknown: no utilisation.
	CapacityRPS float64
	// Registerer receives the limiter's metrics (strata_overload_*); nil
	// means none.
	Registerer prometheus.Registerer
	// Now is the clock of the windows and of the offered rate; nil means
	// time.Now. Queue waits are real time, as they bound a caller's wait.
	Now func() time.Time
}

// ErrBadConfig is wrapped by New's error for a Config it cannot use; the
// message names the field.
var ErrBadConfig = errors.New("overload: bad config")

// ErrOverloaded is wrapped by every refusal of [Limiter.Acquire].
var ErrOverloaded = errors.New("overload: over the concurrency limit")

// RejectedError is Acquire's refusal: the work's class, why, and the
// limiter's state when it refused.
type RejectedError struct {
	Class Class
	// Reason is "over the limit" (no room and no queue for this class),
	// "queue full" or "no room within the queue timeout".
	Reason   string
	Limit    int // the concurrency limit
	InFlight int // admitted work in flight, every class
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("overload: %s work refused, %s (%d in flight, limit %d)", e.Class, e.Reason, e.InFlight, e.Limit)
}

// Unwrap returns ErrOverloaded.
func (e *RejectedError) Unwrap() error { return ErrOverloaded }

// Limiter is an adaptive concurrency limiter with priority classes; see
// the package documentation for its model. It is safe for concurrent
// use.
type Limiter struct {
	cfg Config // defaults applied
	now func() time.Time

	mu       sync.Mutex
	limit    float64
	inFlight [numClasses]int
	total    int                  // sum of inFlight
	queue    [Sheddable][]*waiter // Critical and Normal waiters, oldest first
	queued   int
	// The current window.
	winStart time.Time
	samples  []time.Duration
	peak     int           // the most in flight during the window
	latency  time.Duration // the last closed window's quantile
	admitted [numClasses]uint64
	rejected [numClasses]uint64
	offered  [rateSlots]struct{ sec, n int64 } // work offered per second, a ring
}

// waiter is work queued for room. admitted is set, under the limiter's
// lock, by the release that handed it a slot, evicted by critical work
// that took its place in a full queue; ready then receives.
type waiter struct {
	ready             chan struct{}
	admitted, evicted bool
}

// New returns a Limiter for cfg, registering its metrics on
// cfg.Registerer. An error wraps ErrBadConfig and names the field, or is
// the registerer's.
func New(cfg Config) (*Limiter, error) {
	cfg, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	l := &Limiter{cfg: cfg, now: cfg.Now, limit: float64(cfg.InitialLimit)}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newCollector(l)); err != nil {
			return nil, fmt.Errorf("overload: metrics: %w", err)
		}
	}
	return l, nil
}

// resolve applies the defaults to cfg and checks it.
func resolve(c Config) (Config, error) {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s %v: %s", ErrBadConfig, field, v, want)
	}
	switch {
	case c.Target < 0:
		return c, bad("Target", c.Target, "want a positive latency (0: 100ms)")
	case c.Quantile < 0 || c.Quantile >= 1 || math.IsNaN(c.Quantile):
		return c, bad("Quantile", c.Quantile, "want a quantile in (0, 1), e.g. 0.99 (0: 0.99)")
	case c.InitialLimit < 0 || c.MinLimit < 0 || c.MaxLimit < 0 || c.CriticalFloor < 0:
		return c, bad("InitialLimit, MinLimit, MaxLimit, CriticalFloor", []int{c.InitialLimit, c.MinLimit, c.MaxLimit, c.CriticalFloor}, "want positive limits (0: the defaults)")
	case !(c.NormalShare >= 0 && c.NormalShare <= 1) || !(c.SheddableShare >= 0 && c.SheddableShare <= 1):
		return c, bad("NormalShare, SheddableShare", []float64{c.NormalShare, c.SheddableShare}, "want shares of the limit in (0, 1] (0: 0.8 and 0.5)")
	case c.QueueTimeout < 0 || c.Window < 0:
		return c, bad("QueueTimeout, Window", []time.Duration{c.QueueTimeout, c.Window}, "want positive durations (0: the defaults)")
	case c.CapacityRPS < 0 || math.IsNaN(c.CapacityRPS) || math.IsInf(c.CapacityRPS, 0):
		return c, bad("CapacityRPS", c.CapacityRPS, "want a rate in requests per second, or 0 for unknown")
	}
	c.Target = orDefault(c.Target, DefaultTarget)
	c.Quantile = orDefault(c.Quantile, DefaultQuantile)
	c.MinLimit = orDefault(c.MinLimit, DefaultMinLimit)
	c.MaxLimit = orDefault(c.MaxLimit, max(DefaultMaxLimit, c.MinLimit))
	c.InitialLimit = orDefault(c.InitialLimit, min(max(DefaultInitialLimit, c.MinLimit), c.MaxLimit))
	c.CriticalFloor = min(orDefault(c.CriticalFloor, DefaultCriticalFloor), c.MaxLimit)
	c.NormalShare = orDefault(c.NormalShare, DefaultNormalShare)
	c.SheddableShare = orDefault(c.SheddableShare, min(DefaultSheddableShare, c.NormalShare))
	c.QueueSize = orDefault(c.QueueSize, DefaultQueueSize)
	c.QueueTimeout = orDefault(c.QueueTimeout, DefaultQueueTimeout)
	c.Window = orDefault(c.Window, DefaultWindow)
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.MinLimit > c.MaxLimit:
		return c, bad("MinLimit", c.MinLimit, fmt.Sprintf("is above MaxLimit %d", c.MaxLimit))
	case c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit:
		return c, bad("InitialLimit", c.InitialLimit, fmt.Sprintf("want it within MinLimit %d and MaxLimit %d", c.MinLimit, c.MaxLimit))
	case c.SheddableShare > c.NormalShare:
		return c, bad("SheddableShare", c.SheddableShare, fmt.Sprintf("is above NormalShare %v: sheddable work would be refused after normal work", c.NormalShare))
	}
	if c.QueueSize < 0 {
		c.QueueSize = unlimitedQueue
	}
	return c, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Token is admitted work. Call Done (or Ignore) exactly once when the
// work ends; later calls do nothing.
type Token struct {
	l     *Limiter
	class Class
	start time.Time
	done  atomic.Bool
}

// Done releases the work's slot and gives its latency, from admission, to
// the limit's window.
func (t *Token) Done() {
	if t != nil && t.done.CompareAndSwap(false, true) {
		t.l.release(t.class, t.start, true)
	}
}

// Ignore releases the work's slot without a latency sample: for work
// whose time says nothing about the load (its client went away, it
// failed at once on bad input).
func (t *Token) Ignore() {
	if t != nil && t.done.CompareAndSwap(false, true) {
		t.l.release(t.class, t.start, false)
	}
}

// Acquire admits work of class c, or refuses it with a *RejectedError
// (wrapping ErrOverloaded). Critical and Normal work that finds no room
// waits in the queue, when there is space in it, for at most
// QueueTimeout or until ctx is done (then ctx's error is returned,
// wrapped); Sheddable work never waits.
func (l *Limiter) Acquire(ctx context.Context, c Class) (*Token, error) {
	if c >= numClasses {
		return nil, fmt.Errorf("overload: Acquire: unknown class %d", uint8(c))
	}
	l.mu.Lock()
	now := l.now()
	l.countOffered(now)
	if l.queuedAhead(c) == 0 && l.fits(c) {
		l.admit(c)
		l.mu.Unlock()
		return &Token{l: l, class: c, start: now}, nil
	}
	if c == Critical && l.queued >= l.cfg.QueueSize && len(l.queue[Normal]) > 0 {
		l.evictNormal() // critical work waits before normal work does
	}
	if c == Sheddable || l.cfg.QueueSize == unlimitedQueue || l.queued >= l.cfg.QueueSize || ctx.Err() != nil {
		reason := "over the limit"
		if c != Sheddable && l.cfg.QueueSize != unlimitedQueue && ctx.Err() == nil {
			reason = "queue full"
		}
		err := l.refuse(c, reason)
		l.mu.Unlock()
		return nil, err
	}
	w := &waiter{ready: make(chan struct{}, 1)}
	l.queue[c] = append(l.queue[c], w)
	l.queued++
	l.mu.Unlock()
	return l.wait(ctx, c, w)
}

// evictNormal refuses the newest normal waiter, to make room in a full
// queue for critical work. Call with l.mu held.
func (l *Limiter) evictNormal() {
	q := l.queue[Normal]
	w := q[len(q)-1]
	l.queue[Normal] = q[:len(q)-1]
	l.queued--
	w.evicted = true
	w.ready <- struct{}{}
}

// wait waits for a queued waiter's slot.
func (l *Limiter) wait(ctx context.Context, c Class, w *waiter) (*Token, error) {
	timer := time.NewTimer(l.cfg.QueueTimeout)
	defer timer.Stop()
	var gaveUp error
	select {
	case <-w.ready:
	case <-timer.C:
	case <-ctx.Done():
		gaveUp = fmt.Errorf("overload: waiting for room: %w", ctx.Err())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case w.admitted: // handed a slot, perhaps just as it gave up: take it
		return &Token{l: l, class: c, start: l.now()}, nil
	case w.evicted: // out of the queue already
		return nil, l.refuse(c, "queue full (its place given to critical work)")
	}
	l.queue[c] = slices.DeleteFunc(l.queue[c], func(q *waiter) bool { return q == w })
	l.queued--
	if gaveUp != nil {
		return nil, gaveUp
	}
	return nil, l.refuse(c, "no room within the queue timeout")
}

// queuedAhead returns how many waiters are ahead of new work of class c:
// those of its class and of more important ones. Call with l.mu held.
func (l *Limiter) queuedAhead(c Class) int {
	n := 0
	for k := Critical; k <= c && k < Sheddable; k++ {
		n += len(l.queue[k])
	}
	return n
}

// room returns how much work may be in flight for work of class c to
// start: its share of the limit, at least one; for critical work the
// whole limit, at least CriticalFloor. Call with l.mu held.
func (l *Limiter) room(c Class) int {
	switch c {
	case Normal:
		return max(1, int(l.limit*l.cfg.NormalShare))
	case Sheddable:
		return max(1, int(l.limit*l.cfg.SheddableShare))
	}
	return max(1, int(l.limit), l.cfg.CriticalFloor)
}

// fits says whether work of class c may start now: under its room, or,
// for critical work, within the part of its room normal work may not
// fill, however much other work is in flight: after the limit is cut,
// normal work admitted under the old limit may fill the new one for a
// while, and critical reads must not wait for it to drain. Call with
// l.mu held.
func (l *Limiter) fits(c Class) bool {
	if l.total < l.room(c) {
		return true
	}
	return c == Critical && l.inFlight[Critical] < max(1, l.room(Critical)-l.room(Normal))
}

// admit counts work of class c in. Call with l.mu held.
func (l *Limiter) admit(c Class) {
	l.inFlight[c]++
	l.total++
	l.admitted[c]++
	l.peak = max(l.peak, l.total)
}

// refuse counts a refusal and returns its error. Call with l.mu held.
func (l *Limiter) refuse(c Class, reason string) error {
	l.rejected[c]++
	return &RejectedError{Class: c, Reason: reason, Limit: int(l.limit), InFlight: l.total}
}

// release ends work of class c admitted at start, adds its latency to
// the window when sample is set, and hands the freed room to waiters,
// most important first.
func (l *Limiter) release(c Class, start time.Time, sample bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight[c]--
	l.total--
	if sample {
		l.addSample(start)
	}
	for k := Critical; k < Sheddable; k++ {
		for len(l.queue[k]) > 0 && l.fits(k) {
			w := l.queue[k][0]
			l.queue[k] = l.queue[k][1:]
			l.queued--
			w.admitted = true
			l.admit(k)
			w.ready <- struct{}{}
		}
		if len(l.queue[k]) > 0 {
			return // less important work waits behind it
		}
	}
}

// addSample adds the latency of work admitted at start to the window,
// and closes the window when it is long enough. A window spans the work
// it measured: it starts when its first sample's work was admitted.
// Call with l.mu held.
func (l *Limiter) addSample(start time.Time) {
	now := l.now()
	if len(l.samples) == 0 {
		l.winStart = start
	}
	l.samples = append(l.samples, now.Sub(start))
	n := len(l.samples)
	if n >= maxWindowSamples || n >= minWindowSamples && now.Sub(l.winStart) >= l.cfg.Window {
		l.adjust()
		l.samples = l.samples[:0]
		l.peak = l.total
	}
}

// adjust moves the limit by the closed window's quantile latency (see
// the package documentation). Call with l.mu held.
func (l *Limiter) adjust() {
	slices.Sort(l.samples)
	i := int(math.Ceil(l.cfg.Quantile*float64(len(l.samples)))) - 1
	lat := l.samples[min(max(i, 0), len(l.samples)-1)]
	l.latency = lat
	if float64(l.peak) < l.limit/2 {
		// App-limited (Gradient2's rule): less than half the limit was in
		// use, so the latency is not the limit's doing, and a lower limit
		// would shed work without making anything faster.
		return
	}
	target := float64(l.cfg.Target)
	switch {
	case float64(lat) > target:
		l.limit *= max(minGradient, target/float64(lat))
	case float64(lat) < growBelow*target:
		l.limit += math.Sqrt(l.limit)
	}
	l.limit = min(max(l.limit, float64(l.cfg.MinLimit)), float64(l.cfg.MaxLimit))
}

// countOffered counts one piece of work offered at now, for the offered
// rate. Call with l.mu held.
func (l *Limiter) countOffered(now time.Time) {
	sec := now.Unix()
	s := &l.offered[sec%int64(rateSlots)]
	if s.sec != sec {
		s.sec, s.n = sec, 0
	}
	s.n++
}

// offeredRPS is the work offered per second over the rate window's
// complete seconds before now. Call with l.mu held.
func (l *Limiter) offeredRPS(now time.Time) float64 {
	cur := now.Unix()
	var n int64
	for _, s := range l.offered {
		if s.sec < cur && s.sec >= cur-int64(rateSlots-1) {
			n += s.n
		}
	}
	return float64(n) / float64(rateSlots-1)
}

// Stats is a snapshot of a Limiter.
type Stats struct {
	Limit    int                // the concurrency limit now
	InFlight [numClasses]int    // admitted work in flight, by Class
	Queued   int                // Critical and Normal work waiting for room
	Admitted [numClasses]uint64 // work admitted since New, by Class
	Rejected [numClasses]uint64 // work refused since New, by Class (not waits the caller gave up)
	// Latency is the quantile latency of the last closed window, which
	// the limit last moved by; zero before the first.
	Latency time.Duration
	// OfferedRPS is the work offered per second, admitted or not, over
	// the last DefaultRateWindow (10 s) of whole seconds; Utilisation is
	// OfferedRPS / Config.CapacityRPS, zero without a capacity.
	OfferedRPS, Utilisation float64
}

// Stats returns a snapshot of the limiter's state and counts.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Limit: int(l.limit), InFlight: l.inFlight, Queued: l.queued, Admitted: l.admitted, Rejected: l.rejected,
		Latency: l.latency, OfferedRPS: l.offeredRPS(l.now())}
	if l.cfg.CapacityRPS > 0 {
		s.Utilisation = s.OfferedRPS / l.cfg.CapacityRPS
	}
	return s
}

// Target returns the latency the limiter holds admitted work to.
func (l *Limiter) Target() time.Duration { return l.cfg.Target }
