package monitor

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The promtool test file (rules_test.yml): `promtool test rules` reads it.

type testFile struct {
	RuleFiles          []string    `yaml:"rule_files"`
	EvaluationInterval string      `yaml:"evaluation_interval"`
	Tests              []testGroup `yaml:"tests"`
}

type testGroup struct {
	Interval    string        `yaml:"interval"`
	InputSeries []inputSeries `yaml:"input_series"`
	AlertTests  []alertTest   `yaml:"alert_rule_test,omitempty"`
	PromQLTests []promQLTest  `yaml:"promql_expr_test,omitempty"`
}

// promQLTest is a query and the samples it must return (none: empty).
type promQLTest struct {
	Expr       string      `yaml:"expr"`
	EvalTime   string      `yaml:"eval_time"`
	ExpSamples []expSample `yaml:"exp_samples"`
}

type expSample struct {
	Labels string  `yaml:"labels"` // {a="b"}, {} for an aggregate
	Value  float64 `yaml:"value"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"` // promtool's expanding notation
}

type alertTest struct {
	EvalTime  string     `yaml:"eval_time"`
	Alertname string     `yaml:"alertname"`
	ExpAlerts []expAlert `yaml:"exp_alerts"`
}

type expAlert struct {
	Labels      map[string]string `yaml:"exp_labels"`
	Annotations map[string]string `yaml:"exp_annotations"`
}

// series is one synthetic input series: a counter growing at value per
// second, or a gauge at value.
type series struct {
	name    string
	labels  map[string]string
	counter bool
	value   float64
}

// synth returns the series that make a family's value v.
type synth func(v float64) []series

// String writes the series as promtool reads it: name{a="b",…}.
func (s series) String() string {
	keys := make([]string, 0, len(s.labels))
	for k := range s.labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, s.labels[k])
	}
	return s.name + "{" + strings.Join(parts, ",") + "}"
}

// phase is a run of samples: steps of them at one rate or level.
type phase struct {
	value float64 // per second (counter) or the level (gauge)
	steps int
}

// values writes the samples of a series through its phases in promtool's
// expanding notation, each phase steps samples: a counter starts at 0
// and grows by value × step each sample; a gauge holds each phase's
// value.
func values(counter bool, step time.Duration, phases []phase) string {
	var parts []string
	cur := 0.0
	first := true
	for _, ph := range phases {
		if ph.steps <= 0 {
			continue
		}
		if !counter {
			parts = append(parts, fmt.Sprintf("%sx%d", fmtFloat(ph.value), ph.steps-1))
			continue
		}
		inc := ph.value * step.Seconds()
		start := cur
		if !first {
			start = cur + inc
		}
		first = false
		parts = append(parts, fmt.Sprintf("%s+%sx%d", fmtFloat(start), fmtFloat(inc), ph.steps-1))
		cur = start + inc*float64(ph.steps-1)
	}
	return strings.Join(parts, " ")
}

// margin is how far a test value sits from a threshold, in the value's
// units: 5 % of the threshold (or of 1 - threshold for a ratio near 1),
// rounded to one significant digit in the displayed unit, so the value
// shows with few digits and humanizes the same despite float noise.
func (f family) margin(thr float64) float64 {
	ref := thr
	if f.ratioOf {
		ref = 1 - thr
	}
	return roundSig(0.05*ref*f.show.factor) / f.show.factor
}

// roundSig rounds x > 0 to one significant digit.
func roundSig(x float64) float64 {
	if x <= 0 {
		return 0
	}
	e := math.Pow(10, math.Floor(math.Log10(x)))
	return math.Round(x/e) * e
}

// breach returns a value just past thr (past: above, or below for a
// family that fires below), and one just short of it.
func (f family) breach(thr float64) (past, short float64) {
	m := f.margin(thr)
	// Go through the displayed unit, so 0.9947 is 99.47 % exactly.
	d := func(x float64) float64 { return math.Round(x*f.show.factor*1e6) / 1e6 / f.show.factor }
	if f.below {
		return d(thr - m), d(thr + m)
	}
	return d(thr + m), d(thr - m)
}

// fires reports whether the family's rule at lv fires on value v.
func (f family) fires(lv level, v float64) bool {
	if f.below {
		return v < lv.threshold
	}
	return v > lv.threshold
}

// timing is the schedule of one generated test.
type timing struct {
	step   time.Duration // between samples
	normal int           // samples of the normal phase
	total  int           // samples in all
	start  time.Duration // the breach starts
	short  time.Duration // the breach has lasted less than for:
	fire   time.Duration // the alert has fired
}

// schedule plans a test of an alert with for: period on a value that
// needs window (0 for a gauge) of samples, in rule groups evaluated every
// interval.
func schedule(window, period, interval time.Duration) timing {
	base := window
	if base == 0 {
		base = period
	}
	step := (base / 6).Truncate(time.Millisecond)
	n := int((window+2*interval)/step) + 2
	start := time.Duration(n) * step
	fire := start + window + step + period + 3*interval
	return timing{step: step, normal: n, start: start, total: int(fire/step) + 3,
		short: start + period - interval/2, fire: fire}
}

// withJob returns ss with their job label set to job: each case of a
// test runs on its own job, so one test group holds them all.
func withJob(ss []series, job string) []series {
	out := make([]series, len(ss))
	for i, s := range ss {
		l := map[string]string{}
		for k, v := range s.labels {
			l[k] = v
		}
		l["job"] = job
		s.labels = l
		out[i] = s
	}
	return out
}

// familyTests returns the test of a guide alert, one case per job: per
// severity, a breach just past its threshold that fires at its
// severities after for: and not before (job <base>-<severity>); a value
// just short of the first threshold that never fires (job <base>-under);
// and, for an alert with a minimum-traffic guard, a value past the
// critical threshold at half the guard's traffic that never fires (job
// <base>-quiet).
func (g *generator) familyTests(f family) []testGroup {
	var window time.Duration
	if f.window > 0 {
		window = g.p.w(f.window)
	}
	tm := schedule(window, g.p.d(f.period), g.testInterval())
	forText := promDuration(g.p.d(f.period))
	base := f.synth(f.normal)[0].labels["job"]
	tg := testGroup{Interval: promDuration(tm.step)}
	var want []expAlert
	for _, lv := range f.levels {
		job := base + "-" + lv.severity
		past, _ := f.breach(lv.threshold)
		for _, l := range f.levels {
			if f.fires(l, past) {
				want = append(want, g.expect(f, l, past, forText, job))
			}
		}
		normal, bad := withJob(f.synth(f.normal), job), withJob(f.synth(past), job)
		for i, s := range normal {
			tg.InputSeries = append(tg.InputSeries, inputSeries{s.String(),
				values(s.counter, tm.step, []phase{{s.value, tm.normal}, {bad[i].value, tm.total - tm.normal}})})
		}
	}
	_, short := f.breach(f.levels[0].threshold)
	for _, s := range withJob(f.synth(short), base+"-under") {
		tg.InputSeries = append(tg.InputSeries, inputSeries{s.String(), values(s.counter, tm.step, []phase{{s.value, tm.total}})})
	}
	if f.guard != "" {
		// quiet: past the critical threshold from the start, at half the
		// guard's request rate: it never fires.
		past, _ := f.breach(f.levels[len(f.levels)-1].threshold)
		for _, s := range withRate(withJob(f.synth(past), base+"-quiet"), MinAlertRPS/2.0) {
			tg.InputSeries = append(tg.InputSeries, inputSeries{s.String(), values(s.counter, tm.step, []phase{{s.value, tm.total}})})
		}
	}
	tg.AlertTests = []alertTest{
		{EvalTime: promDuration(tm.start), Alertname: f.name},                 // the normal values do not fire
		{EvalTime: promDuration(tm.short), Alertname: f.name},                 // breaches shorter than for: do not fire
		{EvalTime: promDuration(tm.fire), Alertname: f.name, ExpAlerts: want}, // each breach fires at its severities; the value just short never
	}
	return []testGroup{tg}
}

// expect is the alert f fires at lv on value v for job, labels and
// annotations as Prometheus renders them.
func (g *generator) expect(f family, lv level, v float64, forText, job string) expAlert {
	labels := map[string]string{"severity": lv.severity}
	for k, val := range withJob(f.synth(v), job)[0].labels {
		if slices.Contains(f.labels, k) {
			labels[k] = val
		}
	}
	desc := f.describe(lv, forText)
	desc = strings.ReplaceAll(desc, "{{ $value | "+f.show.humanize+" }}", humanize(f.show.humanize, v))
	for k, val := range labels {
		desc = strings.ReplaceAll(desc, "{{ $labels."+k+" }}", val)
	}
	return expAlert{Labels: labels, Annotations: map[string]string{
		"summary": f.name + ": " + f.summary, "description": desc, "runbook_url": g.runbookURL(f.name),
	}}
}

// absentTests returns the test of the absent alerts: the metrics' series
// stop one after the other, a gap apart longer than the margin of the
// checks, so each alert is checked at times when only its own metric
// decides: it does not fire while its metric has been absent for less
// than for: (though the metrics stopped before it have been absent
// longer), and it fires after (though those stopped after it have not
// been absent that long).
func (g *generator) absentTests() []testGroup {
	period := g.p.d(AbsentPeriod)
	step := (period / 10).Truncate(time.Millisecond)
	margin := step + 3*g.testInterval()
	gap := (margin + 2*step).Truncate(step)
	n := 12
	forText := promDuration(period)
	tg := testGroup{Interval: promDuration(step)}
	for i, metric := range g.order {
		labels := map[string]string{"job": testJob}
		if strings.HasSuffix(metric, "_bucket") {
			labels["le"] = "+Inf"
		}
		s := series{name: metric, labels: labels}
		k := n + i*int(gap/step) // samples before it stops
		tg.InputSeries = append(tg.InputSeries, inputSeries{s.String(), fmt.Sprintf("1x%d stale", k-1)})
	}
	for i, metric := range g.order {
		name := absentName(metric)
		stop := time.Duration(n)*step + time.Duration(i)*gap
		tg.AlertTests = append(tg.AlertTests,
			alertTest{EvalTime: promDuration(stop - step), Alertname: name},                      // present, it does not fire
			alertTest{EvalTime: promDuration(stop + period - g.testInterval()), Alertname: name}, // absent for less than for:, it does not fire
			alertTest{EvalTime: promDuration(stop + period + margin), Alertname: name, ExpAlerts: []expAlert{{ // absent for longer, it fires
				Labels: map[string]string{"severity": SeverityWarning},
				Annotations: map[string]string{
					"summary":     name + ": no " + metric + " series",
					"description": fmt.Sprintf("No series of %s for %s: the alerts that read it (%s) cannot fire.", metric, forText, strings.Join(g.reads[metric], ", ")),
					"runbook_url": g.runbookURL(name),
				},
			}}})
	}
	return []testGroup{tg}
}

// humanize formats v as Prometheus's template function fn does
// (template.go, Prometheus 2.x).
func humanize(fn string, v float64) string {
	switch fn {
	case "humanizePercentage":
		return fmt.Sprintf("%.4g%%", v*100)
	case "humanizeDuration":
		if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("%.4gs", v)
		}
		if math.Abs(v) >= 1 {
			d := int64(v)
			s, m, h, days := d%60, (d/60)%60, (d/3600)%24, d/86400
			switch {
			case days != 0:
				return fmt.Sprintf("%dd %dh %dm %ds", days, h, m, s)
			case h != 0:
				return fmt.Sprintf("%dh %dm %ds", h, m, s)
			case m != 0:
				return fmt.Sprintf("%dm %ds", m, s)
			}
			return fmt.Sprintf("%.4gs", v)
		}
		prefix := ""
		for _, p := range []string{"m", "u", "n", "p", "f", "a", "z", "y"} {
			if math.Abs(v) >= 1 {
				break
			}
			prefix, v = p, v*1000
		}
		return fmt.Sprintf("%.4g%ss", v, prefix)
	}
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%.4g", v)
	}
	prefix := ""
	if math.Abs(v) >= 1 {
		for _, p := range []string{"k", "M", "G", "T", "P", "E", "Z", "Y"} {
			if math.Abs(v) < 1000 {
				break
			}
			prefix, v = p, v/1000
		}
		return fmt.Sprintf("%.4g%s", v, prefix)
	}
	for _, p := range []string{"m", "u", "n", "p", "f", "a", "z", "y"} {
		if math.Abs(v) >= 1 {
			break
		}
		prefix, v = p, v*1000
	}
	return fmt.Sprintf("%.4g%s", v, prefix)
}

// The synthesisers of the guide alerts' tests.

func nodeLabels(extra ...string) map[string]string {
	l := map[string]string{"job": "node", "instance": testNode}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// synthCPU: one CPU idle the rest of the time.
func synthCPU(v float64) []series {
	return []series{{"node_cpu_seconds_total", nodeLabels("cpu", "0", "mode", "idle"), true, 1 - v}}
}

// memTotal is the synthetic host's memory: 8 GB.
const memTotal = 8e9

func synthMemory(v float64) []series {
	return []series{
		{"node_memory_MemAvailable_bytes", nodeLabels(), false, (1 - v) * memTotal},
		{"node_memory_MemTotal_bytes", nodeLabels(), false, memTotal},
	}
}

func synthDisk(v float64) []series {
	return []series{{"node_disk_io_time_seconds_total", nodeLabels("device", "sda"), true, v}}
}

// linkSpeed is the synthetic network device's speed: 1 Gbit/s in bytes.
const linkSpeed = 125e6

func synthNet(dir string) synth {
	return func(v float64) []series {
		return []series{
			{"node_network_" + dir + "_bytes_total", nodeLabels("device", "eth0"), true, v * linkSpeed},
			{"node_network_speed_bytes", nodeLabels("device", "eth0"), false, linkSpeed},
		}
	}
}

func pgLabels(extra ...string) map[string]string {
	l := map[string]string{"job": "postgres", "instance": "127.0.0.1:9187", "server": "127.0.0.1:5432"}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func synthPGConns(v float64) []series {
	return []series{{"pg_stat_activity_count", pgLabels("datname", "strata", "state", "active"), false, v}}
}

// maxConns is the synthetic server's max_connections.
const maxConns = 100

func synthPGUtil(v float64) []series {
	return []series{
		{"pg_stat_activity_count", pgLabels("datname", "strata", "state", "active"), false, v * maxConns},
		{"pg_settings_max_connections", pgLabels(), false, maxConns},
	}
}

func strataLabels(extra ...string) map[string]string {
	l := map[string]string{"job": testJob, "instance": testInstance}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// poolSize is the synthetic pool's size: the guide's primary pool.
const poolSize = 50

func synthPool(v float64) []series {
	return []series{
		{"strata_db_in_use_connections", strataLabels("pool", "primary"), false, v * poolSize},
		{"strata_db_max_open_connections", strataLabels("pool", "primary"), false, poolSize},
	}
}

// testRPS is the request rate of the synthetic service.
const testRPS = 100

// synthQuery: replica.metrics' buckets (0.1 ms doubling, 16 of them).
func synthQuery(v float64) []series {
	var bounds []float64
	for i := range 16 {
		bounds = append(bounds, 0.0001*math.Pow(2, float64(i)))
	}
	return histogram("strata_replica_query_duration_seconds_bucket", strataLabels("pool", "primary"), bounds, 0.95, v, testRPS)
}

// synthLatency: storefront's buckets; requests_total for the guard.
func synthLatency(q string) synth {
	return func(v float64) []series {
		quant := map[string]float64{"50": 0.5, "95": 0.95, "99": 0.99}[q]
		h := histogram("strata_http_request_duration_seconds_bucket", strataLabels("route", testRoute, "method", "GET"), HTTPBuckets(), quant, v, testRPS)
		return append(h, series{"strata_http_requests_total", strataLabels("route", testRoute, "method", "GET", "code", "200"), true, testRPS})
	}
}

// synthCodes: testRPS requests a second, a fraction of them answered
// code; v is that fraction, or (success) the fraction of the others.
func synthCodes(code string, success bool) synth {
	return func(v float64) []series {
		bad := v
		if success {
			bad = 1 - v
		}
		l := func(c string) map[string]string { return strataLabels("route", testRoute, "method", "GET", "code", c) }
		return []series{
			{"strata_http_requests_total", l("200"), true, testRPS * (1 - bad)},
			{"strata_http_requests_total", l(code), true, testRPS * bad},
		}
	}
}

func synthRate(v float64) []series {
	return []series{{"strata_http_requests_total", strataLabels("route", testRoute, "method", "GET", "code", "200"), true, v}}
}

// histogram returns the cumulative bucket counters of a histogram whose
// quantile q is v (by histogram_quantile's linear interpolation), rate
// observations a second: a share in the first bucket, the rest in v's
// bucket and the one above it.
func histogram(name string, labels map[string]string, bounds []float64, q, v, rate float64) []series {
	k, _ := slices.BinarySearch(bounds, v)
	if k >= len(bounds)-1 {
		k = len(bounds) - 2 // v past the last finite bucket but one: not a test value
	}
	lower := 0.0
	if k > 0 {
		lower = bounds[k-1]
	}
	f := (v - lower) / (bounds[k] - lower)
	share := make([]float64, len(bounds)+1) // per bucket, +Inf last
	switch {
	case f >= q: // nothing below: v's bucket holds q/f, the next the rest
		share[k] = q / f
		share[k+1] = 1 - q/f
	default: // the first bucket holds a, v's bucket the rest
		a := (q - f) / (1 - f)
		share[0] += a
		share[k] += 1 - a
	}
	var out []series
	cum := 0.0
	for i := range share {
		cum += share[i]
		le := "+Inf"
		if i < len(bounds) {
			le = fmtFloat(bounds[i])
		}
		l := map[string]string{"le": le}
		for k, v := range labels {
			l[k] = v
		}
		out = append(out, series{name, l, true, rate * cum})
	}
	return out
}
