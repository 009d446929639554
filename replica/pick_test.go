package replica

import (
	"math"
	"testing"
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
