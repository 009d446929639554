package monitor

import (
	"fmt"
	"time"
)

// The guide's thresholds (section "Real-Time Performance Monitoring",
// RealTimePerformanceMonitoring), each defined once. Utilisations and
// ratios are fractions (0.70 is 70 %); times are seconds.
const (
	CPUWarning         = 0.70  // Monitoring: cpu_utilization warning 70 %, 5 min
	CPUCritical        = 0.85  // Monitoring: cpu_utilization critical 85 %, 5 min
	MemoryWarning      = 0.75  // Monitoring: memory_utilization warning 75 %, 5 min
	MemoryCritical     = 0.90  // Monitoring: memory_utilization critical 90 %, 5 min
	DiskIOWarning      = 0.80  // Monitoring: disk_io_utilization warning 80 %, 5 min
	DiskIOCritical     = 0.95  // Monitoring: disk_io_utilization critical 95 %, 5 min
	NetworkWarning     = 0.80  // Monitoring: network_throughput warning 80 % of capacity, 1 min
	NetworkCritical    = 0.95  // Monitoring: network_throughput critical 95 % of capacity, 1 min
	ConnWarning        = 1000  // Monitoring: connection_count warning 1,000, 1 min
	ConnCritical       = 1500  // Monitoring: connection_count critical 1,500, 1 min
	PoolWarning        = 0.75  // Monitoring: connection_pool_utilization warning 75 %, 1 min
	PoolCritical       = 0.90  // Monitoring: connection_pool_utilization critical 90 %, 1 min
	QueryP95Warning    = 0.100 // Monitoring: query_execution_time warning 100 ms (p95), 5 min
	QueryP95Critical   = 0.500 // Monitoring: query_execution_time critical 500 ms (p95), 5 min
	LatencyP50Warning  = 0.050 // Monitoring: api_latency_p50 warning 50 ms, 1 min
	LatencyP50Critical = 0.100 // Monitoring: api_latency_p50 critical 100 ms, 1 min
	LatencyP95Warning  = 0.200 // Monitoring: api_latency_p95 warning 200 ms, 1 min
	LatencyP95Critical = 0.500 // Monitoring: api_latency_p95 critical 500 ms, 1 min
	LatencyP99Warning  = 1.000 // Monitoring: api_latency_p99 warning 1,000 ms, 1 min
	LatencyP99Critical = 2.000 // Monitoring: api_latency_p99 critical 2,000 ms, 1 min
	TrafficLowFactor   = 0.5   // Monitoring: requests_per_second threshold_low = expected × 0.5, 5 min
	TrafficHighFactor  = 2     // Monitoring: requests_per_second threshold_high = expected × 2, 5 min
	SuccessWarning     = 0.995 // Monitoring: successful_requests_percentage warning 99.5 %, 5 min
	SuccessCritical    = 0.990 // Monitoring: successful_requests_percentage critical 99.0 %, 5 min
	ErrorsWarning      = 0.005 // Monitoring: error_rate_percentage warning 0.5 %, 5 min
	ErrorsCritical     = 0.010 // Monitoring: error_rate_percentage critical 1.0 %, 5 min
	TimeoutsWarning    = 0.001 // Monitoring: timeout_rate_percentage warning 0.1 %, 5 min
	TimeoutsCritical   = 0.005 // Monitoring: timeout_rate_percentage critical 0.5 %, 5 min
)

// The guide's evaluation periods (section "Real-Time Performance
// Monitoring"): each alert's for:, before [Config.Scale] divides it.
const (
	InfraPeriod   = 5 * time.Minute // Monitoring: compute metrics and query time, evaluation_period 5_minutes
	NetworkPeriod = time.Minute     // Monitoring: network and pool metrics, evaluation_period 1_minute
	LatencyPeriod = time.Minute     // Monitoring: api_latency_*, evaluation_period 1_minute
	TrafficPeriod = 5 * time.Minute // Monitoring: throughput and error metrics, evaluation_period 5_minutes
)

// Choices of Strata's own, where the guide is silent.
const (
	// RateWindow is the window of every rate and quantile the guide's
	// alerts read: four scrapes at a 15 s scrape interval, short enough
	// that a breach shows within a minute.
	RateWindow = time.Minute
	// MinAlertRPS guards the guide's latency and ratio alerts: below one
	// request a second a one-minute ratio or quantile rests on fewer than
	// 60 requests, and one slow or failed request would raise it. The SLO
	// alerts watch quiet services over their longer windows.
	MinAlertRPS = 1
	// AbsentPeriod is how long a metric an alert reads must be missing
	// before the absent alert fires: longer than a restart.
	AbsentPeriod = 10 * time.Minute
	// DefaultExpectedRPS is the guide's default expected_rps (100); Strata
	// uses it only to document the traffic alerts: [Config.ExpectedRPS] 0
	// leaves them out.
	DefaultExpectedRPS = 100
	// ruleInterval is the evaluation interval of the rule groups of the
	// guide's alerts, before Scale; the SLO groups use twice it.
	ruleInterval = 30 * time.Second
)

// Severities of the generated alerts (the severity label).
const (
	SeverityWarning  = "warning"  // a ticket: look at it in working hours
	SeverityCritical = "critical" // a page: look at it now
)

// The HTTP routes the application alerts leave out (probes and scrapes).
const probeRoutes = `GET /(healthz|readyz|metrics)`

// Label values of the synthetic series in the generated tests.
const (
	testJob      = "strata"
	testInstance = "127.0.0.1:8080"
	testNode     = "127.0.0.1:9100"
	testRoute    = "GET /users/{id}"
)

// level is one severity of an alert: its label and its threshold.
type level struct {
	severity  string
	threshold float64
}

// display says how an alert's value is shown: the humanize function of
// its annotations, and the unit and factor of its docs.
type display struct {
	humanize string  // Prometheus template function
	after    string  // after the humanized value in descriptions
	unit     string  // after the number in docs and tests
	factor   float64 // value × factor is in unit
}

// The displays of the generated alerts' values.
func asPercent() display  { return display{"humanizePercentage", "", "%", 100} }
func asDuration() display { return display{"humanizeDuration", "", "ms", 1000} }
func asCount() display    { return display{"humanize", "", "", 1} }
func asRate() display     { return display{"humanize", " requests/s", "req/s", 1} }

// family is one alert of the guide's tables: a warning and a critical
// rule on one value (or one rule, for the traffic alerts), how its value
// is computed, how to test it and what its runbook says.
type family struct {
	name    string        // alertname
	group   string        // rule group
	needs   string        // "" (always), an exporter or needReplicas: see generator.wants
	records []Rule        // recording rules its value needs (shared ones repeat)
	value   string        // PromQL of the value, usually a recorded series
	guard   string        // PromQL appended with "and", or ""
	below   bool          // fires when the value is under the threshold
	ratioOf bool          // a ratio near 1 (success): margins come from 1 - threshold
	levels  []level       // warning first
	period  time.Duration // for:, before Scale
	window  time.Duration // rate window the value uses (0: a gauge), before Scale
	show    display
	labels  []string // labels the value keeps, in the order the description names them
	guide   string   // the guide's numbers, for docs
	summary string   // one line
	what    string   // the description's subject: "CPU use of {{ $labels.instance }}"
	metrics []string // the raw metrics it reads, for the absent alerts
	synth   synth    // test series that make the value v
	normal  float64  // a harmless value, for tests
	book    runbook
}

// guideFamilies returns the alerts of the guide's two tables, with the
// rate windows and periods divided by the scale (a window no shorter than
// four scrapes); expectedRPS 0 leaves out the traffic alerts.
func guideFamilies(p periods, expectedRPS float64) []family {
	w := p.w(RateWindow)
	wn := promDuration(w)
	rec := func(name, expr string) Rule { return Rule{Record: name, Expr: expr} }

	cpu := rec("instance:node_cpu_utilisation:ratio_rate"+wn,
		fmt.Sprintf(`1 - avg by (job, instance) (rate(node_cpu_seconds_total{mode="idle"}[%s]))`, wn))
	mem := rec("instance:node_memory_utilisation:ratio",
		`1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes`)
	disk := rec("instance_device:node_disk_io_utilisation:ratio_rate"+wn,
		fmt.Sprintf(`rate(node_disk_io_time_seconds_total[%s])`, wn))
	netRx := rec("instance_device:node_network_receive_utilisation:ratio_rate"+wn,
		fmt.Sprintf(`rate(node_network_receive_bytes_total[%s]) / (node_network_speed_bytes > 0)`, wn))
	netTx := rec("instance_device:node_network_transmit_utilisation:ratio_rate"+wn,
		fmt.Sprintf(`rate(node_network_transmit_bytes_total[%s]) / (node_network_speed_bytes > 0)`, wn))
	pgConns := rec("server:pg_stat_activity:count",
		`sum by (job, instance, server) (pg_stat_activity_count)`)
	pgUtil := rec("server:pg_connections:ratio",
		`server:pg_stat_activity:count / on (job, instance, server) (pg_settings_max_connections > 0)`)
	pool := rec("pool:strata_db_connections:ratio",
		`strata_db_in_use_connections / (strata_db_max_open_connections > 0)`)
	query := rec("job_pool:strata_replica_query_duration_seconds:p95_rate"+wn,
		fmt.Sprintf(`histogram_quantile(0.95, sum by (job, pool, shard, le) (rate(strata_replica_query_duration_seconds_bucket[%s])))`, wn))
	sel := fmt.Sprintf(`route!~%q`, probeRoutes)
	reqs := rec("job:strata_http_requests:rate"+wn,
		fmt.Sprintf(`sum by (job) (rate(strata_http_requests_total{%s}[%s]))`, sel, wn))
	ratio := func(name, codes string) Rule {
		return rec("job:strata_http_"+name+":ratio_rate"+wn, fmt.Sprintf(
			`sum by (job) (rate(strata_http_requests_total{%s,%s}[%s])) / sum by (job) (rate(strata_http_requests_total{%s}[%s]))`,
			sel, codes, wn, sel, wn))
	}
	errs := ratio("errors", `code=~"5..",code!~"50[34]"`)
	timeouts := ratio("timeouts", `code=~"50[34]"`)
	success := ratio("success", `code!~"5.."`)
	lat := func(q string) Rule {
		return rec("job:strata_http_request_duration_seconds:p"+q+"_rate"+wn, fmt.Sprintf(
			`histogram_quantile(0.%s, sum by (job, le) (rate(strata_http_request_duration_seconds_bucket{%s}[%s])))`, q, sel, wn))
	}
	guard := fmt.Sprintf("on (job) %s >= %d", reqs.Record, MinAlertRPS)
	two := func(w, c float64) []level {
		return []level{{SeverityWarning, w}, {SeverityCritical, c}}
	}

	fs := []family{{
		name: "NodeCPUHigh", needs: ExporterNode, group: "strata-node", records: []Rule{cpu}, value: cpu.Record,
		levels: two(CPUWarning, CPUCritical), period: InfraPeriod, window: RateWindow, show: asPercent(),
		labels: []string{"instance", "job"}, guide: "cpu_utilization 70 / 85 %, 5 min",
		summary: "CPU busy", what: "CPU use of {{ $labels.instance }}",
		metrics: []string{"node_cpu_seconds_total"}, synth: synthCPU, normal: 0.1, book: bookCPU(),
	}, {
		name: "NodeMemoryHigh", needs: ExporterNode, group: "strata-node", records: []Rule{mem}, value: mem.Record,
		levels: two(MemoryWarning, MemoryCritical), period: InfraPeriod, show: asPercent(),
		labels: []string{"instance", "job"}, guide: "memory_utilization 75 / 90 %, 5 min",
		summary: "memory nearly used up", what: "Memory use of {{ $labels.instance }}",
		metrics: []string{"node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"}, synth: synthMemory, normal: 0.3, book: bookMemory(),
	}, {
		name: "NodeDiskIOHigh", needs: ExporterNode, group: "strata-node", records: []Rule{disk}, value: disk.Record,
		levels: two(DiskIOWarning, DiskIOCritical), period: InfraPeriod, window: RateWindow, show: asPercent(),
		labels: []string{"device", "instance", "job"}, guide: "disk_io_utilization 80 / 95 %, 5 min",
		summary: "disk busy", what: "I/O busy time of {{ $labels.device }} on {{ $labels.instance }}",
		metrics: []string{"node_disk_io_time_seconds_total"}, synth: synthDisk, normal: 0.1, book: bookDisk(),
	}, {
		name: "NodeNetworkReceiveHigh", needs: ExporterNode, group: "strata-node", records: []Rule{netRx}, value: netRx.Record,
		levels: two(NetworkWarning, NetworkCritical), period: NetworkPeriod, window: RateWindow, show: asPercent(),
		labels: []string{"device", "instance", "job"}, guide: "network_throughput 80 / 95 % of capacity, 1 min",
		summary: "network receive near capacity", what: "Receive throughput of {{ $labels.device }} on {{ $labels.instance }}",
		metrics: []string{"node_network_receive_bytes_total", "node_network_speed_bytes"}, synth: synthNet("receive"), normal: 0.1, book: bookNetwork(),
	}, {
		name: "NodeNetworkTransmitHigh", needs: ExporterNode, group: "strata-node", records: []Rule{netTx}, value: netTx.Record,
		levels: two(NetworkWarning, NetworkCritical), period: NetworkPeriod, window: RateWindow, show: asPercent(),
		labels: []string{"device", "instance", "job"}, guide: "network_throughput 80 / 95 % of capacity, 1 min",
		summary: "network transmit near capacity", what: "Transmit throughput of {{ $labels.device }} on {{ $labels.instance }}",
		metrics: []string{"node_network_transmit_bytes_total", "node_network_speed_bytes"}, synth: synthNet("transmit"), normal: 0.1, book: bookNetwork(),
	}, {
		name: "PostgresConnectionsHigh", needs: ExporterPostgres, group: "strata-postgres", records: []Rule{pgConns}, value: pgConns.Record,
		levels: two(ConnWarning, ConnCritical), period: NetworkPeriod, show: asCount(),
		labels: []string{"instance", "job", "server"}, guide: "connection_count 1,000 / 1,500, 1 min",
		summary: "many PostgreSQL connections", what: "Connections to PostgreSQL {{ $labels.server }}",
		metrics: []string{"pg_stat_activity_count"}, synth: synthPGConns, normal: 40, book: bookPGConns(),
	}, {
		name: "PostgresConnectionsNearLimit", needs: ExporterPostgres, group: "strata-postgres", records: []Rule{pgConns, pgUtil}, value: pgUtil.Record,
		levels: two(PoolWarning, PoolCritical), period: NetworkPeriod, show: asPercent(),
		labels: []string{"instance", "job", "server"}, guide: "connection_pool_utilization 75 / 90 %, 1 min, applied to the server's max_connections",
		summary: "PostgreSQL near max_connections", what: "Connections to PostgreSQL {{ $labels.server }}, of max_connections,",
		metrics: []string{"pg_stat_activity_count", "pg_settings_max_connections"}, synth: synthPGUtil, normal: 0.2, book: bookPGConns(),
	}, {
		name: "StrataDBPoolUtilisationHigh", group: "strata-db", records: []Rule{pool}, value: pool.Record,
		levels: two(PoolWarning, PoolCritical), period: NetworkPeriod, show: asPercent(),
		labels: []string{"instance", "job", "pool"}, guide: "connection_pool_utilization 75 / 90 %, 1 min",
		summary: "database pool nearly exhausted", what: "Connections in use in pool {{ $labels.pool }} of {{ $labels.instance }}",
		metrics: []string{"strata_db_in_use_connections", "strata_db_max_open_connections"}, synth: synthPool, normal: 0.2, book: bookPool(),
	}, {
		name: "StrataDBQueryP95High", needs: needReplicas, group: "strata-db", records: []Rule{query}, value: query.Record,
		levels: two(QueryP95Warning, QueryP95Critical), period: InfraPeriod, window: RateWindow, show: asDuration(),
		labels: []string{"job", "pool"}, guide: "query_execution_time p95 100 / 500 ms, 5 min",
		summary: "slow database queries", what: "p95 query time on pool {{ $labels.pool }}",
		metrics: []string{"strata_replica_query_duration_seconds_bucket"}, synth: synthQuery, normal: 0.002, book: bookQuery(),
	}}
	for _, l := range []struct {
		q    string
		w, c float64
		book runbook
	}{{"50", LatencyP50Warning, LatencyP50Critical, bookLatency("50")}, {"95", LatencyP95Warning, LatencyP95Critical, bookLatency("95")}, {"99", LatencyP99Warning, LatencyP99Critical, bookLatency("99")}} {
		r := lat(l.q)
		fs = append(fs, family{
			name: "StrataHTTPLatencyP" + l.q + "High", group: "strata-http", records: []Rule{reqs, r}, value: r.Record, guard: guard,
			levels: two(l.w, l.c), period: LatencyPeriod, window: RateWindow, show: asDuration(),
			labels: []string{"job"}, guide: fmt.Sprintf("api_latency_p%s %s / %s ms, 1 min", l.q, ms(l.w), ms(l.c)),
			summary: "p" + l.q + " latency high", what: "p" + l.q + " latency of {{ $labels.job }}",
			metrics: []string{"strata_http_request_duration_seconds_bucket", "strata_http_requests_total"}, synth: synthLatency(l.q), normal: 0.0004, book: l.book,
		})
	}
	fs = append(fs, family{
		name: "StrataHTTPSuccessRateLow", group: "strata-http", records: []Rule{reqs, success}, value: success.Record, guard: guard,
		below: true, ratioOf: true, levels: two(SuccessWarning, SuccessCritical), period: TrafficPeriod, window: RateWindow, show: asPercent(),
		labels: []string{"job"}, guide: "successful_requests_percentage 99.5 / 99.0 %, 5 min",
		summary: "too few requests succeed", what: "Requests of {{ $labels.job }} answered without a server error (not 5xx)",
		metrics: []string{"strata_http_requests_total"}, synth: synthCodes("500", true), normal: 1, book: bookSuccess(),
	}, family{
		name: "StrataHTTPErrorRateHigh", group: "strata-http", records: []Rule{reqs, errs}, value: errs.Record, guard: guard,
		levels: two(ErrorsWarning, ErrorsCritical), period: TrafficPeriod, window: RateWindow, show: asPercent(),
		labels: []string{"job"}, guide: "error_rate_percentage 0.5 / 1.0 %, 5 min",
		summary: "server errors", what: "Server errors (5xx but 503 and 504) of {{ $labels.job }}",
		metrics: []string{"strata_http_requests_total"}, synth: synthCodes("500", false), normal: 0, book: bookErrors(),
	}, family{
		name: "StrataHTTPTimeoutRateHigh", group: "strata-http", records: []Rule{reqs, timeouts}, value: timeouts.Record, guard: guard,
		levels: two(TimeoutsWarning, TimeoutsCritical), period: TrafficPeriod, window: RateWindow, show: asPercent(),
		labels: []string{"job"}, guide: "timeout_rate_percentage 0.1 / 0.5 %, 5 min",
		summary: "requests out of time", what: "Requests of {{ $labels.job }} answered 503 or 504 (time budget or capacity ran out)",
		metrics: []string{"strata_http_requests_total"}, synth: synthCodes("503", false), normal: 0, book: bookTimeouts(),
	})
	if expectedRPS > 0 {
		fs = append(fs, family{
			name: "StrataHTTPTrafficLow", group: "strata-http", records: []Rule{reqs}, value: reqs.Record,
			below: true, levels: []level{{SeverityWarning, TrafficLowFactor * expectedRPS}}, period: TrafficPeriod, window: RateWindow, show: asRate(),
			labels: []string{"job"}, guide: "requests_per_second below expected × 0.5, 5 min",
			summary: "traffic far below expected", what: "Request rate of {{ $labels.job }}",
			metrics: []string{"strata_http_requests_total"}, synth: synthRate, normal: expectedRPS, book: bookTrafficLow(),
		}, family{
			name: "StrataHTTPTrafficHigh", group: "strata-http", records: []Rule{reqs}, value: reqs.Record,
			levels: []level{{SeverityWarning, TrafficHighFactor * expectedRPS}}, period: TrafficPeriod, window: RateWindow, show: asRate(),
			labels: []string{"job"}, guide: "requests_per_second above expected × 2, 5 min",
			summary: "traffic far above expected", what: "Request rate of {{ $labels.job }}",
			metrics: []string{"strata_http_requests_total"}, synth: synthRate, normal: expectedRPS, book: bookTrafficHigh(),
		})
	}
	return fs
}

// ms formats seconds as a whole number of milliseconds with thousands
// separators (1,000).
func ms(s float64) string {
	n := int64(s*1000 + 0.5)
	if n >= 1000 {
		return fmt.Sprintf("%d,%03d", n/1000, n%1000)
	}
	return fmt.Sprint(n)
}
