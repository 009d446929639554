package storefront_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// TestCachedInstancesStayFresh: two storefront instances, each with its own
// store pool and L1, share one PostgreSQL database and one Redis. A write
// through either is seen through the other within the staleness bound.
func TestCachedInstancesStayFresh(t *testing.T) {
	url := testdb.Postgres(t)
	rc := testdb.Redis(t)
	ns := testdb.Namespace(t)
	bound := 400 * time.Millisecond
	seedStore := open(t, url)
	seed(t, seedStore, 20, 30, 300)
	var bases []string
	for range 2 {
		s := open(t, url)
		c, err := storefront.NewCached(s, storefront.CacheConfig{Redis: rc, Namespace: ns, StalenessBound: bound})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		srv := httptest.NewServer(storefront.NewHandler(c, storefront.HandlerConfig{}))
		t.Cleanup(srv.Close)
		bases = append(bases, srv.URL)
	}
	a, b := bases[0], bases[1]
	// Both instances hold user 3 and user 3's recommendations.
	for range 2 {
		for _, base := range bases {
			call(t, "GET", base+"/users/3", "")
			call(t, "GET", base+"/users/3/recommendations?limit=5", "")
		}
	}
	for _, base := range bases {
		waitL1(t, base)
	}

	for round := range 5 {
		name := fmt.Sprintf("Renamed %d", round)
		writer, reader := a, b
		if round%2 == 1 {
			writer, reader = b, a
		}
		if r := call(t, "PATCH", writer+"/users/3", `{"name":"`+name+`"}`); r.status != 200 {
			t.Fatalf("PATCH: %d %s", r.status, r.raw)
		}
		start := time.Now()
		for {
			// Judge a stale answer by when the read was sent, not by when
			// it came back: on a loaded machine a read sent within the
			// bound may return after it, and that is no violation.
			sent := time.Now()
			r := call(t, "GET", reader+"/users/3", "")
			if r.body["name"] == name {
				break
			}
			if sent.Sub(start) > bound {
				t.Fatalf("round %d: the other instance still serves %q to a read sent %v after the write", round, r.body["name"], sent.Sub(start))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// A purchase through A makes B's cached recommendations stale: the
	// purchased product is no longer recommended.
	r := call(t, "GET", b+"/users/3/recommendations?limit=5", "")
	first := r.body["recommendations"].([]any)[0].(map[string]any)["product"].(map[string]any)["id"].(float64)
	if r := call(t, "POST", a+"/users/3/actions", fmt.Sprintf(`{"product_id": %d, "kind": "purchase"}`, int(first))); r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.raw)
	}
	start := time.Now()
	for {
		sent := time.Now()
		r := call(t, "GET", b+"/users/3/recommendations?limit=5", "")
		still := false
		for _, rec := range r.body["recommendations"].([]any) {
			still = still || rec.(map[string]any)["product"].(map[string]any)["id"].(float64) == first
		}
		if !still {
			break
		}
		if sent.Sub(start) > bound {
			t.Fatalf("B still recommends the product just bought through A to a read sent %v later", sent.Sub(start))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestEdgeCaching: catalogue responses are public for the edge TTL,
// personal ones private; every GET carries an ETag and a matching
// If-None-Match gets 304 with no body.
func TestEdgeCaching(t *testing.T) {
	base, _ := apiServer(t, testdb.SQLite(t), "2")
	cases := []struct {
		path, policy string
	}{
		{"/products/3", "public, max-age=600"},
		{"/search?q=premium", "public, max-age=600"},
		{"/users/3", "private, no-cache"},
		{"/users/3/recommendations", "private, no-cache"},
	}
	for _, c := range cases {
		r := call(t, "GET", base+c.path, "")
		etag := r.header.Get("ETag")
		if r.status != 200 || r.header.Get("Cache-Control") != c.policy || etag == "" {
			t.Fatalf("GET %s: %d, Cache-Control %q, ETag %q", c.path, r.status, r.header.Get("Cache-Control"), etag)
		}
		for _, inm := range []string{etag, "W/" + etag, `"nope", ` + etag, "*"} {
			r2 := call(t, "GET", base+c.path, "", "If-None-Match", inm)
			if r2.status != 304 || r2.raw != "" {
				t.Fatalf("GET %s with If-None-Match %s: %d %q", c.path, inm, r2.status, r2.raw)
			}
		}
		if r3 := call(t, "GET", base+c.path, "", "If-None-Match", `"other"`); r3.status != 200 {
			t.Fatalf("GET %s with a stale ETag: %d", c.path, r3.status)
		}
	}
	// A change produces a new ETag.
	before := call(t, "GET", base+"/users/3", "").header.Get("ETag")
	call(t, "PATCH", base+"/users/3", `{"name":"Changed"}`)
	if after := call(t, "GET", base+"/users/3", "").header.Get("ETag"); after == before {
		t.Fatal("ETag unchanged after an update")
	}
}

// waitL1 waits until the instance at base answers user 3 from L1: with
// Redis, L1 is bypassed until the instance's invalidation bus is up.
func waitL1(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := call(t, "GET", base+"/users/3", ""); strings.HasPrefix(r.header.Get(storefront.CacheHeader), "user: l1") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("user 3 not served from L1 within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCacheHeader: the debug header says which level answered. A bus
// hiccup on a loaded machine may flush L1 between the two reads, so a few
// users are tried.
func TestCacheHeader(t *testing.T) {
	base, _ := apiServer(t, testdb.SQLite(t), "2")
	waitL1(t, base)
	var got []string
	for id := 4; id < 10; id++ {
		got = got[:0]
		for range 2 {
			got = append(got, call(t, "GET", fmt.Sprintf("%s/users/%d", base, id), "").header.Get(storefront.CacheHeader))
		}
		if strings.HasPrefix(got[0], "user: loader") && strings.HasPrefix(got[1], "user: l1") {
			return
		}
	}
	t.Fatalf("%s = %q, want a loader read then an L1 hit", storefront.CacheHeader, got)
}

// TestPersonalisationWarming: a user's first request warms their
// recommendations, so the first recommendations request is a cache hit.
func TestPersonalisationWarming(t *testing.T) {
	_, c, reg := seededCached(t)
	srv := httptest.NewServer(storefront.NewHandler(c, storefront.HandlerConfig{}))
	t.Cleanup(srv.Close)
	if r := call(t, "GET", srv.URL+"/users/7", ""); r.status != 200 {
		t.Fatalf("GET /users/7: %d", r.status)
	}
	// Wait for the warming without reading the recommendations.
	deadline := time.Now().Add(5 * time.Second)
	for warmed(t, reg) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("recommendations were not warmed within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := call(t, "GET", srv.URL+"/users/7/recommendations", "")
	if !strings.HasPrefix(r.header.Get(storefront.CacheHeader), "recommendations: l1") {
		t.Fatalf("first recommendations request: %q, want an L1 hit", r.header.Get(storefront.CacheHeader))
	}
}

func warmed(t *testing.T, reg *prometheus.Registry) float64 {
	return cacheCounter(t, reg, "strata_cache_warmed_keys_total", "recommendations")
}

// gathered returns the value of the counter or gauge name{label="value"}
// on reg, and whether it has that series.
func gathered(t *testing.T, reg *prometheus.Registry, name, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue(), true
					}
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// cacheCounter returns the counter name{cache="cacheName"} on reg, 0
// before its first count.
func cacheCounter(t *testing.T, reg *prometheus.Registry, name, cacheName string) float64 {
	t.Helper()
	v, _ := gathered(t, reg, name, "cache", cacheName)
	return v
}

// TestSearchQueryCache: search results come from the query-result level,
// keyed by the SQL and its arguments: the same words, however spelt, load
// once; other words or another limit load again.
func TestSearchQueryCache(t *testing.T) {
	s, c, reg := seededCached(t)
	ctx := context.Background()
	for i, tc := range []struct {
		q     string
		limit int
		loads float64 // loader calls so far
	}{
		{"premium", 10, 1},
		{"Premium ", 10, 1},
		{"premium", 5, 2},
		{"basic", 10, 3},
		{"premium", 10, 3},
	} {
		want, err := s.Search(ctx, tc.q, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Search(ctx, tc.q, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("search %d %q: %d results through the cache, %d from the store", i, tc.q, len(got), len(want))
		}
		if n := cacheCounter(t, reg, "strata_cache_loads_total", "search"); n != tc.loads {
			t.Errorf("after search %d (%q, limit %d): %v loads, want %v", i, tc.q, tc.limit, n, tc.loads)
		}
	}
}

// TestTokenDoesNotBypassCacheWithoutReplicas: without replicas a client's
// token means nothing, so sending one cannot turn the cache off.
func TestTokenDoesNotBypassCacheWithoutReplicas(t *testing.T) {
	base, _ := apiServer(t, testdb.SQLite(t), "2")
	waitL1(t, base)
	for id := 4; id < 10; id++ {
		call(t, "GET", fmt.Sprintf("%s/users/%d", base, id), "")
		got := call(t, "GET", fmt.Sprintf("%s/users/%d", base, id), "", storefront.TokenHeader, "FFFF/FFFFFFFF").header.Get(storefront.CacheHeader)
		if strings.HasPrefix(got, "user: l1") {
			return
		}
	}
	t.Fatal("a read carrying a token was never answered by L1 without replicas")
}

// seededCached returns a small seeded SQLite store, an L1-only cache over
// it and the registry holding the cache's metrics.
func seededCached(t *testing.T) (*storefront.Store, *storefront.Cached, *prometheus.Registry) {
	t.Helper()
	s := open(t, testdb.SQLite(t))
	seed(t, s, 20, 30, 300)
	reg := prometheus.NewRegistry()
	c, err := storefront.NewCached(s, storefront.CacheConfig{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c, reg
}

// TestCachedOnOneRegistry: a second stage-2 service on a registry whose
// first one is still open is an error, not a panic; once the first is
// closed, a new one registers its metrics again.
func TestCachedOnOneRegistry(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	reg := prometheus.NewRegistry()
	first, err := storefront.NewCached(s, storefront.CacheConfig{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storefront.NewCached(s, storefront.CacheConfig{Registerer: reg}); err == nil {
		t.Fatal("a second cache on a registry still in use was accepted")
	}
	first.Close()
	again, err := storefront.NewCached(s, storefront.CacheConfig{Registerer: reg})
	if err != nil {
		t.Fatalf("a cache on the registry of a closed one: %v", err)
	}
	again.Close()
}
