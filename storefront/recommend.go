package storefront

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/strata-dev/strata/replica"
)

// Tuning of the stage-1 recommender: Strata's choices (the guide fixes only
// RecentActions). Each bounds the work of one request.
const (
	coPurchaseSeeds   = 5  // products of the user's history whose buyers are consulted
	buyersPerSeed     = 20 // latest other buyers read per seed product
	coPurchaseTop     = 50 // co-purchased candidates kept
	topCategories     = 3  // categories of the user's history consulted
	perCategoryPicks  = 20 // popular products taken from each of those categories
	recencyHalfLife   = 30 * 24 * time.Hour
	coPurchaseWeight  = 2.0
	categoryWeight    = 1.0
	popularWeight     = 0.1
	reasonCoPurchased = "co-purchased"
	reasonCategory    = "category"
	reasonPopular     = "popular"
)

// Recommendation is one recommended product with why it was chosen.
type Recommendation struct {
	Product Product `json:"product"`
	// Score orders recommendations; only its order is meaningful.
	Score float64 `json:"score"`
	// Reason is "co-purchased" (bought by buyers of what the user engaged
	// with), "category" (popular in the user's favourite categories) or
	// "popular" (the global fallback).
	Reason string `json:"reason"`
}

type historyItem struct {
	productID int64
	kind      ActionKind
	at        time.Time
	category  string
}

// Recommend computes up to limit recommendations for a user the way the
// guide's stage 1 does: synchronously, from the user's last RecentActions
// actions. Candidates are products co-purchased by other buyers of what the
// user engaged with most, and the popular products of the user's favourite
// categories. Products already in the user's history (viewed, carted or
// bought) are left out. A user with no history gets the most popular
// products. The list is never empty while the catalogue has products: a
// user who has seen every candidate is offered the popular ones again.
func (s *Store) Recommend(ctx context.Context, userID int64, limit int) ([]Recommendation, error) {
	if err := checkID("id", userID); err != nil {
		return nil, err
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	// Read-your-writes per entity: a user's recommendations read their
	// own row and actions at least as new as the last write to either.
	ctx = replica.WithKeys(ctx, userKey(userID), actionsTag(userID))
	history, err := s.recentHistory(ctx, userID)
	if err != nil {
		return nil, err
	}
	if len(history) == 0 { // no history: make sure the user exists at all
		if _, err := s.GetUser(ctx, userID); err != nil {
			return nil, err
		}
	}
	pop, err := s.pop.get(ctx)
	if err != nil {
		return nil, err
	}

	// Interest per product and per category, decayed by age.
	now := s.now()
	interest := map[int64]float64{}
	affinity := map[string]float64{}
	seen := map[int64]bool{}
	var total float64
	for _, h := range history {
		w := actionWeight(h.kind) * decay(now.Sub(h.at))
		interest[h.productID] += w
		affinity[h.category] += w
		total += w
		seen[h.productID] = true
	}

	type cand struct {
		score  float64
		best   float64
		reason string
	}
	cands := map[int64]*cand{}
	add := func(id int64, score float64, reason string) {
		if seen[id] {
			return
		}
		c := cands[id]
		if c == nil {
			c = &cand{}
			cands[id] = c
		}
		c.score += score
		if score > c.best {
			c.best, c.reason = score, reason
		}
	}

	// Co-purchases of the products the user is most interested in.
	co, missing, err := s.coPurchased(ctx, userID, topKeys(interest, coPurchaseSeeds))
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(missing)) {
		noteFallback(ctx, "recommendations: co-purchases of shard "+name+" left out, popular products instead ("+clipReport(missing[name].Error())+")")
	}
	if len(co) > 0 {
		maxCount := float64(co[0].count)
		for _, c := range co {
			add(c.productID, coPurchaseWeight*float64(c.count)/maxCount, reasonCoPurchased)
		}
	}
	// Popular products of the favourite categories, by share of interest.
	for _, cat := range topKeys(affinity, topCategories) {
		share := affinity[cat] / total
		for rank, id := range first(pop.byCategory[cat], perCategoryPicks) {
			add(id, categoryWeight*share*(1-float64(rank)/(2*perCategoryPicks)), reasonCategory)
		}
	}
	// The global fallback fills what is left.
	for rank, id := range first(pop.global, limit+len(seen)) {
		add(id, popularWeight*(1-float64(rank)/float64(limit+len(seen)+1)), reasonPopular)
	}
	if len(cands) == 0 { // the user has seen every popular product: repeat them
		for rank, id := range first(pop.global, limit) {
			cands[id] = &cand{score: popularWeight * (1 - float64(rank)/float64(limit+1)), reason: reasonPopular}
		}
	}

	ids := make([]int64, 0, len(cands))
	for id := range cands {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int64) int {
		if c := cmp.Compare(cands[b].score, cands[a].score); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	ids = first(ids, limit)
	products, err := s.productsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	if len(products) == 0 && pop.products == 0 {
		// The ranking predates the catalogue's first products: recompute once.
		if pop, err = s.pop.refreshNow(ctx); err != nil {
			return nil, err
		}
		if pop.products > 0 {
			return s.Recommend(ctx, userID, limit)
		}
	}
	out := make([]Recommendation, len(products))
	for i, p := range products {
		c := cands[p.ID]
		out[i] = Recommendation{Product: p, Score: c.score, Reason: c.reason}
	}
	return out, nil
}

// recentHistory returns the user's last RecentActions actions, newest
// first, each with its product's category: one join on one database; on a
// sharded store, where the actions and the products live in different
// databases (the user's shard and the main one), two reads.
func (s *Store) recentHistory(ctx context.Context, userID int64) ([]historyItem, error) {
	if s.shards != nil {
		return s.shardedHistory(ctx, userID)
	}
	out, err := readRows(ctx, s, func(rows scanner) (h historyItem, err error) {
		err = rows.Scan(&h.productID, &h.kind, timeCol{&h.at}, &h.category)
		return h, err
	}, `
		SELECT a.product_id, a.kind, a.created_at, p.category
		FROM user_actions a JOIN products p ON p.id = a.product_id
		WHERE a.user_id = $1
		ORDER BY a.created_at DESC LIMIT $2`, userID, RecentActions)
	if err != nil {
		return nil, fmt.Errorf("storefront: history of user %d: %w", userID, err)
	}
	return out, nil
}

// shardedHistory is recentHistory on a sharded store: the actions from the
// user's shard, then their products' categories from the main database.
func (s *Store) shardedHistory(ctx context.Context, userID int64) ([]historyItem, error) {
	var out []historyItem
	err := s.readUser(ctx, userID, func(ctx context.Context, q querier) error {
		out = out[:0]
		return scanRows(ctx, q, func(rows scanner) error {
			var h historyItem
			if err := rows.Scan(&h.productID, &h.kind, timeCol{&h.at}); err != nil {
				return err
			}
			out = append(out, h)
			return nil
		}, `SELECT product_id, kind, created_at FROM user_actions
			WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2`, userID, RecentActions)
	})
	if err != nil {
		return nil, fmt.Errorf("storefront: history of user %d: %w", userID, err)
	}
	if len(out) == 0 {
		return out, nil
	}
	var ids []any
	seen := map[int64]bool{}
	for _, h := range out {
		if !seen[h.productID] {
			seen[h.productID] = true
			ids = append(ids, h.productID)
		}
	}
	type cat struct {
		id       int64
		category string
	}
	cats, err := readRows(ctx, s, func(rows scanner) (c cat, err error) {
		err = rows.Scan(&c.id, &c.category)
		return c, err
	}, `SELECT id, category FROM products WHERE id IN (`+placeholders(1, len(ids))+`)`, ids...)
	if err != nil {
		return nil, fmt.Errorf("storefront: categories of user %d's history: %w", userID, err)
	}
	byID := make(map[int64]string, len(cats))
	for _, c := range cats {
		byID[c.id] = c.category
	}
	for i := range out {
		out[i].category = byID[out[i].productID]
	}
	return out, nil
}

type coCount struct {
	productID int64
	count     int64
}

// coPurchased returns what the latest other buyers of the seed products
// bought, most buyers first. Each seed reads at most buyersPerSeed index
// entries (per shard, when sharded), so the query is bounded however
// popular a seed is. On a sharded store it asks every shard at once
// within the budget for non-critical work (shard.DefaultEachTimeout) and
// merges what they answered; missing names the shards that did not answer
// (their buyers are left out, and the popular products fill in).
func (s *Store) coPurchased(ctx context.Context, userID int64, seeds []int64) (_ []coCount, missing map[string]error, _ error) {
	if len(seeds) == 0 {
		return nil, nil, nil
	}
	args := []any{userID, buyersPerSeed, coPurchaseTop}
	owned := "" // sharded: only the buyers this shard owns (see ownedSQL)
	if s.shards != nil {
		owned = s.ownedSQL("user_id", len(seeds)+len(args)+1)
	}
	q := `WITH buyers AS (`
	for i, id := range seeds {
		if i > 0 {
			q += ` UNION ALL `
		}
		args = append(args, id)
		q += fmt.Sprintf(`SELECT user_id FROM (SELECT user_id FROM user_actions
			WHERE product_id = $%d AND kind = 'purchase' AND user_id <> $1%s
			ORDER BY created_at DESC LIMIT $2) s%d`, len(args), owned, i)
	}
	q += `) SELECT a.product_id, COUNT(DISTINCT a.user_id) AS n
		FROM user_actions a
		WHERE a.user_id IN (SELECT user_id FROM buyers) AND a.kind = 'purchase'
		GROUP BY a.product_id ORDER BY n DESC, a.product_id LIMIT $3`
	scan := func(rows scanner) (c coCount, err error) {
		err = rows.Scan(&c.productID, &c.count)
		return c, err
	}
	if s.shards == nil {
		out, err := readRows(ctx, s, scan, q, args...)
		if err != nil {
			return nil, nil, fmt.Errorf("storefront: co-purchases for user %d: %w", userID, err)
		}
		return out, nil, nil
	}
	// Every shard's buyers are its own users, so counts of distinct buyers
	// add up across shards. The bounds are per shard, though: up to
	// buyersPerSeed latest buyers and coPurchaseTop products on each, so
	// with N shards the candidates come from up to N times as many buyers
	// as on one database, and a product just outside one shard's top
	// misses that shard's count. Sharded recommendations are therefore
	// close to, not the same as, one database's (the work per shard stays
	// bounded, which is what the bounds are for).
	counts := map[int64]int64{}
	res, err := eachShard(ctx, s, 0, scan, q, args, func(part []coCount) {
		for _, c := range part {
			counts[c.productID] += c.count
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("storefront: co-purchases for user %d: %w", userID, err)
	}
	out := make([]coCount, 0, len(counts))
	for id, n := range counts {
		out = append(out, coCount{productID: id, count: n})
	}
	slices.SortFunc(out, func(a, b coCount) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return cmp.Compare(a.productID, b.productID)
	})
	return first(out, coPurchaseTop), res.Failed, nil
}

// decay weighs an action by its age: 1 when new, 1/2 at recencyHalfLife, 1/3 at twice that.
func decay(age time.Duration) float64 {
	if age <= 0 {
		return 1
	}
	return 1 / (1 + float64(age)/float64(recencyHalfLife))
}

// topKeys returns up to n keys of m with the largest values, ties broken by key.
func topKeys[K cmp.Ordered](m map[K]float64, n int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return first(keys, n)
}

func first[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}
