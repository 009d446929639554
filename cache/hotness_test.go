package cache

import (
	"fmt"
	"slices"
	"testing"
)

func TestHotness(t *testing.T) {
	h := newHotness()
	// Key i is read 1000/(i+1) times: a Zipf-like skew.
	for i := range 50 {
		for range 1000 / (i + 1) {
			h.add(fmt.Sprint("k", i), 1)
		}
	}
	// A flood of keys read once each must not push the hot ones out.
	for i := range 100_000 {
		h.add(fmt.Sprint("cold", i), 1)
	}
	if len(h.cands) > hotCandidates {
		t.Fatalf("%d candidates, bound is %d", len(h.cands), hotCandidates)
	}
	top := h.top(5)
	if !slices.Equal(top, []string{"k0", "k1", "k2", "k3", "k4"}) {
		t.Fatalf("top 5 = %v", top)
	}
	if e := h.estimate("k0"); e < 1000 || e > 1100 {
		t.Fatalf("estimate of k0 = %d, want about 1000 (never under)", e)
	}
	h.decay()
	if e := h.estimate("k0"); e < 500 || e > 550 {
		t.Fatalf("after decay, estimate of k0 = %d, want about 500", e)
	}
	if h.reads() != 100_000+sum(50) {
		t.Fatalf("reads = %d", h.reads())
	}
}

func sum(n int) uint64 {
	s := uint64(0)
	for i := range n {
		s += uint64(1000 / (i + 1))
	}
	return s
}

func TestRateWatch(t *testing.T) {
	var w rateWatch
	total := uint64(0)
	steps := []struct {
		reads uint64 // reads in this interval
		surge bool
	}{
		{100, false}, // first interval sets the baseline
		{110, false}, // normal
		{140, false}, // +27 %: below the 50 % rise
		{200, true},  // +80 %: a surge starts
		{300, false}, // still surging: reported once
		{110, false}, // back to normal
		{400, true},  // a new surge
	}
	for i, s := range steps {
		total += s.reads
		if got := w.surge(total, 0.5); got != s.surge {
			t.Fatalf("step %d (%d reads, baseline %.0f): surge = %v, want %v", i, s.reads, w.baseline, got, s.surge)
		}
	}
}
