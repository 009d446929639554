package replica

import (
	"math"
	"testing"
	"time"
)

func floatBits(f float64) uint64 { return math.Float64bits(f) }

func testNodes(n int) []*node {
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = &node{idx: i, name: "r", capacity: 40}
	}
	return nodes
}

func TestPick(t *testing.T) {
	nodes := testNodes(3)
	setLat := func(n *node, ns float64) { n.latency.Store(floatBits(ns)) }
	for _, n := range nodes {
		setLat(n, 1e6)
	}
	// Load first: the least loaded wins whatever its latency.
	nodes[0].inUse.Store(5)
	nodes[1].inUse.Store(1)
	nodes[2].inUse.Store(3)
	setLat(nodes[1], 9e6)
	if got := pick(nodes, 0, 0); got != nodes[1] {
		t.Fatalf("picked %d, want the least loaded (1)", got.idx)
	}
	// Equal load: a latency under half of the others' wins; a small
	// difference does not, and ties are shared.
	for _, n := range nodes {
		n.inUse.Store(0)
	}
	setLat(nodes[1], 1e6)
	setLat(nodes[2], 0.4e6)
	if got := pick(nodes, 0, 0); got != nodes[2] {
		t.Fatalf("picked %d, want the much faster (2)", got.idx)
	}
	setLat(nodes[2], 0.8e6)
	seen := map[int]int{}
	for range 3000 {
		seen[pick(nodes, 0, 0).idx]++
	}
	for i := range nodes {
		if seen[i] < 700 {
			t.Errorf("near-equal replicas: picks %v; want each about a third", seen)
		}
	}
	// Tried ones and ones behind the token are skipped.
	if got := pick(nodes, 1<<0|1<<2, 0); got != nodes[1] {
		t.Fatalf("picked %d, want the untried one (1)", got.idx)
	}
	nodes[0].replay.Store(100)
	if got := pick(nodes, 0, 50); got != nodes[0] {
		t.Fatalf("picked %v, want the one that replayed the token (0)", got)
	}
	if got := pick(nodes, 1<<0, 50); got != nil {
		t.Fatalf("picked %d, want none", got.idx)
	}
}

// BenchmarkPick: one replica choice among three, from parallel callers.
func BenchmarkPick(b *testing.B) {
	nodes := testNodes(3)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if pick(nodes, 0, 0) == nil {
				b.Fatal("no pick")
			}
		}
	})
}

func TestFallbackLimiter(t *testing.T) {
	var f fallbackLimiter
	f.start = time.Now()
	allowed := 0
	for range 1000 {
		f.read()
		if f.allow(0.25) {
			allowed++
		}
	}
	if allowed < 240 || allowed > 260 {
		t.Fatalf("share 0.25 of 1000 reads: %d allowed", allowed)
	}
	// After a quiet spell, the old reads count as a rate, not a heap: an
	// hour of reads does not let the next second's fallbacks through.
	f = fallbackLimiter{start: time.Now().Add(-time.Hour)}
	f.reads.Store(3600) // one read a second for an hour
	allowed = 0
	for range 100 {
		f.read()
		if f.allow(0.5) {
			allowed++
		}
	}
	if allowed > 55 {
		t.Fatalf("after a quiet hour, %d of 100 reads fell back; want about half", allowed)
	}
	if !f.allow(1) || f.allow(-1) {
		t.Fatal("share 1 must allow every fallback and a negative share none")
	}
}

func TestLagSeconds(t *testing.T) {
	r := &Router{cfg: Config{LagBound: time.Second, CheckInterval: 500 * time.Millisecond}}
	t0 := time.Now()
	if got := r.lagSeconds(t0, 5); got != 0 {
		t.Fatalf("no samples: %v, want no verdict (0)", got)
	}
	r.samples = []lsnSample{{t0, 1000}}
	if got := r.lagSeconds(t0, 10); got != 0 {
		t.Fatalf("one sample: %v, want no verdict (0)", got)
	}
	r.samples = []lsnSample{{t0, 1000}, {t0.Add(time.Second), 2000}, {t0.Add(2 * time.Second), 3000}}
	now := t0.Add(2 * time.Second)
	for _, tc := range []struct {
		replay Token
		want   float64
	}{
		{3000, 0},   // caught up with the newest sample
		{3500, 0},   // ahead of it
		{2500, 0.5}, // the primary passed 2500 half-way between the last two samples
		{2000, 1},
		{1500, 1.5},
		{500, 2}, // behind every sample: at least the history, which is past the bound
	} {
		if got := r.lagSeconds(now, tc.replay); math.Abs(got-tc.want) > 0.01 {
			t.Errorf("replay %d: lag %.3fs, want %.3fs", tc.replay, got, tc.want)
		}
	}
}
