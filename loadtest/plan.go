package loadtest

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"
)

// The guide's load-test strategy ("Load Testing Strategy",
// AmazonScaleLoadTesting.design_load_test_strategy), as the default plan's
// numbers.
const (
	DefaultCooldown            = 5 * time.Minute    // guide: a 5-minute cool-down between phases
	BaselineDuration           = time.Hour          // guide: baseline, 1 hour at current production levels
	BaselineP99                = "p(99)<100ms"      // guide: baseline p99 latency < 100 ms
	BaselineErrorRate          = "rate<0.001"       // guide: baseline error rate < 0.1 %
	StressDuration             = 2 * time.Hour      // guide: stress, 2 hours of gradual increase until failure
	StressRecovery             = 5 * time.Minute    // guide: recovery < 5 minutes after load reduction
	StressBreakingFactor       = 1.5                // guide: breaking point ≥ 1.5 × peak
	StressOverloadGoodput      = 0.9                // Strata: the guide's "no cascading failures" read as: pushed past its breaking point, the service still answers 90 % of that rate successfully
	SpikeDuration              = 30 * time.Minute   // guide: spike test, 30 minutes
	SpikeLength                = 10 * time.Minute   // guide: a sudden 10× increase for 10 minutes
	SpikeMultiplier            = 10                 // guide: 10×
	SpikeLatencyIncrease       = 0.5                // guide: < 50 % latency increase
	SpikeErrorRate             = 0.01               // guide: error rate during the spike < 1 %
	EnduranceDuration          = 24 * time.Hour     // guide: endurance, 24 hours
	EnduranceFraction          = 0.8                // guide: sustained at 80 % of capacity
	EnduranceMemoryGrowth      = 0.05               // guide: no memory growth > 5 % over 24 h
	EnduranceLatencyIncrease   = 0.1                // guide: < 10 % latency increase
	DefaultCPUGrowth           = 0.1                // Strata: "CPU utilisation stable" read as < 10 % growth, first tenth to last
	DefaultGrowth              = 1.5                // Strata: a breaking-point ramp multiplies the rate by this each step
	DefaultBisectPrecision     = 0.05               // Strata (the issue): bisect the knee to within 5 %
	DefaultStepsPerRamp        = 10                 // Strata: a steps pattern's steps when not given
	minZipfS                   = 1.01               // Strata: flatter than this, Zipf sampling by rejection slows to a crawl
	maxSpan                    = 1 << 62            // the widest range a uniform or zipf variable may draw from
	defaultCeiling             = 1024               // Strata: a breaking search stops at this many times its start rate when no "to" is given
	DefaultZipfS, DefaultZipfV = 1.1, 1.0           // Strata: a mild Zipf skew when a plan gives none
	MaxRate                    = 10_000_000         // Strata: requests per second one generator may be asked for (the fastest sends about 70,000 here); more is a typo, or a job for --split (a plan split N ways may ask N times as much)
	MaxConnections             = 65_536             // Strata: one source address has at most 64 Ki ports towards one server; more needs --split over several generators
	maxDuration                = 7 * 24 * time.Hour // Strata: seven times the guide's longest phase (endurance, 24 h); a phase keeps a point a second
)

// ErrBadPlan is returned (wrapped) for a plan that cannot run; the message
// names the file, the line and the field.
var ErrBadPlan = errors.New("loadtest: bad plan")

// Patterns a phase can follow.
var patterns = []string{"constant", "ramp", "steps", "breaking", "spike", "sustained"}

// Plan is a load test: a target, a weighted request mix, and phases that
// run in turn with a cool-down between them. ParsePlan builds one from
// YAML; see `strata loadtest init` for a documented example.
type Plan struct {
	Name string
	// Target is the base URL that requests' paths are appended to.
	Target string
	// Metrics is the target's Prometheus endpoint, scraped every second
	// of a phase for its CPU, memory and goroutines; "" for none. Series
	// are further metric names to record from it (summed over labels).
	Metrics string
	Series  []string
	// Connections bounds requests in flight; Timeout bounds one request.
	Connections int
	Timeout     time.Duration
	// Cooldown is the pause between phases, scaled.
	Cooldown time.Duration
	// Scale multiplies every duration of the plan: 0.01 runs the guide's
	// 1-hour baseline in 36 s.
	Scale float64
	// CurrentRPS and PeakRPS are the production rates the guide's
	// criteria refer to.
	CurrentRPS, PeakRPS float64
	// AbortOnFailure stops the run after the first phase that fails.
	AbortOnFailure bool
	Phases         []Phase

	mix           *mix
	slice, slices int // this generator's slice of a split run (from 0), and how many
}

func (p *Plan) slicesOrOne() float64 { return float64(max(p.slices, 1)) }

// slicedThreshold returns th for one slice of a split run: a rate divided
// by the slices, its Source (what the report shows and merge re-reads)
// left whole.
func (p *Plan) slicedThreshold(th Threshold) Threshold {
	if th.Metric == "rps" || th.Metric == "breaking_point" {
		th.Value /= p.slicesOrOne()
	}
	return th
}

// offset places this generator's sends between the other slices'.
func (p *Plan) offset() float64 {
	if p.slices <= 1 {
		return 0
	}
	return float64(p.slice) / float64(p.slices)
}

// Phase is one phase of a plan, its durations already scaled.
type Phase struct {
	Name string
	// Kind is baseline, stress, spike, endurance or custom: what the
	// report calls it. Pattern is how its rate moves: constant, ramp,
	// steps, breaking, spike or sustained.
	Kind, Pattern string
	// Rate is the constant rate, or where a ramp, steps, breaking search
	// or spike starts; To is where a ramp or steps end, or the highest
	// rate a breaking search tries.
	Rate, To float64
	Steps    int
	Duration time.Duration
	// Breaking search: each probe runs Step at one rate; the rate grows by
	// Growth until a probe fails Probe, then is bisected to within
	// Precision; then an overload Step at the first failing rate, and the
	// load drops back to Rate for up to Recovery.
	Step      time.Duration
	Growth    float64
	Precision float64
	Probe     []Threshold
	Recovery  time.Duration
	// Spike: Rate, then Rate × Multiplier for SpikeLength, then Rate, in
	// Duration all told.
	Multiplier  float64
	SpikeLength time.Duration
	// Sustained: Fraction of Capacity, or of the breaking point the phase
	// named CapacityFrom measured.
	Fraction     float64
	Capacity     float64
	CapacityFrom string
	Criteria     []Threshold
}

// planFile is the YAML as written.
type planFile struct {
	Name           string                 `yaml:"name"`
	Target         string                 `yaml:"target"`
	Metrics        string                 `yaml:"metrics"`
	Series         []string               `yaml:"series"`
	Connections    int                    `yaml:"connections"`
	Timeout        *time.Duration         `yaml:"timeout"`
	Cooldown       *time.Duration         `yaml:"cooldown"`
	Scale          *float64               `yaml:"scale"`
	CurrentRPS     float64                `yaml:"current_rps"`
	PeakRPS        float64                `yaml:"peak_rps"`
	AbortOnFailure bool                   `yaml:"abort_on_failure"`
	Variables      map[string]variableDef `yaml:"variables"`
	Requests       []requestDef           `yaml:"requests"`
	Phases         []phaseDef             `yaml:"phases"`
}

type variableDef struct {
	Sequence *struct {
		Start int64 `yaml:"start"`
		Step  int64 `yaml:"step"`
	} `yaml:"sequence"`
	Uniform *struct {
		Min int64 `yaml:"min"`
		Max int64 `yaml:"max"`
	} `yaml:"uniform"`
	Zipf *struct {
		Min int64   `yaml:"min"`
		Max int64   `yaml:"max"`
		S   float64 `yaml:"s"`
		V   float64 `yaml:"v"`
	} `yaml:"zipf"`
	Choice []string `yaml:"choice"`
	CSV    *struct {
		File  string `yaml:"file"`
		Order string `yaml:"order"`
	} `yaml:"csv"`
}

type requestDef struct {
	Name    string            `yaml:"name"`
	Weight  *float64          `yaml:"weight"`
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Headers map[string]string `yaml:"headers"`
	Body    *string           `yaml:"body"`
}

type phaseDef struct {
	Name         string         `yaml:"name"`
	Kind         string         `yaml:"kind"`
	Pattern      string         `yaml:"pattern"`
	Rate         float64        `yaml:"rate"`
	To           float64        `yaml:"to"`
	Steps        int            `yaml:"steps"`
	Duration     time.Duration  `yaml:"duration"`
	Step         time.Duration  `yaml:"step"`
	Growth       float64        `yaml:"growth"`
	Precision    float64        `yaml:"precision"`
	Probe        []string       `yaml:"probe"`
	Recovery     *time.Duration `yaml:"recovery"`
	Multiplier   float64        `yaml:"multiplier"`
	Spike        time.Duration  `yaml:"spike"`
	Fraction     float64        `yaml:"fraction"`
	Capacity     string         `yaml:"capacity"`
	Criteria     []string       `yaml:"criteria"`
	Skip         bool           `yaml:"skip"`
	planFileLine int
}

// ParseOptions says where a plan came from and how to change it.
type ParseOptions struct {
	// File names the plan in messages; Dir is where its CSV files'
	// relative paths start.
	File, Dir string
	// Set are overrides applied before the plan is read: "key=value" for
	// a top-level key, "phase.key=value" for a phase's (value in YAML, so
	// a list is written [a, b]). `--set scale=0.01 --set stress.step=5s`.
	Set []string
	// Split runs slice Slice (from 0) of Slices: every rate divided by
	// Slices. 0 means no split.
	Slice, Slices int
}

// planError is a plan error at a line.
type planError struct {
	file string
	line int
	path string
	msg  string
}

func (e *planError) Error() string {
	loc := e.file
	switch {
	case e.line > 0:
		loc += ":" + strconv.Itoa(e.line)
	case e.line < 0:
		loc += " (--set)" // a value given on the command line
	}
	if e.path != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.path, e.msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.msg)
}

func (e *planError) Unwrap() error { return ErrBadPlan }

// ParsePlan reads a plan from YAML. Every error wraps ErrBadPlan and names
// the line and the field, e.g. `plan.yaml:14: phases[1].rate: -5 is
// negative`.
func ParsePlan(data []byte, opt ParseOptions) (*Plan, error) {
	if opt.File == "" {
		opt.File = "plan"
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(opt.File, nil, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, &planError{file: opt.File, line: 1, msg: "want a mapping with target, requests and phases"}
	}
	doc := root.Content[0]
	for i, s := range opt.Set {
		if err := applySet(doc, s, -(i + 1)); err != nil {
			return nil, &planError{file: opt.File, path: "--set " + s, msg: err.Error()}
		}
	}
	if err := checkKeys(doc, reflect.TypeFor[planFile](), "", opt.File); err != nil {
		return nil, err
	}
	lines := map[int]string{}
	index(doc, "", lines)
	var f planFile
	if err := doc.Decode(&f); err != nil {
		return nil, yamlError(opt.File, lines, err)
	}
	c := &compiler{file: opt.File, dir: opt.Dir, doc: doc, opt: opt}
	return c.compile(&f)
}

// checkKeys refuses a key that names no field of t, at its line (the
// YAML library's decoder does this only when it reads bytes, and the
// plan is decoded from its tree, after --set).
func checkKeys(n *yaml.Node, t reflect.Type, path, file string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			f, ok := fieldByTag(t, key)
			if !ok {
				return &planError{file: file, line: n.Content[i].Line, path: p, msg: fmt.Sprintf("unknown key %q", key)}
			}
			if err := checkKeys(n.Content[i+1], f.Type, p, file); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value, file); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), file); err != nil {
				return err
			}
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key && name != "" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (-?\d+): (.*)$`)

// yamlError turns the YAML library's errors into plan errors naming the
// field found at their line.
func yamlError(file string, lines map[int]string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	first := &planError{file: file, msg: err.Error()}
	for i, m := range msgs {
		pe := &planError{file: file, msg: strings.TrimPrefix(m, "yaml: ")}
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			pe.line, _ = strconv.Atoi(g[1])
			pe.msg = g[2]
			pe.path = lines[pe.line]
			pe.msg = strings.Replace(pe.msg, "cannot unmarshal !!str", "cannot read", 1)
			if strings.Contains(pe.msg, "time.Duration") {
				pe.msg += " (want a duration such as 30s, 5m or 1h)"
			}
		}
		if i == 0 {
			first = pe
		}
	}
	return first
}

// index records the path of the key or item at each line.
func index(n *yaml.Node, path string, lines map[int]string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			if _, ok := lines[n.Content[i].Line]; !ok || n.Content[i+1].Kind == yaml.ScalarNode {
				lines[n.Content[i].Line] = p
			}
			index(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, ok := lines[c.Line]; !ok {
				lines[c.Line] = p
			}
			index(c, p, lines)
		}
	}
}

// applySet applies one "key=value" or "phase.key=value" override; the
// nodes it adds get the given (negative) line, so that an error in them
// is reported as the --set's, not as a line of the file.
func applySet(doc *yaml.Node, s string, line int) error {
	key, val, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return fmt.Errorf("want key=value or phase.key=value")
	}
	var v yaml.Node
	if err := yaml.Unmarshal([]byte(val), &v); err != nil || len(v.Content) == 0 {
		v = yaml.Node{Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}}}
	}
	setLine(v.Content[0], line)
	target := doc
	if phase, k, ok := strings.Cut(key, "."); ok {
		phases := mapValue(doc, "phases")
		if phases == nil || phases.Kind != yaml.SequenceNode {
			return fmt.Errorf("the plan has no phases")
		}
		target = nil
		var names []string
		for _, p := range phases.Content {
			name := mapValue(p, "name")
			if name != nil {
				names = append(names, name.Value)
				if name.Value == phase {
					target = p
				}
			}
		}
		if target == nil {
			return fmt.Errorf("no phase named %q (the plan has %s)", phase, strings.Join(names, ", "))
		}
		key = k
	}
	for i := 0; i+1 < len(target.Content); i += 2 {
		if target.Content[i].Value == key {
			target.Content[i].Line = line
			target.Content[i+1] = v.Content[0]
			return nil
		}
	}
	target.Content = append(target.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: line}, v.Content[0])
	return nil
}

func setLine(n *yaml.Node, line int) {
	n.Line = line
	for _, c := range n.Content {
		setLine(c, line)
	}
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// compiler checks a decoded plan, with the tree at hand for line numbers.
type compiler struct {
	file, dir string
	doc       *yaml.Node
	opt       ParseOptions
}

// errAt returns an error at the line of path (keys separated by dots,
// items as [i]), or of its nearest ancestor that has one.
func (c *compiler) errAt(path, format string, args ...any) error {
	return &planError{file: c.file, line: c.line(path), path: path, msg: fmt.Sprintf(format, args...)}
}

func (c *compiler) line(path string) int {
	n, line := c.doc, c.doc.Line
	for _, part := range splitPath(path) {
		var next *yaml.Node
		if i, err := strconv.Atoi(part); err == nil {
			if n.Kind == yaml.SequenceNode && i < len(n.Content) {
				next = n.Content[i]
			}
		} else if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == part {
					line, next = n.Content[j].Line, n.Content[j+1]
					break
				}
			}
		}
		if next == nil {
			return line
		}
		if next.Kind != yaml.ScalarNode || line == 0 {
			line = next.Line
		}
		n = next
	}
	return line
}

func splitPath(p string) []string {
	p = strings.NewReplacer("[", ".", "]", "").Replace(p)
	return strings.FieldsFunc(p, func(r rune) bool { return r == '.' })
}

func (c *compiler) compile(f *planFile) (*Plan, error) {
	p := &Plan{Name: f.Name, Metrics: f.Metrics, Series: f.Series, Connections: f.Connections,
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
	u, err := url.Parse(f.Target)
	switch {
	case f.Target == "":
		return nil, c.errAt("target", "missing: want the service's base URL, e.g. http://127.0.0.1:8080")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, c.errAt("target", "%q is not an http:// or https:// URL with a host", f.Target)
	}
	p.Target = strings.TrimSuffix(f.Target, "/")
	if f.Metrics != "" {
		if u, err := url.Parse(f.Metrics); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, c.errAt("metrics", "%q is not an http:// or https:// URL with a host", f.Metrics)
		}
	}
	switch {
	case f.Connections < 0 || f.Connections > MaxConnections:
		return nil, c.errAt("connections", "%d: want 1 to %d requests in flight", f.Connections, MaxConnections)
	case f.Connections == 0:
		p.Connections = DefaultConnections
	}
	if f.Timeout != nil {
		if *f.Timeout <= 0 || *f.Timeout > maxLatency {
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
	if p.Cooldown, err = c.scaled(p, p.Cooldown, "cooldown"); err != nil {
		return nil, err
	}
	if c.badRate(f.CurrentRPS) {
		return nil, c.errAt("current_rps", "%v: want requests per second, 0 to %.0f", f.CurrentRPS, c.maxRate())
	}
	if c.badRate(f.PeakRPS) {
		return nil, c.errAt("peak_rps", "%v: want requests per second, 0 to %.0f", f.PeakRPS, c.maxRate())
	}
	if p.mix, err = c.compileMix(f, p); err != nil {
		return nil, err
	}
	if len(f.Phases) == 0 {
		return nil, c.errAt("phases", "missing: want at least one phase")
	}
	names := map[string]bool{}
	for i := range f.Phases {
		ph, err := c.compilePhase(p, &f.Phases[i], fmt.Sprintf("phases[%d]", i), names)
		if err != nil {
			return nil, err
		}
		names[ph.Name] = true
		if !f.Phases[i].Skip {
			p.Phases = append(p.Phases, ph)
		}
	}
	if len(p.Phases) == 0 {
		return nil, c.errAt("phases", "every phase is skipped")
	}
	if c.opt.Slices < 0 || c.opt.Slice < 0 || (c.opt.Slices > 0 && c.opt.Slice >= c.opt.Slices) {
		return nil, &planError{file: c.file, msg: fmt.Sprintf("split %d/%d: want i/N with 1 ≤ i ≤ N", c.opt.Slice+1, c.opt.Slices)}
	}
	if n := c.opt.Slices; n > 1 {
		for _, ph := range p.Phases {
			if ph.Pattern == "breaking" || ph.Pattern == "sustained" && ph.CapacityFrom != "" {
				return nil, c.errAt("phases", "phase %q: a %s phase adapts to what it measures, so %d generators would each decide on their own slice; give it fixed rates (pattern steps, or capacity as a number) to split the plan",
					ph.Name, ph.Pattern, n)
			}
		}
	}
	return p, nil
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

// badRate reports whether v is not a rate that may be asked for: negative,
// not a number, or over limit. 0 means "not given".
func badRate(v, limit float64) bool { return !(v >= 0 && v <= limit) }

// maxRate is the highest rate the plan may ask for: MaxRate for each of
// the generators it is split between.
func (c *compiler) maxRate() float64 { return MaxRate * float64(max(c.opt.Slices, 1)) }

// badRate reports whether v is not a rate the plan may ask for: negative,
// not a number, or over maxRate. 0 means "not given".
func (c *compiler) badRate(v float64) bool { return badRate(v, c.maxRate()) }

func (c *compiler) compileMix(f *planFile, p *Plan) (*mix, error) {
	m := &mix{base: p.Target}
	if len(f.Requests) == 0 {
		return nil, c.errAt("requests", "missing: want at least one request, e.g. - path: /")
	}
	var names []string
	for name := range f.Variables {
		names = append(names, name)
	}
	slices.Sort(names)
	slice, slices_ := int64(c.opt.Slice), int64(max(c.opt.Slices, 1))
	for _, name := range names {
		v, path := f.Variables[name], "variables."+name
		if !isName(name) {
			return nil, c.errAt(path, "a variable's name is letters, digits and _")
		}
		set := 0
		for _, b := range []bool{v.Sequence != nil, v.Uniform != nil, v.Zipf != nil, v.Choice != nil, v.CSV != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			return nil, c.errAt(path, "want exactly one of sequence, uniform, zipf, choice or csv")
		}
		var g generator
		var cols []string
		switch {
		case v.Sequence != nil:
			step := v.Sequence.Step
			if step == 0 {
				step = 1
			}
			g = sequenceGen{start: v.Sequence.Start + slice*step, step: step * slices_, next: new(atomic.Int64)}
		case v.Uniform != nil:
			if v.Uniform.Max < v.Uniform.Min {
				return nil, c.errAt(path+".uniform.max", "%d is below min %d", v.Uniform.Max, v.Uniform.Min)
			}
			if span := uint64(v.Uniform.Max - v.Uniform.Min); span >= maxSpan {
				return nil, c.errAt(path+".uniform", "the range %d to %d is wider than 2^62", v.Uniform.Min, v.Uniform.Max)
			}
			g = uniformGen{v.Uniform.Min, v.Uniform.Max}
		case v.Zipf != nil:
			z := *v.Zipf
			if z.Max <= z.Min {
				return nil, c.errAt(path+".zipf.max", "%d must be above min %d", z.Max, z.Min)
			}
			if z.S == 0 {
				z.S = DefaultZipfS
			}
			if z.V == 0 {
				z.V = DefaultZipfV
			}
			if span := uint64(z.Max - z.Min); span >= maxSpan {
				return nil, c.errAt(path+".zipf", "the range %d to %d is wider than 2^62", z.Min, z.Max)
			}
			if !(z.S >= minZipfS && z.S <= 100) {
				return nil, c.errAt(path+".zipf.s", "%v: the exponent must be from %v to 100", z.S, minZipfS)
			}
			if !(z.V >= 1 && z.V <= 1e9) {
				return nil, c.errAt(path+".zipf.v", "%v: want 1 to 1e9", z.V)
			}
			g = zipfGen{z.Min, z.Max, z.S, z.V}
		case v.Choice != nil:
			if len(v.Choice) == 0 {
				return nil, c.errAt(path+".choice", "an empty list")
			}
			g = choiceGen{v.Choice}
		case v.CSV != nil:
			if v.CSV.File == "" {
				return nil, c.errAt(path+".csv.file", "missing: want a CSV file with a header line")
			}
			if v.CSV.Order != "" && v.CSV.Order != "sequence" && v.CSV.Order != "random" {
				return nil, c.errAt(path+".csv.order", "%q: want sequence or random", v.CSV.Order)
			}
			file := v.CSV.File
			if !filepath.IsAbs(file) {
				file = filepath.Join(c.dir, file)
			}
			columns, rows, err := readCSV(file)
			if err != nil {
				return nil, c.errAt(path+".csv.file", "%v", err)
			}
			cols = columns
			g = csvGen{columns: columns, rows: rows, random: v.CSV.Order == "random", next: new(atomic.Int64), slice: slice, slices: slices_}
		}
		m.names = append(m.names, name)
		m.gens = append(m.gens, g)
		m.columns = append(m.columns, cols)
	}
	var total float64
	for i, r := range f.Requests {
		path := fmt.Sprintf("requests[%d]", i)
		req := request{name: r.Name, method: strings.ToUpper(r.Method), weight: 1}
		if req.method == "" {
			req.method = "GET"
		}
		if !isToken(req.method) {
			return nil, c.errAt(path+".method", "%q is not an HTTP method", r.Method)
		}
		if r.Weight != nil {
			if !(*r.Weight >= 0) {
				return nil, c.errAt(path+".weight", "%v: want a non-negative number", *r.Weight)
			}
			req.weight = *r.Weight
		}
		if !strings.HasPrefix(r.Path, "/") {
			return nil, c.errAt(path+".path", "%q: want a path starting with /", r.Path)
		}
		var err error
		if req.path, err = c.template(m, r.Path, path+".path"); err != nil {
			return nil, err
		}
		if req.name == "" {
			req.name = req.method + " " + r.Path
		}
		keys := make([]string, 0, len(r.Headers))
		for k := range r.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !isToken(k) {
				return nil, c.errAt(path+".headers."+k, "%q is not a header name", k)
			}
			t, err := c.template(m, r.Headers[k], path+".headers."+k)
			if err != nil {
				return nil, err
			}
			req.headers = append(req.headers, header{k, t})
		}
		if r.Body != nil {
			t, err := c.template(m, *r.Body, path+".body")
			if err != nil {
				return nil, err
			}
			req.body = &t
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

func (c *compiler) compilePhase(p *Plan, f *phaseDef, path string, seen map[string]bool) (Phase, error) {
	ph := Phase{Name: f.Name, Kind: f.Kind, Pattern: f.Pattern, Rate: f.Rate, To: f.To, Steps: f.Steps,
		Growth: f.Growth, Precision: f.Precision, Multiplier: f.Multiplier, Fraction: f.Fraction}
	if ph.Name == "" {
		return ph, c.errAt(path+".name", "missing: every phase needs a name")
	}
	if seen[ph.Name] {
		return ph, c.errAt(path+".name", "%q: a second phase of that name", ph.Name)
	}
	switch ph.Kind {
	case "":
		ph.Kind = "custom"
		if slices.Contains([]string{"baseline", "stress", "spike", "endurance"}, ph.Name) {
			ph.Kind = ph.Name
		}
	case "baseline", "stress", "spike", "endurance", "custom":
	default:
		return ph, c.errAt(path+".kind", "%q: want baseline, stress, spike, endurance or custom", ph.Kind)
	}
	if ph.Pattern == "" {
		ph.Pattern = map[string]string{"stress": "breaking", "spike": "spike", "endurance": "sustained"}[ph.Kind]
		if ph.Pattern == "" {
			ph.Pattern = "constant"
		}
	}
	if !slices.Contains(patterns, ph.Pattern) {
		return ph, c.errAt(path+".pattern", "%q: want one of %s", ph.Pattern, strings.Join(patterns, ", "))
	}
	if ph.Rate == 0 && ph.Pattern != "sustained" {
		ph.Rate = p.CurrentRPS
	}
	switch {
	case c.badRate(ph.Rate):
		return ph, c.errAt(path+".rate", "%v: want requests per second, 0 to %.0f", ph.Rate, c.maxRate())
	case ph.Rate == 0 && ph.Pattern != "sustained" && ph.Pattern != "ramp":
		return ph, c.errAt(path+".rate", "missing: want requests per second (or current_rps at the top)")
	case c.badRate(ph.To):
		return ph, c.errAt(path+".to", "%v: want requests per second, 0 to %.0f", ph.To, c.maxRate())
	}
	var err error
	if ph.Duration, err = c.scaled(p, f.Duration, path+".duration"); err != nil {
		return ph, err
	}
	needDuration := func() error {
		if f.Duration <= 0 {
			return c.errAt(path+".duration", "missing: want how long the phase runs, e.g. 10m")
		}
		if ph.Duration < time.Second {
			return c.errAt(path+".duration", "%v after scale %v is under a second", ph.Duration, p.Scale)
		}
		return nil
	}
	switch ph.Pattern {
	case "constant", "sustained":
		if err := needDuration(); err != nil {
			return ph, err
		}
	case "ramp", "steps":
		if err := needDuration(); err != nil {
			return ph, err
		}
		if ph.To <= 0 {
			return ph, c.errAt(path+".to", "missing: want the rate the %s ends at", ph.Pattern)
		}
		if ph.Pattern == "steps" {
			if ph.Steps < 0 {
				return ph, c.errAt(path+".steps", "%d is negative", ph.Steps)
			}
			if ph.Steps == 0 {
				ph.Steps = DefaultStepsPerRamp
			}
			if ph.Duration/time.Duration(ph.Steps) < time.Second {
				return ph, c.errAt(path+".steps", "%d steps in %v: each step must last at least a second", ph.Steps, ph.Duration)
			}
		}
	case "breaking":
		if f.Step <= 0 {
			return ph, c.errAt(path+".step", "missing: want how long each probe of the search runs, e.g. 2m")
		}
		if ph.Step, err = c.scaled(p, f.Step, path+".step"); err != nil {
			return ph, err
		}
		if ph.Step < time.Second {
			return ph, c.errAt(path+".step", "%v after scale %v is under a second", ph.Step, p.Scale)
		}
		if ph.Growth == 0 {
			ph.Growth = DefaultGrowth
		}
		if !(ph.Growth > 1) || math.IsInf(ph.Growth, 0) {
			return ph, c.errAt(path+".growth", "%v: the rate must grow, want a factor above 1", ph.Growth)
		}
		if ph.Precision == 0 {
			ph.Precision = DefaultBisectPrecision
		}
		if !(ph.Precision > 0 && ph.Precision < 1) {
			return ph, c.errAt(path+".precision", "%v: want a fraction such as 0.05", ph.Precision)
		}
		if ph.To == 0 {
			ph.To = ph.Rate * defaultCeiling
		}
		ph.To = min(ph.To, c.maxRate())
		if ph.To <= ph.Rate {
			return ph, c.errAt(path+".to", "%v: the highest rate to try must be above the start, %v", ph.To, ph.Rate)
		}
		probe := f.Probe
		if len(probe) == 0 {
			probe = []string{BaselineP99, fmt.Sprintf("rate<%g", SpikeErrorRate)}
		}
		for i, s := range probe {
			th, err := ParseThreshold(s)
			if err != nil {
				return ph, c.errAt(fmt.Sprintf("%s.probe[%d]", path, i), "%v", strings.TrimPrefix(err.Error(), ErrBadThreshold.Error()+": "))
			}
			if th.Metric != "latency" && th.Metric != "rate" && th.Metric != "rps" {
				return ph, c.errAt(fmt.Sprintf("%s.probe[%d]", path, i), "%q: a probe is judged on its latency, error rate or rps", s)
			}
			ph.Probe = append(ph.Probe, th)
		}
		recovery := StressRecovery
		if f.Recovery != nil {
			if *f.Recovery < 0 {
				return ph, c.errAt(path+".recovery", "%v is negative", *f.Recovery)
			}
			recovery = *f.Recovery
		}
		if ph.Recovery, err = c.scaled(p, recovery, path+".recovery"); err != nil {
			return ph, err
		}
	case "spike":
		if err := needDuration(); err != nil {
			return ph, err
		}
		if ph.Multiplier == 0 {
			ph.Multiplier = SpikeMultiplier
		}
		if !(ph.Multiplier > 1) || math.IsInf(ph.Multiplier, 0) {
			return ph, c.errAt(path+".multiplier", "%v: a spike multiplies the rate by more than 1", ph.Multiplier)
		}
		if c.badRate(ph.Rate * ph.Multiplier) {
			return ph, c.errAt(path+".multiplier", "%v: the spike's rate, %v × %v, is over %.0f/s", ph.Multiplier, ph.Rate, ph.Multiplier, c.maxRate())
		}
		spike := SpikeLength
		if f.Spike != 0 {
			spike = f.Spike
		}
		if ph.SpikeLength, err = c.scaled(p, spike, path+".spike"); err != nil {
			return ph, err
		}
		if ph.SpikeLength <= 0 || ph.SpikeLength > ph.Duration*3/4 {
			return ph, c.errAt(path+".spike", "%v: the spike must be positive and leave a quarter of the duration (%v) for before and after", ph.SpikeLength, ph.Duration)
		}
	}
	if ph.Pattern == "sustained" {
		if ph.Fraction == 0 {
			ph.Fraction = EnduranceFraction
		}
		if !(ph.Fraction > 0 && ph.Fraction <= 10) {
			return ph, c.errAt(path+".fraction", "%v: want a fraction of capacity such as 0.8", ph.Fraction)
		}
		switch v, err := strconv.ParseFloat(f.Capacity, 64); {
		case f.Capacity == "":
			return ph, c.errAt(path+".capacity", "missing: want requests per second, or the name of an earlier breaking phase")
		case err == nil && v > 0 && !c.badRate(v*ph.Fraction):
			ph.Capacity = v
		case err == nil:
			return ph, c.errAt(path+".capacity", "%v: want a positive rate whose fraction is at most %.0f/s", v, c.maxRate())
		case !seen[f.Capacity]:
			return ph, c.errAt(path+".capacity", "%q is neither a rate nor an earlier phase", f.Capacity)
		default:
			ph.CapacityFrom = f.Capacity
		}
	} else if f.Capacity != "" {
		return ph, c.errAt(path+".capacity", "only a sustained phase takes a capacity")
	}
	for i, s := range f.Criteria {
		th, err := ParseThreshold(s)
		if err != nil {
			return ph, c.errAt(fmt.Sprintf("%s.criteria[%d]", path, i), "%v", strings.TrimPrefix(err.Error(), ErrBadThreshold.Error()+": "))
		}
		ph.Criteria = append(ph.Criteria, th)
	}
	if n := c.opt.Slices; n > 1 {
		ph.Rate /= float64(n)
		ph.To /= float64(n)
		ph.Capacity /= float64(n)
		for i, th := range ph.Criteria {
			ph.Criteria[i] = p.slicedThreshold(th)
		}
	}
	return ph, nil
}
