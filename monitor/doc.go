// Package monitor is the guide's RealTimePerformanceMonitoring, built
// from what Strata exports: one typed catalogue of every metric the
// toolkit and the storefront register (and of the node and PostgreSQL
// exporter metrics the infrastructure alerts read), from which it
// generates Prometheus recording and alerting rules (the guide's
// warning and critical thresholds with their evaluation periods,
// multi-window multi-burn-rate SLO alerts with a minimum-traffic guard,
// alerts on absent metrics), promtool tests of those rules (a firing
// and a non-firing case for every alert), Grafana dashboards and one
// runbook per alert. Because the catalogue sits beside the code and a
// test compares it with what the code registers, the rules cannot
// drift from the metrics.
package monitor
