package loadtest

import "strings"

// Pattern is how a phase's rate moves over its duration.
type Pattern string

// The patterns a phase can follow (the package doc describes each).
const (
	PatternConstant  Pattern = "constant"  // Rate for Duration
	PatternRamp      Pattern = "ramp"      // linearly from Rate to To over Duration
	PatternSteps     Pattern = "steps"     // from Rate to To in Steps equal steps
	PatternBreaking  Pattern = "breaking"  // probes until one fails, a bisection, an overload and a recovery
	PatternSpike     Pattern = "spike"     // Rate, Rate × Multiplier for SpikeLength, Rate again
	PatternSustained Pattern = "sustained" // Fraction of a capacity for Duration
)

// patterns lists every pattern, in the order messages name them.
func patterns() []Pattern {
	return []Pattern{PatternConstant, PatternRamp, PatternSteps, PatternBreaking, PatternSpike, PatternSustained}
}

// Kind is what a report calls a phase; it chooses the guide's criteria a
// phase gets when it names none, and its pattern when it names none.
type Kind string

// The kinds of phase: the guide's four, and custom for any other.
const (
	KindBaseline  Kind = "baseline"  // steady state at the current rate; pattern constant
	KindStress    Kind = "stress"    // until failure; pattern breaking
	KindSpike     Kind = "spike"     // a sudden increase; pattern spike
	KindEndurance Kind = "endurance" // sustained high load; pattern sustained
	KindCustom    Kind = "custom"    // anything else; pattern constant
)

// kinds lists every kind, in the order messages name them.
func kinds() []Kind { return []Kind{KindBaseline, KindStress, KindSpike, KindEndurance, KindCustom} }

// pattern is the pattern a phase of kind k follows when it names none.
func (k Kind) pattern() Pattern {
	switch k {
	case KindStress:
		return PatternBreaking
	case KindSpike:
		return PatternSpike
	case KindEndurance:
		return PatternSustained
	}
	return PatternConstant
}

// Status is the verdict on a criterion, a phase or a whole run, as the
// guide names them.
type Status string

// The verdicts.
const (
	StatusPassed Status = "PASSED"
	StatusFailed Status = "FAILED"
	// StatusError means it could not be measured: the phase did not run,
	// or a criterion needs a figure the run lacks (the target's memory
	// without a metrics URL, say).
	StatusError Status = "ERROR"
)

// Measure names one of a phase's derived figures, the keys of
// PhaseReport.Measures.
type Measure string

// The figures a phase may measure.
const (
	// Requests per second.
	MeasureBreakingPoint    Measure = "breaking_point"     // a breaking search's highest passing rate
	MeasureFirstFailingRate Measure = "first_failing_rate" // the lowest rate whose probe failed
	MeasureNoFailureUpTo    Measure = "no_failure_up_to"   // set when no probe failed: the highest rate tried
	MeasureCapacity         Measure = "capacity"           // what a sustained phase took its fraction of
	// Fractions.
	MeasureLatencyIncrease Measure = "latency_increase"   // typical p99's rise: spike over before, or last tenth over first
	MeasureSpikeErrorRate  Measure = "spike_error_rate"   // errors over requests during the spike
	MeasureMemoryGrowth    Measure = "memory_growth"      // the target's RSS, last tenth over first
	MeasureCPUGrowth       Measure = "cpu_growth"         // the target's CPU use, last tenth over first
	MeasureOverloadGoodput Measure = "overload_goodput"   // successes a second while overloaded, over the breaking point
	MeasureBaselineP99     Measure = "baseline_p99_ms"    // the calm reference latency, ms (see the package doc)
	MeasureSpikeP99        Measure = "spike_p99_ms"       // the spike's typical p99, ms
	MeasureRecoverySeconds Measure = "recovery_seconds"   // until p99 was back near the reference
	MeasureNotRecovered    Measure = "not_recovered"      // 1 when p99 did not come back in the time watched
	MeasureSpikeStart      Measure = "spike_start_second" // the spike's first second in the series
	MeasureSpikeEnd        Measure = "spike_end_second"   // the first second after the spike
)

// Metric is what a Threshold judges: a latency, the error rate, the
// achieved rate, or one of the guide's phase criteria, each measured by
// the Measure of the same name (recovery by recovery_seconds).
type Metric string

// The metrics a Threshold can judge.
const (
	MetricLatency = Metric("latency") // a percentile of the corrected latency, ms
	MetricRate    = Metric("rate")    // errors over requests
	MetricRPS     = Metric("rps")     // the achieved rate, per second
	// The guide's phase criteria.
	MetricBreakingPoint   = Metric(MeasureBreakingPoint)
	MetricRecovery        = Metric("recovery") // measured by recovery_seconds
	MetricOverloadGoodput = Metric(MeasureOverloadGoodput)
	MetricLatencyIncrease = Metric(MeasureLatencyIncrease)
	MetricSpikeErrorRate  = Metric(MeasureSpikeErrorRate)
	MetricMemoryGrowth    = Metric(MeasureMemoryGrowth)
	MetricCPUGrowth       = Metric(MeasureCPUGrowth)
)

// phaseMetrics are the guide's phase criteria, in the order messages name
// them.
func phaseMetrics() []Metric {
	return []Metric{MetricBreakingPoint, MetricRecovery, MetricOverloadGoodput, MetricLatencyIncrease,
		MetricSpikeErrorRate, MetricMemoryGrowth, MetricCPUGrowth}
}

// measure is the Measure a phase criterion reads.
func (m Metric) measure() Measure {
	if m == MetricRecovery {
		return MeasureRecoverySeconds
	}
	return Measure(m)
}

// known reports whether m is a metric a threshold can judge.
func (m Metric) known() bool {
	switch m {
	case MetricLatency, MetricRate, MetricRPS:
		return true
	}
	for _, p := range phaseMetrics() {
		if m == p {
			return true
		}
	}
	return false
}

// fraction reports whether m's value is a fraction, written 0.05 or 5 %.
func (m Metric) fraction() bool {
	switch m {
	case MetricRate, MetricSpikeErrorRate, MetricLatencyIncrease, MetricMemoryGrowth, MetricCPUGrowth, MetricOverloadGoodput:
		return true
	}
	return false
}

// unit is the unit of m's value: ms, /s, s, or "" for a fraction.
func (m Metric) unit() string {
	switch m {
	case MetricLatency:
		return "ms"
	case MetricRPS, MetricBreakingPoint:
		return "/s"
	case MetricRecovery:
		return "s"
	}
	return ""
}

// perSecond reports whether m is a rate, which a split run divides
// between its generators.
func (m Metric) perSecond() bool { return m == MetricRPS || m == MetricBreakingPoint }

// The purposes of a breaking search's steps (Step.Purpose).
const (
	purposeRamp     = "ramp"     // the rate × growth, while probes pass
	purposeDescend  = "descend"  // the rate ÷ growth, while the start rate fails
	purposeBisect   = "bisect"   // between the highest pass and the lowest failure
	purposeConfirm  = "confirm"  // a failed probe run again before it counts
	purposeOverload = "overload" // the first failing rate, unjudged
	purposeRecovery = "recovery" // back at a passing rate, timed
)

// joinNames writes names as "a, b or c" for messages.
func joinNames[S ~string](names []S) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
