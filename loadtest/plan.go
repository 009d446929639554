package loadtest

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The guide's load-test strategy ("Load Testing Strategy",
// AmazonScaleLoadTesting.design_load_test_strategy), as the default plan's
// numbers.
const (
	DefaultCooldown            = 5 * time.Minute        // guide: a 5-minute cool-down between phases
	BaselineDuration           = time.Hour              // guide: baseline, 1 hour at current production levels
	BaselineP99                = 100 * time.Millisecond // guide: baseline p99 latency < 100 ms
	BaselineErrorRate          = 0.001                  // guide: baseline error rate < 0.1 %
	StressDuration             = 2 * time.Hour          // guide: stress, 2 hours of gradual increase until failure
	StressRecovery             = 5 * time.Minute        // guide: recovery < 5 minutes after load reduction
	StressBreakingFactor       = 1.5                    // guide: breaking point ≥ 1.5 × peak
	probeErrorRate             = 0.01                   // Strata: a breaking search's probe fails at 1 % errors (or over the baseline's p99)
	StressOverloadGoodput      = 0.9                    // Strata: the guide's "no cascading failures" read as: pushed past its breaking point, the service still answers 90 % of that rate successfully
	SpikeDuration              = 30 * time.Minute       // guide: spike test, 30 minutes
	SpikeLength                = 10 * time.Minute       // guide: a sudden 10× increase for 10 minutes
	SpikeMultiplier            = 10                     // guide: 10×
	SpikeLatencyIncrease       = 0.5                    // guide: < 50 % latency increase
	SpikeErrorRate             = 0.01                   // guide: error rate during the spike < 1 %
	EnduranceDuration          = 24 * time.Hour         // guide: endurance, 24 hours
	EnduranceFraction          = 0.8                    // guide: sustained at 80 % of capacity
	EnduranceMemoryGrowth      = 0.05                   // guide: no memory growth > 5 % over 24 h
	EnduranceLatencyIncrease   = 0.1                    // guide: < 10 % latency increase
	DefaultCPUGrowth           = 0.1                    // Strata: "CPU utilisation stable" read as < 10 % growth, first tenth to last
	DefaultGrowth              = 1.5                    // Strata: a breaking-point ramp multiplies the rate by this each step
	DefaultBisectPrecision     = 0.05                   // Strata (the issue): bisect the knee to within 5 %
	DefaultStepsPerRamp        = 10                     // Strata: a steps pattern's steps when not given
	minZipfS                   = 1.01                   // Strata: flatter than this, Zipf sampling by rejection slows to a crawl
	maxSpan                    = 1 << 62                // the widest range a uniform or zipf variable may draw from
	defaultCeiling             = 1024                   // Strata: a breaking search stops at this many times its start rate when no "to" is given
	DefaultZipfS, DefaultZipfV = 1.1, 1.0               // Strata: a mild Zipf skew when a plan gives none
	MaxRate                    = 10_000_000             // Strata: requests per second one generator may be asked for (the fastest sends about 70,000 here); more is a typo, or a job for --split (a plan split N ways may ask N times as much)
	MaxConnections             = 65_536                 // Strata: one source address has at most 64 Ki ports towards one server; more needs --split over several generators
	maxDuration                = 7 * 24 * time.Hour     // Strata: seven times the guide's longest phase (endurance, 24 h); a phase keeps a point a second
	minPhaseTime               = time.Second            // Strata: a phase, a step or a probe is measured in whole seconds: at least one
)

// ErrBadPlan is returned (wrapped) for a plan that cannot run; the message
// names the file, the line and the field.
var ErrBadPlan = errors.New("loadtest: bad plan")

// Plan is a load test: a target, a weighted request mix, and phases that
// run in turn with a cool-down between them. ParsePlan builds one from
// YAML; see `strata loadtest init` for a documented example.
//
// A Plan may also be built as a Go literal. Run checks it as ParsePlan
// checks a file (the error wraps ErrBadPlan and names the field, e.g.
// `Phases[1].Rate`) and fills in the defaults that the fields below name
// for their zero values. A literal's durations are used as written: Scale
// is what ParsePlan multiplied a file's durations by, kept for reports.
type Plan struct {
	// Name names the plan in reports; "" is "plan" (ParsePlan: the file's
	// base name).
	Name string
	// Target is the base URL that requests' paths are appended to.
	Target string
	// Requests, when set, are the requests sent, in turn (as an Attack
	// sends its Targets), in place of the weighted mix that ParsePlan
	// builds from a file's requests and variables. A literal without
	// either sends GET Target + "/".
	Requests []Target
	// Metrics is the target's Prometheus endpoint, scraped every second
	// of a phase for its CPU, memory and goroutines; "" for none. Series
	// are further metric names to record from it (summed over labels).
	Metrics string
	Series  []string
	// Connections bounds requests in flight (0: DefaultConnections);
	// Timeout bounds one request (0: DefaultTimeout).
	Connections int
	Timeout     time.Duration
	// Cooldown is the pause between phases, scaled. ParsePlan's default
	// is DefaultCooldown; in a literal, 0 is none.
	Cooldown time.Duration
	// Scale multiplies every duration of a plan file: 0.01 runs the
	// guide's 1-hour baseline in 36 s.
	Scale float64
	// CurrentRPS and PeakRPS are the production rates the guide's
	// criteria refer to: a phase without a rate runs at CurrentRPS, and a
	// stress phase must break at StressBreakingFactor × PeakRPS. PeakRPS,
	// when given, is at least CurrentRPS.
	CurrentRPS, PeakRPS float64
	// AbortOnFailure stops the run after the first phase that fails.
	AbortOnFailure bool
	Phases         []Phase

	mix           *mix     // the file's weighted requests; nil for a literal
	skipped       []string // phases the file skipped: a capacity may still name one
	slice, slices int      // this generator's slice of a split run (from 0), and how many
}

func (p *Plan) slicesOrOne() float64 { return float64(max(p.slices, 1)) }

// slicedThreshold returns th for one slice of a split run: a rate divided
// by the slices, its Source (what the report shows and merge re-reads)
// left whole.
func (p *Plan) slicedThreshold(th Threshold) Threshold {
	if th.Metric.perSecond() {
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

// Phase is one phase of a plan, its durations already scaled. The zero
// value of a field means the default its comment names.
type Phase struct {
	Name string
	// Kind is what the report calls the phase, and which of the guide's
	// criteria it gets when Criteria is nil; "" is the kind named like
	// the phase (a phase named "stress" is a stress phase), else custom.
	// Pattern is how its rate moves; "" is the kind's (baseline and
	// custom: constant, stress: breaking, spike: spike, endurance:
	// sustained).
	Kind    Kind
	Pattern Pattern
	// Rate is the constant rate, or where a ramp, steps, breaking search
	// or spike starts (0: the plan's CurrentRPS); To is where a ramp or
	// steps end, or the highest rate a breaking search tries (0: 1,024 ×
	// Rate).
	Rate, To float64
	// Steps is how many equal steps a steps pattern takes (0:
	// DefaultStepsPerRamp).
	Steps int
	// Duration is how long the phase runs; a breaking phase's is a bound
	// on its search (0: none).
	Duration time.Duration
	// Breaking search: each probe runs Step at one rate; the rate grows by
	// Growth (0: DefaultGrowth) until a probe fails Probe (nil: the
	// baseline's p99 and 1 % errors), then is bisected to
	// within Precision (0: DefaultBisectPrecision); then an overload Step
	// at the first failing rate, and the load drops back to a passing
	// rate for up to Recovery (0: no recovery watched; a plan file's
	// default is StressRecovery).
	Step      time.Duration
	Growth    float64
	Precision float64
	Probe     []Threshold
	Recovery  time.Duration
	// Spike: Rate, then Rate × Multiplier (0: SpikeMultiplier) for
	// SpikeLength (0: a third of Duration, as the guide's 10 minutes of
	// 30), then Rate, in Duration all told.
	Multiplier  float64
	SpikeLength time.Duration
	// Sustained: Fraction (0: EnduranceFraction) of Capacity, or of the
	// breaking point measured by the earlier phase named CapacityFrom.
	Fraction     float64
	Capacity     float64
	CapacityFrom string
	// Criteria judge the phase; nil means the guide's for its kind, and
	// an empty list none.
	Criteria []Threshold
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
	Zipf   *zipfDef `yaml:"zipf"`
	Choice []string `yaml:"choice"`
	CSV    *struct {
		File  string `yaml:"file"`
		Order string `yaml:"order"`
	} `yaml:"csv"`
}

// zipfDef is a zipf variable as written.
type zipfDef struct {
	Min int64   `yaml:"min"`
	Max int64   `yaml:"max"`
	S   float64 `yaml:"s"`
	V   float64 `yaml:"v"`
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
	Name       string         `yaml:"name"`
	Kind       string         `yaml:"kind"`
	Pattern    string         `yaml:"pattern"`
	Rate       float64        `yaml:"rate"`
	To         float64        `yaml:"to"`
	Steps      int            `yaml:"steps"`
	Duration   time.Duration  `yaml:"duration"`
	Step       time.Duration  `yaml:"step"`
	Growth     float64        `yaml:"growth"`
	Precision  float64        `yaml:"precision"`
	Probe      []string       `yaml:"probe"`
	Recovery   *time.Duration `yaml:"recovery"`
	Multiplier float64        `yaml:"multiplier"`
	Spike      time.Duration  `yaml:"spike"`
	Fraction   float64        `yaml:"fraction"`
	Capacity   string         `yaml:"capacity"`
	Criteria   []string       `yaml:"criteria"`
	Skip       bool           `yaml:"skip"`
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

// planError is a plan error at a line of a file, or at a field of a Plan
// built in Go (file "").
type planError struct {
	file string
	line int
	path string
	msg  string
}

func (e *planError) Error() string {
	if e.file == "" { // a Plan built in Go: path is its field
		return fmt.Sprintf("%v: %s: %s", ErrBadPlan, e.path, e.msg)
	}
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
