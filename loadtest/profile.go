package loadtest

import (
	"math"
	"time"
)

// segment is a stretch of a rate profile whose rate goes linearly from
// from to to requests per second (a constant rate when they are equal).
type segment struct {
	dur      time.Duration
	from, to float64
}

// profile is a run's asked rate over time: its segments back to back.
type profile []segment

func constant(rate float64, d time.Duration) profile { return profile{{d, rate, rate}} }

// duration is the whole profile's length.
func (p profile) duration() time.Duration {
	var d time.Duration
	for _, s := range p {
		d += s.dur
	}
	return d
}

// count returns how many sends the profile asks for in its first t: the
// integral of the rate.
func (p profile) count(t time.Duration) float64 {
	var n float64
	for _, s := range p {
		if t <= 0 {
			break
		}
		d := min(t, s.dur).Seconds()
		slope := (s.to - s.from) / s.dur.Seconds()
		n += s.from*d + slope*d*d/2
		t -= s.dur
	}
	return n
}

// total is how many sends the whole profile makes: those numbered n with
// n + offset below the count at its end.
func (p profile) total(offset float64) int64 {
	return max(int64(math.Ceil(p.count(p.duration())-offset-1e-9)), 0)
}

// at returns the scheduled time of the send numbered n (from 0): the t at
// which count(t) = n + offset, offset in [0, 1) placing one generator of
// several between the others' sends. ok is false past the profile's end.
// It is exact, so a long run does not drift.
func (p profile) at(n int64, offset float64) (time.Duration, bool) {
	want := float64(n) + offset
	var base time.Duration
	var done float64
	for _, s := range p {
		secs := s.dur.Seconds()
		in := (s.from + s.to) / 2 * secs
		if want < done+in {
			k := want - done
			var t float64
			slope := (s.to - s.from) / secs
			if math.Abs(slope) < 1e-12 {
				t = k / s.from
			} else {
				// from·t + slope·t²/2 = k
				t = (-s.from + math.Sqrt(s.from*s.from+2*slope*k)) / slope
			}
			return base + time.Duration(t*float64(time.Second)), true
		}
		done += in
		base += s.dur
	}
	return 0, false
}
