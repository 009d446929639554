package cache

import (
	"sync/atomic"
	"time"
)

// Recorder receives the cache's latencies; the Prometheus collector in
// package cachemetrics implements it. The core never imports a metrics library.
type Recorder interface {
	ObserveL2(d time.Duration)        // one L2 round trip
	ObserveLoad(d time.Duration)      // one loader call
	ObserveLeaseWait(d time.Duration) // one wait for another instance's lease
	ObserveBusLag(d time.Duration)    // publish-to-receive delay of one bus message
}

type nopRecorder struct{}

func (nopRecorder) ObserveL2(time.Duration)        {}
func (nopRecorder) ObserveLoad(time.Duration)      {}
func (nopRecorder) ObserveLeaseWait(time.Duration) {}
func (nopRecorder) ObserveBusLag(time.Duration)    {}

// counters are the cache's own counts; L1 hits and misses are counted by
// the L1 library, off the hit path's critical section.
type counters struct {
	l2Hits, l2Misses, l2Errors, corrupt atomic.Uint64
	loads, loadErrors, deduped          atomic.Uint64
	leases, leaseWaits, leaseTimeouts   atomic.Uint64
	voidedSets, voidedFills, stale      atomic.Uint64
	refreshes, flushes, invSent         atomic.Uint64
	invReceived, warmed, coldSkipped    atomic.Uint64
	replays, scheduledWarmups           atomic.Uint64
}

// Stats is a snapshot of a cache's counters, in the spirit of sql.DBStats.
type Stats struct {
	L1Hits      uint64 // reads answered by L1 (fresh or stale)
	L1Misses    uint64 // reads L1 could not answer
	L1Evictions uint64 // entries L1 dropped for size or expiry
	L1Entries   int    // entries in L1 now (estimate)
	L1Bytes     uint64 // weighed size of L1 now, when bounded by L1MaxBytes (else 0)

	L2Hits   uint64 // reads answered by L2
	L2Misses uint64 // L2 reads that found nothing usable
	L2Errors uint64 // L2 calls that failed (the read fell through to the loader)
	Corrupt  uint64 // L2 entries that could not be decoded (treated as misses)

	Loads      uint64 // loader calls
	LoadErrors uint64 // loader calls that failed (never cached)
	Deduped    uint64 // reads that joined a load already in flight in this process

	Leases        uint64 // leases this instance took on missing keys
	LeaseWaits    uint64 // reads that waited for another instance's lease
	LeaseTimeouts uint64 // waits that gave up and loaded themselves

	VoidedSets  uint64 // loads whose L2 set an invalidation voided (stale sets prevented)
	VoidedFills uint64 // loads whose L1 fill an invalidation voided
	Stale       uint64 // reads served a stale value while it refreshed
	Refreshes   uint64 // background refreshes started
	Flushes     uint64 // times L1 was emptied (bus silent, gap, remote flush)

	InvalidationsSent     uint64 // invalidations broadcast
	InvalidationsReceived uint64 // invalidations received from other instances
	// PendingInvalidations is how many keys and tags whose invalidation
	// did not reach Redis wait to be replayed (more than 10,000 means too
	// many to remember: the namespace will be flushed in L2).
	PendingInvalidations int
	Replays              uint64 // replays of failed invalidations that reached Redis (each its DELs and bumps, or a flush of the namespace)
	Warmed               uint64 // keys loaded by warming
	ColdSkipped          uint64 // fills kept out of L1 because the key was cold (tiering)
	ScheduledWarmups     uint64 // warm-ups of the hot set run ahead of a known peak (one per occurrence; Config.Peaks)

	L2Breaker BreakerState // state of the L2 circuit breaker
	BusUp     bool         // the invalidation bus delivers (always false without Redis)
}

// Stats returns a snapshot of the counters.
func (c *Cache[V]) Stats() Stats {
	s := Stats{
		L2Hits: c.ctr.l2Hits.Load(), L2Misses: c.ctr.l2Misses.Load(), L2Errors: c.ctr.l2Errors.Load(),
		Corrupt: c.ctr.corrupt.Load(), Loads: c.ctr.loads.Load(), LoadErrors: c.ctr.loadErrors.Load(),
		Deduped: c.ctr.deduped.Load(), Leases: c.ctr.leases.Load(), LeaseWaits: c.ctr.leaseWaits.Load(),
		LeaseTimeouts: c.ctr.leaseTimeouts.Load(), VoidedSets: c.ctr.voidedSets.Load(),
		VoidedFills: c.ctr.voidedFills.Load(), Stale: c.ctr.stale.Load(), Refreshes: c.ctr.refreshes.Load(),
		Flushes: c.ctr.flushes.Load(), InvalidationsSent: c.ctr.invSent.Load(),
		InvalidationsReceived: c.ctr.invReceived.Load(), Warmed: c.ctr.warmed.Load(),
		ColdSkipped: c.ctr.coldSkipped.Load(), PendingInvalidations: c.pend.size(), Replays: c.ctr.replays.Load(),
		ScheduledWarmups: c.ctr.scheduledWarmups.Load(),
	}
	if c.l1 != nil {
		st := c.l1Stats.Snapshot()
		s.L1Hits, s.L1Misses, s.L1Evictions, s.L1Entries = st.Hits, st.Misses, st.Evictions, c.l1.EstimatedSize()
		if c.l1.IsWeighted() {
			s.L1Bytes = c.l1.WeightedSize()
		}
	}
	if c.l2 != nil {
		s.L2Breaker = c.l2.br.State()
		s.BusUp = c.bus.healthy.Load()
	}
	return s
}
