package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

// TestTiering: with AdmitAfter, a cold key is served from L2 and kept out
// of L1; once it has been read often enough it is admitted.
func TestTiering(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	o := newOrigin()
	o.put("k", "v")
	e := newEnv(t)
	c := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous, TrackHot: true, AdmitAfter: 3})
	e.waitBus(c)
	ctx := context.Background()
	want := []cache.Source{cache.SourceLoader, cache.SourceL2, cache.SourceL2, cache.SourceL1, cache.SourceL1}
	for i, w := range want {
		if _, info, _ := c.Get(ctx, "k", o.load); info.Source != w {
			t.Fatalf("read %d: from %v, want %v", i+1, info.Source, w)
		}
	}
	if c.Stats().ColdSkipped != 2 {
		t.Fatalf("ColdSkipped = %d, want 2", c.Stats().ColdSkipped)
	}
}

// TestWarmFromPublished: a fresh instance that loads the published hot set
// answers a skewed workload from L1 at once, where an unwarmed one does not.
func TestWarmFromPublished(t *testing.T) {
	rc, ns := testdb.Redis(t), testdb.Namespace(t)
	o := newOrigin()
	for i := range 5000 {
		o.put(fmt.Sprint(i), fmt.Sprint("v", i))
	}
	ctx := context.Background()
	zipfReads := func(seed uint64, n int) []string {
		z := rand.NewZipf(rand.New(rand.NewPCG(seed, 1)), 1.1, 1, 4999)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprint(z.Uint64())
		}
		return keys
	}
	e := newEnv(t)
	cfg := cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous, TrackHot: true, L1Size: 1000}
	old := e.cache(cfg)
	e.waitBus(old)
	for _, k := range zipfReads(1, 20000) { // steady state
		old.Get(ctx, k, o.load)
	}
	if err := old.PublishHot(ctx, 500); err != nil {
		t.Fatal(err)
	}
	l1Ratio := func(c *cache.Cache[string]) float64 {
		hits := 0
		keys := zipfReads(2, 1000)
		for _, k := range keys {
			if _, info, _ := c.Get(ctx, k, o.load); info.Source == cache.SourceL1 {
				hits++
			}
		}
		return float64(hits) / float64(len(keys))
	}
	steady := l1Ratio(old)
	cold := e.cache(cfg)
	warm := e.cache(cfg)
	e.waitBus(cold, warm)
	n, err := warm.WarmFromPublished(ctx, o.load)
	if err != nil || n != 500 {
		t.Fatalf("WarmFromPublished = %d, %v", n, err)
	}
	coldRatio, warmRatio := l1Ratio(cold), l1Ratio(warm)
	t.Logf("L1 hit ratio over the first 1,000 reads: steady %.2f, fresh %.2f, fresh+warmed %.2f", steady, coldRatio, warmRatio)
	if warmRatio < 0.8*steady || warmRatio <= coldRatio {
		t.Fatalf("warmed instance: %.2f of reads from L1 (steady state %.2f, unwarmed %.2f)", warmRatio, steady, coldRatio)
	}
}

// TestCopyKeys: the hot keys copied to another Redis (a new region) are L2
// hits there, with their remaining lifetime.
func TestCopyKeys(t *testing.T) {
	src, ns := testdb.Redis(t), testdb.Namespace(t)
	dst := testdb.StartRedis(t).Client()
	o := newOrigin()
	o.put("a", "1")
	o.put("b", "2")
	ctx := context.Background()
	e := newEnv(t)
	home := e.cache(cache.Config[string]{Redis: src, Namespace: ns, L2Timeout: generous})
	home.Get(ctx, "a", o.load)
	home.Get(ctx, "b", o.load)
	n, err := cache.CopyKeys(ctx, src, dst, ns, []string{"a", "b", "missing"})
	if err != nil || n != 2 {
		t.Fatalf("CopyKeys = %d, %v", n, err)
	}
	region := e.cache(cache.Config[string]{Redis: dst, Namespace: ns, L2Timeout: generous, DisableL1: true})
	before := o.calls.Load()
	for _, k := range []string{"a", "b"} {
		if v, info, err := region.Get(ctx, k, o.load); err != nil || info.Source != cache.SourceL2 {
			t.Fatalf("new region %s: %q from %v (%v)", k, v, info.Source, err)
		}
	}
	if o.calls.Load() != before {
		t.Fatal("the new region loaded from the origin")
	}
}
