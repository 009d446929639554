package overload

import (
	"github.com/prometheus/client_golang/prometheus"
)

// UtilisationMetric is the autoscaling signal: the offered rate over the
// capacity a load test measured (Config.CapacityRPS). The Prometheus
// Adapter rule and the HorizontalPodAutoscaler in deploy/kubernetes read
// it by this name.
const UtilisationMetric = "strata_overload_utilisation_ratio"

// collector exports a Limiter's Stats, read at each scrape: nothing is
// counted twice, and the hot path does not touch Prometheus.
type collector struct {
	l                                             *Limiter
	limit, inFlight, queued, latency, target, use *prometheus.Desc
	admitted, rejected                            *prometheus.Desc
}

func newCollector(l *Limiter) *collector {
	class := []string{"class"}
	c := &collector{
		l:        l,
		limit:    prometheus.NewDesc("strata_overload_limit", "Concurrency limit of the adaptive limiter: admitted work in flight it allows now.", nil, nil),
		inFlight: prometheus.NewDesc("strata_overload_inflight", "Admitted work in flight, by priority class (critical, normal, sheddable).", class, nil),
		queued:   prometheus.NewDesc("strata_overload_queued", "Critical and normal work waiting in the bounded queue for room under the limit.", nil, nil),
		latency:  prometheus.NewDesc("strata_overload_latency_seconds", "Latency quantile (p99) of the admitted work in the limiter's last closed window, which the limit follows.", nil, nil),
		target:   prometheus.NewDesc("strata_overload_target_seconds", "The latency target (SLA) the limiter holds that quantile to.", nil, nil),
		admitted: prometheus.NewDesc("strata_overload_admitted_total", "Work the limiter admitted, by priority class.", class, nil),
		rejected: prometheus.NewDesc("strata_overload_rejected_total", "Work the limiter refused (shed), by priority class: a 503, or a part served by its fallback.", class, nil),
	}
	if l.cfg.CapacityRPS > 0 {
		c.use = prometheus.NewDesc(UtilisationMetric, "Work offered per second over the last 10 s, admitted or not, divided by the capacity the load test measured (--capacity-rps): the autoscaling signal.", nil, nil)
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.limit, c.inFlight, c.queued, c.latency, c.target, c.admitted, c.rejected} {
		ch <- d
	}
	if c.use != nil {
		ch <- c.use
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(s.Limit))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, s.Latency.Seconds())
	ch <- prometheus.MustNewConstMetric(c.target, prometheus.GaugeValue, c.l.cfg.Target.Seconds())
	for k := Critical; k < numClasses; k++ {
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.InFlight[k]), k.String())
		ch <- prometheus.MustNewConstMetric(c.admitted, prometheus.CounterValue, float64(s.Admitted[k]), k.String())
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(s.Rejected[k]), k.String())
	}
	if c.use != nil {
		ch <- prometheus.MustNewConstMetric(c.use, prometheus.GaugeValue, s.Utilisation)
	}
}
