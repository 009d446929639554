package cache

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
)

// Sizes of the hotness tracker: fixed, so memory does not grow with the
// number of keys (about 1 MiB for the sketch and a few hundred KiB for the
// candidates, per cache).
const (
	sketchDepth   = 4
	sketchWidth   = 1 << 16 // counters per row
	hotCandidates = 4096    // keys kept as candidates for the hot set
	hotSample     = 16      // one L1 hit in hotSample is counted, with weight hotSample
)

// hotness estimates how often each key is read, in bounded memory: a
// count-min sketch of 4 × 65,536 counters gives the frequency of any key
// (never under, rarely over), halved every half window so that it follows
// a sliding window; a bounded candidate set keeps the most frequent keys
// seen, for the hot set that warming loads.
type hotness struct {
	seeds [sketchDepth]maphash.Seed

	mu    sync.Mutex
	rows  [sketchDepth][sketchWidth]uint32
	cands map[string]uint32 // key → its estimate when last seen
	total uint64            // reads counted since the start (for the read rate)
}

func newHotness() *hotness {
	h := &hotness{cands: make(map[string]uint32, hotCandidates)}
	for i := range h.seeds {
		h.seeds[i] = maphash.MakeSeed()
	}
	return h
}

// add counts n reads of key and returns the new estimate.
func (h *hotness) add(key string, n uint32) uint32 {
	var idx [sketchDepth]uint32
	for i := range idx {
		idx[i] = uint32(maphash.String(h.seeds[i], key)) % sketchWidth
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	est := ^uint32(0)
	for i, j := range idx {
		v := h.rows[i][j]
		if v <= ^uint32(0)-n {
			v += n
		}
		h.rows[i][j] = v
		est = min(est, v)
	}
	h.total += uint64(n)
	if _, ok := h.cands[key]; ok || len(h.cands) < hotCandidates {
		h.cands[key] = est
	} else if est > h.minCandidate() {
		h.trimCandidates()
		h.cands[key] = est
	}
	return est
}

// estimate returns how often key was read in the current window.
func (h *hotness) estimate(key string) uint32 {
	est := ^uint32(0)
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.seeds {
		est = min(est, h.rows[i][uint32(maphash.String(h.seeds[i], key))%sketchWidth])
	}
	return est
}

// minCandidate is a cheap lower bound check: the smallest estimate among a
// few candidates (a full scan would make every cold read O(candidates)).
func (h *hotness) minCandidate() uint32 {
	m, n := ^uint32(0), 0
	for _, v := range h.cands {
		m = min(m, v)
		if n++; n == 8 {
			break
		}
	}
	return m
}

// candidate is a key with its estimated reads.
type candidate struct {
	key   string
	reads uint32
}

// sortedCandidates returns the candidates, most read first; h.mu is held.
func (h *hotness) sortedCandidates() []candidate {
	all := make([]candidate, 0, len(h.cands))
	for k, v := range h.cands {
		all = append(all, candidate{k, v})
	}
	slices.SortFunc(all, func(a, b candidate) int {
		if c := cmp.Compare(b.reads, a.reads); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	return all
}

// trimCandidates drops the colder half of the candidates; h.mu is held.
func (h *hotness) trimCandidates() {
	all := h.sortedCandidates()
	for _, c := range all[len(all)/2:] {
		delete(h.cands, c.key)
	}
}

// decay halves every counter: called every half window, it makes the
// estimates follow a sliding window of about the window's length.
func (h *hotness) decay() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.rows {
		for j := range h.rows[i] {
			h.rows[i][j] >>= 1
		}
	}
	for k, v := range h.cands {
		if v >>= 1; v == 0 {
			delete(h.cands, k)
		} else {
			h.cands[k] = v
		}
	}
}

// reads returns the reads counted since the start (sampled hits weighted).
func (h *hotness) reads() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// top returns up to n keys, most read first.
func (h *hotness) top(n int) []string {
	h.mu.Lock()
	all := h.sortedCandidates()
	h.mu.Unlock()
	out := make([]string, 0, min(n, len(all)))
	for _, c := range all[:min(n, len(all))] {
		out = append(out, c.key)
	}
	return out
}
