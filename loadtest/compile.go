package loadtest

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// compile checks a decoded plan file and builds the Plan it describes:
// the file's own rules here (scaling, defaults of keys left out, the
// request mix), the rules every Plan obeys in checker.
func (c *compiler) compile(f *planFile) (*Plan, error) {
	p, err := c.settings(f)
	if err != nil {
		return nil, err
	}
	ch := &checker{errAt: c.errAt, maxRate: c.maxRate(), scale: p.Scale}
	if err := ch.settings(p); err != nil {
		return nil, err
	}
	if p.mix, err = c.compileMix(f, p.Target); err != nil {
		return nil, err
	}
	if err := c.compilePhases(f, p, ch); err != nil {
		return nil, err
	}
	if err := ch.split(p); err != nil {
		return nil, err
	}
	return p, nil
}

// settings reads the file's top-level keys into a Plan: the defaults of
// keys left out, the scale, and the durations scaled.
func (c *compiler) settings(f *planFile) (*Plan, error) {
	if c.opt.Slices < 0 || c.opt.Slice < 0 || (c.opt.Slices > 0 && c.opt.Slice >= c.opt.Slices) {
		return nil, &planError{file: c.file, msg: fmt.Sprintf("split %d/%d: want i/N with 1 ≤ i ≤ N", c.opt.Slice+1, c.opt.Slices)}
	}
	p := &Plan{Name: f.Name, Target: f.Target, Metrics: f.Metrics, Series: f.Series, Connections: f.Connections,
		CurrentRPS: f.CurrentRPS, PeakRPS: f.PeakRPS, AbortOnFailure: f.AbortOnFailure,
		Timeout: DefaultTimeout, Cooldown: DefaultCooldown, Scale: 1, slice: c.opt.Slice, slices: c.opt.Slices}
	if p.Name == "" {
		p.Name = strings.TrimSuffix(filepath.Base(c.file), filepath.Ext(c.file))
	}
	if f.Scale != nil {
		if !(*f.Scale > 0) || math.IsInf(*f.Scale, 0) {
			return nil, c.errAt("scale", "%v: want a positive factor such as 0.01", *f.Scale)
		}
		p.Scale = *f.Scale
	}
	if f.Timeout != nil {
		if *f.Timeout <= 0 {
			return nil, c.errAt("timeout", "%v: want a duration between 1ms and 1h", *f.Timeout)
		}
		p.Timeout = *f.Timeout
	}
	if f.Cooldown != nil {
		if *f.Cooldown < 0 {
			return nil, c.errAt("cooldown", "%v is negative", *f.Cooldown)
		}
		p.Cooldown = *f.Cooldown
	}
	var err error
	if p.Cooldown, err = c.scaled(p, p.Cooldown, "cooldown"); err != nil {
		return nil, err
	}
	return p, nil
}

// compilePhases builds and checks the file's phases in order; a skipped
// phase is checked too, and a later phase may name it.
func (c *compiler) compilePhases(f *planFile, p *Plan, ch *checker) error {
	if len(f.Phases) == 0 {
		return c.errAt("phases", "missing: want at least one phase")
	}
	earlier := map[string]bool{}
	for i := range f.Phases {
		d, path := &f.Phases[i], fmt.Sprintf("phases[%d]", i)
		ph := Phase{Name: d.Name, Kind: Kind(d.Kind), Pattern: Pattern(d.Pattern), Rate: d.Rate, To: d.To, Steps: d.Steps,
			Growth: d.Growth, Precision: d.Precision, Multiplier: d.Multiplier, Fraction: d.Fraction}
		if err := ch.identity(&ph, path, earlier); err != nil {
			return err
		}
		if err := c.phaseDurations(p, d, &ph, path); err != nil {
			return err
		}
		if err := c.phaseThresholds(d, &ph, path); err != nil {
			return err
		}
		if err := c.phaseCapacity(d, &ph, path); err != nil {
			return err
		}
		if err := ch.phase(p, &ph, path, earlier); err != nil {
			return err
		}
		earlier[ph.Name] = true
		if d.Skip {
			p.skipped = append(p.skipped, ph.Name)
			continue
		}
		p.Phases = append(p.Phases, c.sliced(p, ph))
	}
	if len(p.Phases) == 0 {
		return c.errAt("phases", "every phase is skipped")
	}
	return nil
}

// phaseDurations scales the phase's durations, with a file's defaults
// for the spike and the recovery it leaves out.
func (c *compiler) phaseDurations(p *Plan, d *phaseDef, ph *Phase, path string) error {
	spike, recovery := time.Duration(0), time.Duration(0)
	switch ph.Pattern {
	case PatternSpike:
		spike = SpikeLength
		if d.Spike != 0 {
			spike = d.Spike
		}
	case PatternBreaking:
		recovery = StressRecovery
		if d.Recovery != nil {
			if *d.Recovery < 0 {
				return c.errAt(path+".recovery", "%v is negative", *d.Recovery)
			}
			recovery = *d.Recovery
		}
	}
	for _, x := range []struct {
		to   *time.Duration
		d    time.Duration
		name string
	}{{&ph.Duration, d.Duration, "duration"}, {&ph.Step, d.Step, "step"}, {&ph.SpikeLength, spike, "spike"}, {&ph.Recovery, recovery, "recovery"}} {
		var err error
		if *x.to, err = c.scaled(p, x.d, path+"."+x.name); err != nil {
			return err
		}
	}
	return nil
}

// phaseThresholds parses the phase's probe and criteria. Criteria left
// out stay nil, the guide's for the phase's kind; `criteria: []` is none.
func (c *compiler) phaseThresholds(d *phaseDef, ph *Phase, path string) error {
	var err error
	if ph.Probe, err = c.thresholds(d.Probe, path+".probe"); err != nil {
		return err
	}
	ph.Criteria, err = c.thresholds(d.Criteria, path+".criteria")
	return err
}

// thresholds parses a list of thresholds, nil for nil.
func (c *compiler) thresholds(src []string, path string) ([]Threshold, error) {
	if src == nil {
		return nil, nil
	}
	out := make([]Threshold, 0, len(src))
	for i, s := range src {
		th, err := ParseThreshold(s)
		if err != nil {
			return nil, c.errAt(fmt.Sprintf("%s[%d]", path, i), "%v", strings.TrimPrefix(err.Error(), ErrBadThreshold.Error()+": "))
		}
		out = append(out, th)
	}
	return out, nil
}

// phaseCapacity reads a sustained phase's capacity: a rate, or the name
// of the earlier phase whose breaking point it takes.
func (c *compiler) phaseCapacity(d *phaseDef, ph *Phase, path string) error {
	if d.Capacity == "" {
		return nil
	}
	v, err := strconv.ParseFloat(d.Capacity, 64)
	switch {
	case err != nil:
		ph.CapacityFrom = d.Capacity
	case !(v > 0):
		return c.errAt(path+".capacity", "%v: want a positive rate whose fraction is at most %.0f/s", v, c.maxRate())
	default:
		ph.Capacity = v
	}
	return nil
}

// sliced returns ph for this generator's slice of a split run: its rates
// divided between the generators.
func (c *compiler) sliced(p *Plan, ph Phase) Phase {
	n := c.opt.Slices
	if n <= 1 {
		return ph
	}
	ph.Rate /= float64(n)
	ph.To /= float64(n)
	ph.Capacity /= float64(n)
	if ph.Criteria != nil {
		ph.Criteria = slices.Clone(ph.Criteria)
		for i, th := range ph.Criteria {
			ph.Criteria[i] = p.slicedThreshold(th)
		}
	}
	return ph
}

// scaled returns d times the plan's scale, or an error naming field when
// that is longer than a plan may run.
func (c *compiler) scaled(p *Plan, d time.Duration, field string) (time.Duration, error) {
	f := float64(d) * p.Scale
	if f > float64(maxDuration) {
		return 0, c.errAt(field, "%v after scale %v is over %v, the longest a plan may run", d, p.Scale, maxDuration)
	}
	return time.Duration(f), nil
}

// maxRate is the highest rate the plan may ask for: MaxRate for each of
// the generators it is split between.
func (c *compiler) maxRate() float64 { return MaxRate * float64(max(c.opt.Slices, 1)) }

// compileMix builds the weighted request mix: the variables, then the
// requests whose templates use them.
func (c *compiler) compileMix(f *planFile, base string) (*mix, error) {
	if len(f.Requests) == 0 {
		return nil, c.errAt("requests", "missing: want at least one request, e.g. - path: /")
	}
	m := &mix{base: base}
	for _, name := range sortedKeys(f.Variables) {
		g, cols, err := c.variable(name, f.Variables[name])
		if err != nil {
			return nil, err
		}
		m.names = append(m.names, name)
		m.gens = append(m.gens, g)
		m.columns = append(m.columns, cols)
	}
	var total float64
	for i := range f.Requests {
		req, err := c.request(m, &f.Requests[i], fmt.Sprintf("requests[%d]", i))
		if err != nil {
			return nil, err
		}
		total += req.weight
		m.requests = append(m.requests, req)
		m.cum = append(m.cum, total)
	}
	if !(total > 0) {
		return nil, c.errAt("requests", "every weight is 0")
	}
	return m, nil
}

// variable builds one variable's generator, and a CSV variable's columns.
func (c *compiler) variable(name string, v variableDef) (generator, []string, error) {
	path := "variables." + name
	if !isName(name) {
		return nil, nil, c.errAt(path, "a variable's name is letters, digits and _")
	}
	set := 0
	for _, b := range []bool{v.Sequence != nil, v.Uniform != nil, v.Zipf != nil, v.Choice != nil, v.CSV != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, nil, c.errAt(path, "want exactly one of sequence, uniform, zipf, choice or csv")
	}
	slice, n := int64(c.opt.Slice), int64(max(c.opt.Slices, 1))
	switch {
	case v.Sequence != nil:
		step := v.Sequence.Step
		if step == 0 {
			step = 1
		}
		return sequenceGen{start: v.Sequence.Start + slice*step, step: step * n, next: new(atomic.Int64)}, nil, nil
	case v.Uniform != nil:
		g, err := c.uniform(path+".uniform", v.Uniform.Min, v.Uniform.Max)
		return g, nil, err
	case v.Zipf != nil:
		g, err := c.zipf(path+".zipf", *v.Zipf)
		return g, nil, err
	case v.Choice != nil:
		if len(v.Choice) == 0 {
			return nil, nil, c.errAt(path+".choice", "an empty list")
		}
		return choiceGen{v.Choice}, nil, nil
	}
	return c.csv(path+".csv", v.CSV.File, v.CSV.Order)
}

func (c *compiler) uniform(path string, lo, hi int64) (generator, error) {
	if hi < lo {
		return nil, c.errAt(path+".max", "%d is below min %d", hi, lo)
	}
	if span := uint64(hi - lo); span >= maxSpan {
		return nil, c.errAt(path, "the range %d to %d is wider than 2^62", lo, hi)
	}
	return uniformGen{lo, hi}, nil
}

func (c *compiler) zipf(path string, z zipfDef) (generator, error) {
	if z.Max <= z.Min {
		return nil, c.errAt(path+".max", "%d must be above min %d", z.Max, z.Min)
	}
	if z.S == 0 {
		z.S = DefaultZipfS
	}
	if z.V == 0 {
		z.V = DefaultZipfV
	}
	switch {
	case uint64(z.Max-z.Min) >= maxSpan:
		return nil, c.errAt(path, "the range %d to %d is wider than 2^62", z.Min, z.Max)
	case !(z.S >= minZipfS && z.S <= 100):
		return nil, c.errAt(path+".s", "%v: the exponent must be from %v to 100", z.S, minZipfS)
	case !(z.V >= 1 && z.V <= 1e9):
		return nil, c.errAt(path+".v", "%v: want 1 to 1e9", z.V)
	}
	return zipfGen{z.Min, z.Max, z.S, z.V}, nil
}

func (c *compiler) csv(path, file, order string) (generator, []string, error) {
	if file == "" {
		return nil, nil, c.errAt(path+".file", "missing: want a CSV file with a header line")
	}
	if order != "" && order != "sequence" && order != "random" {
		return nil, nil, c.errAt(path+".order", "%q: want sequence or random", order)
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(c.dir, file)
	}
	columns, rows, err := readCSV(file)
	if err != nil {
		return nil, nil, c.errAt(path+".file", "%v", err)
	}
	g := csvGen{columns: columns, rows: rows, random: order == "random", next: new(atomic.Int64),
		slice: int64(c.opt.Slice), slices: int64(max(c.opt.Slices, 1))}
	return g, columns, nil
}

// request compiles one entry of the mix.
func (c *compiler) request(m *mix, r *requestDef, path string) (request, error) {
	req := request{name: r.Name, method: strings.ToUpper(r.Method), weight: 1}
	if req.method == "" {
		req.method = "GET"
	}
	if !isToken(req.method) {
		return req, c.errAt(path+".method", "%q is not an HTTP method", r.Method)
	}
	if r.Weight != nil {
		if !(*r.Weight >= 0) {
			return req, c.errAt(path+".weight", "%v: want a non-negative number", *r.Weight)
		}
		req.weight = *r.Weight
	}
	if !strings.HasPrefix(r.Path, "/") {
		return req, c.errAt(path+".path", "%q: want a path starting with /", r.Path)
	}
	var err error
	if req.path, err = c.template(m, r.Path, path+".path"); err != nil {
		return req, err
	}
	if req.name == "" {
		req.name = req.method + " " + r.Path
	}
	for _, k := range sortedKeys(r.Headers) {
		if !isToken(k) {
			return req, c.errAt(path+".headers."+k, "%q is not a header name", k)
		}
		t, err := c.template(m, r.Headers[k], path+".headers."+k)
		if err != nil {
			return req, err
		}
		req.headers = append(req.headers, header{k, t})
	}
	if r.Body != nil {
		t, err := c.template(m, *r.Body, path+".body")
		if err != nil {
			return req, err
		}
		req.body = &t
	}
	return req, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}

// template parses s and checks that every variable it names exists (and
// every CSV column).
func (c *compiler) template(m *mix, s, path string) (Template, error) {
	t, err := ParseTemplate(s)
	if err != nil {
		return t, c.errAt(path, "%v", strings.TrimPrefix(err.Error(), ErrBadTemplate.Error()+": "))
	}
	for _, p := range t.parts {
		if p.name == "" {
			continue
		}
		j := slices.Index(m.names, p.name)
		if j < 0 {
			have := "none"
			if len(m.names) > 0 {
				have = strings.Join(m.names, ", ")
			}
			return t, c.errAt(path, "{{%s}}: no variable %q under variables (the plan has %s)", p.name, p.name, have)
		}
		if p.field != "" {
			if m.columns[j] == nil {
				return t, c.errAt(path, "{{%s.%s}}: only a csv variable has columns", p.name, p.field)
			}
			if !slices.Contains(m.columns[j], p.field) {
				return t, c.errAt(path, "{{%s.%s}}: the CSV has no column %q (it has %s)", p.name, p.field, p.field, strings.Join(m.columns[j], ", "))
			}
		}
	}
	return t, nil
}
