package monitor

import "sort"

// Type is the Prometheus type of a metric.
type Type string

// The metric types the catalogue knows.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Source says who exports a metric.
type Source string

// The sources of the catalogue's metrics.
const (
	// SourceStrata is a metric Strata's own code registers.
	SourceStrata Source = "strata"
	// SourceGo is a metric of client_golang's Go and process collectors.
	SourceGo Source = "client_golang"
	// SourceNode is a metric of prometheus-node-exporter.
	SourceNode Source = "node_exporter"
	// SourcePostgres is a metric of prometheus-postgres-exporter.
	SourcePostgres Source = "postgres_exporter"
)

// Metric is one catalogued metric.
type Metric struct {
	Name      string   // fully qualified, e.g. strata_http_requests_total
	Type      Type     // counter, gauge or histogram
	Unit      string   // base unit: seconds, bytes, connections, requests, ...; "" when a plain count or ratio
	Help      string   // the help text the exporter gives
	Labels    []string // variable label names, sorted
	Subsystem string   // http, db, cache, replica, shard, runtime, node or postgres
	Source    Source   // who exports it
}

// Catalogue returns every metric Strata exports and every exporter metric
// its rules and dashboards read, sorted by name. Each call returns a fresh
// slice the caller may change.
func Catalogue() []Metric {
	ms := []Metric{
		{Name: "strata_http_requests_total", Type: Counter, Unit: "requests", Help: "HTTP requests answered, by route pattern, method and status code.", Labels: []string{"code", "method", "route"}, Subsystem: "http", Source: SourceStrata},
		{Name: "strata_http_request_duration_seconds", Type: Histogram, Unit: "seconds", Help: "Time to answer an HTTP request, by route pattern and method.", Labels: []string{"method", "route"}, Subsystem: "http", Source: SourceStrata},
		{Name: "strata_http_requests_in_flight", Type: Gauge, Unit: "requests", Help: "HTTP requests being answered now.", Subsystem: "http", Source: SourceStrata},
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return ms
}

// Lookup returns the catalogue's entry for the metric name.
func Lookup(name string) (Metric, bool) {
	for _, m := range Catalogue() {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}
