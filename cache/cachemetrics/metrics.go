// Package cachemetrics exports Strata caches to Prometheus. It sits beside
// package cache, as otter's stats and vegeta's lib/prom sit beside their
// cores, so that the cache itself never imports a metrics library: the
// cache reports through its small [cache.Recorder] interface and its
// [cache.Stats] snapshot, and this package turns both into
// strata_cache_* series on the registry it is given.
package cachemetrics

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/cache"
)

// ErrAlreadyRegistered is returned (wrapped) by [New] when the registry
// already holds the cache metrics, from a Metrics not yet unregistered.
var ErrAlreadyRegistered = errors.New("cachemetrics: the cache metrics are already registered on this registry")

// Metrics exports caches to Prometheus: latency histograms through the
// [cache.Recorder] each cache is given, and counters read from [cache.Cache.Stats] at
// scrape time, so the read path pays nothing for them.
//
//	m, err := cachemetrics.New(reg)
//	users, _ := cache.New(cache.Config[User]{Recorder: m.Recorder("users"), ...})
//	m.Watch("users", users)
//	...
//	m.Unwatch("users") // then users.Close()
//	m.Unregister()     // the registry may take a new Metrics
type Metrics struct {
	l2, load, leaseWait, busLag *prometheus.HistogramVec

	reg prometheus.Registerer

	mu      sync.Mutex
	watched map[string]interface{ Stats() cache.Stats }

	descs map[string]*prometheus.Desc
}

// New registers the cache metrics with reg. A registry holds one Metrics
// at a time: a second New on it fails with [ErrAlreadyRegistered] until
// the first is unregistered ([Metrics.Unregister]); caches of one service
// share one Metrics, each under its own name.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("cachemetrics: New: the Registerer is nil")
	}
	h := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_cache_" + name, Help: help, Buckets: buckets}, []string{"cache"})
	}
	fast := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}
	slow := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		l2:        h("l2_duration_seconds", "Time of one L2 (Redis) round trip.", fast),
		load:      h("load_duration_seconds", "Time of one loader call.", slow),
		leaseWait: h("lease_wait_seconds", "Time spent waiting for another instance's lease.", slow),
		busLag:    h("bus_lag_seconds", "Delay from publishing an invalidation to receiving it.", fast),
		watched:   map[string]interface{ Stats() cache.Stats }{},
		descs:     map[string]*prometheus.Desc{},
		reg:       reg,
	}
	for _, d := range []struct{ name, help string }{
		{"hits_total", "Reads answered by a level."},
		{"misses_total", "Reads a level could not answer."},
		{"evictions_total", "Entries a level dropped for size or expiry."},
		{"entries", "Entries held by a level (estimate)."},
		{"bytes", "Weighed size of a level, for an L1 bounded by bytes."},
		{"l2_errors_total", "L2 calls that failed; the read fell through to the loader."},
		{"corrupt_total", "L2 entries that could not be decoded."},
		{"loads_total", "Loader calls."},
		{"load_errors_total", "Loader calls that failed (never cached)."},
		{"loads_deduplicated_total", "Reads that joined a load already in flight in this process."},
		{"leases_total", "Leases taken on missing keys."},
		{"lease_waits_total", "Reads that waited for another instance's lease."},
		{"lease_timeouts_total", "Lease waits that gave up and loaded themselves."},
		{"voided_sets_total", "Loads whose cache write an invalidation voided, by level."},
		{"stale_served_total", "Reads served a stale value while it refreshed."},
		{"refreshes_total", "Background refreshes started."},
		{"flushes_total", "Times L1 was emptied (bus silent, gap, remote flush)."},
		{"invalidations_sent_total", "Invalidations broadcast."},
		{"invalidations_received_total", "Invalidations received from other instances."},
		{"pending_invalidations", "Keys and tags whose invalidation did not reach Redis yet (replayed when it answers)."},
		{"invalidation_replays_total", "Replays of failed invalidations that reached Redis."},
		{"warmed_keys_total", "Keys loaded by warming."},
		{"scheduled_warmups_total", "Warm-ups of the hot set run ahead of a known peak (one per peak occurrence)."},
		{"cold_skipped_total", "Fills kept out of L1 because the key was cold (hot/cold tiering)."},
		{"breaker_state", "State of the L2 circuit breaker: 0 closed, 1 open, 2 half-open."},
		{"bus_up", "1 while the invalidation bus delivers."},
	} {
		labels := []string{"cache"}
		switch d.name {
		case "hits_total", "misses_total", "evictions_total", "entries", "bytes", "voided_sets_total":
			labels = append(labels, "level")
		}
		m.descs[d.name] = prometheus.NewDesc("strata_cache_"+d.name, d.help, labels, nil)
	}
	if err := m.register(); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers every collector of m, or none: a failure unregisters
// those already registered.
func (m *Metrics) register() error {
	for i, c := range m.collectors() {
		if err := m.reg.Register(c.c); err != nil {
			for _, done := range m.collectors()[:i] {
				m.reg.Unregister(done.c)
			}
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				return fmt.Errorf("%w (%s; call Unregister on the Metrics that registered it first)", ErrAlreadyRegistered, c.name)
			}
			return fmt.Errorf("cachemetrics: New: registering %s: %w", c.name, err)
		}
	}
	return nil
}

// collectors returns what m registers, each with the name an error gives it.
func (m *Metrics) collectors() []struct {
	name string
	c    prometheus.Collector
} {
	return []struct {
		name string
		c    prometheus.Collector
	}{
		{"strata_cache_l2_duration_seconds", m.l2}, {"strata_cache_load_duration_seconds", m.load},
		{"strata_cache_lease_wait_seconds", m.leaseWait}, {"strata_cache_bus_lag_seconds", m.busLag},
		{"the strata_cache_* counters", m},
	}
}

// Unregister removes m's collectors from its registry, so that a new
// Metrics (after the caches were closed and opened again, say) may
// register there. It is idempotent; m exports nothing afterwards.
func (m *Metrics) Unregister() {
	for _, c := range m.collectors() {
		m.reg.Unregister(c.c)
	}
}

// Recorder returns the recorder for the cache with the given name.
func (m *Metrics) Recorder(name string) cache.Recorder {
	return &recorder{
		l2: m.l2.WithLabelValues(name), load: m.load.WithLabelValues(name),
		leaseWait: m.leaseWait.WithLabelValues(name), busLag: m.busLag.WithLabelValues(name),
	}
}

// Watch exports the counters of c under name. Watching two caches under
// one name is a programming error and panics, as registering two
// collectors for the same series does in the Prometheus client; Unwatch
// the first one (when it is closed) before watching another under its name.
func (m *Metrics) Watch(name string, c interface{ Stats() cache.Stats }) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.watched[name]; dup {
		panic(fmt.Sprintf("cachemetrics: Metrics.Watch: a cache named %q is already watched", name))
	}
	m.watched[name] = c
}

// Unwatch stops exporting the cache watched under name (closing it is the
// caller's business) and drops its latency series, so that a closed cache
// is neither kept alive nor scraped. A Recorder obtained for name before
// observes nothing any more: a new cache under the name gets a new
// Recorder. Unwatching a name not watched does nothing.
func (m *Metrics) Unwatch(name string) {
	m.mu.Lock()
	delete(m.watched, name)
	m.mu.Unlock()
	for _, h := range []*prometheus.HistogramVec{m.l2, m.load, m.leaseWait, m.busLag} {
		h.DeleteLabelValues(name)
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, c := range m.watched {
		s := c.Stats()
		counter := func(metric string, v uint64, level ...string) {
			ch <- prometheus.MustNewConstMetric(m.descs[metric], prometheus.CounterValue, float64(v), append([]string{name}, level...)...)
		}
		gauge := func(metric string, v float64, level ...string) {
			ch <- prometheus.MustNewConstMetric(m.descs[metric], prometheus.GaugeValue, v, append([]string{name}, level...)...)
		}
		counter("hits_total", s.L1Hits, cache.LevelL1)
		counter("misses_total", s.L1Misses, cache.LevelL1)
		counter("evictions_total", s.L1Evictions, cache.LevelL1)
		gauge("entries", float64(s.L1Entries), cache.LevelL1)
		gauge("bytes", float64(s.L1Bytes), cache.LevelL1)
		counter("hits_total", s.L2Hits, cache.LevelL2)
		counter("misses_total", s.L2Misses, cache.LevelL2)
		counter("l2_errors_total", s.L2Errors)
		counter("corrupt_total", s.Corrupt)
		counter("loads_total", s.Loads)
		counter("load_errors_total", s.LoadErrors)
		counter("loads_deduplicated_total", s.Deduped)
		counter("leases_total", s.Leases)
		counter("lease_waits_total", s.LeaseWaits)
		counter("lease_timeouts_total", s.LeaseTimeouts)
		counter("voided_sets_total", s.VoidedSets, cache.LevelL2)
		counter("voided_sets_total", s.VoidedFills, cache.LevelL1)
		counter("stale_served_total", s.Stale)
		counter("refreshes_total", s.Refreshes)
		counter("flushes_total", s.Flushes)
		counter("invalidations_sent_total", s.InvalidationsSent)
		counter("invalidations_received_total", s.InvalidationsReceived)
		gauge("pending_invalidations", float64(s.PendingInvalidations))
		counter("invalidation_replays_total", s.Replays)
		counter("warmed_keys_total", s.Warmed)
		counter("scheduled_warmups_total", s.ScheduledWarmups)
		counter("cold_skipped_total", s.ColdSkipped)
		gauge("breaker_state", float64(s.L2Breaker))
		up := 0.0
		if s.BusUp {
			up = 1
		}
		gauge("bus_up", up)
	}
}

type recorder struct {
	l2, load, leaseWait, busLag prometheus.Observer
}

func (r *recorder) ObserveL2(d time.Duration)        { r.l2.Observe(d.Seconds()) }
func (r *recorder) ObserveLoad(d time.Duration)      { r.load.Observe(d.Seconds()) }
func (r *recorder) ObserveLeaseWait(d time.Duration) { r.leaseWait.Observe(d.Seconds()) }
func (r *recorder) ObserveBusLag(d time.Duration)    { r.busLag.Observe(d.Seconds()) }
