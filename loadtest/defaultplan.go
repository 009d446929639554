package loadtest

import (
	"fmt"
	"strings"
	"text/template"
	"time"
)

// DefaultPlanOptions fill in the default plan.
type DefaultPlanOptions struct {
	Target     string  // default http://127.0.0.1:8080
	CurrentRPS float64 // default 100
	PeakRPS    float64 // default 2 × CurrentRPS
	Users      int     // ids drawn for /users/{id}; default 1,000
	Products   int     // ids drawn for /products/{id}; default 100
}

// DefaultPlan returns the guide's four-phase plan (baseline, stress,
// spike, endurance, with its durations, criteria and 5-minute cool-down)
// as commented YAML, with a request mix for Strata's storefront. It is
// what `strata loadtest init` writes; run it scaled down with --scale.
func DefaultPlan(o DefaultPlanOptions) []byte {
	if o.Target == "" {
		o.Target = "http://127.0.0.1:8080"
	}
	if o.CurrentRPS <= 0 {
		o.CurrentRPS = 100
	}
	if o.PeakRPS <= 0 {
		o.PeakRPS = 2 * o.CurrentRPS
	}
	if o.Users <= 0 {
		o.Users = 1000
	}
	if o.Products <= 0 {
		o.Products = 100
	}
	// The criteria are the guide's, built as values and written as
	// ParsePlan reads them.
	crit := func(ths ...Threshold) string {
		q := make([]string, len(ths))
		for i, th := range ths {
			q[i] = fmt.Sprintf("%q", th.Source)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	p99 := latencyCriterion(99, "<", BaselineP99)
	var b strings.Builder
	err := defaultPlan.Execute(&b, map[string]any{
		"o": o, "metrics": strings.TrimSuffix(o.Target, "/") + "/metrics",
		"cooldown": dur(DefaultCooldown), "baseline": dur(BaselineDuration), "rps": o.CurrentRPS,
		"baselineCriteria": crit(p99, criterion(MetricRate, "<", BaselineErrorRate), criterion(MetricRPS, ">=", o.CurrentRPS)),
		"stress":           dur(StressDuration), "recovery": dur(StressRecovery), "factor": StressBreakingFactor,
		"probe": crit(p99, criterion(MetricRate, "<", probeErrorRate)),
		"stressCriteria": crit(criterion(MetricBreakingPoint, ">=", StressBreakingFactor*o.PeakRPS),
			criterion(MetricRecovery, "<", StressRecovery.Seconds()), criterion(MetricOverloadGoodput, ">=", StressOverloadGoodput)),
		"spike": dur(SpikeDuration), "spikeLen": dur(SpikeLength), "mult": SpikeMultiplier,
		"spikeCriteria": crit(criterion(MetricLatencyIncrease, "<", SpikeLatencyIncrease), criterion(MetricSpikeErrorRate, "<", SpikeErrorRate),
			criterion(MetricRecovery, "<", time.Minute.Seconds())),
		"endurance": dur(EnduranceDuration), "fraction": EnduranceFraction,
		"enduranceCriteria": crit(criterion(MetricMemoryGrowth, "<", EnduranceMemoryGrowth),
			criterion(MetricLatencyIncrease, "<", EnduranceLatencyIncrease), criterion(MetricCPUGrowth, "<", DefaultCPUGrowth)),
	})
	if err != nil { // the template is fixed; only a bug gets here
		panic(err)
	}
	return []byte(b.String())
}

// dur writes a duration the way a person would: 5m, 1h, 24h.
func dur(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

var defaultPlan = template.Must(template.New("plan").Parse(`# A Strata load-test plan: the guide's load-testing strategy (baseline,
# stress, spike, endurance) against a service. Run it with
#
#   strata loadtest run plan.yaml                      # full length: about 28 hours
#   strata loadtest run plan.yaml --scale 0.01         # every duration × 0.01: about 17 minutes
#   strata loadtest run plan.yaml --set stress.step=5s --set endurance.skip=true
#
# Durations are Go durations (30s, 5m, 1h). Criteria are k6-style
# thresholds (p(99)<100ms, rate<0.1%, rps>=100) and the guide's phase
# criteria (breaking_point, recovery, overload_goodput, latency_increase,
# spike_error_rate, memory_growth, cpu_growth). Leave a phase's criteria out to get the
# guide's for its kind; write criteria: [] for none.

name: storefront
target: {{.o.Target}}
# The target's Prometheus endpoint: its CPU, memory and goroutines are read
# every second, so memory growth and CPU stability are measured, not guessed.
metrics: {{.metrics}}
connections: 100        # requests in flight at most; sends that find none free are counted late
timeout: 30s            # one request's bound
cooldown: {{.cooldown}}             # guide: a 5-minute cool-down between phases
current_rps: {{.o.CurrentRPS}}        # the production rate today (baseline's rate)
peak_rps: {{.o.PeakRPS}}           # the production peak (stress must break at ≥ {{.factor}} × this)
abort_on_failure: false

# Values for the requests' {{"{{"}}name{{"}}"}} placeholders. Generators: sequence
# {start, step}, uniform {min, max}, zipf {min, max, s, v}, choice [a, b],
# csv {file, order: sequence|random} ({{"{{"}}row.column{{"}}"}} for one column).
variables:
  user:
    zipf: {min: 1, max: {{.o.Users}}, s: 1.1}
  product:
    zipf: {min: 1, max: {{.o.Products}}, s: 1.2}
  kind:
    choice: [view, view, view, cart, purchase]
  words:
    choice: [shoes, phone, lamp, desk, coffee]

# The request mix: each request is drawn by weight.
requests:
  - name: user
    weight: 40
    path: /users/{{"{{"}}user{{"}}"}}
  - name: product
    weight: 30
    path: /products/{{"{{"}}product{{"}}"}}
  - name: recommendations
    weight: 15
    path: /users/{{"{{"}}user{{"}}"}}/recommendations?limit=10
  - name: search
    weight: 10
    path: /search?q={{"{{"}}words{{"}}"}}
  - name: action
    weight: 5
    method: POST
    path: /users/{{"{{"}}user{{"}}"}}/actions
    headers: {Content-Type: application/json}
    body: '{"product_id": {{"{{"}}product{{"}}"}}, "kind": "{{"{{"}}kind{{"}}"}}"}'

phases:
  # Steady state at the current production rate.
  - name: baseline
    pattern: constant
    rate: {{.rps}}
    duration: {{.baseline}}
    criteria: {{.baselineCriteria}}

  # Gradual increase until failure: probes of one step each, the rate × 1.5
  # until a probe fails its probe criteria (a failed probe is run once more
  # before it counts), then bisected to within 5 %; then an overload at the
  # failing rate (the share of the breaking point still answered then is
  # overload_goodput: the guide's "no cascading failures"), and the load
  # drops back to the start rate to time the recovery.
  - name: stress
    pattern: breaking
    rate: {{.rps}}
    step: 2m
    duration: {{.stress}}
    probe: {{.probe}}
    recovery: {{.recovery}}
    criteria: {{.stressCriteria}}

  # A sudden {{.mult}}× increase for {{.spikeLen}} within {{.spike}}.
  - name: spike
    pattern: spike
    rate: {{.rps}}
    multiplier: {{.mult}}
    spike: {{.spikeLen}}
    duration: {{.spike}}
    criteria: {{.spikeCriteria}}

  # Sustained high load: {{.fraction}} of the capacity the stress phase found.
  - name: endurance
    pattern: sustained
    fraction: {{.fraction}}
    capacity: stress
    duration: {{.endurance}}
    criteria: {{.enduranceCriteria}}
`))

// String describes the phase in a few words, for the terminal.
func (ph Phase) String() string {
	switch ph.Pattern {
	case PatternConstant:
		return fmt.Sprintf("%s: %g/s for %v", ph.Name, ph.Rate, ph.Duration)
	case PatternRamp:
		return fmt.Sprintf("%s: %g/s to %g/s over %v", ph.Name, ph.Rate, ph.To, ph.Duration)
	case PatternSteps:
		return fmt.Sprintf("%s: %g/s to %g/s in %d steps over %v", ph.Name, ph.Rate, ph.To, ph.Steps, ph.Duration)
	case PatternBreaking:
		return fmt.Sprintf("%s: from %g/s × %g per %v step until a probe fails, then bisect to %g%%", ph.Name, ph.Rate, ph.Growth, ph.Step, 100*ph.Precision)
	case PatternSpike:
		return fmt.Sprintf("%s: %g/s, %g× for %v, within %v", ph.Name, ph.Rate, ph.Multiplier, ph.SpikeLength, ph.Duration)
	case PatternSustained:
		of := fmt.Sprintf("%g/s", ph.Capacity)
		if ph.CapacityFrom != "" {
			of = ph.CapacityFrom + "'s breaking point"
		}
		return fmt.Sprintf("%s: %g of %s for %v", ph.Name, ph.Fraction, of, ph.Duration)
	}
	return ph.Name
}
