package loadtest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodPlan = `name: shop
target: http://127.0.0.1:8080
variables:
  user: {zipf: {min: 1, max: 1000}}
  n: {sequence: {start: 10}}
requests:
  - path: /users/{{user}}
    weight: 3
  - method: post
    path: /orders/{{n}}
    body: '{"user": {{user}}}'
phases:
  - name: baseline
    rate: 100
    duration: 1m
`

func TestParsePlanGood(t *testing.T) {
	p, err := ParsePlan([]byte(goodPlan), ParseOptions{File: "plan.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "shop" || p.Connections != DefaultConnections || p.Timeout != DefaultTimeout || p.Cooldown != DefaultCooldown {
		t.Errorf("defaults: %+v", p)
	}
	ph := p.Phases[0]
	if ph.Kind != "baseline" || ph.Pattern != "constant" || ph.Rate != 100 || ph.Duration != time.Minute {
		t.Errorf("phase %+v", ph)
	}
	if r := p.mix.requests[1]; r.method != "POST" || r.weight != 1 || r.body == nil {
		t.Errorf("second request %+v", r)
	}
}

func TestParsePlanScaleAndSet(t *testing.T) {
	p, err := ParsePlan([]byte(goodPlan), ParseOptions{File: "plan.yaml", Set: []string{"scale=0.1", "baseline.rate=7", "cooldown=10s"}})
	if err != nil {
		t.Fatal(err)
	}
	if ph := p.Phases[0]; ph.Duration != 6*time.Second || ph.Rate != 7 {
		t.Errorf("after --set: %+v", ph)
	}
	if p.Cooldown != time.Second {
		t.Errorf("cooldown 10s × 0.1 = %v", p.Cooldown)
	}
	_, err = ParsePlan([]byte(goodPlan), ParseOptions{File: "plan.yaml", Set: []string{"nosuch.rate=1"}})
	if err == nil || !strings.Contains(err.Error(), `no phase named "nosuch" (the plan has baseline)`) {
		t.Errorf("set on a missing phase: %v", err)
	}
	_, err = ParsePlan([]byte(goodPlan), ParseOptions{File: "plan.yaml", Set: []string{"scale=0.5", "baseline.rate=fast"}})
	if err == nil || !strings.Contains(err.Error(), "plan.yaml (--set): phases[0].rate: cannot read") {
		t.Errorf("set to a bad value: %v", err)
	}
	_, err = ParsePlan([]byte(goodPlan), ParseOptions{File: "plan.yaml", Set: []string{"baseline.rat=5"}})
	if err == nil || !strings.Contains(err.Error(), `plan.yaml (--set): phases[0].rat: unknown key "rat"`) {
		t.Errorf("set of an unknown key: %v", err)
	}
	// An error in the file keeps the file's own line after a --set.
	_, err = ParsePlan([]byte(goodPlan+"    step: soon\n"), ParseOptions{File: "plan.yaml", Set: []string{"scale=0.5"}})
	if err == nil || !strings.Contains(err.Error(), "plan.yaml:16: phases[0].step") {
		t.Errorf("line after a set: %v", err)
	}
}

// TestParsePlanErrors: each bad plan is refused with its line and field.
func TestParsePlanErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte("id,name\n1,ann\n2,bob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	head := "target: http://127.0.0.1:8080\nrequests:\n  - path: /\n"
	for _, tc := range []struct {
		name, plan, want string
	}{
		{"not yaml", "target: [", "plan.yaml:1: "},
		{"not a mapping", "- a\n- b\n", "plan.yaml:1: want a mapping"},
		{"unknown top key", head + "phasez: []\n", `plan.yaml:4: phasez: unknown key "phasez"`},
		{"unknown phase key", head + "phases:\n  - name: a\n    rat: 5\n", `plan.yaml:6: phases[0].rat: unknown key "rat"`},
		{"no target", "requests:\n  - path: /\nphases:\n  - {name: a, rate: 1, duration: 1s}\n", "target: missing"},
		{"bad target", "target: ftp://x\n", "plan.yaml:1: target: \"ftp://x\" is not an http"},
		{"bad duration", head + "phases:\n  - name: a\n    rate: 5\n    duration: 5 minutes\n", "plan.yaml:7: phases[0].duration: cannot read `5 minutes` into time.Duration (want a duration such as 30s"},
		{"negative rate", head + "phases:\n  - name: a\n    rate: -5\n    duration: 1s\n", "plan.yaml:6: phases[0].rate: -5: want requests per second, 0 to 10000000"},
		{"infinite rate", head + "phases:\n  - name: a\n    rate: .inf\n    duration: 1s\n", "plan.yaml:6: phases[0].rate: +Inf: want requests per second"},
		{"rate not a number", head + "phases:\n  - name: a\n    rate: .nan\n    duration: 1s\n", "plan.yaml:6: phases[0].rate: NaN: want requests per second"},
		{"to not a number", head + "phases:\n  - name: a\n    pattern: ramp\n    rate: 1\n    to: .nan\n    duration: 1s\n", "plan.yaml:8: phases[0].to: NaN"},
		{"spike over the highest rate", head + "phases:\n  - name: a\n    pattern: spike\n    rate: 5000000\n    duration: 10s\n", "phases[0].multiplier: 10: the spike's rate, 5e+06 × 10, is over 10000000/s"},
		{"current rate infinite", head + "current_rps: .inf\nphases: []\n", "plan.yaml:4: current_rps: +Inf"},
		{"too many connections", head + "connections: 100000000\nphases: []\n", "plan.yaml:4: connections: 100000000: want 1 to 65536"},
		{"steps under a second", head + "phases:\n  - name: a\n    pattern: steps\n    rate: 1\n    to: 5\n    steps: 1000000000\n    duration: 1h\n", "plan.yaml:9: phases[0].steps: 1000000000 steps in 1h0m0s: each step must last at least a second"},
		{"over a week after scale", head + "scale: 1000\ncooldown: 0s\nphases:\n  - name: a\n    rate: 1\n    duration: 1h\n", "plan.yaml:9: phases[0].duration: 1h0m0s after scale 1000 is over 168h0m0s"},
		{"infinite scale", head + "scale: .inf\nphases: []\n", "plan.yaml:4: scale: +Inf"},
		{"no rate", head + "phases:\n  - name: a\n    duration: 1s\n", "plan.yaml:5: phases[0].rate: missing"},
		{"no phases", head, "phases: missing"},
		{"unnamed phase", head + "phases:\n  - rate: 5\n", "plan.yaml:5: phases[0].name: missing"},
		{"twice named", head + "phases:\n  - {name: a, rate: 1, duration: 1s}\n  - {name: a, rate: 1, duration: 1s}\n", "plan.yaml:6: phases[1].name: \"a\": a second phase"},
		{"bad pattern", head + "phases:\n  - name: a\n    pattern: wave\n", "plan.yaml:6: phases[0].pattern: \"wave\": want one of constant, ramp"},
		{"bad criterion", head + "phases:\n  - name: a\n    rate: 1\n    duration: 1s\n    criteria: [\"p(99)<fast\"]\n", "plan.yaml:8: phases[0].criteria[0]: \"p(99)<fast\": latency \"fast\" needs a unit"},
		{"ramp without to", head + "phases:\n  - name: a\n    pattern: ramp\n    rate: 1\n    duration: 1s\n", "phases[0].to: missing"},
		{"breaking without step", head + "phases:\n  - name: a\n    pattern: breaking\n    rate: 1\n", "phases[0].step: missing"},
		{"growth not above 1", head + "phases:\n  - name: a\n    pattern: breaking\n    rate: 1\n    step: 1s\n    growth: 0.5\n", "plan.yaml:9: phases[0].growth: 0.5"},
		{"spike too long", head + "phases:\n  - name: a\n    pattern: spike\n    rate: 1\n    duration: 10s\n    spike: 9s\n", "plan.yaml:9: phases[0].spike: 9s"},
		{"capacity unknown", head + "phases:\n  - name: a\n    pattern: sustained\n    capacity: stress\n    duration: 1s\n", "plan.yaml:7: phases[0].capacity: \"stress\" is neither a rate nor an earlier phase"},
		{"under a second after scale", head + "scale: 0.001\nphases:\n  - name: a\n    rate: 1\n    duration: 10s\n", "plan.yaml:8: phases[0].duration: 10ms after scale 0.001"},
		{"bad scale", head + "scale: 0\nphases: []\n", "plan.yaml:4: scale: 0"},
		{"negative weight", "target: http://h\nrequests:\n  - path: /\n    weight: -1\n", "plan.yaml:4: requests[0].weight: -1"},
		{"all weights zero", "target: http://h\nrequests:\n  - path: /\n    weight: 0\nphases: []\n", "requests: every weight is 0"},
		{"relative path", "target: http://h\nrequests:\n  - path: users\n", "plan.yaml:3: requests[0].path: \"users\": want a path starting with /"},
		{"unknown variable", "target: http://h\nrequests:\n  - path: /u/{{user}}\n", "plan.yaml:3: requests[0].path: {{user}}: no variable \"user\""},
		{"unclosed", "target: http://h\nrequests:\n  - path: /u/{{user\n", "requests[0].path: \"{{user\": {{ without a closing }}"},
		{"bad method", "target: http://h\nrequests:\n  - path: /\n    method: \"GE T\"\n", "plan.yaml:4: requests[0].method"},
		{"two generators", "target: http://h\nvariables:\n  u: {uniform: {min: 1, max: 2}, choice: [a]}\nrequests:\n  - path: /\n", "plan.yaml:3: variables.u: want exactly one of"},
		{"uniform backwards", "target: http://h\nvariables:\n  u:\n    uniform: {min: 5, max: 2}\nrequests:\n  - path: /\n", "plan.yaml:4: variables.u.uniform.max: 2 is below min 5"},
		{"zipf exponent", "target: http://h\nvariables:\n  u:\n    zipf:\n      max: 9\n      s: 0.5\nrequests:\n  - path: /\n", "plan.yaml:6: variables.u.zipf.s: 0.5"},
		{"empty choice", "target: http://h\nvariables:\n  u:\n    choice: []\nrequests:\n  - path: /\n", "plan.yaml:4: variables.u.choice: an empty list"},
		{"missing csv", "target: http://h\nvariables:\n  u:\n    csv: {file: nope.csv}\nrequests:\n  - path: /\n", "plan.yaml:4: variables.u.csv.file: open"},
		{"csv column", "target: http://h\nvariables:\n  u:\n    csv: {file: users.csv}\nrequests:\n  - path: /u/{{u.email}}\n", "requests[0].path: {{u.email}}: the CSV has no column \"email\" (it has id, name)"},
		{"column of a non-csv", "target: http://h\nvariables:\n  u:\n    choice: [a]\nrequests:\n  - path: /u/{{u.x}}\n", "only a csv variable has columns"},
		{"bad header name", "target: http://h\nrequests:\n  - path: /\n    headers: {\"Bad Header\": x}\n", "requests[0].headers.Bad Header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePlan([]byte(tc.plan), ParseOptions{File: "plan.yaml", Dir: dir})
			if !errors.Is(err, ErrBadPlan) {
				t.Fatalf("err = %v, want ErrBadPlan", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParsePlanSplitRefusesAdaptivePhases(t *testing.T) {
	plan := "target: http://h\nrequests: [{path: /}]\nphases:\n  - {name: stress, pattern: breaking, rate: 10, step: 1s}\n"
	if _, err := ParsePlan([]byte(plan), ParseOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := ParsePlan([]byte(plan), ParseOptions{Slice: 0, Slices: 2})
	if !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), `phase "stress": a breaking phase adapts`) {
		t.Errorf("split of a breaking phase: %v", err)
	}
	p, err := ParsePlan([]byte(goodPlan), ParseOptions{Slice: 1, Slices: 4})
	if err != nil {
		t.Fatal(err)
	}
	if p.Phases[0].Rate != 25 || p.offset() != 0.25 {
		t.Errorf("slice 2 of 4: rate %v, offset %v", p.Phases[0].Rate, p.offset())
	}
	// A rate too high for one generator is what a split is for: each of
	// four generators sends a quarter of 20 million a second.
	huge := "target: http://h\nrequests: [{path: /}]\nphases: [{name: a, rate: 20000000, duration: 1s}]\n"
	if _, err := ParsePlan([]byte(huge), ParseOptions{}); !errors.Is(err, ErrBadPlan) {
		t.Errorf("20M/s on one generator: %v", err)
	}
	if p, err := ParsePlan([]byte(huge), ParseOptions{Slice: 0, Slices: 4}); err != nil || p.Phases[0].Rate != 5e6 {
		t.Errorf("20M/s split four ways: %v", err)
	}
}

func TestDefaultPlanParses(t *testing.T) {
	p, err := ParsePlan(DefaultPlan(DefaultPlanOptions{CurrentRPS: 50, PeakRPS: 80}), ParseOptions{File: "default"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name    string
		pattern Pattern
		d       time.Duration
	}{{"baseline", "constant", BaselineDuration}, {"stress", "breaking", StressDuration}, {"spike", "spike", SpikeDuration}, {"endurance", "sustained", EnduranceDuration}}
	if len(p.Phases) != len(want) {
		t.Fatalf("%d phases", len(p.Phases))
	}
	for i, w := range want {
		ph := p.Phases[i]
		if ph.Name != w.name || ph.Pattern != w.pattern || ph.Duration != w.d || len(ph.Criteria) == 0 {
			t.Errorf("phase %d: %+v, want %+v", i, ph, w)
		}
	}
	if p.Cooldown != DefaultCooldown || p.Phases[2].SpikeLength != SpikeLength || p.Phases[2].Multiplier != SpikeMultiplier || p.Phases[3].Fraction != EnduranceFraction {
		t.Errorf("the guide's numbers: %+v", p)
	}
	if got := p.Phases[1].Criteria[0]; got.Metric != "breaking_point" || got.Value != 120 {
		t.Errorf("stress criterion %+v, want breaking_point >= 1.5 × 80", got)
	}
}

func FuzzParsePlan(f *testing.F) {
	f.Add([]byte(goodPlan))
	f.Add(DefaultPlan(DefaultPlanOptions{}))
	f.Add([]byte("target: http://h\nrequests: [{path: '/{{a}}'}]\nphases: [{name: x, pattern: spike, rate: 1, duration: 4s, spike: 1s}]\n"))
	// One empty folder for every input's CSV paths: a t.TempDir per input
	// made the fuzzer wait on rmdir (with discard, milliseconds each).
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan(data, ParseOptions{File: "fuzz.yaml", Dir: dir})
		if err != nil {
			if !errors.Is(err, ErrBadPlan) {
				t.Fatalf("error %v does not wrap ErrBadPlan", err)
			}
			return
		}
		if len(p.Phases) == 0 || p.mix == nil || len(p.mix.requests) == 0 {
			t.Fatalf("accepted a plan with nothing to run: %+v", p)
		}
		next := p.mix.source(1)(0)
		for range 3 {
			if tg := next(0); !strings.HasPrefix(tg.URL, p.Target) {
				t.Fatalf("request %q is not under the target %q", tg.URL, p.Target)
			}
		}
	})
}
