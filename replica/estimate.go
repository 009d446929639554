package replica

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// delayEstimate is one replica's recent p95 of time to first answer (the
// first row, or the whole answer when it has none): the delay after which
// a statement on it is hedged. It keeps the last hedgeWindow samples in a
// ring and computes the p95 of those younger than hedgeWindowAge every
// hedgeRecompute samples and at each health check, so that a read pays a
// short lock to record a sample and one atomic load to read the delay.
//
// A bounded window rather than a quantile library: the estimate is over a
// hundred-odd recent samples, where an exact sort costs a few microseconds
// every sixteen samples and nothing in between. The sketches (t-digest,
// HdrHistogram, already in the module for the load tester) summarise long
// streams; to forget old samples they need rotating windows under a lock
// and a merge to read a quantile, which is more machinery for a worse
// answer at this size.
type delayEstimate struct {
	mu      sync.Mutex
	ring    [hedgeWindow]timedSample
	next    int // ring index of the next sample
	n       int // samples in the ring
	since   int // samples since the last recompute
	scratch [hedgeWindow]time.Duration
	p95     atomic.Int64 // ns; 0 while there are fewer than hedgeMinSamples recent samples
}

// timedSample is one time to first answer, and when it was taken on the
// router's clock.
type timedSample struct {
	at int64 // unix ns
	d  time.Duration
}

// add records one sample taken at now.
func (e *delayEstimate) add(now time.Time, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ring[e.next] = timedSample{at: now.UnixNano(), d: d}
	e.next = (e.next + 1) % hedgeWindow
	e.n = min(e.n+1, hedgeWindow)
	if e.since++; e.since >= hedgeRecompute {
		e.recomputeLocked(now)
	}
}

// recompute sets the p95 of the samples younger than hedgeWindowAge at
// now, or 0 when there are fewer than hedgeMinSamples of them.
func (e *delayEstimate) recompute(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recomputeLocked(now)
}

func (e *delayEstimate) recomputeLocked(now time.Time) {
	e.since = 0
	oldest := now.Add(-hedgeWindowAge).UnixNano()
	recent := e.scratch[:0]
	for _, s := range e.ring[:e.n] {
		if s.at > oldest {
			recent = append(recent, s.d)
		}
	}
	if len(recent) < hedgeMinSamples {
		e.p95.Store(0)
		return
	}
	slices.Sort(recent)
	// The smallest sample at or above hedgeQuantile of them: of 20, the
	// 19th; of 128, the 122nd.
	i := int(math.Ceil(hedgeQuantile*float64(len(recent)))) - 1
	e.p95.Store(int64(max(recent[i], 1)))
}

// get returns the last computed p95, 0 for none.
func (e *delayEstimate) get() time.Duration { return time.Duration(e.p95.Load()) }

// hedgeBudget bounds hedges to a share of reads: a token bucket that reads
// fill, not time. Each hedgeable read adds Hedge.Budget of a token, each
// hedge takes a whole one, and the bucket, which starts empty, holds at
// most hedgeBurst. So hedges never exceed Budget × reads, from the first
// read on, and a quiet spell saves up at most hedgeBurst hedges for the
// next stall. Tokens are counted in millionths, in one atomic.
type hedgeBudget struct {
	tokens atomic.Int64 // millionths of a token
	per    int64        // millionths a read adds
}

// tokenUnit is one token in the bucket's unit.
const tokenUnit = 1_000_000

func newHedgeBudget(share float64) *hedgeBudget {
	return &hedgeBudget{per: int64(math.Round(share * tokenUnit))}
}

// deposit adds one read's share.
func (b *hedgeBudget) deposit() {
	const full = hedgeBurst * tokenUnit
	for {
		old := b.tokens.Load()
		next := min(old+b.per, full)
		if next == old || b.tokens.CompareAndSwap(old, next) {
			return
		}
	}
}

// take spends one token for a hedge; false when the bucket has less.
func (b *hedgeBudget) take() bool {
	for {
		old := b.tokens.Load()
		if old < tokenUnit {
			return false
		}
		if b.tokens.CompareAndSwap(old, old-tokenUnit) {
			return true
		}
	}
}
