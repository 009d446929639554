package storefront

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Bounds of the popularity ranking kept in memory.
const (
	popularGlobal      = 1000 // products kept in the global ranking
	popularPerCategory = 200  // products kept per category
	popularityTimeout  = time.Minute
	// popularityColdBudget bounds the shards' part of a ranking that
	// requests are waiting for (there is none yet): a shard that does not
	// answer in time is left out, and the partial ranking is refreshed in
	// the background after partialPopularityTTL. Stage 3's budget for
	// non-critical work is 500 ms; this wait is rarer and may take longer.
	popularityColdBudget = 2 * time.Second
	partialPopularityTTL = 5 * time.Second
)

// actionWeight is how much one action says about interest in a product.
func actionWeight(k ActionKind) float64 {
	switch k {
	case Purchase:
		return 5
	case Cart:
		return 3
	default:
		return 1
	}
}

// popularSnapshot ranks products by weighted action count.
type popularSnapshot struct {
	at         time.Time
	products   int                // products in the catalogue when computed
	partial    bool               // some shards' actions are missing: refresh soon
	global     []int64            // most popular first
	byCategory map[string][]int64 // most popular first, per category
}

// popularity keeps a popularity ranking that is recomputed in the
// background once it is older than ttl. Readers never wait for a refresh,
// except when there is no ranking yet (start-up, after invalidate); then
// concurrent readers share one computation, which is canceled (its queries
// with it) when every reader waiting for it has given up, as a cache load
// is: a budget that ran out leaves no query behind.
type popularity struct {
	s   *Store
	ttl time.Duration

	ctx    context.Context // canceled by close: stops a running computation
	cancel context.CancelFunc
	wg     sync.WaitGroup // background refreshes

	mu       sync.Mutex // guards the fields below
	snap     *popularSnapshot
	gen      uint64             // bumped by invalidate; a computation from an older gen is discarded
	inflight chan struct{}      // closed when the running computation ends; nil if none
	stop     context.CancelFunc // cancels the running computation
	waiters  int                // readers waiting for the running computation
	cold     bool               // the running computation was started by a waiting reader
	err      error              // the last computation's error, read by its waiters
	closed   bool
}

func newPopularity(s *Store, ttl time.Duration) *popularity {
	ctx, cancel := context.WithCancel(background())
	return &popularity{s: s, ttl: ttl, ctx: ctx, cancel: cancel}
}

// get returns the current ranking, starting a background refresh if it is
// stale, or waits for one shared computation if there is none.
func (p *popularity) get(ctx context.Context) (*popularSnapshot, error) {
	p.mu.Lock()
	if snap := p.snap; snap != nil {
		ttl := p.ttl
		if snap.partial {
			ttl = min(ttl, partialPopularityTTL)
		}
		if p.s.now().Sub(snap.at) > ttl && p.inflight == nil && !p.closed {
			p.start(false, popularityTimeout)
		}
		p.mu.Unlock()
		return snap, nil
	}
	p.mu.Unlock()
	return p.refreshNow(ctx)
}

// refreshNow waits for a fresh ranking: it joins the running computation,
// or starts one if none runs.
func (p *popularity) refreshNow(ctx context.Context) (*popularSnapshot, error) {
	// A computation that an invalidate overtook is discarded; the next
	// round starts a fresh one. Three rounds bound a storm of invalidates.
	for range 3 {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errors.New("storefront: store is closed")
		}
		done := p.inflight
		if done == nil {
			done = p.start(true, popularityColdBudget)
		}
		p.waiters++
		p.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			p.leave(done)
			return nil, ctx.Err()
		}
		p.mu.Lock()
		snap, err := p.snap, p.err
		p.mu.Unlock()
		if snap != nil {
			return snap, nil
		}
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			continue // joined as its last waiters left: start afresh
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, errors.New("storefront: popularity ranking kept being invalidated while computing")
}

// start starts a computation in the background, cold if readers wait for
// it, and returns the channel closed when it ends; p.mu is held.
func (p *popularity) start(cold bool, shardBudget time.Duration) chan struct{} {
	ctx, cancel := context.WithTimeout(p.ctx, popularityTimeout)
	p.inflight, p.stop, p.waiters, p.cold = make(chan struct{}), cancel, 0, cold
	gen := p.gen
	p.wg.Add(1)
	go func() { defer p.wg.Done(); defer cancel(); p.run(ctx, gen, shardBudget) }()
	return p.inflight
}

// leave records that a reader gave up waiting for the computation that
// closes done; the last reader to leave a cold computation cancels it. A
// background refresh runs on: nobody waits for it.
func (p *popularity) leave(done chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight != done { // it has ended
		return
	}
	p.waiters--
	if p.waiters == 0 && p.cold {
		p.stop()
	}
}

// run computes a ranking and publishes it unless invalidate ran meanwhile.
func (p *popularity) run(ctx context.Context, gen uint64, shardBudget time.Duration) {
	snap, err := p.s.computePopularity(ctx, shardBudget)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && p.snap != nil {
		p.s.log.Warn("storefront: popularity refresh failed; serving the previous ranking", "err", err)
	}
	if err == nil && gen == p.gen {
		p.snap = snap
	}
	p.err = err
	close(p.inflight)
	p.inflight, p.stop = nil, nil
}

// invalidate drops the ranking, so the next reader recomputes it (after a
// seed or reset has changed the catalogue wholesale). A computation already
// running is discarded when it ends.
func (p *popularity) invalidate() {
	p.mu.Lock()
	p.snap = nil
	p.gen++
	p.mu.Unlock()
}

// close stops background work and waits for it.
func (p *popularity) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// computePopularity scores every product by its weighted action count.
// The catalogue and the actions are read apart, because on a sharded
// store they live in different databases: the actions' scores are summed
// on every shard at once and added up here. A shard that does not answer
// within shardBudget is left out of this ranking (logged, and the ranking
// marked partial, to be refreshed soon); if none answers, the computation
// fails and the previous ranking stays.
func (s *Store) computePopularity(ctx context.Context, shardBudget time.Duration) (*popularSnapshot, error) {
	at := s.now()
	type product struct {
		id       int64
		category string
	}
	all, err := readRows(ctx, s, func(rows scanner) (p product, err error) {
		err = rows.Scan(&p.id, &p.category)
		return p, err
	}, `SELECT id, category FROM products`)
	if err != nil {
		return nil, fmt.Errorf("storefront: popularity: %w", err)
	}
	type scored struct {
		id    int64
		score float64
	}
	scan := func(rows scanner) (r scored, err error) {
		err = rows.Scan(&r.id, &r.score)
		return r, err
	}
	where := ""
	if s.shards != nil {
		where = "WHERE true" + s.ownedSQL("user_id", 1) // only this shard's own users' actions
	}
	q := `SELECT product_id, SUM(CASE kind WHEN 'purchase' THEN 5 WHEN 'cart' THEN 3 WHEN 'view' THEN 1 ELSE 0 END)
		FROM user_actions ` + where + ` GROUP BY product_id`
	score := make(map[int64]float64, len(all))
	partial := false
	add := func(part []scored) {
		for _, r := range part {
			score[r.id] += r.score
		}
	}
	if s.shards == nil {
		part, err := readRows(ctx, s, scan, q)
		if err != nil {
			return nil, fmt.Errorf("storefront: popularity: %w", err)
		}
		add(part)
	} else {
		res, err := eachShard(ctx, s, shardBudget, scan, q, nil, add)
		switch {
		case err != nil:
			return nil, fmt.Errorf("storefront: popularity: %w", err)
		case len(res.Answered) == 0:
			return nil, fmt.Errorf("storefront: popularity: no shard answered: %w", errors.Join(slices.Collect(maps.Values(res.Failed))...))
		case !res.Complete():
			s.log.Warn("storefront: popularity ranked without some shards' actions", "missing", slices.Sorted(maps.Keys(res.Failed)))
			partial = true
		}
	}
	slices.SortFunc(all, func(a, b product) int {
		if c := cmp.Compare(score[b.id], score[a.id]); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	snap := &popularSnapshot{at: at, products: len(all), partial: partial, byCategory: map[string][]int64{}}
	for _, r := range all {
		if len(snap.global) < popularGlobal {
			snap.global = append(snap.global, r.id)
		}
		if c := snap.byCategory[r.category]; len(c) < popularPerCategory {
			snap.byCategory[r.category] = append(c, r.id)
		}
	}
	return snap, nil
}

// backgroundKey marks the contexts of the storefront's background work.
type backgroundKey struct{}

// background is the root context of background work: cache warming and
// the popularity refresh.
func background() context.Context { return WithBackground(context.Background()) }

// WithBackground marks ctx as background work (see Background).
func WithBackground(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// Background reports whether ctx belongs to the storefront's background
// work (cache warming, the popularity refresh) rather than to a request:
// a driver or a metric that costs requests can leave such work out.
func Background(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}
