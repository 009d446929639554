package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Dashboard is one Grafana dashboard built from the catalogue.
type Dashboard struct {
	UID    string  // stable Grafana uid, e.g. strata-overview
	Title  string  // shown in Grafana's dashboard list
	Panels []Panel // in display order, two to a row
}

// Panel is one time-series panel of a [Dashboard].
type Panel struct {
	Title string
	// Unit is Grafana's unit id: s, reqps, ops, percentunit, bytes, Bps,
	// short.
	Unit string
	// Description is the panel's tooltip: what it shows, then the help of
	// every catalogued metric its queries read.
	Description string
	Targets     []Target
}

// Target is one PromQL query of a [Panel]. Its Expr uses Grafana's
// $__rate_interval as the window of every rate; replace it (with 1m, say)
// to run the query elsewhere.
type Target struct {
	Expr   string
	Legend string // Grafana legend format, e.g. {{route}}
	// Rare marks a query that may return no series on a healthy system,
	// which is no fault: network utilisation where no device reports a
	// link speed (containers, most VMs), or the counter of a metric no
	// hand-made panel reads, whose label sets may appear only on first
	// use. Every other query returns data once the service has served
	// traffic in the configuration its dashboard shows: Strata's counters
	// of rare events (errors, fallbacks, ejections, unmatched requests)
	// export their label sets at 0 from registration.
	Rare bool
}

// RateInterval is the Grafana variable Dashboards use as the window of
// every rate.
const RateInterval = "$__rate_interval"

// Dashboards returns Strata's dashboards: the overview (the golden signals
// per route, pool saturation, the process and the upstream services it
// calls) and one per subsystem: cache, replicas, shards, database (pools,
// PostgreSQL and the node), overload control and search (its tiers).
// Every Strata metric of a subsystem that no hand-made panel reads gets a
// panel of its own, built from its catalogue entry, so a new metric shows
// up without anyone drawing it. Each call builds them afresh.
func Dashboards() []Dashboard {
	cat := Catalogue()
	ix := newIndex()
	ds := []Dashboard{
		{UID: "strata-overview", Title: "Strata / Overview", Panels: overviewPanels()},
		{UID: "strata-cache", Title: "Strata / Cache", Panels: cachePanels()},
		{UID: "strata-replicas", Title: "Strata / Replicas", Panels: replicaPanels()},
		{UID: "strata-shards", Title: "Strata / Shards", Panels: shardPanels()},
		{UID: "strata-database", Title: "Strata / Database", Panels: databasePanels()},
		{UID: "strata-overload", Title: "Strata / Overload control", Panels: overloadPanels()},
		{UID: "strata-search", Title: "Strata / Search", Panels: searchPanels()},
	}
	// The subsystem each dashboard completes with panels of its own.
	complete := map[string]string{
		"strata-overview": SubsystemHTTP, "strata-cache": SubsystemCache, "strata-replicas": SubsystemReplica,
		"strata-shards": SubsystemShard, "strata-database": SubsystemDB, "strata-overload": SubsystemOverload,
		"strata-search": SubsystemSearch,
	}
	for i := range ds {
		d := &ds[i]
		shown := map[string]bool{}
		for _, q := range d.Queries() {
			for _, n := range ix.metricsIn(q) {
				shown[n] = true
			}
		}
		for _, m := range cat {
			if m.Subsystem == complete[d.UID] && m.Source == SourceStrata && !shown[m.Name] {
				d.Panels = append(d.Panels, metricPanel(m))
			}
		}
		for j := range d.Panels {
			d.Panels[j].Description = ix.describePanel(d.Panels[j])
		}
	}
	return ds
}

// rate is the per-second rate of the counter m summed by the labels by.
func rate(m, by string) string {
	return fmt.Sprintf("sum by (%s) (rate(%s[%s]))", by, m, RateInterval)
}

// quantile is the q quantile of the histogram m by the labels by.
func quantile(q, m, by string) string {
	return fmt.Sprintf("histogram_quantile(%s, sum by (%s, le) (rate(%s_bucket[%s])))", q, by, m, RateInterval)
}

// quantilePanel shows the p50, p95 and p99 of the histogram m by the labels by.
func quantilePanel(title, m, by, legend string) Panel {
	return Panel{Title: title, Unit: "s", Targets: []Target{
		{Expr: quantile("0.5", m, by), Legend: "p50 " + legend},
		{Expr: quantile("0.95", m, by), Legend: "p95 " + legend},
		{Expr: quantile("0.99", m, by), Legend: "p99 " + legend},
	}}
}

// ratio is a/b where a may have no series for some groups (no errors yet):
// those groups read 0 rather than vanishing, as long as b has them.
func ratio(a, b string) string {
	return fmt.Sprintf("(%s or %s * 0) / %s", a, b, b)
}

// strataProcess keeps only the series of processes that export Strata's
// HTTP metrics (the exporters and Prometheus export go_* and process_* too).
func strataProcess(expr string) string {
	return expr + " and on (instance, job) strata_http_requests_in_flight"
}

func overviewPanels() []Panel {
	all := rate("strata_http_requests_total", "route")
	return []Panel{
		{Title: "Request rate by route", Unit: "reqps", Targets: []Target{{Expr: all, Legend: "{{route}}"}}},
		{Title: "Error ratio (5xx) by route", Unit: "percentunit", Targets: []Target{{
			Expr: ratio(`sum by (route) (rate(strata_http_requests_total{code=~"5.."}[`+RateInterval+`]))`, all), Legend: "{{route}}"}}},
		quantilePanel("Latency by route", "strata_http_request_duration_seconds", "route", "{{route}}"),
		{Title: "Latency p99 by route and method", Unit: "s", Targets: []Target{{Expr: quantile("0.99", "strata_http_request_duration_seconds", "route, method"), Legend: "{{method}} {{route}}"}}},
		{Title: "Requests in flight", Unit: "short", Targets: []Target{{Expr: "sum(strata_http_requests_in_flight)", Legend: "in flight"}}},
		{Title: "Responses by status code", Unit: "reqps", Targets: []Target{
			{Expr: rate("strata_http_requests_total", "code"), Legend: "{{code}}"},
			{Expr: rate("strata_http_unmatched_requests_total", "code"), Legend: "unmatched {{code}}"}}},
		{Title: "Pool utilisation", Unit: "percentunit", Targets: []Target{{
			Expr: "sum by (shard, pool) (strata_db_in_use_connections) / sum by (shard, pool) (strata_db_max_open_connections)", Legend: "{{shard}} {{pool}}"}}},
		{Title: "Process CPU", Unit: "percentunit", Targets: []Target{{Expr: strataProcess("rate(process_cpu_seconds_total[" + RateInterval + "])"), Legend: "{{instance}}"}}},
		{Title: "Process memory", Unit: "bytes", Targets: []Target{
			{Expr: strataProcess("process_resident_memory_bytes"), Legend: "resident {{instance}}"},
			{Expr: strataProcess("go_memstats_heap_inuse_bytes"), Legend: "heap in use {{instance}}"}}},
		{Title: "Goroutines", Unit: "short", Targets: []Target{{Expr: strataProcess("go_goroutines"), Legend: "{{instance}}"}}},
		{Title: "/metrics handler errors", Unit: "ops", Targets: []Target{{Expr: rate("promhttp_metric_handler_errors_total", "cause"), Legend: "{{cause}}"}}},
		// The services this one calls (strata serve --recommendations-url).
		{Title: "Upstream calls by outcome", Unit: "ops", Targets: []Target{{Expr: rate("strata_upstream_calls_total", "upstream, outcome"), Legend: "{{upstream}} {{outcome}}"}}},
		quantilePanel("Upstream call latency (retries included)", "strata_upstream_call_duration_seconds", "upstream", "{{upstream}}"),
		{Title: "Upstream failed attempts and retries", Unit: "ops", Targets: []Target{
			{Expr: rate("strata_upstream_errors_total", "upstream, kind"), Legend: "{{upstream}} {{kind}}"},
			{Expr: rate("strata_upstream_retries_total", "upstream"), Legend: "{{upstream}} retries"}}},
		{Title: "Upstream circuit breakers (0 closed, 1 open, 2 half-open)", Unit: "short", Targets: []Target{{Expr: "max by (upstream) (strata_upstream_breaker_state)", Legend: "{{upstream}}"}}},
		{Title: "Traces exported and dropped (tail keep)", Unit: "ops", Targets: []Target{
			{Expr: rate("strata_tracing_traces_total", "outcome"), Legend: "traces {{outcome}}"},
			{Expr: rate("strata_tracing_spans_dropped_total", "reason"), Legend: "spans dropped {{reason}}"}}},
		{Title: "Spans held for tail keep", Unit: "short", Targets: []Target{{Expr: "sum by (instance) (strata_tracing_buffered_spans)", Legend: "{{instance}}"}}},
	}
}

func cachePanels() []Panel {
	hits, misses := rate("strata_cache_hits_total", "cache, level"), rate("strata_cache_misses_total", "cache, level")
	events := func(title string, ms ...string) Panel {
		p := Panel{Title: title, Unit: "ops"}
		for _, m := range ms {
			p.Targets = append(p.Targets, Target{Expr: rate("strata_cache_"+m, "cache"), Legend: "{{cache}} " + strings.TrimSuffix(m, "_total")})
		}
		return p
	}
	return []Panel{
		{Title: "Hit ratio by level", Unit: "percentunit", Targets: []Target{{Expr: fmt.Sprintf("%s / (%s + %s)", hits, hits, misses), Legend: "{{cache}} {{level}}"}}},
		{Title: "Hits and misses by level", Unit: "ops", Targets: []Target{{Expr: hits, Legend: "hits {{cache}} {{level}}"}, {Expr: misses, Legend: "misses {{cache}} {{level}}"}}},
		quantilePanel("Loader latency", "strata_cache_load_duration_seconds", "cache", "{{cache}}"),
		quantilePanel("L2 (Redis) round trip", "strata_cache_l2_duration_seconds", "cache", "{{cache}}"),
		events("Loads (stampede control)", "loads_total", "loads_deduplicated_total", "load_errors_total"),
		events("Leases", "leases_total", "lease_waits_total", "lease_timeouts_total"),
		quantilePanel("Lease wait", "strata_cache_lease_wait_seconds", "cache", "{{cache}}"),
		quantilePanel("Invalidation bus lag", "strata_cache_bus_lag_seconds", "cache", "{{cache}}"),
		{Title: "Invalidation bus up", Unit: "short", Targets: []Target{{Expr: "min by (cache) (strata_cache_bus_up)", Legend: "{{cache}}"}}},
		events("Invalidations", "invalidations_sent_total", "invalidations_received_total", "invalidation_replays_total", "flushes_total"),
		{Title: "Pending invalidations", Unit: "short", Targets: []Target{{Expr: "sum by (cache) (strata_cache_pending_invalidations)", Legend: "{{cache}}"}}},
		events("L2 errors", "l2_errors_total", "corrupt_total"),
		{Title: "L2 circuit breaker (0 closed, 1 open, 2 half-open)", Unit: "short", Targets: []Target{{Expr: "max by (cache) (strata_cache_breaker_state)", Legend: "{{cache}}"}}},
		{Title: "Entries and size by level", Unit: "short", Targets: []Target{
			{Expr: "sum by (cache, level) (strata_cache_entries)", Legend: "entries {{cache}} {{level}}"},
			{Expr: "sum by (cache, level) (strata_cache_bytes)", Legend: "bytes {{cache}} {{level}}"}}},
		{Title: "Evictions and voided sets by level", Unit: "ops", Targets: []Target{
			{Expr: rate("strata_cache_evictions_total", "cache, level"), Legend: "evicted {{cache}} {{level}}"},
			{Expr: rate("strata_cache_voided_sets_total", "cache, level"), Legend: "voided {{cache}} {{level}}"}}},
		events("Stale reads, refreshes and tiering", "stale_served_total", "refreshes_total", "warmed_keys_total", "scheduled_warmups_total", "cold_skipped_total"),
	}
}

func replicaPanels() []Panel {
	const m = "strata_replica_query_duration_seconds"
	return []Panel{
		{Title: "Calls by pool", Unit: "ops", Targets: []Target{{Expr: rate(m+"_count", "shard, pool"), Legend: "{{shard}} {{pool}}"}}},
		{Title: "Query time p95 by pool", Unit: "s", Targets: []Target{{Expr: quantile("0.95", m, "shard, pool"), Legend: "{{shard}} {{pool}}"}}},
		{Title: "Query time p99 by pool", Unit: "s", Targets: []Target{{Expr: quantile("0.99", m, "shard, pool"), Legend: "{{shard}} {{pool}}"}}},
		{Title: "Errors by pool and kind", Unit: "ops", Targets: []Target{{Expr: rate("strata_replica_errors_total", "shard, pool, kind"), Legend: "{{shard}} {{pool}} {{kind}}"}}},
		{Title: "Acquire timeouts by pool", Unit: "ops", Targets: []Target{{Expr: rate("strata_replica_acquire_timeouts_total", "shard, pool"), Legend: "{{shard}} {{pool}}"}}},
		{Title: "Fallbacks to the primary by reason", Unit: "ops", Targets: []Target{{Expr: rate("strata_replica_fallbacks_total", "shard, reason"), Legend: "{{shard}} {{reason}}"}}},
		{Title: "Ejections and readmissions", Unit: "short", Targets: []Target{
			{Expr: "sum by (shard, replica) (increase(strata_replica_ejections_total[" + RateInterval + "]))", Legend: "ejected {{shard}} {{replica}}"},
			{Expr: "sum by (shard, replica) (increase(strata_replica_readmissions_total[" + RateInterval + "]))", Legend: "readmitted {{shard}} {{replica}}"}}},
		{Title: "Replication lag", Unit: "s", Targets: []Target{{Expr: "max by (shard, replica) (strata_replica_lag_seconds)", Legend: "{{shard}} {{replica}}"}}},
		{Title: "Replication lag (WAL bytes)", Unit: "bytes", Targets: []Target{{Expr: "max by (shard, replica) (strata_replica_lag_bytes)", Legend: "{{shard}} {{replica}}"}}},
		{Title: "Read-your-writes key mark errors", Unit: "ops", Targets: []Target{{Expr: rate("strata_replica_key_mark_errors_total", "shard, op"), Legend: "{{shard}} {{op}}"}}},
	}
}

func shardPanels() []Panel {
	return []Panel{
		{Title: "Calls by shard", Unit: "ops", Targets: []Target{{Expr: rate("strata_shard_calls_total", "shard"), Legend: "{{shard}}"}}},
		{Title: "Fan-outs", Unit: "ops", Targets: []Target{
			{Expr: "sum(rate(strata_shard_fanouts_total[" + RateInterval + "]))", Legend: "fan-outs"},
			{Expr: "sum(rate(strata_shard_fanout_partial_total[" + RateInterval + "]))", Legend: "partial"}}},
		{Title: "Fenced writes", Unit: "ops", Targets: []Target{{Expr: "sum(rate(strata_shard_fenced_writes_total[" + RateInterval + "]))", Legend: "fenced"}}},
		{Title: "Shard map epoch by instance", Unit: "short", Targets: []Target{{Expr: "max by (instance) (strata_shard_map_epoch)", Legend: "{{instance}}"}}},
		{Title: "Shard map reloads", Unit: "ops", Targets: []Target{
			{Expr: "sum by (instance) (rate(strata_shard_map_reloads_total[" + RateInterval + "]))", Legend: "reloads {{instance}}"},
			{Expr: "sum by (instance) (rate(strata_shard_map_reload_errors_total[" + RateInterval + "]))", Legend: "reload errors {{instance}}"},
			{Expr: "sum by (instance) (rate(strata_shard_map_apply_errors_total[" + RateInterval + "]))", Legend: "apply errors {{instance}}"}}},
	}
}

// overloadPanels show the adaptive concurrency limiter: the autoscaling
// signal, the limit against the work in flight, and what it shed by class.
func overloadPanels() []Panel {
	return []Panel{
		{Title: "Utilisation of the measured capacity (the autoscaling signal)", Unit: "percentunit",
			Description: "Offered rate over the capacity a load test measured: what the HorizontalPodAutoscaler of docs/autoscaling.md scales on.",
			Targets:     []Target{{Expr: "max by (instance) (strata_overload_utilisation_ratio)", Legend: "{{instance}}"}}},
		{Title: "Concurrency limit and work in flight", Unit: "short", Targets: []Target{
			{Expr: "sum by (instance) (strata_overload_limit)", Legend: "limit {{instance}}"},
			{Expr: "sum by (instance, class) (strata_overload_inflight)", Legend: "in flight {{instance}} {{class}}"},
			{Expr: "sum by (instance) (strata_overload_queued)", Legend: "queued {{instance}}"}}},
		{Title: "Window p99 against the SLA", Unit: "s", Targets: []Target{
			{Expr: "max by (instance) (strata_overload_latency_seconds)", Legend: "p99 {{instance}}"},
			{Expr: "max by (instance) (strata_overload_target_seconds)", Legend: "SLA {{instance}}"}}},
		{Title: "Admitted and shed by class", Unit: "ops", Targets: []Target{
			{Expr: rate("strata_overload_admitted_total", "class"), Legend: "admitted {{class}}"},
			{Expr: rate("strata_overload_rejected_total", "class"), Legend: "shed {{class}}"}}},
		{Title: "Share shed by class", Unit: "percentunit", Targets: []Target{{
			Expr:   ratio(rate("strata_overload_rejected_total", "class"), "("+rate("strata_overload_admitted_total", "class")+" + "+rate("strata_overload_rejected_total", "class")+")"),
			Legend: "{{class}}"}}},
	}
}

// searchPanels show the search tiers (product search, autocomplete,
// faceted search) side by side: a burst in one shows as its refusals, not
// as the others' latency.
func searchPanels() []Panel {
	const m = "strata_search_request_duration_seconds"
	inFlight, limit := "sum by (tier) (strata_search_requests_in_flight)", "sum by (tier) (strata_search_max_in_flight)"
	return []Panel{
		{Title: "Requests admitted by tier", Unit: "reqps", Targets: []Target{{Expr: rate(m+"_count", "tier"), Legend: "{{tier}}"}}},
		quantilePanel("Latency by tier", m, "tier", "{{tier}}"),
		{Title: "Refused (tier full) and over budget, by tier", Unit: "ops", Targets: []Target{
			{Expr: rate("strata_search_rejected_total", "tier"), Legend: "refused {{tier}}"},
			{Expr: rate("strata_search_timeouts_total", "tier"), Legend: "over budget {{tier}}"}}},
		{Title: "Tier utilisation (in flight over the limit)", Unit: "percentunit", Targets: []Target{{Expr: inFlight + " / " + limit, Legend: "{{tier}}"}}},
		{Title: "In flight and limit by tier", Unit: "short", Targets: []Target{
			{Expr: inFlight, Legend: "in flight {{tier}}"},
			{Expr: limit, Legend: "limit {{tier}}"}}},
	}
}

func databasePanels() []Panel {
	by := "shard, pool"
	pool := func(m string) string { return "sum by (" + by + ") (" + m + ")" }
	return []Panel{
		{Title: "Pool connections in use and maximum", Unit: "short", Targets: []Target{
			{Expr: pool("strata_db_in_use_connections"), Legend: "in use {{shard}} {{pool}}"},
			{Expr: pool("strata_db_max_open_connections"), Legend: "max {{shard}} {{pool}}"}}},
		{Title: "Pool utilisation", Unit: "percentunit", Targets: []Target{{Expr: pool("strata_db_in_use_connections") + " / " + pool("strata_db_max_open_connections"), Legend: "{{shard}} {{pool}}"}}},
		{Title: "Open and idle connections", Unit: "short", Targets: []Target{
			{Expr: pool("strata_db_open_connections"), Legend: "open {{shard}} {{pool}}"},
			{Expr: pool("strata_db_idle_connections"), Legend: "idle {{shard}} {{pool}}"}}},
		{Title: "Pool waits", Unit: "ops", Targets: []Target{{Expr: rate("strata_db_waits_total", by), Legend: "{{shard}} {{pool}}"}}},
		{Title: "Time waiting for a connection (per second)", Unit: "s", Targets: []Target{{Expr: rate("strata_db_wait_seconds_total", by), Legend: "{{shard}} {{pool}}"}}},
		{Title: "Connections closed", Unit: "ops", Targets: []Target{
			{Expr: rate("strata_db_closed_max_idle_total", by), Legend: "idle pool full {{shard}} {{pool}}"},
			{Expr: rate("strata_db_closed_max_idle_time_total", by), Legend: "idle too long {{shard}} {{pool}}"},
			{Expr: rate("strata_db_closed_max_lifetime_total", by), Legend: "recycled {{shard}} {{pool}}"}}},
		{Title: "PostgreSQL connections", Unit: "short", Targets: []Target{
			{Expr: "sum by (server) (pg_stat_activity_count)", Legend: "connections {{server}}"},
			{Expr: "max by (server) (pg_settings_max_connections)", Legend: "max_connections {{server}}"}}},
		{Title: "PostgreSQL connections by state", Unit: "short", Targets: []Target{{Expr: "sum by (server, state) (pg_stat_activity_count)", Legend: "{{server}} {{state}}"}}},
		{Title: "PostgreSQL up", Unit: "short", Targets: []Target{{Expr: "pg_up", Legend: "{{instance}}"}}},
		{Title: "Node CPU busy", Unit: "percentunit", Targets: []Target{{Expr: `1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[` + RateInterval + `]))`, Legend: "{{instance}}"}}},
		{Title: "Node memory used", Unit: "percentunit", Targets: []Target{{Expr: "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", Legend: "{{instance}}"}}},
		{Title: "Node disk busy", Unit: "percentunit", Targets: []Target{{Expr: "max by (instance, device) (rate(node_disk_io_time_seconds_total[" + RateInterval + "]))", Legend: "{{instance}} {{device}}"}}},
		{Title: "Node network traffic", Unit: "Bps", Description: "Bytes per second each network device received (in) and sent (out).", Targets: []Target{
			{Expr: "sum by (instance, device) (rate(node_network_receive_bytes_total[" + RateInterval + "]))", Legend: "in {{instance}} {{device}}"},
			{Expr: "sum by (instance, device) (rate(node_network_transmit_bytes_total[" + RateInterval + "]))", Legend: "out {{instance}} {{device}}"}}},
		{Title: "Node network utilisation (devices reporting a speed)", Unit: "percentunit",
			Description: "Throughput over link speed, for the devices that report a speed (node_network_speed_bytes > 0). " +
				"Virtual devices (containers, most VMs) report none, and then this panel is empty: " +
				"Node network traffic shows the throughput wherever node_exporter runs.",
			Targets: []Target{
				{Expr: "rate(node_network_receive_bytes_total[" + RateInterval + "]) / on (instance, job, device) (node_network_speed_bytes > 0)", Legend: "in {{instance}} {{device}}", Rare: true},
				{Expr: "rate(node_network_transmit_bytes_total[" + RateInterval + "]) / on (instance, job, device) (node_network_speed_bytes > 0)", Legend: "out {{instance}} {{device}}", Rare: true}}},
	}
}

// metricPanel is the panel of a metric no hand-made panel reads: the rate
// of a counter, the sum of a gauge, the quantiles of a histogram, by all
// of its labels.
func metricPanel(m Metric) Panel {
	labels := append(slices.Clone(m.Labels), m.OptionalLabels...)
	by := strings.Join(labels, ", ")
	var legend []string
	for _, l := range labels {
		legend = append(legend, "{{"+l+"}}")
	}
	leg := strings.Join(legend, " ")
	switch m.Type {
	case Histogram:
		return quantilePanel(m.Name, m.Name, by, leg)
	case Counter:
		unit := map[string]string{"seconds": "s", "bytes": "Bps"}[m.Unit]
		if unit == "" {
			unit = "ops"
		}
		return Panel{Title: m.Name, Unit: unit, Targets: []Target{{Expr: rate(m.Name, by), Legend: leg, Rare: true}}}
	}
	unit := map[string]string{"seconds": "s", "bytes": "bytes"}[m.Unit]
	if unit == "" {
		unit = "short"
	}
	return Panel{Title: m.Name, Unit: unit, Targets: []Target{{Expr: fmt.Sprintf("sum by (%s) (%s)", by, m.Name), Legend: leg}}}
}

// describePanel returns p's description followed by the help of every
// catalogued metric its queries read.
func (ix index) describePanel(p Panel) string {
	var lines []string
	if p.Description != "" {
		lines = append(lines, p.Description)
	}
	seen := map[string]bool{}
	for _, t := range p.Targets {
		for _, n := range ix.metricsIn(t.Expr) {
			if !seen[n] {
				seen[n] = true
				lines = append(lines, n+": "+ix[n].Help)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// metricsIn returns the catalogued metrics a PromQL expression names, in
// order, as catalogue names (a histogram's _bucket series as the
// histogram). It reads identifiers outside quoted strings; a name not in
// the catalogue is not returned (the tests parse queries properly).
func (ix index) metricsIn(expr string) []string {
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			j := i + 1
			for j < len(expr) && (expr[j] == '_' || expr[j] == ':' || 'a' <= expr[j] && expr[j] <= 'z' || 'A' <= expr[j] && expr[j] <= 'Z' || '0' <= expr[j] && expr[j] <= '9') {
				j++
			}
			if m, ok := ix.find(expr[i:j]); ok && !slices.Contains(names, m.Name) {
				names = append(names, m.Name)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

// The Grafana JSON model, as much of it as the dashboards use.
type (
	grafanaDashboard struct {
		ID            *int              `json:"id"` // null: Grafana assigns one on import
		UID           string            `json:"uid"`
		Title         string            `json:"title"`
		Tags          []string          `json:"tags"`
		Timezone      string            `json:"timezone"`
		Editable      bool              `json:"editable"`
		SchemaVersion int               `json:"schemaVersion"`
		Version       int               `json:"version"`
		Refresh       string            `json:"refresh"`
		Time          grafanaTime       `json:"time"`
		Templating    grafanaTemplating `json:"templating"`
		Annotations   grafanaList       `json:"annotations"`
		Panels        []grafanaPanel    `json:"panels"`
	}
	grafanaTime       struct{ From, To string }
	grafanaTemplating struct {
		List []grafanaVariable `json:"list"`
	}
	grafanaList struct {
		List []any `json:"list"`
	}
	grafanaVariable struct {
		Name    string         `json:"name"`
		Label   string         `json:"label"`
		Type    string         `json:"type"`
		Query   string         `json:"query"`
		Current map[string]any `json:"current"`
		Hide    int            `json:"hide"`
		Refresh int            `json:"refresh"`
	}
	grafanaDatasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	grafanaPanel struct {
		ID          int               `json:"id"`
		Type        string            `json:"type"`
		Title       string            `json:"title"`
		Description string            `json:"description,omitempty"`
		Datasource  grafanaDatasource `json:"datasource"`
		GridPos     grafanaGridPos    `json:"gridPos"`
		FieldConfig grafanaFieldCfg   `json:"fieldConfig"`
		Options     map[string]any    `json:"options"`
		Targets     []grafanaTarget   `json:"targets"`
	}
	grafanaGridPos  struct{ H, W, X, Y int }
	grafanaFieldCfg struct {
		Defaults  map[string]any `json:"defaults"`
		Overrides []any          `json:"overrides"`
	}
	grafanaTarget struct {
		RefID        string            `json:"refId"`
		Expr         string            `json:"expr"`
		LegendFormat string            `json:"legendFormat"`
		Range        bool              `json:"range"`
		Datasource   grafanaDatasource `json:"datasource"`
	}
)

// MarshalJSON writes the lower-case keys Grafana expects.
func (t grafanaTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"from": t.From, "to": t.To})
}

// MarshalJSON writes the lower-case keys Grafana expects.
func (g grafanaGridPos) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]int{"h": g.H, "w": g.W, "x": g.X, "y": g.Y})
}

// grafanaSchemaVersion is the dashboard schema the JSON follows (Grafana 10
// and later read it; newer versions migrate it on import).
const grafanaSchemaVersion = 39

// JSON returns d as Grafana dashboard JSON, ready to import: time-series
// panels two to a row, each with a unique id, reading the Prometheus data
// source chosen in the dashboard's "datasource" variable.
func (d Dashboard) JSON() ([]byte, error) {
	if d.UID == "" || d.Title == "" {
		return nil, errors.New("monitor: a dashboard needs a UID and a Title")
	}
	if len(d.Panels) == 0 {
		return nil, fmt.Errorf("monitor: dashboard %s has no panels", d.UID)
	}
	ds := grafanaDatasource{Type: "prometheus", UID: "${datasource}"}
	g := grafanaDashboard{
		UID: d.UID, Title: d.Title, Tags: []string{"strata"}, Timezone: "browser", Editable: true,
		SchemaVersion: grafanaSchemaVersion, Version: 1, Refresh: "30s",
		Time: grafanaTime{From: "now-1h", To: "now"},
		Templating: grafanaTemplating{List: []grafanaVariable{{
			Name: "datasource", Label: "Data source", Type: "datasource", Query: "prometheus", Current: map[string]any{}, Refresh: 1,
		}}},
		Annotations: grafanaList{List: []any{}},
	}
	for i, p := range d.Panels {
		if len(p.Targets) == 0 {
			return nil, fmt.Errorf("monitor: dashboard %s: panel %q has no queries", d.UID, p.Title)
		}
		gp := grafanaPanel{
			ID: i + 1, Type: "timeseries", Title: p.Title, Description: p.Description, Datasource: ds,
			GridPos:     grafanaGridPos{H: 8, W: 12, X: (i % 2) * 12, Y: (i / 2) * 8},
			FieldConfig: grafanaFieldCfg{Defaults: map[string]any{"unit": p.Unit}, Overrides: []any{}},
			Options: map[string]any{
				"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true},
				"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
			},
		}
		for j, t := range p.Targets {
			gp.Targets = append(gp.Targets, grafanaTarget{RefID: string(rune('A' + j)), Expr: t.Expr, LegendFormat: t.Legend, Range: true, Datasource: ds})
		}
		g.Panels = append(g.Panels, gp)
	}
	return json.MarshalIndent(g, "", "  ")
}

// Queries returns the Expr of every target of d, in panel order.
func (d Dashboard) Queries() []string {
	var qs []string
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			qs = append(qs, t.Expr)
		}
	}
	return qs
}
