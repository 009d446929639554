package storefront

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Bounds of the popularity ranking kept in memory.
const (
	popularGlobal      = 1000 // products kept in the global ranking
	popularPerCategory = 200  // products kept per category
	popularityTimeout  = time.Minute
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
	global     []int64            // most popular first
	byCategory map[string][]int64 // most popular first, per category
}

// popularity keeps a popularity ranking that is recomputed in the
// background once it is older than ttl. Readers never wait for a refresh,
// except the very first, which has nothing to serve yet.
type popularity struct {
	s   *Store
	ttl time.Duration

	mu         sync.Mutex // guards everything below
	snap       *popularSnapshot
	refreshing bool
	closed     bool
	wg         sync.WaitGroup
}

func newPopularity(s *Store, ttl time.Duration) *popularity {
	return &popularity{s: s, ttl: ttl}
}

// get returns a ranking no older than ttl plus one refresh.
func (p *popularity) get(ctx context.Context) (*popularSnapshot, error) {
	p.mu.Lock()
	snap := p.snap
	if snap != nil {
		if p.s.now().Sub(snap.at) > p.ttl && !p.refreshing && !p.closed {
			p.refreshing = true
			p.wg.Add(1)
			go p.refreshInBackground()
		}
		p.mu.Unlock()
		return snap, nil
	}
	p.mu.Unlock()
	return p.refreshNow(ctx)
}

// refreshNow computes a ranking while the caller waits. Concurrent first
// callers each compute one; that happens once per process start.
func (p *popularity) refreshNow(ctx context.Context) (*popularSnapshot, error) {
	snap, err := p.s.computePopularity(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.snap == nil || p.snap.at.Before(snap.at) {
		p.snap = snap
	}
	p.mu.Unlock()
	return snap, nil
}

func (p *popularity) refreshInBackground() {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), popularityTimeout)
	defer cancel()
	if _, err := p.refreshNow(ctx); err != nil {
		p.s.log.Warn("storefront: popularity refresh failed; serving the previous ranking", "err", err)
	}
	p.mu.Lock()
	p.refreshing = false
	p.mu.Unlock()
}

// invalidate drops the ranking, so the next reader recomputes it (after a
// seed or reset has changed the catalogue wholesale).
func (p *popularity) invalidate() {
	p.mu.Lock()
	p.snap = nil
	p.mu.Unlock()
}

func (p *popularity) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

// computePopularity scores every product by its weighted action count.
func (s *Store) computePopularity(ctx context.Context) (*popularSnapshot, error) {
	at := s.now()
	rows, err := s.db.QueryContext(ctx, `
		SELECT p.id, p.category,
			COALESCE(SUM(CASE a.kind WHEN 'purchase' THEN 5 WHEN 'cart' THEN 3 WHEN 'view' THEN 1 ELSE 0 END), 0)
		FROM products p LEFT JOIN user_actions a ON a.product_id = p.id
		GROUP BY p.id, p.category`)
	if err != nil {
		return nil, fmt.Errorf("storefront: popularity: %w", err)
	}
	defer rows.Close()
	type scored struct {
		id       int64
		category string
		score    float64
	}
	var all []scored
	for rows.Next() {
		var r scored
		if err := rows.Scan(&r.id, &r.category, &r.score); err != nil {
			return nil, fmt.Errorf("storefront: popularity: %w", err)
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storefront: popularity: %w", err)
	}
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	snap := &popularSnapshot{at: at, products: len(all), byCategory: map[string][]int64{}}
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
