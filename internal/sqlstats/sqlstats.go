// Package sqlstats exports database/sql pool statistics as Prometheus
// metrics named strata_db_*, one series per named pool. The standard
// library's collectors.NewDBStatsCollector uses go_sql_* names; Strata keeps
// every metric under its own namespace so one prefix finds them all.
package sqlstats

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector reports the sql.DBStats of named pools. It reads the stats at
// scrape time, so it costs nothing between scrapes.
type Collector struct {
	pools map[string]*sql.DB

	maxOpen, open, inUse, idle            *prometheus.Desc
	waits, waitSeconds                    *prometheus.Desc
	closedIdle, closedIdleTime, closedAge *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a collector for the given pools, keyed by the value of the
// "pool" label (for example "primary").
func New(pools map[string]*sql.DB) *Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("strata_db_"+name, help, []string{"pool"}, nil)
	}
	return &Collector{
		pools:          pools,
		maxOpen:        d("max_open_connections", "Maximum number of open connections the pool allows."),
		open:           d("open_connections", "Connections open, in use or idle."),
		inUse:          d("in_use_connections", "Connections in use."),
		idle:           d("idle_connections", "Idle connections."),
		waits:          d("waits_total", "Acquires that had to wait for a free connection."),
		waitSeconds:    d("wait_seconds_total", "Time spent waiting for a free connection."),
		closedIdle:     d("closed_max_idle_total", "Connections closed because the idle pool was full."),
		closedIdleTime: d("closed_max_idle_time_total", "Connections closed for being idle too long."),
		closedAge:      d("closed_max_lifetime_total", "Connections closed at the end of their lifetime (recycled)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.inUse, c.idle, c.waits, c.waitSeconds, c.closedIdle, c.closedIdleTime, c.closedAge} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for name, db := range c.pools {
		s := db.Stats()
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		n := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name)
		}
		g(c.maxOpen, float64(s.MaxOpenConnections))
		g(c.open, float64(s.OpenConnections))
		g(c.inUse, float64(s.InUse))
		g(c.idle, float64(s.Idle))
		n(c.waits, float64(s.WaitCount))
		n(c.waitSeconds, s.WaitDuration.Seconds())
		n(c.closedIdle, float64(s.MaxIdleClosed))
		n(c.closedIdleTime, float64(s.MaxIdleTimeClosed))
		n(c.closedAge, float64(s.MaxLifetimeClosed))
	}
}
