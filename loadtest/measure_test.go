package loadtest

import (
	"math"
	"testing"
)

// seconds returns a series with one second per p99 (ms), each with 100
// requests and errs errors; a negative p99 is a second without requests.
func seconds(errs int64, p99s ...float64) []Point {
	out := make([]Point, len(p99s))
	for i, p := range p99s {
		out[i] = Point{Second: i, Requests: 100, Errors: errs, P99MS: p}
		if p < 0 {
			out[i] = Point{Second: i}
		}
	}
	return out
}

func TestTypicalP99(t *testing.T) {
	for _, tc := range []struct {
		name   string
		series []Point
		want   float64 // 0: none
	}{
		// the median of the seconds, not their worst
		{"stall", seconds(0, 5, 5.2, 300, 4.8, 5.1), 5.1},
		// an even count takes the middle two
		{"even", seconds(0, 4, 6, 8, 100), 7},
		// seconds without requests do not count
		{"gaps", seconds(0, -1, 6, -1, 8, 7), 7},
		// under the floor: a sub-millisecond target counts as 1 ms
		{"floor", seconds(0, 0.2, 0.3, 0.25), latencyFloorMS},
		// nothing measured
		{"empty", seconds(0, -1, -1), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := typicalP99(tc.series, 0, len(tc.series))
			if ok != (tc.want > 0) || got != tc.want {
				t.Errorf("typical p99 %v (%v), want %v", got, ok, tc.want)
			}
		})
	}
}

// TestSpikeMeasures: the spike's verdict compares its typical p99 with
// that of the calm seconds before it, so noise in one second does not set
// it, a target under a millisecond is not judged on noise, and a latency
// that really rises still fails.
func TestSpikeMeasures(t *testing.T) {
	inc := criterion(MetricLatencyIncrease, "<", SpikeLatencyIncrease)
	for _, tc := range []struct {
		name     string
		series   []Point // 4 seconds before, 3 of spike (4-6), 4 after
		pass     bool
		increase float64
		recovery float64 // seconds after the spike; -1: not recovered
	}{
		// steady at 5 ms, one 80 ms stall before the spike: the stall is
		// not the reference (against it the spike would look faster; with
		// the stall in the spike instead, it would look 16 × slower)
		{"stall before", seconds(0, 5, 80, 5, 5, 5.5, 6, 5.5, 5, 5, 5, 5), true, 0.1, 0},
		{"stall during", seconds(0, 5, 5, 5, 5, 5.5, 80, 5.5, 5, 5, 5, 5), true, 0.1, 0},
		// a sub-millisecond target whose p99 doubles during the spike,
		// from 0.3 to 0.6 ms: noise under the floor, not a regression
		{"under a millisecond", seconds(0, 0.3, 0.3, 0.4, 0.3, 0.6, 0.6, 0.7, 0.3, 0.3, 0.3, 0.3), true, 0, 0},
		// a target that really doubles its latency during the spike
		{"doubled", seconds(0, 5, 5, 5, 5, 10, 10, 10, 5, 5, 5, 5), false, 1, 0},
		// … and takes two seconds to come back
		{"slow recovery", seconds(0, 5, 5, 5, 5, 10, 10, 10, 40, 9, 5, 5), false, 1, 2},
		// … or never does
		{"no recovery", seconds(0, 5, 5, 5, 5, 10, 10, 10, 10, 10, 10, 10), false, 1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[Measure]float64{MeasureSpikeStart: 4, MeasureSpikeEnd: 7}
			if err := spikeMeasures(tc.series, m); err != nil {
				t.Fatal(err)
			}
			if got := m[MeasureLatencyIncrease]; math.Abs(got-tc.increase) > 1e-9 {
				t.Errorf("latency increase %v, want %v (measures %v)", got, tc.increase, m)
			}
			v := judgeOne(inc, &Result{}, m, Phase{Pattern: PatternSpike})
			if (v.Status == StatusPassed) != tc.pass {
				t.Errorf("%s: %s (actual %v), want passed=%v", v.Criterion, v.Status, v.Actual, tc.pass)
			}
			switch {
			case tc.recovery < 0 && m[MeasureNotRecovered] != 1:
				t.Errorf("recovered after %vs, want not recovered", m[MeasureRecoverySeconds])
			case tc.recovery >= 0 && (m[MeasureNotRecovered] == 1 || m[MeasureRecoverySeconds] != tc.recovery):
				t.Errorf("recovery %vs (not recovered: %v), want %vs", m[MeasureRecoverySeconds], m[MeasureNotRecovered], tc.recovery)
			}
		})
	}
}

// TestRecoveredAt: recovered at the first second that is itself back
// near the reference and whose window typically is, with few errors.
func TestRecoveredAt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		series []Point
		ref    float64
		want   int
	}{
		// the first second back (within 10 % or 1 ms of 10 ms: 11 ms)
		{"back", seconds(0, 50, 30, 10.5, 10, 10, 10, 10, 10, 10, 10, 10, 10), 10, 2},
		// a good second between bad ones is not yet a recovery: its
		// window is still typically slow
		{"blip", seconds(0, 50, 10, 50, 50, 10, 10, 10, 10, 10, 10, 10, 10, 10), 10, 4},
		// one slow second after the return does not undo it
		{"noise after", seconds(0, 50, 10, 10, 40, 10, 10, 10, 10, 10, 10, 10, 10), 10, 1},
		// a fast target is back within the floor and the 1 ms slack
		{"slack", seconds(0, 5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4), latencyFloorMS, 1},
		// errors keep it from counting as back
		{"errors", seconds(5, 10, 10, 10, 10, 10, 10, 10, 10), 10, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := recoveredAt(tc.series, 0, tc.ref); got != tc.want {
				t.Errorf("recovered at %d, want %d", got, tc.want)
			}
		})
	}
}

// TestGrowthMeasures: an endurance phase's latency increase compares the
// typical p99 of its first and last seconds (a tenth, at least three), so
// one slow second at either end does not fail it and a real rise does.
func TestGrowthMeasures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		series []Point
		want   float64 // the increase; NaN: not measured
	}{
		// one stall in the last three seconds of a steady phase
		{"stall at the end", seconds(0, 5, 5, 5, 5, 5, 5, 5, 60, 5), 0},
		// a real rise: the last three seconds twice the first three
		{"rise", seconds(0, 5, 5, 5, 7, 8, 9, 10, 10, 10), 1},
		// thirty seconds: a tenth is three seconds at each end
		{"long", append(seconds(0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4), seconds(0, 6, 6, 6)...), 0.5},
		// a one-second phase has no first and last to compare
		{"short", seconds(0, 5), math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[Measure]float64{}
			growthMeasures(tc.series, m, true)
			got, ok := m[MeasureLatencyIncrease]
			if math.IsNaN(tc.want) != !ok || ok && math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("latency increase %v (measured %v), want %v", got, ok, tc.want)
			}
		})
	}
}
