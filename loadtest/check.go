package loadtest

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// checker checks the values of a Plan and fills in the defaults that its
// zero fields stand for: for ParsePlan, once a file is read (errors at the
// file's lines), and for Run, on a Plan however it was built (errors
// naming the Go field). Each pattern has a check of its own.
type checker struct {
	// errAt returns the error for the value at path, written with the
	// plan file's keys ("phases[1].rate").
	errAt   func(path, format string, args ...any) error
	maxRate float64 // the highest rate the plan may ask for
	scale   float64 // what a file's durations were multiplied by, for messages
}

// checked returns a copy of p with the defaults of its zero fields, or an
// error naming the field that cannot run. Run calls it, so that a Plan
// built as a literal, or changed after ParsePlan, is held to the same
// rules as a file.
func (p *Plan) checked() (*Plan, error) {
	q := *p
	q.Phases = slices.Clone(p.Phases)
	if q.Name == "" {
		q.Name = "plan"
	}
	c := &checker{errAt: fieldError, maxRate: MaxRate * q.slicesOrOne(), scale: 1}
	if err := c.settings(&q); err != nil {
		return nil, err
	}
	if q.mix == nil && len(q.Requests) == 0 {
		q.Requests = []Target{{Method: http.MethodGet, URL: q.Target + "/"}}
	}
	if len(q.Phases) == 0 {
		return nil, c.errAt("phases", "missing: want at least one phase")
	}
	earlier := map[string]bool{}
	for _, name := range q.skipped {
		earlier[name] = true
	}
	for i := range q.Phases {
		ph, path := &q.Phases[i], fmt.Sprintf("phases[%d]", i)
		if err := c.identity(ph, path, earlier); err != nil {
			return nil, err
		}
		if err := c.phase(&q, ph, path, earlier); err != nil {
			return nil, err
		}
		earlier[ph.Name] = true
	}
	if err := c.split(&q); err != nil {
		return nil, err
	}
	return &q, nil
}

// fieldError is the error for a bad value of a Plan built in Go: path is
// turned into the Go field's name (phases[1].rate into Phases[1].Rate).
func fieldError(path, format string, args ...any) error {
	return &planError{path: goPath(path), msg: fmt.Sprintf(format, args...)}
}

// goPath writes a plan file's key path with the Go fields' names.
func goPath(path string) string {
	fields := map[string]string{
		"target": "Target", "targets": "Targets", "requests": "Requests", "url": "URL", "method": "Method", "metrics": "Metrics",
		"connections": "Connections", "timeout": "Timeout", "cooldown": "Cooldown", "current_rps": "CurrentRPS",
		"peak_rps": "PeakRPS", "phases": "Phases", "name": "Name", "kind": "Kind", "pattern": "Pattern",
		"rate": "Rate", "to": "To", "steps": "Steps", "duration": "Duration", "step": "Step", "growth": "Growth",
		"precision": "Precision", "probe": "Probe", "recovery": "Recovery", "multiplier": "Multiplier",
		"spike": "SpikeLength", "fraction": "Fraction", "capacity": "Capacity", "criteria": "Criteria",
	}
	parts := strings.Split(path, ".")
	for i, part := range parts {
		key, index, indexed := strings.Cut(part, "[")
		if f, ok := fields[key]; ok {
			key = f
		}
		if indexed {
			key += "[" + index
		}
		parts[i] = key
	}
	return strings.Join(parts, ".")
}

func (c *checker) badRate(v float64) bool { return badRate(v, c.maxRate) }

// badRate reports whether v is not a rate that may be asked for: negative,
// not a number, or over limit. 0 means "not given".
func badRate(v, limit float64) bool { return !(v >= 0 && v <= limit) }

// afterScale is " after scale S" for the message about a scaled duration.
func (c *checker) afterScale() string {
	if c.scale == 1 {
		return ""
	}
	return fmt.Sprintf(" after scale %v", c.scale)
}

// settings checks the plan's top-level values and fills in the defaults
// of the connections and the timeout.
func (c *checker) settings(p *Plan) error {
	switch {
	case p.Target == "":
		return c.errAt("target", "missing: want the service's base URL, e.g. http://127.0.0.1:8080")
	case !isHTTPURL(p.Target):
		return c.errAt("target", "%q is not an http:// or https:// URL with a host", p.Target)
	case p.Metrics != "" && !isHTTPURL(p.Metrics):
		return c.errAt("metrics", "%q is not an http:// or https:// URL with a host", p.Metrics)
	}
	p.Target = strings.TrimSuffix(p.Target, "/")
	switch {
	case p.Connections < 0 || p.Connections > MaxConnections:
		return c.errAt("connections", "%d: want 1 to %d requests in flight", p.Connections, MaxConnections)
	case p.Timeout < 0 || p.Timeout > maxLatency:
		return c.errAt("timeout", "%v: want a duration between 1ms and 1h", p.Timeout)
	case p.Cooldown < 0 || p.Cooldown > maxDuration:
		return c.errAt("cooldown", "%v%s: want a pause from 0 to %v", p.Cooldown, c.afterScale(), maxDuration)
	case c.badRate(p.CurrentRPS):
		return c.errAt("current_rps", "%v: want requests per second, 0 to %.0f", p.CurrentRPS, c.maxRate)
	case c.badRate(p.PeakRPS):
		return c.errAt("peak_rps", "%v: want requests per second, 0 to %.0f", p.PeakRPS, c.maxRate)
	case p.PeakRPS > 0 && p.PeakRPS < p.CurrentRPS:
		return c.errAt("peak_rps", "%v is below the current rate, %v: the peak is the highest production rate", p.PeakRPS, p.CurrentRPS)
	}
	if p.Connections == 0 {
		p.Connections = DefaultConnections
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultTimeout
	}
	for i, t := range p.Requests {
		if field, msg := targetError(t); msg != "" {
			return c.errAt(fmt.Sprintf("requests[%d].%s", i, field), "%s", msg)
		}
	}
	return nil
}

// isHTTPURL reports whether s is an http:// or https:// URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// targetError says which field of t is wrong and why; "" when none is.
func targetError(t Target) (field, msg string) {
	if !isHTTPURL(t.URL) {
		return "url", fmt.Sprintf("%q is not an http:// or https:// URL with a host", t.URL)
	}
	if t.Method != "" && !isToken(t.Method) {
		return "method", fmt.Sprintf("%q is not an HTTP method", t.Method)
	}
	return "", ""
}

// identity checks the phase's name against the earlier phases' and fills
// in its kind and pattern when they are not given.
func (c *checker) identity(ph *Phase, path string, earlier map[string]bool) error {
	switch {
	case ph.Name == "":
		return c.errAt(path+".name", "missing: every phase needs a name")
	case earlier[ph.Name]:
		return c.errAt(path+".name", "%q: a second phase of that name", ph.Name)
	}
	if ph.Kind == "" {
		ph.Kind = KindCustom
		if k := Kind(ph.Name); slices.Contains(kinds(), k) {
			ph.Kind = k
		}
	}
	if !slices.Contains(kinds(), ph.Kind) {
		return c.errAt(path+".kind", "%q: want %s", ph.Kind, joinNames(kinds()))
	}
	if ph.Pattern == "" {
		ph.Pattern = ph.Kind.pattern()
	}
	if !slices.Contains(patterns(), ph.Pattern) {
		return c.errAt(path+".pattern", "%q: want one of %s", ph.Pattern, joinNames(patterns()))
	}
	return nil
}

// phase checks a phase whose identity is settled: its rates and
// durations, what its pattern needs, and its criteria.
func (c *checker) phase(p *Plan, ph *Phase, path string, earlier map[string]bool) error {
	if err := c.rates(p, ph, path); err != nil {
		return err
	}
	if err := c.durations(ph, path); err != nil {
		return err
	}
	var err error
	switch ph.Pattern {
	case PatternConstant:
		err = c.needDuration(ph, path)
	case PatternRamp:
		err = c.ramp(ph, path)
	case PatternSteps:
		err = c.steps(ph, path)
	case PatternBreaking:
		err = c.breaking(ph, path)
	case PatternSpike:
		err = c.spike(ph, path)
	case PatternSustained:
		err = c.sustained(ph, path, earlier)
	}
	if err != nil {
		return err
	}
	if ph.Pattern != PatternSustained && (ph.Capacity != 0 || ph.CapacityFrom != "") {
		return c.errAt(path+".capacity", "only a sustained phase takes a capacity")
	}
	for i, th := range ph.Criteria {
		if err := th.check(); err != nil {
			return c.errAt(fmt.Sprintf("%s.criteria[%d]", path, i), "%v", err)
		}
	}
	return nil
}

// rates checks the phase's rate (the plan's current rate when not given)
// and its To.
func (c *checker) rates(p *Plan, ph *Phase, path string) error {
	if ph.Rate == 0 && ph.Pattern != PatternSustained {
		ph.Rate = p.CurrentRPS
	}
	switch {
	case c.badRate(ph.Rate):
		return c.errAt(path+".rate", "%v: want requests per second, 0 to %.0f", ph.Rate, c.maxRate)
	case ph.Rate == 0 && ph.Pattern != PatternSustained && ph.Pattern != PatternRamp:
		return c.errAt(path+".rate", "missing: want requests per second (or current_rps at the top)")
	case c.badRate(ph.To):
		return c.errAt(path+".to", "%v: want requests per second, 0 to %.0f", ph.To, c.maxRate)
	}
	return nil
}

// durations checks that none of the phase's durations is negative or
// longer than a plan may run.
func (c *checker) durations(ph *Phase, path string) error {
	for _, x := range []struct {
		d    time.Duration
		name string
	}{{ph.Duration, "duration"}, {ph.Step, "step"}, {ph.SpikeLength, "spike"}, {ph.Recovery, "recovery"}} {
		switch {
		case x.d < 0:
			return c.errAt(path+"."+x.name, "%v%s is negative", x.d, c.afterScale())
		case x.d > maxDuration:
			return c.errAt(path+"."+x.name, "%v is over %v, the longest a plan may run", x.d, maxDuration)
		}
	}
	return nil
}

// needDuration checks that the phase runs for at least a second: constant,
// and the start of every pattern but breaking.
func (c *checker) needDuration(ph *Phase, path string) error {
	switch {
	case ph.Duration == 0:
		return c.errAt(path+".duration", "missing: want how long the phase runs, e.g. 10m")
	case ph.Duration < minPhaseTime:
		return c.errAt(path+".duration", "%v%s is under a second", ph.Duration, c.afterScale())
	}
	return nil
}

// ramp checks a ramp: a duration and the rate it ends at.
func (c *checker) ramp(ph *Phase, path string) error {
	if err := c.needDuration(ph, path); err != nil {
		return err
	}
	if ph.To <= 0 {
		return c.errAt(path+".to", "missing: want the rate the %s ends at", ph.Pattern)
	}
	return nil
}

// steps checks steps: a ramp whose every step lasts at least a second.
func (c *checker) steps(ph *Phase, path string) error {
	if err := c.ramp(ph, path); err != nil {
		return err
	}
	if ph.Steps < 0 {
		return c.errAt(path+".steps", "%d is negative", ph.Steps)
	}
	if ph.Steps == 0 {
		ph.Steps = DefaultStepsPerRamp
	}
	if ph.Duration/time.Duration(ph.Steps) < minPhaseTime {
		return c.errAt(path+".steps", "%d steps in %v: each step must last at least a second", ph.Steps, ph.Duration)
	}
	return nil
}

// breaking checks a breaking search: its probes' length, growth,
// precision, ceiling and criteria.
func (c *checker) breaking(ph *Phase, path string) error {
	switch {
	case ph.Step == 0:
		return c.errAt(path+".step", "missing: want how long each probe of the search runs, e.g. 2m")
	case ph.Step < minPhaseTime:
		return c.errAt(path+".step", "%v%s is under a second", ph.Step, c.afterScale())
	}
	if ph.Growth == 0 {
		ph.Growth = DefaultGrowth
	}
	if !(ph.Growth > 1) || math.IsInf(ph.Growth, 0) {
		return c.errAt(path+".growth", "%v: the rate must grow, want a factor above 1", ph.Growth)
	}
	if ph.Precision == 0 {
		ph.Precision = DefaultBisectPrecision
	}
	if !(ph.Precision > 0 && ph.Precision < 1) {
		return c.errAt(path+".precision", "%v: want a fraction such as 0.05", ph.Precision)
	}
	if ph.To == 0 {
		ph.To = ph.Rate * defaultCeiling
	}
	ph.To = min(ph.To, c.maxRate)
	if ph.To <= ph.Rate {
		return c.errAt(path+".to", "%v: the highest rate to try must be above the start, %v", ph.To, ph.Rate)
	}
	if len(ph.Probe) == 0 {
		ph.Probe = []Threshold{latencyCriterion(99, "<", BaselineP99), criterion(MetricRate, "<", probeErrorRate)}
	}
	for i, th := range ph.Probe {
		at := fmt.Sprintf("%s.probe[%d]", path, i)
		if err := th.check(); err != nil {
			return c.errAt(at, "%v", err)
		}
		if th.PhaseOnly() {
			return c.errAt(at, "%q: a probe is judged on its latency, error rate or rps", th.Source)
		}
	}
	return nil
}

// spike checks a spike: its multiplier, the spike's rate, and a spike
// that leaves at least a second before and after it.
func (c *checker) spike(ph *Phase, path string) error {
	if err := c.needDuration(ph, path); err != nil {
		return err
	}
	if ph.Multiplier == 0 {
		ph.Multiplier = SpikeMultiplier
	}
	if !(ph.Multiplier > 1) || math.IsInf(ph.Multiplier, 0) {
		return c.errAt(path+".multiplier", "%v: a spike multiplies the rate by more than 1", ph.Multiplier)
	}
	if c.badRate(ph.Rate * ph.Multiplier) {
		return c.errAt(path+".multiplier", "%v: the spike's rate, %v × %v, is over %.0f/s", ph.Multiplier, ph.Rate, ph.Multiplier, c.maxRate)
	}
	if ph.SpikeLength == 0 {
		ph.SpikeLength = ph.Duration / 3
	}
	switch {
	case ph.SpikeLength > ph.Duration*3/4:
		return c.errAt(path+".spike", "%v: the spike must leave a quarter of the duration (%v) for before and after", ph.SpikeLength, ph.Duration)
	case ph.SpikeLength < minPhaseTime || (ph.Duration-ph.SpikeLength)/2 < minPhaseTime:
		return c.errAt(path+".spike", "%v in %v: the spike, and the calm before and after it, must last at least a second each", ph.SpikeLength, ph.Duration)
	}
	return nil
}

// sustained checks a sustained phase: its fraction of a capacity given as
// a rate, or measured by an earlier breaking phase.
func (c *checker) sustained(ph *Phase, path string, earlier map[string]bool) error {
	if err := c.needDuration(ph, path); err != nil {
		return err
	}
	if ph.Fraction == 0 {
		ph.Fraction = EnduranceFraction
	}
	if !(ph.Fraction > 0 && ph.Fraction <= 10) {
		return c.errAt(path+".fraction", "%v: want a fraction of capacity such as 0.8", ph.Fraction)
	}
	switch {
	case ph.Capacity != 0 && ph.CapacityFrom != "":
		return c.errAt(path+".capacity", "%v and %q: want a rate or an earlier phase, not both", ph.Capacity, ph.CapacityFrom)
	case ph.CapacityFrom != "" && !earlier[ph.CapacityFrom]:
		return c.errAt(path+".capacity", "%q is neither a rate nor an earlier phase", ph.CapacityFrom)
	case ph.CapacityFrom != "":
		return nil
	case ph.Capacity == 0:
		return c.errAt(path+".capacity", "missing: want requests per second, or the name of an earlier breaking phase")
	case !(ph.Capacity > 0) || c.badRate(ph.Capacity*ph.Fraction):
		return c.errAt(path+".capacity", "%v: want a positive rate whose fraction is at most %.0f/s", ph.Capacity, c.maxRate)
	}
	return nil
}

// split refuses, in a split run, the phases that adapt to what they
// measure.
func (c *checker) split(p *Plan) error {
	if p.slices <= 1 {
		return nil
	}
	for _, ph := range p.Phases {
		if ph.Pattern == PatternBreaking || ph.Pattern == PatternSustained && ph.CapacityFrom != "" {
			return c.errAt("phases", "phase %q: a %s phase adapts to what it measures, so %d generators would each decide on their own slice; give it fixed rates (pattern steps, or capacity as a number) to split the plan",
				ph.Name, ph.Pattern, p.slices)
		}
	}
	return nil
}
