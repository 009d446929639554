package storefront

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// prefetched opens a seeded SQLite store read through a Cached whose
// prefetches report on the returned channel.
func prefetched(t *testing.T, cfg CacheConfig) (*Cached, chan []string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, testdb.SQLite(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := Seed(ctx, s, SeedConfig{Users: 20, Products: 30, Actions: 300, RandSeed: 7}); err != nil {
		t.Fatal(err)
	}
	c, err := NewCached(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	done := make(chan []string, 16)
	c.onPrefetch = func(keys []string, n int, err error) {
		if err != nil {
			t.Errorf("prefetch %v: %v", keys, err)
		}
		done <- keys
	}
	return c, done
}

// next returns the keys of the next prefetch, failing the test if none
// ends within a generous bound.
func next(t *testing.T, done chan []string) []string {
	t.Helper()
	select {
	case keys := <-done:
		return keys
	case <-time.After(30 * time.Second):
		t.Fatal("no prefetch ended within 30 s")
		return nil
	}
}

// TestPrefetch: after a user's recommendations are read, the top
// PrefetchTop recommended products are in the products cache, so the
// user's likely next reads are L1 hits; a second read of the same list
// loads nothing new.
func TestPrefetch(t *testing.T) {
	c, done := prefetched(t, CacheConfig{})
	ctx := context.Background()
	recs, err := c.Recommend(ctx, 3, DefaultLimit)
	if err != nil || len(recs) < PrefetchTop {
		t.Fatalf("Recommend: %d recommendations, %v", len(recs), err)
	}
	keys := next(t, done)
	var want []string
	for _, r := range recs[:PrefetchTop] {
		want = append(want, productKey(r.Product.ID))
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("prefetched %v, want the top %d recommended %v", keys, PrefetchTop, want)
	}
	loaded := c.products.Stats().Warmed
	if loaded != uint64(PrefetchTop) {
		t.Errorf("products loaded by prefetch: %d, want %d", loaded, PrefetchTop)
	}
	fromL1 := "product: " + cache.Info{Source: cache.SourceL1}.String()
	for _, r := range recs[:PrefetchTop] {
		var served []string
		if _, err := c.GetProduct(withCacheInfo(ctx, &served), r.Product.ID); err != nil {
			t.Fatal(err)
		}
		if len(served) != 1 || served[0] != fromL1 {
			t.Errorf("product %d served %v, want from L1", r.Product.ID, served)
		}
	}
	if _, err := c.Recommend(ctx, 3, DefaultLimit); err != nil {
		t.Fatal(err)
	}
	next(t, done)
	if got := c.products.Stats().Warmed; got != loaded {
		t.Errorf("a second prefetch of cached products loaded %d more", got-loaded)
	}
}

// TestPrefetchBounded: prefetch runs at most maxPrefetch at once and skips
// (counts, does not queue) one more; background work does not prefetch;
// NoPrefetch turns it off.
func TestPrefetchBounded(t *testing.T) {
	c, done := prefetched(t, CacheConfig{})
	recs := []Recommendation{{Product: Product{ID: 1}}}
	for range maxPrefetch { // every slot taken, as by prefetches in flight
		c.prefetching <- struct{}{}
	}
	c.prefetch(context.Background(), recs)
	if c.prefetchSkipped.Load() != 1 {
		t.Fatalf("a prefetch past the bound was not skipped (%d skipped)", c.prefetchSkipped.Load())
	}
	for range maxPrefetch {
		<-c.prefetching
	}
	c.prefetch(WithBackground(context.Background()), recs)
	c.prefetch(context.Background(), recs) // this one runs
	if keys := next(t, done); !slices.Equal(keys, []string{productKey(1)}) {
		t.Fatalf("prefetched %v", keys)
	}
	c.wg.Wait()
	select {
	case keys := <-done:
		t.Fatalf("background work prefetched %v", keys)
	default:
	}

	off, _ := prefetched(t, CacheConfig{NoPrefetch: true})
	if _, err := off.Recommend(context.Background(), 3, DefaultLimit); err != nil {
		t.Fatal(err)
	}
	off.wg.Wait()
	if got := off.products.Stats().Warmed; got != 0 {
		t.Errorf("NoPrefetch: %d products loaded in the background", got)
	}
}
