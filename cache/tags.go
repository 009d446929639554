package cache

import (
	"sync/atomic"

	"github.com/maypok86/otter/v2"
)

// maxTagEpochs bounds the tag epochs an instance remembers; a forgotten
// epoch is read from Redis again when next needed.
const maxTagEpochs = 100_000

// tagEpochs is this instance's view of the current epoch of each tag. It is
// kept current by this instance's own bumps and by the bus; a tag it does
// not know is read from Redis.
type tagEpochs struct {
	m   *otter.Cache[string, uint64]
	gen atomic.Uint64 // bumped by forget: epochs read from Redis before it are not stored
}

func newTagEpochs() *tagEpochs {
	return &tagEpochs{m: otter.Must(&otter.Options[string, uint64]{MaximumSize: maxTagEpochs})}
}

// valid reports whether every stamp still carries its tag's current epoch.
// An unknown tag makes the value invalid: the read falls through to L2,
// which fetches the epoch.
func (t *tagEpochs) valid(stamps []tagStamp) bool {
	for _, s := range stamps {
		if e, ok := t.m.GetIfPresent(s.tag); !ok || e != s.epoch {
			return false
		}
	}
	return true
}

// known returns the epochs of tags if all are known and trusted.
func (t *tagEpochs) known(tags []string, untrusted bool) ([]uint64, bool) {
	if untrusted {
		return nil, false
	}
	out := make([]uint64, len(tags))
	for i, tag := range tags {
		e, ok := t.m.GetIfPresent(tag)
		if !ok {
			return nil, false
		}
		out[i] = e
	}
	return out, true
}

// local returns the epochs of tags, 0 for a tag never bumped (L1-only mode,
// where this instance is the only one).
func (t *tagEpochs) local(tags []string) []uint64 {
	out := make([]uint64, len(tags))
	for i, tag := range tags {
		out[i], _ = t.m.GetIfPresent(tag)
		t.m.SetIfAbsent(tag, out[i])
	}
	return out
}

// set records epochs; an epoch never moves backwards.
func (t *tagEpochs) set(tags []string, epochs []uint64) {
	for i, tag := range tags {
		e := epochs[i]
		t.m.Compute(tag, func(old uint64, found bool) (uint64, otter.ComputeOp) {
			if found && old > e {
				return old, otter.CancelOp
			}
			return e, otter.WriteOp
		})
	}
}

// bumpLocal moves each tag to a new epoch in this instance only.
func (t *tagEpochs) bumpLocal(tags []string) {
	for _, tag := range tags {
		t.m.Compute(tag, func(old uint64, _ bool) (uint64, otter.ComputeOp) { return old + 1, otter.WriteOp })
	}
}

// forget drops every epoch, after the bus may have missed bumps.
func (t *tagEpochs) forget() {
	t.gen.Add(1)
	t.m.InvalidateAll()
}

// setIfCurrent records epochs read from Redis unless forget ran since the
// read started (gen): a read that began before a missed bump must not
// plant its old epoch in the emptied map.
func (t *tagEpochs) setIfCurrent(gen uint64, tags []string, epochs []uint64) {
	if t.gen.Load() == gen {
		t.set(tags, epochs)
	}
}

// stampsMatch reports whether an entry's stamps are exactly the requested
// tags at their current epochs.
func stampsMatch(stamps []tagStamp, tags []string, epochs []uint64) bool {
	if len(stamps) != len(tags) {
		return false
	}
	for i, s := range stamps {
		if s.tag != tags[i] || s.epoch != epochs[i] {
			return false
		}
	}
	return true
}
