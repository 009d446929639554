package loadtest

import (
	"fmt"
	"slices"
	"strings"
)

// judge checks each criterion: latency, rate and rps against the phase's
// totals, the rest against its measures.
func judge(criteria []Threshold, total *Result, m map[Measure]float64, ph Phase) []CriterionVerdict {
	out := make([]CriterionVerdict, 0, len(criteria))
	for _, th := range criteria {
		out = append(out, judgeOne(th, total, m, ph))
	}
	return out
}

// judgeOne checks one criterion.
func judgeOne(th Threshold, total *Result, m map[Measure]float64, ph Phase) CriterionVerdict {
	v := CriterionVerdict{Criterion: th.Source, Unit: th.Unit()}
	_, broke := m[MeasureFirstFailingRate]
	nothingPassed := broke && m[MeasureBreakingPoint] == 0
	switch {
	case nothingPassed && (th.Metric == MetricRecovery || th.Metric == MetricOverloadGoodput):
		v.Status, v.Unmeasured = StatusFailed, true
		v.Detail = "no probe passed: the target handled no rate, so it could neither degrade gracefully nor recover"
		return v
	case !th.PhaseOnly():
		if total.Requests == 0 {
			v.Status, v.Detail = StatusError, "no request completed"
			return v
		}
		v.Actual = th.measure(total)
	default:
		val, ok := m[th.Metric.measure()]
		if !ok {
			v.Status, v.Detail = StatusError, missing(th.Metric, ph, m)
			return v
		}
		v.Actual, v.Detail = val, detail(th.Metric, m)
		if th.Metric == MetricRecovery && m[MeasureNotRecovered] == 1 {
			v.Status = StatusFailed
			return v
		}
	}
	v.Status = StatusFailed
	if th.holds(v.Actual) {
		v.Status = StatusPassed
	}
	return v
}

// detail says what a phase criterion's figure alone does not.
func detail(metric Metric, m map[Measure]float64) string {
	switch metric {
	case MetricBreakingPoint:
		if m[MeasureBreakingPoint] == 0 {
			return fmt.Sprintf("every probe failed, down to %g/s", m[MeasureFirstFailingRate])
		}
		if up, ok := m[MeasureNoFailureUpTo]; ok {
			return fmt.Sprintf("no probe failed up to %g/s, the highest the phase tries", up)
		}
	case MetricRecovery:
		if m[MeasureNotRecovered] == 1 {
			return fmt.Sprintf("p99 was not back within %.0f%% (or %gms) of the calm seconds' typical %.2fms in the %.0fs watched",
				100*recoveryMargin, recoverySlackMS, m[MeasureBaselineP99], m[MeasureRecoverySeconds])
		}
	}
	return ""
}

// missing says why a criterion could not be measured in a phase.
func missing(metric Metric, ph Phase, m map[Measure]float64) string {
	_, broke := m[MeasureFirstFailingRate]
	switch metric {
	case MetricMemoryGrowth, MetricCPUGrowth:
		return "needs the target's metrics: give the plan a metrics URL (its Prometheus /metrics with process_ metrics)"
	case MetricBreakingPoint:
		return "only a breaking phase measures it"
	case MetricRecovery:
		switch {
		case ph.Pattern == PatternBreaking && !broke:
			return "nothing broke, so there was nothing to recover from"
		case ph.Pattern == PatternBreaking:
			return "the phase watched no recovery (its recovery is 0)"
		}
		return "only breaking and spike phases measure it"
	case MetricSpikeErrorRate:
		return "only a spike phase measures it"
	case MetricOverloadGoodput:
		if ph.Pattern == PatternBreaking {
			return "nothing broke, so nothing was overloaded"
		}
		return "only a breaking phase measures it"
	case MetricLatencyIncrease:
		return "the phase is too short to compare its first seconds with its last"
	}
	return "not measured"
}

func phaseStatus(vs []CriterionVerdict) Status {
	status := StatusPassed
	for _, v := range vs {
		switch v.Status {
		case StatusFailed:
			return StatusFailed
		case StatusError:
			status = StatusError
		}
	}
	return status
}

// assess sets the overall assessment from the phases.
func (rep *Report) assess() {
	a := &rep.Assessment
	a.Passed, a.Failed, a.Errored = 0, 0, 0
	var findings []string
	var failedNames []string
	for _, ph := range rep.Phases {
		switch ph.Status {
		case StatusPassed:
			a.Passed++
		case StatusFailed:
			a.Failed++
			failedNames = append(failedNames, ph.Name)
		default:
			a.Errored++
		}
		findings = append(findings, phaseFindings(ph)...)
	}
	// Keep findings added while running (an abort), after the phases'.
	a.Findings = append(findings, slices.DeleteFunc(a.Findings, func(s string) bool { return slices.Contains(findings, s) })...)
	n := len(rep.Phases)
	switch {
	case n == 0:
		a.Status, a.Summary = StatusError, "no phase ran"
	case a.Failed > 0:
		a.Status = StatusFailed
		a.Summary = fmt.Sprintf("%d of %d phases passed; %s failed", a.Passed, n, strings.Join(failedNames, ", "))
	case a.Errored > 0:
		a.Status = StatusError
		a.Summary = fmt.Sprintf("%d of %d phases passed; %d could not be measured", a.Passed, n, a.Errored)
	default:
		a.Status = StatusPassed
		a.Summary = fmt.Sprintf("all %d phases passed", n)
	}
}

// phaseFindings says what each of a phase's problems means.
func phaseFindings(ph PhaseReport) []string {
	var findings []string
	if ph.Error != "" {
		findings = append(findings, fmt.Sprintf("%s: %s", ph.Name, ph.Error))
	}
	for _, v := range ph.Verdicts {
		if v.Status == StatusPassed {
			continue
		}
		f := fmt.Sprintf("%s: %s %s", ph.Name, v.Criterion, v.Status)
		if v.Status != StatusError {
			f += fmt.Sprintf(" (actual %s)", formatActual(v))
		}
		if v.Detail != "" {
			f += ": " + v.Detail
		}
		findings = append(findings, f)
	}
	return findings
}

func formatActual(v CriterionVerdict) string {
	if v.Status == StatusError || v.Unmeasured {
		return "—" // not measured
	}
	if v.Unit == "" {
		return fmt.Sprintf("%.2f%%", 100*v.Actual)
	}
	return fmt.Sprintf("%.4g%s", v.Actual, v.Unit)
}
