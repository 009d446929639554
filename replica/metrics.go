package replica

import (
	"database/sql"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/internal/sqlstats"
)

// metrics are the router's Prometheus series. Connection counts, acquire
// waits and wait time per pool come from database/sql's own statistics
// (strata_db_*{pool}); the rest are strata_replica_*.
type metrics struct {
	queries                 *prometheus.HistogramVec
	errors                  *prometheus.CounterVec
	acquireTimeouts         *prometheus.CounterVec
	fallbacks               *prometheus.CounterVec
	ejections, readmissions *prometheus.CounterVec
	lagSeconds, lagBytes    *prometheus.GaugeVec
	markErrors              *prometheus.CounterVec
	hedges                  *prometheus.CounterVec
	registerer              prometheus.Registerer
	registered              []prometheus.Collector // what register added, for unregister
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		registerer: reg,
		queries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_replica_query_duration_seconds", Help: "Time of one read or write call on a pool, by pool.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"pool"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replica_errors_total", Help: "Failed calls by pool and kind (connection, acquire_timeout, retryable, query; down: refused while the primary is known to be down).",
		}, []string{"pool", "kind"}),
		acquireTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replica_acquire_timeouts_total", Help: "Calls that got no connection within the pool's acquire timeout.",
		}, []string{"pool"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replica_fallbacks_total", Help: "Reads sent to the primary because no replica served them, by reason; reason=capped counts reads refused at the cap.",
		}, []string{"reason"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replica_ejections_total", Help: "Times a replica was taken out of the read rotation.",
		}, []string{"replica"}),
		readmissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replica_readmissions_total", Help: "Times an ejected replica was put back into the read rotation.",
		}, []string{"replica"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_replica_lag_seconds", Help: "How far the replica's replay is behind the primary, in time, at the last check.",
		}, []string{"replica"}),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_replica_lag_bytes", Help: "How far the replica's replay is behind the primary's WAL position, in bytes, at the last check.",
		}, []string{"replica"}),
		markErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replica_key_mark_errors_total", Help: "Key marks (WithKeys) that could not be recorded (op=mark) or read (op=get).",
		}, []string{"op"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replica_hedges_total", Help: "Hedged reads (Config.Hedge) by outcome: won (the hedge answered first), lost (the first attempt did), failed (the hedge got no connection or failed), skipped_budget and skipped_no_replica (a statement passed its replica's p95, but the budget was spent or no other replica could take it).",
		}, []string{"outcome"}),
	}
}

// register adds the series, and the pools' statistics, to the registerer.
// On an error it leaves nothing registered.
func (m *metrics) register(r *Router) error {
	if m.registerer == nil {
		return nil
	}
	pools := map[string]*sql.DB{"primary": r.primary.db}
	for _, n := range r.replicas {
		pools[n.name] = n.db
	}
	m.zero(r)
	for _, c := range []prometheus.Collector{m.queries, m.errors, m.acquireTimeouts, m.fallbacks, m.ejections,
		m.readmissions, m.lagSeconds, m.lagBytes, m.markErrors, m.hedges, sqlstats.New(pools)} {
		if err := m.registerer.Register(c); err != nil {
			m.unregister()
			return fmt.Errorf("replica: metrics: %w", err)
		}
		m.registered = append(m.registered, c)
	}
	return nil
}

// zero creates, at 0, every series of r's counters that r can count, so
// that a healthy router exports "none yet" rather than no series: a
// dashboard shows 0, not "No data", and rate and increase see the first
// event. These are zero series, not the dead label values STYLE.md warns
// of: each label value below is one the router increments (router.go,
// health.go), on the pools that can have it.
func (m *metrics) zero(r *Router) {
	for _, n := range append([]*node{r.primary}, r.replicas...) {
		m.acquireTimeouts.WithLabelValues(n.name)
		for _, kind := range []string{kindConnection, kindAcquireTimeout, kindRetryable, kindQuery} {
			m.errors.WithLabelValues(n.name, kind)
		}
	}
	m.errors.WithLabelValues(r.primary.name, kindDown) // refused while the primary is known to be down
	if len(r.replicas) == 0 {
		return // every read goes to the primary: no fallback, ejection or key mark
	}
	for _, n := range r.replicas {
		m.ejections.WithLabelValues(n.name)
		m.readmissions.WithLabelValues(n.name)
	}
	// A fallback's reason is no_replica, the kind of the last replica's
	// failure (reasonOf a serverError), or capped where a cap is set.
	for _, reason := range []string{reasonNoReplica, kindConnection, kindAcquireTimeout, kindRetryable, kindStale} {
		m.fallbacks.WithLabelValues(reason)
	}
	if r.cfg.FallbackShare < 1 {
		m.fallbacks.WithLabelValues(reasonCapped)
	}
	for _, op := range []string{"mark", "get"} { // Mark, readToken
		m.markErrors.WithLabelValues(op)
	}
	if r.hedge != nil { // hedging on (two replicas or more): every outcome of hedge.go
		for _, o := range []string{hedgeWon, hedgeLost, hedgeFailed, hedgeNoBudget, hedgeNoReplica} {
			m.hedges.WithLabelValues(o)
		}
	}
}

// unregister removes what register added, so that another router may
// register on the same registerer.
func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.registerer.Unregister(c)
	}
	m.registered = nil
}
