package replica

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"
)

// KeyMarks keeps, per key (an entity such as "user:42"), the newest write
// token recorded for it, for a bounded time: the per-entity half of
// read-your-writes, which needs nothing from the client (see [WithKeys]).
// The router's default is in-process ([MemMarks]); an implementation that
// every instance of a service shares (on Redis, say) extends it across
// instances. Implementations must be safe for concurrent use.
type KeyMarks interface {
	// Mark records t for key for ttl: until then Get(key) returns at least
	// t. A lower token must not replace a higher one that has not expired.
	Mark(ctx context.Context, key string, t Token, ttl time.Duration) error
	// Get returns the newest unexpired token marked for key, or zero. An
	// implementation that drops entries before they expire, to bound its
	// memory, must return for a key it may have dropped a token at least
	// as new as the dropped one, or an error.
	Get(ctx context.Context, key string) (Token, error)
}

var _ KeyMarks = (*MemMarks)(nil)

// DefaultMaxMarks is the default bound on the entries of a MemMarks.
const DefaultMaxMarks = 100_000 // Strata: room for 30,000 writes a second to distinct keys at the default 3 s TTL, in about 15 MB

// MemMarks is the in-process KeyMarks: a map bounded to a number of
// entries. Past the bound, the entry marked longest ago is dropped, even
// if it has not expired; until the newest such dropped entry would have
// expired, Get answers a key it does not hold with the newest token it
// dropped (conservative: such a read waits for, or goes past, a write that
// may not be its key's). Expired entries are removed as new marks come.
type MemMarks struct {
	mu      sync.Mutex
	max     int
	clk     clock
	entries map[string]*list.Element // of *markEntry
	order   list.List                // oldest mark first
	dropped Token                    // newest token dropped before it expired
	until   time.Time                // when the last such dropped entry would have expired
}

type markEntry struct {
	key     string
	tok     Token
	expires time.Time
}

// NewMemMarks returns an empty MemMarks of at most max entries; max <= 0
// means DefaultMaxMarks.
func NewMemMarks(max int) *MemMarks { return newMemMarks(max, realClock{}) }

func newMemMarks(max int, clk clock) *MemMarks {
	if max <= 0 {
		max = DefaultMaxMarks
	}
	return &MemMarks{max: max, clk: clk, entries: map[string]*list.Element{}}
}

// Mark records t for key until ttl from now (a re-mark extends it), keeping
// the higher of t and an unexpired earlier mark. It never fails.
func (m *MemMarks) Mark(_ context.Context, key string, t Token, ttl time.Duration) error {
	now := m.clk.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(now)
	if e, ok := m.entries[key]; ok {
		me := e.Value.(*markEntry)
		if now.Before(me.expires) {
			t = max(t, me.tok)
		}
		me.tok, me.expires = t, now.Add(ttl)
		m.order.MoveToBack(e)
		return nil
	}
	for m.order.Len() >= m.max {
		m.drop(m.order.Front(), now)
	}
	m.entries[key] = m.order.PushBack(&markEntry{key: key, tok: t, expires: now.Add(ttl)})
	return nil
}

// Get returns key's unexpired mark; for a key it does not hold, the newest
// token it dropped early while that one would still be unexpired, else
// zero. It never fails.
func (m *MemMarks) Get(_ context.Context, key string) (Token, error) {
	now := m.clk.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok {
		if me := e.Value.(*markEntry); now.Before(me.expires) {
			return me.tok, nil
		}
	}
	if now.Before(m.until) {
		return m.dropped, nil
	}
	return 0, nil
}

// Len returns the number of entries held, expired ones not yet removed
// included.
func (m *MemMarks) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}

// expire removes expired entries from the oldest on. Marks of one TTL
// expire in the order they were made; an entry with a longer TTL ahead of
// shorter ones holds them (Get ignores them) until it expires or is dropped.
func (m *MemMarks) expire(now time.Time) {
	for e := m.order.Front(); e != nil; e = m.order.Front() {
		if now.Before(e.Value.(*markEntry).expires) {
			return
		}
		m.order.Remove(e)
		delete(m.entries, e.Value.(*markEntry).key)
	}
}

// drop removes e to make room, remembering its token while it would have
// been unexpired.
func (m *MemMarks) drop(e *list.Element, now time.Time) {
	me := e.Value.(*markEntry)
	if now.Before(me.expires) {
		m.dropped = max(m.dropped, me.tok)
		if me.expires.After(m.until) {
			m.until = me.expires
		}
	}
	m.order.Remove(e)
	delete(m.entries, me.key)
}

type keysKey struct{}

// WithKeys returns a context that names the entities (keys such as
// "user:42") a read or write concerns, added to those already on ctx. A
// write on it ([Router.Write], [Router.WriteTx]) marks each key with its
// token; a read on it routes as if it carried the newest token marked for
// any of its keys (and its own, [WithToken]), so a write to an entity and
// a later read of it see each other through any Router sharing the
// KeyMarks, without a token from the client.
func WithKeys(ctx context.Context, keys ...string) context.Context {
	if len(keys) == 0 {
		return ctx
	}
	return context.WithValue(ctx, keysKey{}, append(slices.Clip(KeysFrom(ctx)), keys...))
}

// KeysFrom returns the keys WithKeys put on ctx, or nil.
func KeysFrom(ctx context.Context) []string {
	k, _ := ctx.Value(keysKey{}).([]string)
	return k
}
