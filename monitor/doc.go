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
//
// # Catalogue
//
// [Catalogue] lists every metric with its type, unit, help, labels,
// subsystem and [Source]; [Lookup] finds one by name (or by a histogram's
// series name). [CheckCollectors] compares the catalogue with what
// collectors describe, and a [Recorder] collects what a configuration
// registers, so a test fails when a metric is added without an entry, an
// entry outlives its metric, or labels or help drift. Labels a wrapping
// registerer adds (the shard router's shard="NAME") count as labels; those
// only some configurations add are an entry's OptionalLabels.
//
// # Dashboards
//
// [Dashboards] are Grafana dashboards built from the catalogue: an overview
// with the golden signals per route (and of the upstream services the
// storefront calls), and one each for the cache, the
// replicas, the shards and the database. They are plain typed structs
// marshalled to Grafana's JSON model: the handful of fields they need do
// not justify grafana-foundation-sdk, which is pre-1.0 and follows
// Grafana's schema changes release by release.
package monitor
