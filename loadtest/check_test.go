package loadtest

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPlanLiteralRefused: a Plan built in Go is checked by Run before it
// sends anything, and the error names the Go field (it used to panic on
// the missing request mix, or divide by zero steps).
func TestPlanLiteralRefused(t *testing.T) {
	ok := Phase{Name: "a", Rate: 10, Duration: time.Second}
	for _, tc := range []struct {
		name string
		plan Plan
		want string
	}{
		// no target at all
		{"no target", Plan{Phases: []Phase{ok}}, "Target: missing"},
		// a target that is not a URL
		{"bad target", Plan{Target: "localhost:8080", Phases: []Phase{ok}}, `Target: "localhost:8080" is not an http`},
		// no phases
		{"no phases", Plan{Target: "http://127.0.0.1:1"}, "Phases: missing"},
		// a phase without a name
		{"unnamed", Plan{Target: "http://127.0.0.1:1", Phases: []Phase{{Rate: 1, Duration: time.Second}}}, "Phases[0].Name: missing"},
		// a constant phase without a rate, and no current rate to take
		{"no rate", Plan{Target: "http://127.0.0.1:1", Phases: []Phase{{Name: "a", Duration: time.Second}}}, "Phases[0].Rate: missing"},
		// a constant phase without a duration
		{"no duration", Plan{Target: "http://127.0.0.1:1", Phases: []Phase{{Name: "a", Rate: 1}}}, "Phases[0].Duration: missing"},
		// a pattern that does not exist
		{"bad pattern", Plan{Target: "http://127.0.0.1:1", Phases: []Phase{{Name: "a", Pattern: "wave", Rate: 1, Duration: time.Second}}}, `Phases[0].Pattern: "wave"`},
		// steps over a duration too short for them
		{"steps", Plan{Target: "http://127.0.0.1:1", Phases: []Phase{{Name: "a", Pattern: PatternSteps, Rate: 1, To: 5, Steps: 10, Duration: 5 * time.Second}}}, "Phases[0].Steps: 10 steps in 5s"},
		// a breaking phase without a probe length
		{"no step", Plan{Target: "http://127.0.0.1:1", Phases: []Phase{{Name: "s", Kind: KindStress, Rate: 1}}}, "Phases[0].Step: missing"},
		// a sustained phase whose capacity names no phase
		{"capacity", Plan{Target: "http://127.0.0.1:1", Phases: []Phase{{Name: "e", Pattern: PatternSustained, CapacityFrom: "stress", Duration: time.Second}}}, `Phases[0].Capacity: "stress" is neither`},
		// a criterion built with a metric that does not exist
		{"criterion", Plan{Target: "http://127.0.0.1:1", Phases: []Phase{{Name: "a", Rate: 1, Duration: time.Second, Criteria: []Threshold{{Metric: "speed", Op: "<", Value: 1}}}}}, `Phases[0].Criteria[0]: metric "speed"`},
		// a request that is not a URL
		{"request", Plan{Target: "http://127.0.0.1:1", Requests: []Target{{URL: "/users/1"}}, Phases: []Phase{ok}}, `Requests[0].URL: "/users/1"`},
		// a peak below the current rate
		{"peak", Plan{Target: "http://127.0.0.1:1", CurrentRPS: 100, PeakRPS: 50, Phases: []Phase{ok}}, "PeakRPS: 50 is below the current rate, 100"},
		// a negative cool-down
		{"cooldown", Plan{Target: "http://127.0.0.1:1", Cooldown: -time.Second, Phases: []Phase{ok}}, "Cooldown: -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := tc.plan.Run(context.Background(), RunOptions{})
			if !errors.Is(err, ErrBadPlan) || rep != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v (report %v); want ErrBadPlan with %q", err, rep != nil, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "loadtest: bad plan: ") {
				t.Errorf("error %q does not say whose it is", err)
			}
		})
	}
}

// TestPlanLiteralRuns: a Plan literal with only a target and a phase runs
// with the documented defaults: GET target/, the kind's criteria; a
// literal's Requests are sent in turn.
func TestPlanLiteralRuns(t *testing.T) {
	t.Parallel() // a light load: the heavy tests run before, alone
	var root, a, b atomic.Int64
	url := local(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			root.Add(1)
		case "/a":
			a.Add(1)
		case "/b":
			b.Add(1)
		}
	})
	p := &Plan{Target: url + "/", Phases: []Phase{{Name: "smoke", Rate: 20, Duration: time.Second}}}
	rep, err := p.Run(context.Background(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ph := rep.Phases[0]
	if rep.Plan != "plan" || ph.Kind != KindCustom || ph.Pattern != PatternConstant || root.Load() != 20 {
		t.Errorf("plan %q, phase %s/%s, %d requests to /; want plan, custom/constant, 20", rep.Plan, ph.Kind, ph.Pattern, root.Load())
	}
	if len(ph.Verdicts) != 1 || ph.Verdicts[0].Criterion != "rate<0.1%" || ph.Status != StatusPassed {
		t.Errorf("a custom phase's default criterion: %s %+v", ph.Status, ph.Verdicts)
	}
	if p.Connections != 0 || p.Phases[0].Kind != "" {
		t.Errorf("Run changed the caller's plan: %+v", p)
	}
	p = &Plan{Target: url, Requests: []Target{{URL: url + "/a"}, {Method: "POST", URL: url + "/b"}}, Phases: []Phase{{Name: "mix", Rate: 20, Duration: time.Second, Criteria: []Threshold{}}}}
	rep, err = p.Run(context.Background(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Load() != 10 || b.Load() != 10 || len(rep.Phases[0].Verdicts) != 0 {
		t.Errorf("requests in turn: /a %d, /b %d, verdicts %+v; want 10, 10 and none (Criteria empty)", a.Load(), b.Load(), rep.Phases[0].Verdicts)
	}
}

// TestPlanLiteralDefaults: Run fills in the defaults that a literal's zero
// fields stand for, as ParsePlan does for a file's missing keys.
func TestPlanLiteralDefaults(t *testing.T) {
	p := &Plan{Target: "http://127.0.0.1:1", CurrentRPS: 40, Phases: []Phase{
		{Name: "baseline", Duration: time.Minute},
		{Name: "stress", Step: time.Second},
		{Name: "spike", Duration: 30 * time.Second},
		{Name: "endurance", CapacityFrom: "stress", Duration: time.Minute},
		{Name: "ramp", Pattern: PatternSteps, To: 80, Duration: time.Minute},
	}}
	q, err := p.checked()
	if err != nil {
		t.Fatal(err)
	}
	if q.Connections != DefaultConnections || q.Timeout != DefaultTimeout || q.Cooldown != 0 || q.Name != "plan" {
		t.Errorf("plan defaults: %+v", q)
	}
	b, s, sp, e, r := q.Phases[0], q.Phases[1], q.Phases[2], q.Phases[3], q.Phases[4]
	switch {
	case b.Kind != KindBaseline || b.Pattern != PatternConstant || b.Rate != 40:
		t.Errorf("baseline %+v", b)
	case s.Pattern != PatternBreaking || s.Growth != DefaultGrowth || s.Precision != DefaultBisectPrecision || s.To != 40*defaultCeiling || len(s.Probe) != 2 || s.Recovery != 0:
		t.Errorf("stress %+v", s)
	case sp.Pattern != PatternSpike || sp.Multiplier != SpikeMultiplier || sp.SpikeLength != 10*time.Second:
		t.Errorf("spike %+v", sp)
	case e.Pattern != PatternSustained || e.Fraction != EnduranceFraction:
		t.Errorf("endurance %+v", e)
	case r.Steps != DefaultStepsPerRamp:
		t.Errorf("steps %+v", r)
	}
}

// TestDefaultCriteria: the guide's criteria are built as values whose
// Source reads back as the same threshold (merge re-reads it); a stress
// phase's recovery keeps its sub-second bound at a small scale (it was
// rounded to recovery<0s, which nothing passes), and a phase that
// watches no recovery is not judged on one.
func TestDefaultCriteria(t *testing.T) {
	src := "target: http://h\nscale: 0.001\npeak_rps: 100\nrequests: [{path: /}]\nphases:\n" +
		"  - {name: baseline, rate: 50, duration: 1000s}\n" +
		"  - {name: stress, rate: 10, step: 1000s}\n" +
		"  - {name: quick, kind: stress, rate: 10, step: 1000s, recovery: 0s}\n" +
		"  - {name: spike, rate: 10, duration: 10000s, spike: 2000s}\n" +
		"  - {name: endurance, capacity: '100', duration: 1000s}\n" +
		"  - {name: other, rate: 5, duration: 1000s}\n"
	p := mustPlan(t, src, ParseOptions{})
	want := map[string]string{
		"baseline":  "p(99)<100ms rate<0.1% rps>=49.5",
		"stress":    "breaking_point>=150 recovery<300ms overload_goodput>=90%",
		"quick":     "breaking_point>=150 overload_goodput>=90%",
		"spike":     "latency_increase<50% spike_error_rate<1%",
		"endurance": "memory_growth<5% latency_increase<10% cpu_growth<10%",
		"other":     "rate<0.1%",
	}
	for _, ph := range p.Phases {
		var got []string
		for _, th := range p.defaultCriteria(ph) {
			got = append(got, th.Source)
			back, err := ParseThreshold(th.Source)
			if err != nil || back.Metric != th.Metric || back.Op != th.Op || back.Quantile != th.Quantile || math.Abs(back.Value-th.Value) > 1e-9*th.Value {
				t.Errorf("%s: %+v reads back as %+v (%v)", ph.Name, th, back, err)
			}
		}
		if strings.Join(got, " ") != want[ph.Name] {
			t.Errorf("%s: criteria %q, want %q", ph.Name, strings.Join(got, " "), want[ph.Name])
		}
	}
	// At this scale a stress phase recovers in whole seconds: back within
	// its first second after the drop passes recovery<300ms.
	stress := p.Phases[1]
	th := p.defaultCriteria(stress)[1]
	if v := judgeOne(th, &Result{}, map[Measure]float64{MeasureFirstFailingRate: 20, MeasureBreakingPoint: 15, MeasureRecoverySeconds: 0}, stress); v.Status != StatusPassed {
		t.Errorf("%s with recovery at once: %s", th.Source, v.Status)
	}
	// A split run's criteria keep the whole rate in their text, and judge
	// each slice on its share.
	p = mustPlan(t, "target: http://h\nrequests: [{path: /}]\nphases: [{name: baseline, rate: 400, duration: 1s}]\n", ParseOptions{Slice: 0, Slices: 2})
	if th := p.defaultCriteria(p.Phases[0])[2]; th.Source != "rps>=396" || th.Value != 198 {
		t.Errorf("a slice's throughput criterion: %+v", th)
	}
}

// TestCriteriaEmptyMeansNone: `criteria: []` judges the phase on nothing,
// as the plan's comments say (it used to get the kind's defaults).
func TestCriteriaEmptyMeansNone(t *testing.T) {
	p := mustPlan(t, "target: http://h\nrequests: [{path: /}]\nphases:\n  - {name: baseline, rate: 1, duration: 1s, criteria: []}\n  - {name: b2, kind: baseline, rate: 1, duration: 1s}\n", ParseOptions{})
	if c := p.Phases[0].Criteria; c == nil || len(c) != 0 {
		t.Errorf("criteria: [] compiled to %#v, want an empty list", c)
	}
	if c := p.Phases[1].Criteria; c != nil {
		t.Errorf("criteria left out compiled to %#v, want nil (the kind's)", c)
	}
}
