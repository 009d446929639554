package tracing

import "github.com/prometheus/client_golang/prometheus"

// Metric names of the tracing collector.
const (
	metricTraces       = "strata_tracing_traces_total"
	metricSpansDropped = "strata_tracing_spans_dropped_total"
	metricBuffered     = "strata_tracing_buffered_spans"
)

// collector exports a Provider's Stats.
type collector struct {
	p                              *Provider
	traces, spansDropped, buffered *prometheus.Desc
}

// Collector returns the Prometheus collector of p's Stats:
// strata_tracing_traces_total by outcome, strata_tracing_spans_dropped_total
// by reason and strata_tracing_buffered_spans. Every series is exported
// from registration, at 0 while tracing is off, so that a dashboard
// reads 0 rather than no data.
func (p *Provider) Collector() prometheus.Collector {
	return collector{p: p,
		traces: prometheus.NewDesc(metricTraces,
			"Traces whose local root ended, by what tail keep did: sampled, slow and error were exported, dropped was not.",
			[]string{"outcome"}, nil),
		spansDropped: prometheus.NewDesc(metricSpansDropped,
			"Spans dropped before export, by reason: trace_full, buffer_full, expired (root never ended), export_failed.",
			[]string{"reason"}, nil),
		buffered: prometheus.NewDesc(metricBuffered,
			"Spans held for tail keep, waiting for their trace's root to end.", nil, nil),
	}
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.traces
	ch <- c.spansDropped
	ch <- c.buffered
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for _, o := range []struct {
		label string
		n     uint64
	}{{"sampled", s.Sampled}, {"slow", s.Slow}, {"error", s.Failed}, {"dropped", s.Dropped}} {
		ch <- prometheus.MustNewConstMetric(c.traces, prometheus.CounterValue, float64(o.n), o.label)
	}
	for _, r := range []struct {
		label string
		n     uint64
	}{{"trace_full", s.SpansTraceFull}, {"buffer_full", s.SpansBufferFull}, {"expired", s.SpansExpired}, {"export_failed", s.SpansExportFailed}} {
		ch <- prometheus.MustNewConstMetric(c.spansDropped, prometheus.CounterValue, float64(r.n), r.label)
	}
	ch <- prometheus.MustNewConstMetric(c.buffered, prometheus.GaugeValue, float64(s.Buffered))
}
