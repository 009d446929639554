package shard

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the router's strata_shard_* series.
type metrics struct {
	reg     prometheus.Registerer // nil: none registered
	calls   *prometheus.CounterVec
	fanouts prometheus.Counter
	partial prometheus.Counter
	fenced  prometheus.Counter
	epoch   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_shard_calls_total",
			Help: "Calls routed to each shard (reads, writes, transactions and fan-out legs).",
		}, []string{"shard"}),
		fanouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_shard_fanouts_total",
			Help: "Fan-outs over every shard (Router.Each).",
		}),
		partial: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_shard_fanout_partial_total",
			Help: "Fan-outs that did not hear from every shard: no answer within the deadline, or an error.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_shard_fenced_writes_total",
			Help: "Writes held because their virtual shard was fenced by a move cutting over.",
		}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_shard_map_epoch",
			Help: "Epoch of the shard map this instance routes by.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, fmt.Errorf("shard: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.fanouts, m.partial, m.fenced, m.epoch}
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}

// FollowerMetrics exports a Follower's map reloads and their errors as
// strata_shard_map_reloads_total, strata_shard_map_reload_errors_total and
// strata_shard_map_apply_errors_total, read at scrape time. (The epoch applied is the router's
// strata_shard_map_epoch.)
type FollowerMetrics struct {
	f                                  *Follower
	reloads, reloadErrors, applyErrors *prometheus.Desc
}

var _ prometheus.Collector = (*FollowerMetrics)(nil)

// NewFollowerMetrics returns the collector of f's metrics; register it
// with the service's registry.
func NewFollowerMetrics(f *Follower) *FollowerMetrics {
	return &FollowerMetrics{
		f:            f,
		reloads:      prometheus.NewDesc("strata_shard_map_reloads_total", "Reads of the shard map after start (polls, notifications, reconnects).", nil, nil),
		reloadErrors: prometheus.NewDesc("strata_shard_map_reload_errors_total", "Shard map reloads that failed or found a map that does not decode, validate or move forward.", nil, nil),
		applyErrors:  prometheus.NewDesc("strata_shard_map_apply_errors_total", "Newer shard maps the instance loaded but could not apply (its OnChange failed): it still routes by an older one.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *FollowerMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reloads
	ch <- c.reloadErrors
	ch <- c.applyErrors
}

// Collect implements prometheus.Collector.
func (c *FollowerMetrics) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Stats()
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(s.Reloads))
	ch <- prometheus.MustNewConstMetric(c.reloadErrors, prometheus.CounterValue, float64(s.ReloadErrors))
	ch <- prometheus.MustNewConstMetric(c.applyErrors, prometheus.CounterValue, float64(s.ApplyErrors))
}
