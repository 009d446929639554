package loadtest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadThreshold is returned (wrapped) by ParseThreshold.
var ErrBadThreshold = errors.New("loadtest: bad threshold")

// Threshold is a pass/fail criterion in k6's familiar form:
//
//	p(99)<100ms   a latency percentile (corrected latency), 0 < N ≤ 100
//	med<20ms      the median; also min, max
//	rate<0.001    the error rate, errors over requests
//	rps>=5000     the achieved rate, requests per second
//
// and the guide's phase criteria, measured by the phases that can:
//
//	breaking_point>=1500    a breaking search's highest passing rate, per second
//	recovery<5m             time until p99 is back within 10 % (or 1 ms) of the calm
//	                        seconds' (breaking, spike; see Reference latency)
//	overload_goodput>=90%   successful responses a second while a breaking search
//	                        overloads the target, over its breaking point: the guide's
//	                        "no cascading failures" (a service that collapses or
//	                        fails everything when pushed past its knee scores low)
//	latency_increase<50%    the typical p99's rise: spike over before (spike),
//	                        last tenth over first (others)
//	spike_error_rate<1%     the error rate during a spike
//	memory_growth<5%        the target's resident memory, last tenth over first (needs metrics)
//	cpu_growth<10%          the target's CPU use, last tenth over first (needs metrics)
//
// Fractions may be written as percentages (rate<0.1%).
// Operators are <, <=, >, >= and ==; latencies take a unit (us, µs, ms, s).
type Threshold struct {
	// Source is the text it was parsed from, or that ParseThreshold
	// would read as it (a default criterion built as a value).
	Source string
	// Metric is what it judges; Quantile (0–100) applies to latency.
	Metric   Metric
	Quantile float64
	Op       string
	// Value is in milliseconds for latency, seconds for recovery, requests
	// per second for rps and breaking_point, and a fraction otherwise.
	Value float64
}

// Verdict is one threshold checked against a result.
type Verdict struct {
	Threshold Threshold
	// Actual is the measured value, in the threshold's unit.
	Actual float64
	Passed bool
}

// String says what was measured against what.
func (v Verdict) String() string {
	state := StatusPassed
	if !v.Passed {
		state = StatusFailed
	}
	return fmt.Sprintf("%s  %s (actual %s%s)", state, v.Threshold.Source, strconv.FormatFloat(v.Actual, 'g', 6, 64), v.Threshold.Unit())
}

// ParseThreshold reads one threshold; the error says what part is wrong.
func ParseThreshold(s string) (Threshold, error) {
	src := strings.TrimSpace(s)
	t := Threshold{Source: src}
	i := strings.IndexAny(src, "<>=")
	if i <= 0 {
		return t, fmt.Errorf("%w: %q: want METRIC OP VALUE, e.g. p(99)<100ms, rate<0.001 or rps>=500", ErrBadThreshold, s)
	}
	name, rest := strings.TrimSpace(src[:i]), src[i:]
	for _, op := range operators() {
		if strings.HasPrefix(rest, op) {
			t.Op, rest = op, strings.TrimSpace(rest[len(op):])
			break
		}
	}
	if t.Op == "" {
		return t, fmt.Errorf("%w: %q: operator must be <, <=, >, >= or ==", ErrBadThreshold, s)
	}
	var err error
	switch m := Metric(name); {
	case m.perSecond():
		t.Metric = m
		v, perr := strconv.ParseFloat(rest, 64)
		if perr != nil || !(v >= 0) || math.IsInf(v, 0) {
			err = fmt.Errorf("%s takes a non-negative number of requests per second, got %q", name, rest)
		}
		t.Value = v
	case m == MetricRecovery:
		t.Metric = m
		d, perr := parseLatency(rest)
		if perr != nil {
			err = fmt.Errorf("recovery takes a duration such as 5m: %v", perr)
		}
		t.Value = d.Seconds()
	case m.fraction():
		t.Metric = m
		t.Value, err = parseFraction(name, rest)
	default:
		t.Metric = MetricLatency
		t.Quantile, t.Value, err = parseLatencyThreshold(name, rest)
	}
	if err != nil {
		return t, fmt.Errorf("%w: %q: %v", ErrBadThreshold, s, err)
	}
	return t, nil
}

// operators are a threshold's comparisons, longest first so that <= is
// not read as <.
func operators() []string { return []string{"<=", ">=", "==", "<", ">"} }

// parseLatencyThreshold reads the percentile name (p(N), med, min, max)
// and the latency of a latency threshold, in milliseconds.
func parseLatencyThreshold(name, value string) (q, ms float64, err error) {
	switch {
	case name == "med":
		q = 50
	case name == "min":
		q = 0
	case name == "max":
		q = 100
	case strings.HasPrefix(name, "p(") && strings.HasSuffix(name, ")"):
		n := name[2 : len(name)-1]
		if q, err = strconv.ParseFloat(n, 64); err != nil || q <= 0 || q > 100 {
			return 0, 0, fmt.Errorf("percentile %q must be a number in (0, 100]", n)
		}
	default:
		return 0, 0, fmt.Errorf("unknown metric %q (want p(N), med, min, max, rate, rps or one of the phase criteria: %s)", name, joinNames(phaseMetrics()))
	}
	d, err := parseLatency(value)
	if err != nil {
		return 0, 0, err
	}
	return q, float64(d) / float64(time.Millisecond), nil
}

// parseFraction reads metric's value, a fraction written 0.05 or 5%.
func parseFraction(metric, s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("%s takes a fraction such as 0.01 or a percentage such as 1%%, got %q", metric, s)
	}
	if pct {
		v /= 100
	}
	if (Metric(metric) == MetricRate || Metric(metric) == MetricSpikeErrorRate) && v > 1 {
		return 0, fmt.Errorf("%s is a fraction of requests, at most 1", metric)
	}
	return v, nil
}

// parseLatency reads a duration with a unit, µs as well as us.
func parseLatency(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.Replace(s, "µs", "us", 1))
	switch {
	case err != nil:
		return 0, fmt.Errorf("latency %q needs a unit, e.g. 100ms", s)
	case d < 0:
		return 0, fmt.Errorf("latency %q is negative", s)
	}
	return d, nil
}

// criterion returns the threshold "metric op value" built as a value,
// with the Source that ParseThreshold reads back as the same threshold.
func criterion(m Metric, op string, value float64) Threshold {
	t := Threshold{Metric: m, Op: op, Value: value}
	t.Source = t.format()
	return t
}

// latencyCriterion returns the threshold "p(q) op d" built as a value.
func latencyCriterion(q float64, op string, d time.Duration) Threshold {
	t := Threshold{Metric: MetricLatency, Quantile: q, Op: op, Value: float64(d) / float64(time.Millisecond)}
	t.Source = t.format()
	return t
}

// format writes t as ParseThreshold reads it: durations whole (300ms,
// 5m, 1.5s), fractions as percentages, rates as they are.
func (t Threshold) format() string {
	switch {
	case t.Metric == MetricLatency:
		name := "p(" + strconv.FormatFloat(t.Quantile, 'g', -1, 64) + ")"
		switch t.Quantile {
		case 0:
			name = "min"
		case 100:
			name = "max"
		}
		return name + t.Op + dur(time.Duration(math.Round(t.Value*float64(time.Millisecond))))
	case t.Metric == MetricRecovery:
		return string(t.Metric) + t.Op + dur(time.Duration(math.Round(t.Value*float64(time.Second))))
	case t.Metric.fraction():
		// 10 significant digits: 100 × 0.07 is 7.000000000000001.
		return string(t.Metric) + t.Op + strconv.FormatFloat(100*t.Value, 'g', 10, 64) + "%"
	}
	return string(t.Metric) + t.Op + strconv.FormatFloat(t.Value, 'g', -1, 64)
}

// check reports what is wrong with a threshold built as a value (in a
// Plan literal), or nil.
func (t Threshold) check() error {
	switch {
	case !t.Metric.known():
		return fmt.Errorf("metric %q: want latency, rate, rps or one of %s", t.Metric, joinNames(phaseMetrics()))
	case !slices.Contains(operators(), t.Op):
		return fmt.Errorf("operator %q: want <, <=, >, >= or ==", t.Op)
	case !(t.Value >= 0) || math.IsInf(t.Value, 0):
		return fmt.Errorf("value %v: want a non-negative number", t.Value)
	case t.Metric == MetricLatency && !(t.Quantile >= 0 && t.Quantile <= 100):
		return fmt.Errorf("quantile %v: want 0 to 100", t.Quantile)
	}
	return nil
}

// PhaseOnly reports whether t is one of the guide's phase criteria, which
// only a plan's phases measure (not a single attack).
func (t Threshold) PhaseOnly() bool {
	return t.Metric != MetricLatency && t.Metric != MetricRate && t.Metric != MetricRPS
}

// Unit is the unit of t's value: ms, /s, s, or "" for a fraction.
func (t Threshold) Unit() string { return t.Metric.unit() }

// Check measures t against r. A run that sent no request passes nothing,
// and neither does a phase criterion (see PhaseOnly).
func (t Threshold) Check(r *Result) Verdict {
	if r.Requests == 0 || t.PhaseOnly() {
		return Verdict{Threshold: t}
	}
	actual := t.measure(r)
	return Verdict{Threshold: t, Actual: actual, Passed: t.holds(actual)}
}

// measure returns r's figure for a latency, rate or rps threshold.
func (t Threshold) measure(r *Result) float64 {
	switch t.Metric {
	case MetricRate:
		return fraction(r.Errors, r.Requests)
	case MetricRPS:
		return r.AchievedRPS
	}
	var us int64
	switch t.Quantile {
	case 0:
		us = r.Latency.Min()
	case 100:
		us = r.Latency.Max()
	default:
		us = r.Latency.ValueAtQuantile(t.Quantile)
	}
	return float64(us) / 1000
}

// holds reports whether actual meets t.
func (t Threshold) holds(actual float64) bool {
	switch t.Op {
	case "<":
		return actual < t.Value
	case "<=":
		return actual <= t.Value
	case ">":
		return actual > t.Value
	case ">=":
		return actual >= t.Value
	case "==":
		return actual == t.Value
	}
	return false
}
