package loadtest

import (
	"errors"
	"fmt"
	"math"
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
//	recovery<5m             time until p99 is back within 10 % of before (breaking, spike)
//	overload_goodput>=90%   successful responses a second while a breaking search
//	                        overloads the target, over its breaking point: the guide's
//	                        "no cascading failures" (a service that collapses or
//	                        fails everything when pushed past its knee scores low)
//	latency_increase<50%    p99's rise: spike over before (spike), last tenth over first (others)
//	spike_error_rate<1%     the error rate during a spike
//	memory_growth<5%        the target's resident memory, last tenth over first (needs metrics)
//	cpu_growth<10%          the target's CPU use, last tenth over first (needs metrics)
//
// Fractions may be written as percentages (rate<0.1%).
// Operators are <, <=, >, >= and ==; latencies take a unit (us, µs, ms, s).
type Threshold struct {
	// Source is the text it was parsed from.
	Source string
	// Metric is "latency", "rate", "rps" or one of the phase criteria's
	// names; Quantile (0–100) applies to latency.
	Metric   string
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
	state := "PASSED"
	if !v.Passed {
		state = "FAILED"
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
	for _, op := range []string{"<=", ">=", "==", "<", ">"} {
		if strings.HasPrefix(rest, op) {
			t.Op, rest = op, strings.TrimSpace(rest[len(op):])
			break
		}
	}
	if t.Op == "" {
		return t, fmt.Errorf("%w: %q: operator must be <, <=, >, >= or ==", ErrBadThreshold, s)
	}
	switch {
	case name == "rps" || name == "breaking_point":
		t.Metric = name
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil || !(v >= 0) || math.IsInf(v, 0) {
			return t, fmt.Errorf("%w: %q: %s takes a non-negative number of requests per second, got %q", ErrBadThreshold, s, name, rest)
		}
		t.Value = v
		return t, nil
	case name == "recovery":
		t.Metric = name
		d, err := parseLatency(rest)
		if err != nil {
			return t, fmt.Errorf("%w: %q: recovery takes a duration such as 5m: %v", ErrBadThreshold, s, err)
		}
		t.Value = d.Seconds()
		return t, nil
	case fractionMetrics[name]:
		t.Metric = name
		v, err := parseFraction(rest)
		if err != nil {
			return t, fmt.Errorf("%w: %q: %s takes a fraction such as 0.01 or a percentage such as 1%%, got %q", ErrBadThreshold, s, name, rest)
		}
		if (name == "rate" || name == "spike_error_rate") && v > 1 {
			return t, fmt.Errorf("%w: %q: %s is a fraction of requests, at most 1", ErrBadThreshold, s, name)
		}
		t.Value = v
		return t, nil
	case name == "med":
		t.Quantile = 50
	case name == "min":
		t.Quantile = 0
	case name == "max":
		t.Quantile = 100
	case strings.HasPrefix(name, "p(") && strings.HasSuffix(name, ")"):
		q, err := strconv.ParseFloat(name[2:len(name)-1], 64)
		if err != nil || q <= 0 || q > 100 {
			return t, fmt.Errorf("%w: %q: percentile %q must be a number in (0, 100]", ErrBadThreshold, s, name[2:len(name)-1])
		}
		t.Quantile = q
	default:
		return t, fmt.Errorf("%w: %q: unknown metric %q (want p(N), med, min, max, rate, rps, breaking_point, recovery, overload_goodput, latency_increase, spike_error_rate, memory_growth or cpu_growth)", ErrBadThreshold, s, name)
	}
	t.Metric = "latency"
	d, err := parseLatency(rest)
	if err != nil {
		return t, fmt.Errorf("%w: %q: %v", ErrBadThreshold, s, err)
	}
	t.Value = float64(d) / float64(time.Millisecond)
	return t, nil
}

// fractionMetrics are the metrics whose value is a fraction, written as
// 0.05 or 5%.
var fractionMetrics = map[string]bool{
	"rate": true, "spike_error_rate": true, "latency_increase": true, "memory_growth": true, "cpu_growth": true,
	"overload_goodput": true,
}

func parseFraction(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("not a non-negative number")
	}
	if pct {
		v /= 100
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

// PhaseOnly reports whether t is one of the guide's phase criteria, which
// only a plan's phases measure (not a single attack).
func (t Threshold) PhaseOnly() bool {
	return t.Metric != "latency" && t.Metric != "rate" && t.Metric != "rps"
}

// Unit is the unit of t's value: ms, /s, s, or "" for a fraction.
func (t Threshold) Unit() string {
	switch t.Metric {
	case "latency":
		return "ms"
	case "rps", "breaking_point":
		return "/s"
	case "recovery":
		return "s"
	}
	return ""
}

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
	case "rate":
		if r.Requests == 0 {
			return 0
		}
		return float64(r.Errors) / float64(r.Requests)
	case "rps":
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
