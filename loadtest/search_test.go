package loadtest

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// targetModel is a target the breaking search probes without load: a probe
// passes when its rate is at most capacity, except the probes that fails
// names by their number (from 0). Each probe advances its clock by a step.
type targetModel struct {
	capacity float64
	fails    map[int]bool // probes that fail whatever their rate: a stall
	clock    time.Time
	step     time.Duration
	probes   []string // "purpose@rate" of each probe, in order
}

func (m *targetModel) once(rate float64, purpose string) (bool, []Point) {
	n := len(m.probes)
	m.probes = append(m.probes, fmt.Sprintf("%s@%.0f", purpose, rate))
	m.clock = m.clock.Add(m.step)
	p99 := 2.0 // ms, for the seconds of a passing probe
	if rate > m.capacity {
		p99 = 500
	}
	return rate <= m.capacity && !m.fails[n], []Point{{Requests: 100, P99MS: p99}, {Requests: 100, P99MS: 3}, {Requests: 100, P99MS: 400}}
}

// TestSearch: the breaking search against models of a target, without
// load: its probes in order, and what it finds.
func TestSearch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ph       Phase // Step, Rate, To, Growth, Precision, Duration
		capacity float64
		fails    []int
		want     string // the probes, in order
		lo, hi   float64
		calm     float64
	}{
		// from below: up by growth until a probe fails (and fails again),
		// then bisect to within the precision
		{name: "ramp", ph: Phase{Rate: 500, To: 1e6, Growth: 1.5, Precision: 0.05}, capacity: 1000,
			want: "ramp@500 ramp@750 ramp@1125 confirm@1125 bisect@938 bisect@1031 confirm@1031 bisect@984",
			lo:   984, hi: 1031, calm: 500},
		// a stall fails the first probe once: it is run again, passes,
		// and the stall does not set the result
		{name: "stall", ph: Phase{Rate: 500, To: 1e6, Growth: 1.5, Precision: 0.05}, capacity: 1000, fails: []int{0},
			want: "ramp@500 confirm@500 ramp@750 ramp@1125 confirm@1125 bisect@938 bisect@1031 confirm@1031 bisect@984",
			lo:   984, hi: 1031, calm: 500},
		// from above: the start rate fails, so the search goes down by the
		// growth first; the calm rate is the first that passed
		{name: "descend", ph: Phase{Rate: 1600, To: 1e6, Growth: 1.5, Precision: 0.1}, capacity: 1000,
			want: "ramp@1600 confirm@1600 descend@1067 confirm@1067 descend@711 bisect@889 bisect@978",
			lo:   978, hi: 1067, calm: 711},
		// nothing fails up to the ceiling: no failing rate
		{name: "ceiling", ph: Phase{Rate: 100, To: 300, Growth: 2, Precision: 0.05}, capacity: 1000,
			want: "ramp@100 ramp@200 ramp@300", lo: 300, calm: 100},
		// nothing passes: down to the lowest rate, each failure confirmed
		{name: "nothing", ph: Phase{Rate: 8, To: 100, Growth: 2, Precision: 0.05}, capacity: 0,
			want: "ramp@8 confirm@8 descend@4 confirm@4 descend@2 confirm@2 descend@1 confirm@1", hi: 1},
		// the phase's duration bounds the search: a probe that would end at
		// or past it is not started, a confirmation included
		{name: "deadline", ph: Phase{Rate: 800, To: 1e6, Growth: 2, Precision: 0.01, Duration: 3 * time.Second}, capacity: 1000,
			want: "ramp@800 ramp@1600", lo: 800, hi: 1600, calm: 800},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ph := tc.ph
			ph.Step = time.Second
			m := &targetModel{capacity: tc.capacity, fails: map[int]bool{}, clock: time.Unix(1000, 0), step: ph.Step}
			for _, n := range tc.fails {
				m.fails[n] = true
			}
			s := &search{ph: ph, ctx: context.Background(), now: func() time.Time { return m.clock }, once: m.once}
			if ph.Duration > 0 {
				s.deadline = m.clock.Add(ph.Duration)
			}
			if err := s.run(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(m.probes, " "); got != tc.want {
				t.Errorf("probes\n got %s\nwant %s", got, tc.want)
			}
			if math.Round(s.lo) != tc.lo || math.Round(s.hi) != tc.hi || math.Round(s.calm) != tc.calm {
				t.Errorf("passed up to %.0f, failed from %.0f, calm %.0f; want %v, %v, %v", s.lo, s.hi, s.calm, tc.lo, tc.hi, tc.calm)
			}
			// The reference is the typical p99 of the calm probe's seconds:
			// the median, not its worst second.
			if tc.calm > 0 && s.ref != 3 {
				t.Errorf("reference %.1fms, want the calm probe's median second, 3ms", s.ref)
			}
		})
	}
}

// TestSearchInterrupted: a search whose context ends returns its error
// at once, without a confirmation probe.
func TestSearchInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var probes int
	s := &search{ph: Phase{Rate: 10, To: 1000, Growth: 2, Precision: 0.05, Step: time.Second}, ctx: ctx, now: time.Now,
		once: func(float64, string) (bool, []Point) {
			probes++
			cancel() // the run is interrupted during its first probe
			return false, nil
		}}
	if err := s.run(); err != context.Canceled || probes != 1 {
		t.Errorf("search: %v after %d probes; want context.Canceled after 1", err, probes)
	}
}
