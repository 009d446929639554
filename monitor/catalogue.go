package monitor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Type is the Prometheus type of a metric.
type Type string

// The metric types the catalogue knows.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
	Summary   Type = "summary" // only go_gc_duration_seconds
)

// Source says who exports a metric.
type Source string

// The sources of the catalogue's metrics.
const (
	// SourceStrata is a metric Strata's own code registers: the
	// registration test requires each to be registered by some
	// configuration of strata serve, with exactly this help and labels.
	SourceStrata Source = "strata"
	// SourceClient is a metric of client_golang: its Go runtime and
	// process collectors, and promhttp's handler errors.
	SourceClient Source = "client_golang"
	// SourceNode is a metric of prometheus-node-exporter (Debian 1.5).
	SourceNode Source = "node_exporter"
	// SourcePostgres is a metric of prometheus-postgres-exporter (Debian 0.11).
	SourcePostgres Source = "postgres_exporter"
)

// The subsystems of the catalogue, one per dashboard or group of alerts.
const (
	SubsystemHTTP     = "http"
	SubsystemDB       = "db"
	SubsystemCache    = "cache"
	SubsystemReplica  = "replica"
	SubsystemShard    = "shard"
	SubsystemOverload = "overload"
	SubsystemUpstream = "upstream"
	SubsystemSearch   = "search"
	SubsystemTracing  = "tracing"
	SubsystemRuntime  = "runtime"
	SubsystemNode     = "node"
	SubsystemPostgres = "postgres"
)

// Metric is one catalogued metric.
type Metric struct {
	Name string // fully qualified, e.g. strata_http_requests_total
	Type Type   // counter, gauge, histogram or summary
	// Unit is the base unit of the value, "seconds" or "bytes" (or
	// "percent", "threads" for two Go runtime gauges); "" for counts,
	// states and ratios.
	Unit string
	// Help is the help text: for SourceStrata exactly what the code
	// registers (checked), for the others a summary of the exporter's.
	Help string
	// Labels are the label names every series carries, sorted. Constant
	// labels count as labels (go_info's version, say).
	Labels []string
	// OptionalLabels are labels only some configurations add, sorted: the
	// shard router registers each shard's replica and pool metrics through
	// prometheus.WrapRegistererWith with shard="NAME" (and strata serve
	// labels the main database's pool shard="main"), so a sharded service
	// has them and an unsharded one does not. Queries must not depend on
	// them unless they aggregate them away.
	OptionalLabels []string
	Subsystem      string // http, db, cache, replica, shard, upstream, overload, search, tracing, runtime, node or postgres
	Source         Source // who exports it
	// Everywhere says that every configuration of strata serve registers
	// it (SQLite or PostgreSQL, with or without replicas, shards or the
	// cache; a test checks each): only such a metric may have an alert on
	// its absence by default, which would otherwise fire for ever where
	// the metric is not registered.
	Everywhere bool
}

// Catalogue returns every metric Strata exports and every exporter metric
// its rules and dashboards read, sorted by name. Each call returns a fresh
// slice the caller may change.
func Catalogue() []Metric {
	var ms []Metric
	add := func(sub string, src Source, t Type, name, unit, help string, labels ...string) {
		slices.Sort(labels)
		ms = append(ms, Metric{Name: name, Type: t, Unit: unit, Help: help, Labels: labels, Subsystem: sub, Source: src})
	}
	strata := func(sub string, t Type, name, unit, help string, labels ...string) {
		add(sub, SourceStrata, t, name, unit, help, labels...)
	}

	// storefront/http.go
	strata(SubsystemHTTP, Counter, "strata_http_requests_total", "", "HTTP requests answered, by route pattern, method and status code.", "route", "method", "code")
	strata(SubsystemHTTP, Histogram, "strata_http_request_duration_seconds", "seconds", "Time to answer an HTTP request, by route pattern and method.", "route", "method")
	strata(SubsystemHTTP, Gauge, "strata_http_requests_in_flight", "", "HTTP requests being answered now.")
	strata(SubsystemHTTP, Counter, "strata_http_unmatched_requests_total", "", "Requests that matched no route (404) or no method of a route (405), by status code.", "code")
	add(SubsystemHTTP, SourceClient, Counter, "promhttp_metric_handler_errors_total", "", "Errors of the /metrics handler, by cause (gathering, encoding).", "cause")

	// storefront/searchtiers.go: the search tiers, registered with the
	// HTTP handler.
	strata(SubsystemSearch, Gauge, "strata_search_requests_in_flight", "", "Search requests being answered now, by tier (search, autocomplete, facets).", "tier")
	strata(SubsystemSearch, Gauge, "strata_search_max_in_flight", "", "The most requests a search tier answers at once; past it a request is refused with 503.", "tier")
	strata(SubsystemSearch, Counter, "strata_search_rejected_total", "", "Search requests refused with 503 because their tier was full.", "tier")
	strata(SubsystemSearch, Counter, "strata_search_timeouts_total", "", "Search requests that ran out of their tier's budget (answered 503).", "tier")
	strata(SubsystemSearch, Histogram, "strata_search_request_duration_seconds", "seconds", "Time a search tier took to answer a request it admitted (at most about its budget), by tier.", "tier")

	// internal/sqlstats, registered by strata serve and by the replica router.
	for _, d := range []struct {
		t                Type
		name, unit, help string
	}{
		{Gauge, "max_open_connections", "", "Maximum number of open connections the pool allows."},
		{Gauge, "open_connections", "", "Connections open, in use or idle."},
		{Gauge, "in_use_connections", "", "Connections in use."},
		{Gauge, "idle_connections", "", "Idle connections."},
		{Counter, "waits_total", "", "Acquires that had to wait for a free connection."},
		{Counter, "wait_seconds_total", "seconds", "Time spent waiting for a free connection."},
		{Counter, "closed_max_idle_total", "", "Connections closed because the idle pool was full."},
		{Counter, "closed_max_idle_time_total", "", "Connections closed for being idle too long."},
		{Counter, "closed_max_lifetime_total", "", "Connections closed at the end of their lifetime (recycled)."},
	} {
		strata(SubsystemDB, d.t, "strata_db_"+d.name, d.unit, d.help, "pool")
	}

	// cache/cachemetrics
	for _, d := range []struct {
		t                Type
		name, unit, help string
		level            bool
	}{
		{Counter, "hits_total", "", "Reads answered by a level.", true},
		{Counter, "misses_total", "", "Reads a level could not answer.", true},
		{Counter, "evictions_total", "", "Entries a level dropped for size or expiry.", true},
		{Gauge, "entries", "", "Entries held by a level (estimate).", true},
		{Gauge, "bytes", "bytes", "Weighed size of a level, for an L1 bounded by bytes.", true},
		{Counter, "l2_errors_total", "", "L2 calls that failed; the read fell through to the loader.", false},
		{Counter, "corrupt_total", "", "L2 entries that could not be decoded.", false},
		{Counter, "loads_total", "", "Loader calls.", false},
		{Counter, "load_errors_total", "", "Loader calls that failed (never cached).", false},
		{Counter, "loads_deduplicated_total", "", "Reads that joined a load already in flight in this process.", false},
		{Counter, "leases_total", "", "Leases taken on missing keys.", false},
		{Counter, "lease_waits_total", "", "Reads that waited for another instance's lease.", false},
		{Counter, "lease_timeouts_total", "", "Lease waits that gave up and loaded themselves.", false},
		{Counter, "voided_sets_total", "", "Loads whose cache write an invalidation voided, by level.", true},
		{Counter, "stale_served_total", "", "Reads served a stale value while it refreshed.", false},
		{Counter, "refreshes_total", "", "Background refreshes started.", false},
		{Counter, "flushes_total", "", "Times L1 was emptied (bus silent, gap, remote flush).", false},
		{Counter, "invalidations_sent_total", "", "Invalidations broadcast.", false},
		{Counter, "invalidations_received_total", "", "Invalidations received from other instances.", false},
		{Gauge, "pending_invalidations", "", "Keys and tags whose invalidation did not reach Redis yet (replayed when it answers).", false},
		{Counter, "invalidation_replays_total", "", "Replays of failed invalidations that reached Redis.", false},
		{Counter, "warmed_keys_total", "", "Keys loaded by warming.", false},
		{Counter, "scheduled_warmups_total", "", "Warm-ups of the hot set run ahead of a known peak (one per peak occurrence).", false},
		{Counter, "cold_skipped_total", "", "Fills kept out of L1 because the key was cold (hot/cold tiering).", false},
		{Gauge, "breaker_state", "", "State of the L2 circuit breaker: 0 closed, 1 open, 2 half-open.", false},
		{Gauge, "bus_up", "", "1 while the invalidation bus delivers.", false},
		{Histogram, "l2_duration_seconds", "seconds", "Time of one L2 (Redis) round trip.", false},
		{Histogram, "load_duration_seconds", "seconds", "Time of one loader call.", false},
		{Histogram, "lease_wait_seconds", "seconds", "Time spent waiting for another instance's lease.", false},
		{Histogram, "bus_lag_seconds", "seconds", "Delay from publishing an invalidation to receiving it.", false},
	} {
		labels := []string{"cache"}
		if d.level {
			labels = append(labels, "level")
		}
		strata(SubsystemCache, d.t, "strata_cache_"+d.name, d.unit, d.help, labels...)
	}

	// replica/metrics.go
	strata(SubsystemReplica, Histogram, "strata_replica_query_duration_seconds", "seconds", "Time of one read or write call on a pool, by pool.", "pool")
	strata(SubsystemReplica, Counter, "strata_replica_errors_total", "", "Failed calls by pool and kind (connection, acquire_timeout, retryable, query; down: refused while the primary is known to be down).", "pool", "kind")
	strata(SubsystemReplica, Counter, "strata_replica_acquire_timeouts_total", "", "Calls that got no connection within the pool's acquire timeout.", "pool")
	strata(SubsystemReplica, Counter, "strata_replica_fallbacks_total", "", "Reads sent to the primary because no replica served them, by reason; reason=capped counts reads refused at the cap.", "reason")
	strata(SubsystemReplica, Counter, "strata_replica_ejections_total", "", "Times a replica was taken out of the read rotation.", "replica")
	strata(SubsystemReplica, Counter, "strata_replica_readmissions_total", "", "Times an ejected replica was put back into the read rotation.", "replica")
	strata(SubsystemReplica, Gauge, "strata_replica_lag_seconds", "seconds", "How far the replica's replay is behind the primary, in time, at the last check.", "replica")
	strata(SubsystemReplica, Gauge, "strata_replica_lag_bytes", "bytes", "How far the replica's replay is behind the primary's WAL position, in bytes, at the last check.", "replica")
	strata(SubsystemReplica, Counter, "strata_replica_key_mark_errors_total", "", "Key marks (WithKeys) that could not be recorded (op=mark) or read (op=get).", "op")
	strata(SubsystemReplica, Counter, "strata_replica_hedges_total", "", "Hedged reads (Config.Hedge) by outcome: won (the hedge answered first), lost (the first attempt did), failed (the hedge got no connection or failed), skipped_budget and skipped_no_replica (a statement passed its replica's p95, but the budget was spent or no other replica could take it).", "outcome")

	// shard/metrics.go
	strata(SubsystemShard, Counter, "strata_shard_calls_total", "", "Calls routed to each shard (reads, writes, transactions and fan-out legs).", "shard")
	strata(SubsystemShard, Counter, "strata_shard_fanouts_total", "", "Fan-outs over every shard (Router.Each).")
	strata(SubsystemShard, Counter, "strata_shard_fanout_partial_total", "", "Fan-outs that did not hear from every shard: no answer within the deadline, or an error.")
	strata(SubsystemShard, Counter, "strata_shard_fenced_writes_total", "", "Writes held because their virtual shard was fenced by a move cutting over.")
	strata(SubsystemShard, Gauge, "strata_shard_map_epoch", "", "Epoch of the shard map this instance routes by.")
	strata(SubsystemShard, Counter, "strata_shard_map_reloads_total", "", "Reads of the shard map after start (polls, notifications, reconnects).")
	strata(SubsystemShard, Counter, "strata_shard_map_reload_errors_total", "", "Shard map reloads that failed or found a map that does not decode, validate or move forward.")
	strata(SubsystemShard, Counter, "strata_shard_map_apply_errors_total", "", "Newer shard maps the instance loaded but could not apply (its OnChange failed): it still routes by an older one.")

	// upstream/metrics.go, registered by strata serve --recommendations-url
	// (labelled upstream="recommendations").
	strata(SubsystemUpstream, Counter, "strata_upstream_calls_total", "", "Calls to an upstream service, by outcome (ok: an answer below 500; error: 5xx or no answer, after retries; breaker_open; budget_exhausted; canceled).", "upstream", "outcome")
	strata(SubsystemUpstream, Counter, "strata_upstream_errors_total", "", "Failed attempts of calls to an upstream service, by kind (transport: no answer; status: a 5xx answer; timeout: no answer within the budget).", "upstream", "kind")
	strata(SubsystemUpstream, Counter, "strata_upstream_retries_total", "", "Retries of calls to an upstream service (attempts after the first).", "upstream")
	strata(SubsystemUpstream, Gauge, "strata_upstream_breaker_state", "", "State of an upstream's circuit breaker: 0 closed, 1 open, 2 half-open.", "upstream")
	strata(SubsystemUpstream, Histogram, "strata_upstream_call_duration_seconds", "seconds", "Time of one call to an upstream service, retries and backoff included.", "upstream")

	// overload/metrics.go: strata serve --overload (utilisation only with
	// --capacity-rps).
	strata(SubsystemOverload, Gauge, "strata_overload_limit", "", "Concurrency limit of the adaptive limiter: admitted work in flight it allows now.")
	strata(SubsystemOverload, Gauge, "strata_overload_inflight", "", "Admitted work in flight, by priority class (critical, normal, sheddable).", "class")
	strata(SubsystemOverload, Gauge, "strata_overload_queued", "", "Critical and normal work waiting in the bounded queue for room under the limit.")
	strata(SubsystemOverload, Gauge, "strata_overload_latency_seconds", "seconds", "Latency quantile (p99) of the admitted work in the limiter's last closed window, which the limit follows.")
	strata(SubsystemOverload, Gauge, "strata_overload_target_seconds", "seconds", "The latency target (SLA) the limiter holds that quantile to.")
	strata(SubsystemOverload, Counter, "strata_overload_admitted_total", "", "Work the limiter admitted, by priority class.", "class")
	strata(SubsystemOverload, Counter, "strata_overload_rejected_total", "", "Work the limiter refused (shed), by priority class: a 503, or a part served by its fallback.", "class")
	strata(SubsystemOverload, Gauge, "strata_overload_utilisation_ratio", "", "Work offered per second over the last 10 s, admitted or not, divided by the capacity the load test measured (--capacity-rps): the autoscaling signal.")
	// tracing/metrics.go, registered by strata serve in every
	// configuration (at 0 while tracing is off).
	strata(SubsystemTracing, Counter, "strata_tracing_traces_total", "", "Traces whose local root ended, by what tail keep did: sampled, slow and error were exported, dropped was not.", "outcome")
	strata(SubsystemTracing, Counter, "strata_tracing_spans_dropped_total", "", "Spans dropped before export, by reason: trace_full, buffer_full, expired (root never ended), export_failed.", "reason")
	strata(SubsystemTracing, Gauge, "strata_tracing_buffered_spans", "", "Spans held for tail keep, waiting for their trace's root to end.")

	// client_golang's collectors.NewGoCollector and NewProcessCollector,
	// which storefront.NewRegistry registers.
	goc := func(t Type, name, unit, help string, labels ...string) {
		add(SubsystemRuntime, SourceClient, t, name, unit, help, labels...)
	}
	goc(Gauge, "go_goroutines", "", "Goroutines that currently exist.")
	goc(Gauge, "go_threads", "", "OS threads created.")
	goc(Summary, "go_gc_duration_seconds", "seconds", "Stop-the-world pause time of garbage collection cycles.")
	goc(Gauge, "go_info", "", "The Go version, as the label version.", "version")
	goc(Gauge, "go_gc_gogc_percent", "percent", "The GOGC setting.")
	goc(Gauge, "go_gc_gomemlimit_bytes", "bytes", "The GOMEMLIMIT setting.")
	goc(Gauge, "go_sched_gomaxprocs_threads", "threads", "The GOMAXPROCS setting.")
	goc(Gauge, "go_memstats_last_gc_time_seconds", "seconds", "Unix time of the last garbage collection.")
	goc(Counter, "go_memstats_alloc_bytes_total", "bytes", "Bytes allocated on the heap, freed or not.")
	goc(Counter, "go_memstats_mallocs_total", "", "Heap objects allocated.")
	goc(Counter, "go_memstats_frees_total", "", "Heap objects freed.")
	goc(Gauge, "go_memstats_heap_objects", "", "Heap objects allocated now.")
	for _, n := range []string{"alloc", "sys", "heap_alloc", "heap_sys", "heap_idle", "heap_inuse", "heap_released",
		"stack_inuse", "stack_sys", "mspan_inuse", "mspan_sys", "mcache_inuse", "mcache_sys", "buck_hash_sys",
		"gc_sys", "other_sys", "next_gc"} {
		goc(Gauge, "go_memstats_"+n+"_bytes", "bytes", "Go runtime memory statistic "+n+" (runtime.MemStats).")
	}
	goc(Counter, "process_cpu_seconds_total", "seconds", "User and system CPU time the process spent.")
	goc(Gauge, "process_open_fds", "", "Open file descriptors.")
	goc(Gauge, "process_max_fds", "", "Maximum number of open file descriptors.")
	goc(Gauge, "process_virtual_memory_bytes", "bytes", "Virtual memory size.")
	goc(Gauge, "process_virtual_memory_max_bytes", "bytes", "Maximum virtual memory available.")
	goc(Gauge, "process_resident_memory_bytes", "bytes", "Resident memory size.")
	goc(Gauge, "process_start_time_seconds", "seconds", "Unix time the process started.")
	goc(Counter, "process_network_receive_bytes_total", "bytes", "Bytes the process received over the network (Linux).")
	goc(Counter, "process_network_transmit_bytes_total", "bytes", "Bytes the process sent over the network (Linux).")

	// prometheus-node-exporter 1.5 (Debian bookworm), what the
	// infrastructure alerts and the database dashboard read.
	node := func(t Type, name, unit, help string, labels ...string) {
		add(SubsystemNode, SourceNode, t, name, unit, help, labels...)
	}
	node(Counter, "node_cpu_seconds_total", "seconds", "Seconds the CPUs spent in each mode.", "cpu", "mode")
	node(Gauge, "node_memory_MemAvailable_bytes", "bytes", "Memory available for new work without swapping (MemAvailable of /proc/meminfo).")
	node(Gauge, "node_memory_MemTotal_bytes", "bytes", "Usable memory (MemTotal of /proc/meminfo).")
	node(Counter, "node_disk_io_time_seconds_total", "seconds", "Seconds a disk spent doing I/O; its rate is the disk's busy fraction.", "device")
	node(Counter, "node_network_receive_bytes_total", "bytes", "Bytes a network device received.", "device")
	node(Counter, "node_network_transmit_bytes_total", "bytes", "Bytes a network device sent.", "device")
	node(Gauge, "node_network_speed_bytes", "bytes", "Link speed of a network device in bytes per second; negative when the device does not report one (virtual interfaces).", "device")

	// prometheus-postgres-exporter 0.11 (Debian bookworm).
	pg := func(t Type, name, help string, labels ...string) {
		add(SubsystemPostgres, SourcePostgres, t, name, "", help, labels...)
	}
	pg(Gauge, "pg_stat_activity_count", "Connections by database and state (pg_stat_activity).", "datname", "server", "state")
	pg(Gauge, "pg_settings_max_connections", "The server's max_connections setting.", "server")
	pg(Gauge, "pg_up", "1 when the exporter's last scrape reached PostgreSQL.")

	for i := range ms {
		if ms[i].Subsystem == SubsystemDB || ms[i].Subsystem == SubsystemReplica {
			ms[i].OptionalLabels = []string{"shard"}
		}
		// The HTTP handler's (its search tiers' too) and the database
		// pools' metrics: strata serve registers its primary's pool, or
		// the replica router every pool, or the shard router each shard's.
		if ms[i].Source == SourceStrata && (ms[i].Subsystem == SubsystemHTTP || ms[i].Subsystem == SubsystemSearch || ms[i].Subsystem == SubsystemDB) {
			ms[i].Everywhere = true
		}
	}
	slices.SortFunc(ms, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// Lookup returns the catalogue's entry for the metric name. A histogram's
// or summary's series names (_bucket, _sum, _count) find its entry too.
func Lookup(name string) (Metric, bool) {
	return newIndex().find(name)
}

// index is the catalogue by name.
type index map[string]Metric

func newIndex() index {
	ix := index{}
	for _, m := range Catalogue() {
		ix[m.Name] = m
	}
	return ix
}

// find is [Lookup] in ix.
func (ix index) find(name string) (Metric, bool) {
	if m, ok := ix[name]; ok {
		return m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, cut := strings.CutSuffix(name, suffix)
		if m, ok := ix[base]; cut && ok && (m.Type == Histogram || m.Type == Summary && suffix != "_bucket") {
			return m, true
		}
	}
	return Metric{}, false
}

// desc is what a prometheus.Desc says of itself through its String
// method, the only way to read it: the client library has no accessors.
type desc struct {
	name, help     string
	constLabels    map[string]string
	variableLabels []string
}

// labels returns the names of d's constant and variable labels, sorted.
func (d desc) labels() []string {
	ls := slices.Clone(d.variableLabels)
	for n := range d.constLabels {
		ls = append(ls, n)
	}
	slices.Sort(ls)
	return slices.Compact(ls)
}

// parseDesc reads the output of prometheus.Desc.String:
//
//	Desc{fqName: "…", help: "…", unit: "…", constLabels: {a="x",b="y"}, variableLabels: {c,c(d)}}
//
// where the strings are Go-quoted, a constrained variable label is
// written c(name), and unit is absent before client_golang 1.21.
func parseDesc(s string) (desc, error) {
	r := &descReader{p: s}
	fail := func(what string) (desc, error) {
		return desc{}, fmt.Errorf("monitor: cannot read the metric description %q: %s at offset %d", s, what, len(s)-len(r.p))
	}
	var d desc
	var ok bool
	if !r.lit(`Desc{fqName: `) {
		return fail(`no "Desc{fqName: "`)
	}
	if d.name, ok = r.quoted(); !ok {
		return fail("a bad fqName string")
	}
	if !r.lit(`, help: `) {
		return fail(`no ", help: "`)
	}
	if d.help, ok = r.quoted(); !ok {
		return fail("a bad help string")
	}
	if r.lit(`, unit: `) {
		if _, ok = r.quoted(); !ok {
			return fail("a bad unit string")
		}
	}
	if !r.lit(`, constLabels: {`) {
		return fail(`no ", constLabels: {"`)
	}
	d.constLabels = map[string]string{}
	if !r.list(func() bool {
		n, ok := r.name()
		if !ok || !r.lit("=") {
			return false
		}
		d.constLabels[n], ok = r.quoted()
		return ok
	}) {
		return fail("a bad constant label")
	}
	if !r.lit(`, variableLabels: {`) {
		return fail(`no ", variableLabels: {"`)
	}
	if !r.list(func() bool {
		constrained := r.lit("c(")
		n, ok := r.name()
		d.variableLabels = append(d.variableLabels, n)
		return ok && (!constrained || r.lit(")"))
	}) {
		return fail("a bad variable label")
	}
	if r.p != "}" {
		return fail(`no closing "}"`)
	}
	return d, nil
}

// descReader holds what parseDesc has still to read.
type descReader struct{ p string }

// lit consumes l if the rest starts with it.
func (r *descReader) lit(l string) bool {
	rest, ok := strings.CutPrefix(r.p, l)
	if ok {
		r.p = rest
	}
	return ok
}

// quoted consumes a Go-quoted string and returns its value.
func (r *descReader) quoted() (string, bool) {
	q, err := strconv.QuotedPrefix(r.p)
	if err != nil {
		return "", false
	}
	r.p = r.p[len(q):]
	v, err := strconv.Unquote(q)
	return v, err == nil
}

// name consumes a label name of the classic form, [a-zA-Z_][a-zA-Z0-9_]*.
func (r *descReader) name() (string, bool) {
	i := 0
	for i < len(r.p) {
		c := r.p[i]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || c < '0' || c > '9') {
			break
		}
		i++
	}
	n := r.p[:i]
	r.p = r.p[i:]
	return n, i > 0
}

// list consumes items separated by "," up to and including the closing
// "}" (the opening one already read).
func (r *descReader) list(item func() bool) bool {
	for first := true; !r.lit("}"); first = false {
		if !first && !r.lit(",") || !item() {
			return false
		}
	}
	return true
}

// CheckError is the error of [Check] and [CheckCollectors]: every
// difference between the catalogue and what the collectors describe.
type CheckError struct {
	// Unlisted are metrics a collector describes that the catalogue lacks.
	Unlisted []string
	// Unregistered are catalogued metrics of SourceStrata that no
	// collector describes.
	Unregistered []string
	// Mismatched says, one line per metric, how a described metric's
	// labels or help differ from its entry.
	Mismatched []string
	// Duplicated are names the catalogue holds more than once.
	Duplicated []string
}

// Error lists the differences.
func (e *CheckError) Error() string {
	var parts []string
	for _, g := range []struct {
		what  string
		names []string
	}{
		{"registered but not in the catalogue", e.Unlisted},
		{"catalogued but registered by no collector", e.Unregistered},
		{"described differently than catalogued", e.Mismatched},
		{"catalogued twice", e.Duplicated},
	} {
		if len(g.names) > 0 {
			parts = append(parts, g.what+": "+strings.Join(g.names, ", "))
		}
	}
	return "monitor: the catalogue and the registered metrics differ: " + strings.Join(parts, "; ")
}

// CheckCollectors is [Check] against [Catalogue]: a test passes it every
// collector the service registers (see [Recorder]) to prove the catalogue
// complete and current.
func CheckCollectors(cs ...prometheus.Collector) error {
	return Check(Catalogue(), cs...)
}

// Check compares the metrics the collectors describe with catalogue and
// returns a *[CheckError] when they differ: a described metric missing from
// the catalogue, a catalogued SourceStrata metric no collector describes
// (so cs must be the union over every configuration), a described metric
// whose label names are not its entry's Labels plus any of its
// OptionalLabels (constant labels, such as those added by
// prometheus.WrapRegistererWith, count as labels), or a SourceStrata one
// whose help differs. Metrics of other sources are not required to be
// described.
func Check(catalogue []Metric, cs ...prometheus.Collector) error {
	entries := map[string]Metric{}
	var e CheckError
	for _, m := range catalogue {
		if _, dup := entries[m.Name]; dup {
			e.Duplicated = append(e.Duplicated, m.Name)
		}
		entries[m.Name] = m
	}
	described := map[string]bool{}
	mismatched := map[string]bool{}
	for _, c := range cs {
		for _, s := range describe(c) {
			d, err := parseDesc(s)
			if err != nil {
				return err
			}
			m, ok := entries[d.name]
			if !ok {
				if !described[d.name] {
					e.Unlisted = append(e.Unlisted, d.name)
				}
				described[d.name] = true
				continue
			}
			described[d.name] = true
			if problem := compare(m, d); problem != "" && !mismatched[problem] {
				mismatched[problem] = true
				e.Mismatched = append(e.Mismatched, problem)
			}
		}
	}
	for _, m := range catalogue {
		if m.Source == SourceStrata && !described[m.Name] {
			e.Unregistered = append(e.Unregistered, m.Name)
		}
	}
	if len(e.Unlisted)+len(e.Unregistered)+len(e.Mismatched)+len(e.Duplicated) == 0 {
		return nil
	}
	for _, s := range [][]string{e.Unlisted, e.Unregistered, e.Mismatched, e.Duplicated} {
		slices.Sort(s)
	}
	return &e
}

// compare returns how d differs from its entry m, or "".
func compare(m Metric, d desc) string {
	got := d.labels()
	allowed := append(slices.Clone(m.Labels), m.OptionalLabels...)
	for _, l := range m.Labels {
		if !slices.Contains(got, l) {
			return fmt.Sprintf("%s has labels %v, the catalogue %v", m.Name, got, m.Labels)
		}
	}
	for _, l := range got {
		if !slices.Contains(allowed, l) {
			return fmt.Sprintf("%s has labels %v, the catalogue %v (optional %v)", m.Name, got, m.Labels, m.OptionalLabels)
		}
	}
	if m.Source == SourceStrata && d.help != m.Help {
		return fmt.Sprintf("%s has help %q, the catalogue %q", m.Name, d.help, m.Help)
	}
	return ""
}

// describe returns the String of every Desc c describes.
func describe(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var ds []string
	for d := range ch {
		ds = append(ds, d.String())
	}
	return ds
}

// Recorder is a prometheus.Registerer that registers with another one and
// remembers what it registered, so that a test can hand every collector a
// configuration registers to [CheckCollectors]. Collectors registered
// through prometheus.WrapRegistererWith(labels, recorder) reach it wrapped:
// their descriptions carry the labels as constant labels, which
// [Check] counts as labels. A Recorder is safe for concurrent use.
type Recorder struct {
	next prometheus.Registerer

	mu sync.Mutex
	cs []prometheus.Collector // registered and not unregistered, in order
}

var _ prometheus.Registerer = (*Recorder)(nil)

// NewRecorder returns a Recorder that registers with next; a nil next
// means a new prometheus.Registry of the Recorder's own.
func NewRecorder(next prometheus.Registerer) *Recorder {
	if next == nil {
		next = prometheus.NewRegistry()
	}
	return &Recorder{next: next}
}

// Register registers c with the next registerer and, when that succeeds,
// remembers it.
func (r *Recorder) Register(c prometheus.Collector) error {
	if err := r.next.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return nil
}

// MustRegister registers each collector and panics on the first error, as
// prometheus.Registry.MustRegister does.
func (r *Recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister unregisters c from the next registerer and forgets the
// collector it remembered with the same descriptions (the one registered
// as c, or as c wrapped the same way).
func (r *Recorder) Unregister(c prometheus.Collector) bool {
	ok := r.next.Unregister(c)
	want := describe(c)
	slices.Sort(want)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, have := range r.cs {
		ds := describe(have)
		slices.Sort(ds)
		if slices.Equal(ds, want) {
			r.cs = slices.Delete(r.cs, i, i+1)
			break
		}
	}
	return ok
}

// Collectors returns the collectors registered through r and not
// unregistered since, in the order they were registered.
func (r *Recorder) Collectors() []prometheus.Collector {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cs)
}
