package cache

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// An invalidation that cannot reach Redis (the breaker open, Redis down or
// slow) leaves the old value in L2, where every instance would read it
// again once Redis answers, for up to its TTL. So this instance keeps
// every key and tag whose DEL, epoch bump or broadcast failed as pending:
//
//   - it reads neither from L2 for a pending key nor an epoch from L2 for a
//     pending tag (the key loads from the origin and fills L1 only; a value
//     with a pending tag is loaded and cached nowhere);
//   - it replays them (DEL, epoch bump, then one broadcast) on its Redis
//     watch, once a breaker cooldown (1 s), and whenever its bus comes back
//     up, and drops from pending only what a replay sent;
//   - its own breaker is probed, and so admits reads again, only once
//     nothing is pending.
//
// Pending keys and tags are bounded by maxPending together. Past the bound
// the instance forgets them and skips L2 for every read until it has
// deleted every value and lease of its namespace in Redis (a SCAN on each
// node) and broadcast a flush: conservative, costly only after an outage
// long and busy enough to need it.
//
// Other instances cannot learn of a pending invalidation until it is
// replayed. What keeps them from reading the old value from L2 meanwhile
// is that an instance whose breaker opened, or whose bus went down (which
// trips its breaker), admits L2 reads again only a grace of two cooldowns
// after Redis answered its probe; instances with pending invalidations try
// to replay them every cooldown, so the replay lands within the grace. The
// package doc says what is left.
const maxPending = 10_000

// errPending is returned by currentEpochs for a tag whose bump is pending:
// its epoch in Redis is older than the value's data.
var errPending = errors.New("cache: a tag's invalidation has not reached Redis yet")

// pending is the set of keys and tags whose invalidation did not reach
// Redis. Each entry keeps the sequence number of the last failure that
// added it, so that a replay drops only what it sent.
type pending struct {
	n      atomic.Int64 // entries held, or 1 while overflowed: the read path's lock-free check
	mu     sync.Mutex
	seq    uint64
	keys   map[string]uint64
	tags   map[string]uint64
	all    bool   // overflowed: every L2 read is skipped until the namespace is flushed
	allSeq uint64 // seq of the last failure while overflowed
}

// pendingSnap is what one replay sends.
type pendingSnap struct {
	keys, tags map[string]uint64
	all        bool
	allSeq     uint64
}

// add records failed invalidations of keys and tags, and reports whether
// this call overflowed the bound.
func (p *pending) add(keys, tags []string) (overflowed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	if p.all {
		p.allSeq = p.seq
		return false
	}
	if p.keys == nil {
		p.keys, p.tags = map[string]uint64{}, map[string]uint64{}
	}
	for _, k := range keys {
		p.keys[k] = p.seq
	}
	for _, t := range tags {
		p.tags[t] = p.seq
	}
	if len(p.keys)+len(p.tags) > maxPending {
		p.all, p.allSeq, p.keys, p.tags = true, p.seq, nil, nil
		p.n.Store(1)
		return true
	}
	p.n.Store(int64(len(p.keys) + len(p.tags)))
	return false
}

// hasKey reports whether L2 must not be read for key.
func (p *pending) hasKey(key string) bool {
	if p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.keys[key]
	return ok || p.all
}

// hasTag reports whether L2 must not be trusted for one of tags.
func (p *pending) hasTag(tags []string) bool {
	if p.n.Load() == 0 || len(tags) == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.all {
		return true
	}
	for _, t := range tags {
		if _, ok := p.tags[t]; ok {
			return true
		}
	}
	return false
}

// size returns how many keys and tags are pending (maxPending+1 while
// overflowed).
func (p *pending) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.all {
		return maxPending + 1
	}
	return len(p.keys) + len(p.tags)
}

// snapshot returns what is pending, and false if nothing is.
func (p *pending) snapshot() (pendingSnap, bool) {
	if p.n.Load() == 0 {
		return pendingSnap{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := pendingSnap{all: p.all, allSeq: p.allSeq, keys: make(map[string]uint64, len(p.keys)), tags: make(map[string]uint64, len(p.tags))}
	for k, v := range p.keys {
		s.keys[k] = v
	}
	for t, v := range p.tags {
		s.tags[t] = v
	}
	return s, true
}

// sent drops what s held, unless a failure since added it again.
func (p *pending) sent(s pendingSnap) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.all {
		if p.all && p.allSeq == s.allSeq {
			p.all = false
			p.n.Store(0)
		}
		return
	}
	for k, v := range s.keys {
		if p.keys[k] == v {
			delete(p.keys, k)
		}
	}
	for t, v := range s.tags {
		if p.tags[t] == v {
			delete(p.tags, t)
		}
	}
	if !p.all {
		p.n.Store(int64(len(p.keys) + len(p.tags)))
	}
}

// notReached records keys and tags whose invalidation did not reach
// Redis, before any L1 drop that follows, so that no read in between
// refills L1 from L2.
func (c *Cache[V]) notReached(keys, tags []string) {
	if c.pend.add(keys, tags) {
		c.cfg.Logger.Warn("cache: more invalidations failed than this instance remembers; it skips L2 until it has flushed its namespace in Redis",
			"namespace", c.cfg.Namespace, "max_pending", maxPending)
	}
}

// replayBatch bounds the keys of one DEL pipeline and of one detailed
// bus message in a replay; a larger replay broadcasts a flush instead.
const replayBatch = 1000

// replay sends the pending invalidations to Redis and the bus, without the
// breaker, and drops what it sent. It reports whether nothing is pending
// afterwards. Only the watch goroutine calls it.
func (c *Cache[V]) replay(ctx context.Context) bool {
	s, ok := c.pend.snapshot()
	if !ok {
		return true
	}
	if err := c.sendPending(ctx, s); err != nil {
		c.cfg.Logger.Debug("cache: replaying invalidations failed; retrying", "namespace", c.cfg.Namespace, "err", err)
		return false
	}
	c.pend.sent(s)
	c.ctr.replays.Add(1)
	c.cfg.Logger.Debug("cache: replayed invalidations that had not reached Redis", "namespace", c.cfg.Namespace,
		"keys", len(s.keys), "tags", len(s.tags), "flushed", s.all)
	return c.pend.n.Load() == 0
}

// sendPending deletes the keys, bumps the tags (or flushes the namespace)
// and broadcasts it.
func (c *Cache[V]) sendPending(ctx context.Context, s pendingSnap) error {
	msg := busMsg{Flush: s.all || len(s.keys)+len(s.tags) > replayBatch}
	if s.all {
		if err := c.l2.flushNamespace(ctx); err != nil {
			return err
		}
		return c.bus.publish(ctx, msg)
	}
	keys := make([]string, 0, len(s.keys))
	for k := range s.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for batch := range slices.Chunk(keys, replayBatch) {
		if err := c.l2.del(ctx, batch); err != nil {
			return err
		}
	}
	if len(s.tags) > 0 {
		tags := make([]string, 0, len(s.tags))
		for t := range s.tags {
			tags = append(tags, t)
		}
		slices.Sort(tags)
		epochs, err := c.l2.bumpTags(ctx, tags)
		if err != nil {
			return err
		}
		c.tags.set(tags, epochs)
		if !msg.Flush {
			msg.Tags, msg.Epochs = tags, epochs
		}
	}
	if !msg.Flush {
		msg.Keys = keys
	}
	return c.bus.publish(ctx, msg)
}

// kickReplay asks the watch goroutine to replay now (the bus came back);
// it never blocks.
func (c *Cache[V]) kickReplay() {
	c.kicks.Add(1)
	select {
	case c.kick <- struct{}{}:
	default:
		c.kicks.Add(^uint64(0)) // one is queued already
	}
}
