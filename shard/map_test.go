package shard

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// mapTestShards returns n shards named s0, s1, ...
func mapTestShards(n int) []Shard {
	shards := make([]Shard, n)
	for i := range shards {
		shards[i] = Shard{Name: fmt.Sprintf("s%d", i), URL: fmt.Sprintf("postgres://h%d/db", i)}
	}
	return shards
}

// TestMapNewHashMap proves NewHashMap cuts the virtual shards into
// contiguous blocks whose sizes differ by at most one, gives every shard a
// block, and refuses what cannot route every key.
func TestMapNewHashMap(t *testing.T) {
	cases := []struct {
		name    string
		shards  []Shard
		n       int
		wantN   int    // virtual shards in the map
		wantErr string // substring of the error; "" for success
	}{
		// n == 0 means the default, VirtualShards.
		{"default count", mapTestShards(2), 0, VirtualShards, ""},
		// One shard owns the whole keyspace.
		{"one shard", mapTestShards(1), 0, VirtualShards, ""},
		// 1,000 does not divide by 3: blocks of 333 and 334.
		{"uneven split", mapTestShards(3), 0, VirtualShards, ""},
		// As many virtual shards as shards: one each.
		{"one virtual shard each", mapTestShards(7), 7, 7, ""},
		// 64 shards, the planner's hash maximum, over the default count.
		{"planner maximum", mapTestShards(64), 0, VirtualShards, ""},
		// No shards cannot own anything.
		{"no shards", nil, 0, 0, "0 shards"},
		// Fewer virtual shards than shards would leave a shard empty.
		{"fewer virtual shards than shards", mapTestShards(4), 3, 0, "3 virtual shards over 4 shards"},
		// A negative count is refused, not wrapped.
		{"negative count", mapTestShards(2), -5, 0, "-5 virtual shards"},
		// Two shards with one name cannot be told apart in errors and metrics.
		{"repeated name", []Shard{{Name: "a"}, {Name: "a"}}, 0, 0, `repeated name "a"`},
		// A shard must have a name.
		{"empty name", []Shard{{Name: "a"}, {Name: ""}}, 0, 0, `empty or repeated name ""`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := NewHashMap(c.shards, c.n)
			if c.wantErr != "" {
				if !errors.Is(err, ErrBadMap) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("NewHashMap: err %v, want ErrBadMap naming %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Epoch != 1 || m.Kind != KindHash || len(m.Owners) != c.wantN {
				t.Fatalf("epoch %d, kind %q, %d virtual shards; want 1, %q, %d", m.Epoch, m.Kind, len(m.Owners), KindHash, c.wantN)
			}
			sizes := make([]int, len(c.shards))
			for v, o := range m.Owners {
				if v > 0 && o != m.Owners[v-1] && o != m.Owners[v-1]+1 {
					t.Fatalf("virtual shard %d: owner %d after %d, blocks not contiguous", v, o, m.Owners[v-1])
				}
				sizes[o]++
			}
			lo, hi := sizes[0], sizes[0]
			for _, s := range sizes {
				lo, hi = min(lo, s), max(hi, s)
			}
			if lo == 0 || hi-lo > 1 {
				t.Fatalf("block sizes %v: want every shard owning some, sizes within one of each other", sizes)
			}
		})
	}
}

// mapTestRanges builds a range map over three shards.
func mapTestRanges(ranges ...Range) *Map {
	return &Map{Epoch: 1, Kind: KindRange, Shards: mapTestShards(3), Ranges: ranges}
}

// TestMapValidate proves Validate refuses every map that cannot route every
// key to a shard it names, with an error that says what is wrong.
func TestMapValidate(t *testing.T) {
	const lo = math.MinInt64 // where the first range must start
	cases := []struct {
		name    string
		m       *Map
		wantErr string // substring of the error; "" for a valid map
	}{
		// One range from the smallest key to the largest (Hi 0 on the last).
		{"range: whole keyspace", mapTestRanges(Range{lo, 0, 0}), ""},
		// Three adjacent ranges, the last open-ended.
		{"range: three ranges", mapTestRanges(Range{lo, -100, 0}, Range{-100, 1000, 1}, Range{1000, 0, 2}), ""},
		// A last range starting below zero still runs to the largest key.
		{"range: last starts negative", mapTestRanges(Range{lo, -5, 1}, Range{-5, 0, 2}), ""},
		// A hash map with owners in range.
		{"hash: valid", &Map{Kind: KindHash, Shards: mapTestShards(2), Owners: []int{0, 1, 1, 0}}, ""},
		// A map without shards routes nothing.
		{"no shards", &Map{Kind: KindHash, Owners: []int{0}}, "no shards"},
		// Repeated shard names are named in the error.
		{"repeated name", &Map{Kind: KindHash, Shards: []Shard{{Name: "x"}, {Name: "x"}}, Owners: []int{0}}, `shard 1: empty or repeated name "x"`},
		// An unknown kind names both accepted kinds.
		{"unknown kind", &Map{Kind: "list", Shards: mapTestShards(1)}, `kind "list", want "hash" or "range"`},
		// A hash map needs virtual shards.
		{"hash: no virtual shards", &Map{Kind: KindHash, Shards: mapTestShards(1)}, "no virtual shards"},
		// A virtual shard owned by a shard past the end.
		{"hash: owner too large", &Map{Kind: KindHash, Shards: mapTestShards(2), Owners: []int{0, 2}}, "virtual shard 1: owner 2 of 2 shards"},
		// A negative owner.
		{"hash: negative owner", &Map{Kind: KindHash, Shards: mapTestShards(2), Owners: []int{-1, 0}}, "virtual shard 0: owner -1 of 2 shards"},
		// A range map needs ranges.
		{"range: none", mapTestRanges(), "ranges missing"},
		// Ranges must come sorted by Lo.
		{"range: unsorted", mapTestRanges(Range{lo, 10, 0}, Range{20, 0, 1}, Range{10, 20, 2}), "not sorted"},
		// The first range must start at the smallest key.
		{"range: gap at the start", mapTestRanges(Range{lo + 1, 0, 0}), "range 0 [-9223372036854775807, 0) leaves a gap"},
		// A hole between two ranges.
		{"range: gap between", mapTestRanges(Range{lo, 10, 0}, Range{11, 0, 1}), "range 0 [-9223372036854775808, 10) leaves a gap"},
		// Two ranges claiming the same keys.
		{"range: overlap", mapTestRanges(Range{lo, 10, 0}, Range{5, 0, 1}), "range 0 [-9223372036854775808, 10) leaves a gap or overlaps"},
		// An empty middle range (Hi == Lo).
		{"range: empty middle", mapTestRanges(Range{lo, 5, 0}, Range{5, 5, 1}, Range{5, 0, 2}), "range 1 [5, 5) leaves a gap or overlaps"},
		// The last range must be open-ended (Hi 0), or the largest keys have no owner.
		{"range: closed last", mapTestRanges(Range{lo, 10, 0}, Range{10, 20, 1}), "range 1 [10, 20) leaves a gap"},
		// A range owned by a shard past the end.
		{"range: owner too large", mapTestRanges(Range{lo, 0, 3}), "range 0: owner 3 of 3 shards"},
		// A range with a negative owner.
		{"range: negative owner", mapTestRanges(Range{lo, 7, 0}, Range{7, 0, -1}), "range 1: owner -1 of 3 shards"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.m.Validate()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want a valid map", err)
				}
				return
			}
			if !errors.Is(err, ErrBadMap) || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Validate: %v, want ErrBadMap naming %q", err, c.wantErr)
			}
		})
	}
}

// TestMapOwnerRange proves a range map routes each key to the range
// containing it, at every boundary and at both ends of the int64 range.
func TestMapOwnerRange(t *testing.T) {
	m := mapTestRanges(Range{math.MinInt64, -100, 0}, Range{-100, 0, 1}, Range{0, 1000, 2}, Range{1000, 0, 1})
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		key  int64
		want int
	}{
		{math.MinInt64, 0},     // the smallest key is in the first range
		{math.MinInt64 + 1, 0}, // and its neighbour
		{-101, 0},              // the last key before a boundary stays below it
		{-100, 1},              // Lo is inclusive
		{-1, 1},                // Hi is exclusive: -1 is below Hi 0
		{0, 2},                 // a middle range starting at 0 (not "to the largest key")
		{999, 2},               // the last key of [0, 1000)
		{1000, 1},              // the open-ended last range starts at its Lo
		{math.MaxInt64, 1},     // the largest key is in the open-ended last range
	}
	for _, c := range cases {
		if got := m.Owner(c.key); got != c.want {
			t.Errorf("Owner(%d) = %d, want %d", c.key, got, c.want)
		}
	}
	// A single range owns every key, both ends included.
	one := mapTestRanges(Range{math.MinInt64, 0, 2})
	for _, k := range []int64{math.MinInt64, -1, 0, 1, math.MaxInt64} {
		if got := one.Owner(k); got != 2 {
			t.Errorf("single range: Owner(%d) = %d, want 2", k, got)
		}
	}
}

// TestMapOwnerHash proves a hash map routes a key to the owner of its
// virtual shard, extremes included.
func TestMapOwnerHash(t *testing.T) {
	m, err := NewHashMap(mapTestShards(3), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int64{math.MinInt64, -1, 0, 1, 42, math.MaxInt64} {
		if got, want := m.Owner(k), m.Owners[VirtualShard(k, VirtualShards)]; got != want {
			t.Errorf("Owner(%d) = %d, want %d (virtual shard %d)", k, got, want, VirtualShard(k, VirtualShards))
		}
	}
}

// BenchmarkMapOwner measures the owner lookup of a hash map over the
// default virtual shards and of a range map of 64 ranges (the planner's
// hash-sharding maximum, as a size for a binary search).
func BenchmarkMapOwner(b *testing.B) {
	const shards = 64 // shards in each benchmarked map
	hash, err := NewHashMap(mapTestShards(shards), 0)
	if err != nil {
		b.Fatal(err)
	}
	ranged := &Map{Epoch: 1, Kind: KindRange, Shards: mapTestShards(shards)}
	const width = 1 << 64 / shards // keys per range, 2^58
	const first = 1 << 63          // math.MinInt64's bits as a uint64
	for i := range shards {
		r := Range{Lo: int64(first + uint64(i)*width), Owner: i}
		if i < shards-1 {
			r.Hi = int64(first + uint64(i+1)*width)
		}
		ranged.Ranges = append(ranged.Ranges, r)
	}
	if err := ranged.Validate(); err != nil {
		b.Fatal(err)
	}
	for _, m := range []*Map{hash, ranged} {
		b.Run(m.Kind, func(b *testing.B) {
			b.ReportAllocs()
			sum := 0
			for i := 0; b.Loop(); i++ {
				sum += m.Owner(int64(i) * keyspaceBenchStride)
			}
			keyspaceBenchSink = sum
		})
	}
}

// TestMapValidateMoves: moves in progress must be in range, onto another
// shard than their virtual shards' owner, with a share of 0 to 100 %, and
// must not overlap.
func TestMapValidateMoves(t *testing.T) {
	base, err := NewHashMap([]Shard{{Name: "a", URL: "postgres://a"}, {Name: "b", URL: "postgres://b"}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Owners: 0-4 a, 5-9 b.
	for _, c := range []struct {
		name  string
		moves []MapMove
		ok    bool
	}{
		{"a move onto b", []MapMove{{VShards: VRange{0, 2}, To: 1, ReadShare: 50}}, true},
		{"fenced, full share", []MapMove{{VShards: VRange{3, 4}, To: 1, ReadShare: 100, Fenced: true}}, true},
		{"two apart", []MapMove{{VShards: VRange{0, 1}, To: 1}, {VShards: VRange{5, 6}, To: 0}}, true},
		{"onto the owner", []MapMove{{VShards: VRange{0, 2}, To: 0}}, false},
		{"over two owners onto one", []MapMove{{VShards: VRange{3, 6}, To: 1}}, false},
		{"out of range", []MapMove{{VShards: VRange{8, 10}, To: 0}}, false},
		{"no such shard", []MapMove{{VShards: VRange{0, 1}, To: 2}}, false},
		{"share over 100", []MapMove{{VShards: VRange{0, 1}, To: 1, ReadShare: 101}}, false},
		{"negative share", []MapMove{{VShards: VRange{0, 1}, To: 1, ReadShare: -1}}, false},
		{"overlapping", []MapMove{{VShards: VRange{0, 2}, To: 1}, {VShards: VRange{2, 3}, To: 1}}, false},
	} {
		m := *base
		m.Moves = c.moves
		if err := m.Validate(); (err == nil) != c.ok || err != nil && !errors.Is(err, ErrBadMap) {
			t.Errorf("%s: Validate = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	r := *base
	r.Kind, r.Owners, r.Ranges = KindRange, nil, []Range{{Lo: minKey, Hi: 0, Owner: 0}}
	r.Moves = []MapMove{{VShards: VRange{0, 1}, To: 1}}
	if err := r.Validate(); !errors.Is(err, ErrBadMap) {
		t.Errorf("moves in a range map: %v, want ErrBadMap", err)
	}
}
