package shard

import (
	"errors"
	"fmt"
	"sort"
)

// VirtualShards is the default number of virtual shards a keyspace is cut
// into (seed: stage 5, ShardedDatabaseCluster(shard_count=1000)).
const VirtualShards = 1000

// Kinds of map.
const (
	// KindHash maps a key to a virtual shard by VirtualShard, and each
	// virtual shard to its owner.
	KindHash = "hash"
	// KindRange maps key ranges to owners directly.
	KindRange = "range"
)

// ErrBadMap is returned for a map that cannot route every key.
var ErrBadMap = errors.New("shard: bad map")

// Shard is one physical shard: a PostgreSQL primary, optionally with
// streaming replicas.
type Shard struct {
	// Name identifies the shard in the map, in errors and in metrics.
	Name string `json:"name"`
	// URL is the primary's connection URL.
	URL string `json:"url"`
	// Replicas are the URLs of its streaming replicas, if any.
	Replicas []string `json:"replicas,omitempty"`
}

// Range is a half-open key range [Lo, Hi) owned by one shard; Hi == 0 on
// the last range means "to the largest key".
type Range struct {
	Lo    int64 `json:"lo"`
	Hi    int64 `json:"hi"`
	Owner int   `json:"owner"` // index into Map.Shards
}

// Map is a versioned assignment of keys to shards. A Map is immutable once
// routed: a change makes a new Map with a higher Epoch.
type Map struct {
	// Epoch is bumped by every change; a higher epoch is newer.
	Epoch int64 `json:"epoch"`
	// Kind is KindHash or KindRange.
	Kind   string  `json:"kind"`
	Shards []Shard `json:"shards"`
	// Owners, for a hash map, holds the owner (an index into Shards) of
	// each virtual shard; its length is the number of virtual shards.
	Owners []int `json:"owners,omitempty"`
	// Ranges, for a range map, cover every int64 key, sorted by Lo.
	Ranges []Range `json:"ranges,omitempty"`
	// Moves are the moves of virtual shards in progress (a hash map only),
	// as every instance must route them: see MapMove.
	Moves []MapMove `json:"moves,omitempty"`
}

// MaxReadShare is a full read share: every read of a move's virtual shards
// goes to its target.
const MaxReadShare = 100

// MapMove is a move of virtual shards in progress, as routing sees it.
// Ownership stays with Owners until the cutover publishes the new owner;
// meanwhile ReadShare percent of the reads of the virtual shards go to the
// target (the guide's percentage rollout: 1, 10, 50, 100), and while
// Fenced, writes to them are held by every instance (Router.Write waits
// for the next map, up to Config.FenceWait) instead of going to either
// side.
type MapMove struct {
	VShards   VRange `json:"vshards"`
	To        int    `json:"to"` // index into Shards
	ReadShare int    `json:"read_share,omitempty"`
	Fenced    bool   `json:"fenced,omitempty"`
}

// NewHashMap spreads n virtual shards (VirtualShards when n is 0) over the
// shards in contiguous, nearly equal blocks, at epoch 1.
func NewHashMap(shards []Shard, n int) (*Map, error) {
	if n == 0 {
		n = VirtualShards
	}
	if len(shards) == 0 || n < len(shards) {
		return nil, fmt.Errorf("%w: %d virtual shards over %d shards", ErrBadMap, n, len(shards))
	}
	m := &Map{Epoch: 1, Kind: KindHash, Shards: shards, Owners: make([]int, n)}
	for v := range m.Owners {
		m.Owners[v] = v * len(shards) / n
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks that the map routes every key to a shard it names.
func (m *Map) Validate() error {
	if len(m.Shards) == 0 {
		return fmt.Errorf("%w: no shards", ErrBadMap)
	}
	seen := map[string]bool{}
	for i, s := range m.Shards {
		if s.Name == "" || seen[s.Name] {
			return fmt.Errorf("%w: shard %d: empty or repeated name %q", ErrBadMap, i, s.Name)
		}
		seen[s.Name] = true
	}
	switch m.Kind {
	case KindHash:
		if len(m.Owners) == 0 {
			return fmt.Errorf("%w: a hash map with no virtual shards", ErrBadMap)
		}
		for v, o := range m.Owners {
			if o < 0 || o >= len(m.Shards) {
				return fmt.Errorf("%w: virtual shard %d: owner %d of %d shards", ErrBadMap, v, o, len(m.Shards))
			}
		}
	case KindRange:
		if len(m.Ranges) == 0 || !sort.SliceIsSorted(m.Ranges, func(i, j int) bool { return m.Ranges[i].Lo < m.Ranges[j].Lo }) {
			return fmt.Errorf("%w: ranges missing or not sorted", ErrBadMap)
		}
		for i, r := range m.Ranges {
			if r.Owner < 0 || r.Owner >= len(m.Shards) {
				return fmt.Errorf("%w: range %d: owner %d of %d shards", ErrBadMap, i, r.Owner, len(m.Shards))
			}
			last := i == len(m.Ranges)-1
			if i == 0 && r.Lo != minKey || !last && r.Hi != m.Ranges[i+1].Lo || last && r.Hi != 0 || !last && r.Hi <= r.Lo {
				return fmt.Errorf("%w: range %d [%d, %d) leaves a gap or overlaps", ErrBadMap, i, r.Lo, r.Hi)
			}
		}
	default:
		return fmt.Errorf("%w: kind %q, want %q or %q", ErrBadMap, m.Kind, KindHash, KindRange)
	}
	return m.validateMoves()
}

// validateMoves checks the moves in progress: a hash map's, in range, not
// overlapping, each onto another shard than its virtual shards' owner.
func (m *Map) validateMoves() error {
	if len(m.Moves) > 0 && m.Kind != KindHash {
		return fmt.Errorf("%w: moves in a %s map", ErrBadMap, m.Kind)
	}
	for i, mv := range m.Moves {
		if err := mv.VShards.Check(len(m.Owners)); err != nil {
			return fmt.Errorf("%w: move %d: %w", ErrBadMap, i, err)
		}
		if mv.To < 0 || mv.To >= len(m.Shards) || mv.ReadShare < 0 || mv.ReadShare > MaxReadShare {
			return fmt.Errorf("%w: move %d: target %d of %d shards, read share %d%% (want 0 to %d)", ErrBadMap, i, mv.To, len(m.Shards), mv.ReadShare, MaxReadShare)
		}
		for v := mv.VShards.Lo; v <= mv.VShards.Hi; v++ {
			if m.Owners[v] == mv.To {
				return fmt.Errorf("%w: move %d: virtual shard %d already belongs to its target %s", ErrBadMap, i, v, m.Shards[mv.To].Name)
			}
		}
		for j, o := range m.Moves[:i] {
			if o.VShards.Lo <= mv.VShards.Hi && mv.VShards.Lo <= o.VShards.Hi {
				return fmt.Errorf("%w: moves %d and %d overlap", ErrBadMap, j, i)
			}
		}
	}
	return nil
}

// minKey is the smallest key, where the first range starts.
const minKey = -1 << 63

// Owner returns the index in Shards of the shard that owns key.
func (m *Map) Owner(key int64) int {
	if m.Kind == KindHash {
		return m.Owners[VirtualShard(key, len(m.Owners))]
	}
	// The last range whose Lo is at most key.
	i := sort.Search(len(m.Ranges), func(i int) bool { return m.Ranges[i].Lo > key }) - 1
	return m.Ranges[i].Owner
}
