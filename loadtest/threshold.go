package loadtest

import (
	"errors"
	"fmt"
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
// Operators are <, <=, >, >= and ==; latencies take a unit (us, µs, ms, s).
type Threshold struct {
	// Source is the text it was parsed from.
	Source string
	// Metric is "latency", "rate" or "rps"; Quantile (0–100) applies to
	// latency.
	Metric   string
	Quantile float64
	Op       string
	// Value is in milliseconds for latency, a fraction for rate, and
	// requests per second for rps.
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
	unit := ""
	switch v.Threshold.Metric {
	case "latency":
		unit = "ms"
	case "rps":
		unit = "/s"
	}
	return fmt.Sprintf("%s  %s (actual %s%s)", state, v.Threshold.Source, strconv.FormatFloat(v.Actual, 'g', 6, 64), unit)
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
	case name == "rate" || name == "rps":
		t.Metric = name
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil || v < 0 || v != v {
			return t, fmt.Errorf("%w: %q: %s takes a non-negative number, got %q", ErrBadThreshold, s, name, rest)
		}
		if name == "rate" && v > 1 {
			return t, fmt.Errorf("%w: %q: rate is a fraction of requests, at most 1", ErrBadThreshold, s)
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
		return t, fmt.Errorf("%w: %q: unknown metric %q (want p(N), med, min, max, rate or rps)", ErrBadThreshold, s, name)
	}
	t.Metric = "latency"
	d, err := parseLatency(rest)
	if err != nil {
		return t, fmt.Errorf("%w: %q: %v", ErrBadThreshold, s, err)
	}
	t.Value = float64(d) / float64(time.Millisecond)
	return t, nil
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

// Check measures t against r. A run that sent no request passes nothing.
func (t Threshold) Check(r *Result) Verdict {
	if r.Requests == 0 {
		return Verdict{Threshold: t}
	}
	var actual float64
	switch t.Metric {
	case "rate":
		if r.Requests > 0 {
			actual = float64(r.Errors) / float64(r.Requests)
		}
	case "rps":
		actual = r.AchievedRPS
	default:
		var us int64
		switch t.Quantile {
		case 0:
			us = r.Latency.Min()
		case 100:
			us = r.Latency.Max()
		default:
			us = r.Latency.ValueAtQuantile(t.Quantile)
		}
		actual = float64(us) / 1000
	}
	var ok bool
	switch t.Op {
	case "<":
		ok = actual < t.Value
	case "<=":
		ok = actual <= t.Value
	case ">":
		ok = actual > t.Value
	case ">=":
		ok = actual >= t.Value
	case "==":
		ok = actual == t.Value
	}
	return Verdict{Threshold: t, Actual: actual, Passed: ok}
}
