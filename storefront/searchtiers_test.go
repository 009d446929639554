package storefront_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// asciiLower lower-cases ASCII letters only, as SQLite's lower() and
// PostgreSQL's in the C locale do.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// titled is a product's id and title, read straight from the database.
type titled struct {
	id    int64
	title string
}

// allTitles reads every product's id and title behind the store's back
// (the main database's, when sharded).
func allTitles(t *testing.T, s *storefront.Store) []titled {
	t.Helper()
	rows, err := s.DB().QueryContext(context.Background(), `SELECT id, title FROM products`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []titled
	for rows.Next() {
		var p titled
		if err := rows.Scan(&p.id, &p.title); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// addProduct inserts a product behind the store's back, as another
// process or a data import would.
func addProduct(t *testing.T, s *storefront.Store, title, category string) {
	t.Helper()
	updated := "0"
	if s.Kind() == storefront.Postgres {
		updated = "now()"
	}
	if _, err := s.DB().ExecContext(context.Background(),
		`INSERT INTO products (title, description, category, price_cents, stock, updated_at) VALUES ($1, 'added by a test', $2, 100, 1, `+updated+`)`,
		title, category); err != nil {
		t.Fatal(err)
	}
}

// wantSuggestions is what Suggest must return for prefix, computed in Go
// from every title: the titles that start with it, ASCII case ignored,
// in byte order of the lower-cased title, then id.
func wantSuggestions(all []titled, prefix string, limit int) []int64 {
	p := asciiLower(strings.TrimLeft(prefix, " "))
	var match []titled
	for _, x := range all {
		if strings.HasPrefix(asciiLower(x.title), p) {
			match = append(match, x)
		}
	}
	slices.SortFunc(match, func(a, b titled) int {
		return cmp.Or(strings.Compare(asciiLower(a.title), asciiLower(b.title)), cmp.Compare(a.id, b.id))
	})
	ids := []int64{}
	for _, x := range match[:min(limit, len(match))] {
		ids = append(ids, x.id)
	}
	return ids
}

// TestSuggest: autocomplete answers exactly the titles that start with
// the prefix, ASCII case ignored, in title order, up to the limit, on
// every engine; LIKE's wildcards and a trailing space are plain
// characters; a letter outside ASCII matches as the database lower-cases
// it (the same rule on both sides of the comparison).
func TestSuggest(t *testing.T) {
	each(t, func(t *testing.T, s *storefront.Store) {
		seed(t, s, 5, 200, 0)
		addProduct(t, s, "100% cotton_shirt", "clothing")
		addProduct(t, s, "100x cottonXshirt", "clothing")
		addProduct(t, s, "Éclair tin", "grocery")
		all := allTitles(t, s)
		first := all[0].title
		brand, _, _ := strings.Cut(first, " ")
		for _, tc := range []struct {
			prefix string
			limit  int
		}{
			{first[:1], 8},                          // one letter: many matches, the first 8 in order
			{brand, storefront.MaxSuggestLimit},     // a brand: the limit's worth
			{strings.ToUpper(brand) + " ", 5},       // upper case and a trailing space: the brand's products only
			{first, 3},                              // a whole title: at least that product
			{"   " + strings.ToLower(first[:4]), 8}, // leading spaces are dropped
			{"100%", 8},                             // % is a character, not LIKE's wildcard
			{"100% cotton_", 8},                     // _ too: the "100x cottonX" title does not match
			{"Éclair", 8},                           // outside ASCII, written as stored
			{"zzzz", 8},                             // no match: an empty list
		} {
			got, err := s.Suggest(context.Background(), tc.prefix, tc.limit)
			if err != nil {
				t.Fatalf("Suggest(%q, %d): %v", tc.prefix, tc.limit, err)
			}
			ids := []int64{}
			for _, g := range got {
				ids = append(ids, g.ProductID)
			}
			if want := wantSuggestions(all, tc.prefix, tc.limit); !slices.Equal(ids, want) {
				t.Errorf("Suggest(%q, %d) = %v, want %v", tc.prefix, tc.limit, ids, want)
			}
			if tc.prefix == "zzzz" && (got == nil || len(got) != 0) {
				t.Errorf("no match: %#v, want an empty, non-nil list", got)
			}
		}
	})
}

// TestFacets: the counts by category are those of every product the
// search matches (not one page of them), most first, then by name.
func TestFacets(t *testing.T) {
	each(t, func(t *testing.T, s *storefront.Store) {
		seed(t, s, 5, 80, 0) // few enough that a search of MaxLimit returns every match
		ctx := context.Background()
		for _, q := range []string{"premium", "kettle", "premium wireless", "zzzyyyxxx"} {
			all, err := s.Search(ctx, q, storefront.MaxLimit)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) == storefront.MaxLimit {
				t.Fatalf("%q matches %d products or more: seed fewer", q, storefront.MaxLimit)
			}
			by := map[string]int64{}
			for _, p := range all {
				by[p.Category]++
			}
			want := []storefront.FacetCount{}
			for v, n := range by {
				want = append(want, storefront.FacetCount{Value: v, Count: n})
			}
			slices.SortFunc(want, func(a, b storefront.FacetCount) int {
				return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Value, b.Value))
			})
			got, err := s.Facets(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !slices.Equal(got[storefront.FacetCategory], want) {
				t.Errorf("Facets(%q) = %v, want category %v", q, got, want)
			}
			if q == "premium" && len(want) < 2 {
				t.Errorf("%q is in %d categories only; the test wants a spread", q, len(want))
			}
		}
		if _, err := s.Facets(ctx, "  "); fieldOf(err) != "q" {
			t.Errorf("Facets of a blank query: %v, want an error on q", err)
		}
	})
}

// TestSuggestInput: Suggest refuses what it cannot look up, naming the
// field, at the store as over HTTP.
func TestSuggestInput(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	for _, tc := range []struct {
		prefix string
		limit  int
		field  string
	}{
		{"", 8, "prefix"},         // required
		{" \u00a0 ", 8, "prefix"}, // blank, a no-break space too
		{strings.Repeat("é", storefront.MaxPrefixLen+1), 8, "prefix"}, // too long, in characters
		{"a\x00", 8, "prefix"},                         // NUL, which PostgreSQL would refuse as a 500
		{"a\u202e", 8, "prefix"},                       // a bidirectional control
		{"a\xff", 8, "prefix"},                         // invalid UTF-8
		{"a", 0, "limit"},                              // limit below 1
		{"a", storefront.MaxSuggestLimit + 1, "limit"}, // above the autocomplete maximum
	} {
		if _, err := s.Suggest(context.Background(), tc.prefix, tc.limit); fieldOf(err) != tc.field {
			t.Errorf("Suggest(%.20q, %d) = %v, want an error on %s", tc.prefix, tc.limit, err, tc.field)
		}
	}
	if _, err := s.Suggest(context.Background(), strings.Repeat("é", storefront.MaxPrefixLen), 8); err != nil {
		t.Errorf("a prefix of MaxPrefixLen characters: %v", err)
	}
}

// TestSearchTiersHTTP: the three tiers over HTTP on every engine, at
// stage 1 and through the cache: autocomplete's answer and its short
// edge cache, facet counts beside the results when asked for, and
// /search unchanged for clients that do not ask.
func TestSearchTiersHTTP(t *testing.T) {
	for _, b := range backends() {
		for _, stage := range stages {
			t.Run(b.name+"/stage"+stage, func(t *testing.T) {
				base, s := apiServerOn(t, b.open(t), stage)
				testSuggestHTTP(t, base, s)
				testFacetsHTTP(t, base, s)
			})
		}
	}
}

func testSuggestHTTP(t *testing.T, base string, s *storefront.Store) {
	all := allTitles(t, s)
	prefix := strings.ToUpper(all[0].title[:3])
	for range 2 { // the second through the cache's
		r := call(t, "GET", base+"/search/suggest?prefix="+url.QueryEscape(prefix)+"&limit=4", "")
		var body struct {
			Prefix      string                  `json:"prefix"`
			Suggestions []storefront.Suggestion `json:"suggestions"`
		}
		if err := json.Unmarshal([]byte(r.raw), &body); err != nil || r.status != 200 || body.Prefix != prefix {
			t.Fatalf("suggest %q = %d %s (%v)", prefix, r.status, r.raw, err)
		}
		var ids []int64
		for _, sg := range body.Suggestions {
			ids = append(ids, sg.ProductID)
			if !strings.HasPrefix(asciiLower(sg.Title), asciiLower(prefix)) || sg.Category == "" {
				t.Errorf("suggestion %+v for %q", sg, prefix)
			}
		}
		if want := wantSuggestions(all, prefix, 4); !slices.Equal(ids, want) {
			t.Errorf("suggest %q = %v, want %v", prefix, ids, want)
		}
		if cc := r.header.Get("Cache-Control"); cc != "public, max-age=60" {
			t.Errorf("suggest Cache-Control %q, want the autocomplete tier's short public max-age", cc)
		}
	}
	// Without limit=, DefaultSuggestLimit.
	r := call(t, "GET", base+"/search/suggest?prefix="+url.QueryEscape(all[0].title[:1]), "")
	if sg, _ := r.body["suggestions"].([]any); r.status != 200 || len(sg) != min(storefront.DefaultSuggestLimit, len(wantSuggestions(all, all[0].title[:1], 100))) {
		t.Errorf("suggest with the default limit = %d %s", r.status, r.raw)
	}
}

func testFacetsHTTP(t *testing.T, base string, s *storefront.Store) {
	const q = "rated" // in every seeded description: all 30 products match
	plain := call(t, "GET", base+"/search?q="+q+"&limit=5", "")
	if _, has := plain.body["facets"]; plain.status != 200 || has {
		t.Fatalf("/search without facets= = %d %s: want the shape of old, no facets", plain.status, plain.raw)
	}
	r := call(t, "GET", base+"/search?q="+q+"&limit=5&facets=category", "")
	var body struct {
		Query   string               `json:"query"`
		Results []storefront.Product `json:"results"`
		Facets  storefront.Facets    `json:"facets"`
	}
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil || r.status != 200 || body.Query != q || len(body.Results) != 5 {
		t.Fatalf("faceted search = %d %s (%v)", r.status, r.raw, err)
	}
	want, err := s.Facets(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if got := body.Facets[storefront.FacetCategory]; len(body.Facets) != 1 || !slices.Equal(got, want[storefront.FacetCategory]) {
		t.Errorf("faceted search facets %v, want %v", body.Facets, want)
	}
	var total int64
	for _, f := range body.Facets[storefront.FacetCategory] {
		total += f.Count
	}
	if total != 30 {
		t.Errorf("facet counts add up to %d, want 30: they count every match, not the page of 5", total)
	}
	if plain.body["results"] == nil || !strings.Contains(r.raw, `"results":`) {
		t.Errorf("results missing: %s", r.raw)
	}
}

// TestSearchTiersBadInput: bad input to the tiers is answered as on every
// other endpoint: 400 (405, 404) naming the parameter, quoting at most a
// bounded part of what was sent.
func TestSearchTiersBadInput(t *testing.T) {
	h := badInputHandler(t)
	huge := strings.Repeat("x", 900_000)
	long := strings.Repeat("p", storefront.MaxPrefixLen+1)
	for _, tc := range []struct {
		name, method, target string
		status               int
		field, want          string
	}{
		// The prefix: required, not blank, bounded, visible text.
		{"no prefix", "GET", "/search/suggest", 400, "prefix", "is required"},
		{"empty prefix", "GET", "/search/suggest?prefix=", 400, "prefix", "is required"},
		{"blank prefix", "GET", "/search/suggest?prefix=%20%20", 400, "prefix", "is blank"},
		{"long prefix", "GET", "/search/suggest?prefix=" + long, 400, "prefix", "longer than 100 characters"},
		{"huge prefix", "GET", "/search/suggest?prefix=" + huge, 400, "prefix", "longer than 100 characters"},
		{"prefix NUL", "GET", "/search/suggest?prefix=a%00", 400, "prefix", "U+0000"},
		{"prefix control", "GET", "/search/suggest?prefix=a%01", 400, "prefix", "U+0001"},
		{"prefix tab", "GET", "/search/suggest?prefix=a%09b", 400, "prefix", "U+0009"},
		{"prefix RTL override", "GET", "/search/suggest?prefix=a%E2%80%AE", 400, "prefix", "U+202E"},
		{"prefix zero-width", "GET", "/search/suggest?prefix=a%E2%80%8Bb", 400, "prefix", "U+200B"},
		{"prefix invalid UTF-8", "GET", "/search/suggest?prefix=a%FF", 400, "prefix", "not valid UTF-8"},
		{"prefix twice", "GET", "/search/suggest?prefix=a&prefix=b", 400, "prefix", "given 2 times"},
		{"prefix bad escape", "GET", "/search/suggest?prefix=%zz", 400, "query", "malformed"},
		// The limit: 1 to MaxSuggestLimit, canonical digits.
		{"limit zero", "GET", "/search/suggest?prefix=a&limit=0", 400, "limit", "between 1 and 20"},
		{"limit over", "GET", "/search/suggest?prefix=a&limit=21", 400, "limit", `got "21"`},
		{"limit word", "GET", "/search/suggest?prefix=a&limit=ten", 400, "limit", `got "ten"`},
		{"limit leading zero", "GET", "/search/suggest?prefix=a&limit=05", 400, "limit", `got "05"`},
		{"limit huge", "GET", "/search/suggest?prefix=a&limit=" + huge[:5000], 400, "limit", "(5000 bytes)"},
		// Parameters the endpoint does not take, and the wrong method or path.
		{"unknown parameter", "GET", "/search/suggest?prefix=a&q=b", 400, "q", "want prefix, limit"},
		{"POST", "POST", "/search/suggest?prefix=a", 405, "path", "allowed: GET"},
		{"trailing slash", "GET", "/search/suggest/?prefix=a", 404, "path", "not canonical"},
		// Facets: only category, once.
		{"facets unknown", "GET", "/search?q=tea&facets=price", 400, "facets", `got "price"`},
		{"facets case", "GET", "/search?q=tea&facets=Category", 400, "facets", `got "Category"`},
		{"facets empty", "GET", "/search?q=tea&facets=", 400, "facets", `got ""`},
		{"facets huge", "GET", "/search?q=tea&facets=" + huge, 400, "facets", "(900000 bytes)"},
		{"facets twice", "GET", "/search?q=tea&facets=category&facets=category", 400, "facets", "given 2 times"},
		{"facets control", "GET", "/search?q=tea&facets=category%00", 400, "facets", "U+0000"},
		{"facets without q", "GET", "/search?facets=category", 400, "q", "is required"},
		{"facets blank q", "GET", "/search?q=%2A%2A&facets=category", 400, "q", "no letters or digits"},
		{"facets huge q", "GET", "/search?q=" + huge + "&facets=category", 400, "q", "longer than 200"},
		// And the happy cases, for contrast.
		{"good suggest", "GET", "/search/suggest?prefix=a&limit=20", 200, "", `"suggestions":`},
		{"good facets", "GET", "/search?q=tea&facets=category", 200, "", `"facets":{"category":`},
	} {
		got := send(t, h, tc.method, tc.target, "")
		if got.status != tc.status || got.body.Field != tc.field {
			t.Errorf("%s: %d field %q (%.300s), want %d field %q", tc.name, got.status, got.body.Field, got.raw, tc.status, tc.field)
			continue
		}
		if tc.status >= 400 && (len(got.raw) > maxErrorResponse || !strings.Contains(got.body.Error, tc.want)) {
			t.Errorf("%s: %d bytes, error %q, want it to say %q", tc.name, len(got.raw), clip(got.body.Error), tc.want)
		}
		if tc.status < 400 && !strings.Contains(got.raw, tc.want) {
			t.Errorf("%s: %.300s, want %q", tc.name, got.raw, tc.want)
		}
	}
}

// clip cuts s for a failure message.
func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// heldSuggest is a Service whose autocomplete calls block until released
// (or their context ends): a test seam that fills the autocomplete tier.
type heldSuggest struct {
	storefront.Service
	entered chan struct{}
	release chan struct{}
}

func (h *heldSuggest) Suggest(ctx context.Context, prefix string, limit int) ([]storefront.Suggestion, error) {
	h.entered <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Service.Suggest(ctx, prefix, limit)
}

// tierMetric returns the value of the search tier metric name (a counter
// or a gauge) for tier.
func tierMetric(t *testing.T, reg *prometheus.Registry, name, tier string) float64 {
	t.Helper()
	v, ok := gathered(t, reg, name, "tier", tier)
	if !ok {
		t.Fatalf("no %s{tier=%q}", name, tier)
	}
	return v
}

// TestAutocompleteBurstIsolated: with every slot of the autocomplete tier
// held, a further suggestion is refused at once (503, Retry-After, the
// tier named, counted), bad input is still a 400, and product search and
// faceted search answer as if nothing were happening. Released, the tier
// answers again.
func TestAutocompleteBurstIsolated(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	seed(t, s, 5, 50, 0)
	const slots = 3
	held := &heldSuggest{Service: s, entered: make(chan struct{}), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(storefront.NewHandler(held, storefront.HandlerConfig{
		Registerer: reg, Gatherer: reg,
		// A budget far past the test's length: the slots stay held until released.
		SearchTiers: storefront.SearchTiers{
			Autocomplete: storefront.TierConfig{MaxInFlight: slots, Budget: time.Hour},
			Search:       relaxedTiers().Search, Facets: relaxedTiers().Facets,
		},
	}))
	t.Cleanup(srv.Close)
	var answers []<-chan homeAnswer
	for range slots {
		answers = append(answers, getHome(t, srv.URL+"/search/suggest?prefix=a"))
		<-held.entered
	}
	if n := tierMetric(t, reg, "strata_search_requests_in_flight", storefront.TierAutocomplete); n != slots {
		t.Errorf("autocomplete in flight %v, want %d", n, slots)
	}

	r := call(t, "GET", srv.URL+"/search/suggest?prefix=b", "")
	if r.status != 503 || r.header.Get("Retry-After") != "1" || r.body["tier"] != storefront.TierAutocomplete ||
		!strings.Contains(r.raw, "autocomplete tier is full (3 requests in flight)") {
		t.Fatalf("suggest past the tier's limit = %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	if r := call(t, "GET", srv.URL+"/search/suggest?prefix=", ""); r.status != 400 || r.body["field"] != "prefix" {
		t.Errorf("bad input while the tier is full = %d %s, want 400", r.status, r.raw)
	}
	for i := range 20 {
		if r := call(t, "GET", srv.URL+"/search?q=premium&limit=3", ""); r.status != 200 {
			t.Fatalf("product search %d while autocomplete is full = %d %s", i, r.status, r.raw)
		}
		if r := call(t, "GET", srv.URL+"/search?q=premium&facets=category", ""); r.status != 200 || r.body["facets"] == nil {
			t.Fatalf("faceted search %d while autocomplete is full = %d %s", i, r.status, r.raw)
		}
	}
	for _, c := range []struct {
		name, tier string
		want       float64
	}{
		{"strata_search_rejected_total", storefront.TierAutocomplete, 1}, // the one refused
		{"strata_search_rejected_total", storefront.TierSearch, 0},       // none of the others
		{"strata_search_rejected_total", storefront.TierFacets, 0},
		{"strata_search_max_in_flight", storefront.TierAutocomplete, slots},
		{"strata_search_max_in_flight", storefront.TierSearch, storefront.DefaultSearchMaxInFlight},
		{"strata_search_max_in_flight", storefront.TierFacets, storefront.DefaultFacetsMaxInFlight},
		{"strata_search_requests_in_flight", storefront.TierSearch, 0},
	} {
		if got := tierMetric(t, reg, c.name, c.tier); got != c.want {
			t.Errorf("%s{tier=%q} = %v, want %v", c.name, c.tier, got, c.want)
		}
	}

	close(held.release)
	for _, a := range answers {
		if r := <-a; r.status != 200 || !strings.Contains(r.raw, `"suggestions":`) {
			t.Errorf("a held suggestion, released = %d %s", r.status, r.raw)
		}
	}
	go func() { <-held.entered }() // the next call's
	if r := call(t, "GET", srv.URL+"/search/suggest?prefix=b", ""); r.status != 200 {
		t.Errorf("suggest after the burst = %d %s", r.status, r.raw)
	}
	if n := tierMetric(t, reg, "strata_search_requests_in_flight", storefront.TierAutocomplete); n != 0 {
		t.Errorf("autocomplete in flight %v after the burst, want 0", n)
	}
}

// TestSearchTierBudgets: on PostgreSQL with the products table locked by
// another transaction, each tier answers 503 naming itself once its own
// default budget is spent (autocomplete's 50 ms, search's 1 s, faceted
// search's 2 s), not when the lock goes; the queries it gave up on are
// canceled on the database (tierDrain later); and through the cache the
// same.
func TestSearchTierBudgets(t *testing.T) {
	url := testdb.Postgres(t)
	s := open(t, url)
	seed(t, s, 5, 50, 0)
	c, err := storefront.NewCached(s, storefront.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	reg := prometheus.NewRegistry()
	direct := httptest.NewServer(storefront.NewHandler(s, storefront.HandlerConfig{Registerer: reg, Gatherer: reg}))
	t.Cleanup(direct.Close)
	viaCache := httptest.NewServer(storefront.NewHandler(c, storefront.HandlerConfig{}))
	t.Cleanup(viaCache.Close)
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })

	release := lockTable(t, admin, "products")
	defer release()
	for _, tc := range []struct {
		base, path, tier string
		budget           time.Duration
	}{
		{direct.URL, "/search/suggest?prefix=a", storefront.TierAutocomplete, storefront.DefaultAutocompleteBudget},
		{direct.URL, "/search?q=premium", storefront.TierSearch, storefront.DefaultSearchBudget},
		{direct.URL, "/search?q=premium&facets=category", storefront.TierFacets, storefront.DefaultFacetsBudget},
		{viaCache.URL, "/search/suggest?prefix=b", storefront.TierAutocomplete, storefront.DefaultAutocompleteBudget},
		{viaCache.URL, "/search?q=wireless&facets=category", storefront.TierFacets, storefront.DefaultFacetsBudget},
	} {
		a := <-getHome(t, tc.base+tc.path)
		var body struct{ Error, Tier string }
		_ = json.Unmarshal([]byte(a.raw), &body)
		if a.status != 503 || a.header.Get("Retry-After") != "1" || body.Tier != tc.tier ||
			!strings.Contains(body.Error, "the "+tc.tier+" tier could not answer within its "+tc.budget.String()+" budget") {
			t.Fatalf("%s with products locked = %d Retry-After %q %s", tc.path, a.status, a.header.Get("Retry-After"), a.raw)
		}
		if a.elapsed < tc.budget || a.elapsed > tc.budget+criticalBound {
			t.Errorf("%s answered in %v, want between its budget %v and %v more", tc.path, a.elapsed, tc.budget, criticalBound)
		}
		gone := waitWaiters(t, admin, "products", cancelBound, func(n int) bool { return n == 0 }, tc.path)
		t.Logf("%s: 503 in %v; its queries left pg_stat_activity %v after", tc.path, a.elapsed, gone)
	}
	for _, tier := range []string{storefront.TierAutocomplete, storefront.TierSearch, storefront.TierFacets} {
		if n := tierMetric(t, reg, "strata_search_timeouts_total", tier); n != 1 {
			t.Errorf("strata_search_timeouts_total{tier=%q} = %v, want 1", tier, n)
		}
	}
	release()
	if r := call(t, "GET", direct.URL+"/search/suggest?prefix=a", ""); r.status != 200 {
		t.Errorf("suggest once the lock is gone = %d %s", r.status, r.raw)
	}
}

// l2TTL returns the remaining lifetime of the one value the cache level
// named ns:level holds in Redis.
func l2TTL(t *testing.T, rc rueidis.Client, ns, level string) time.Duration {
	t.Helper()
	ctx := context.Background()
	var keys []string
	for cursor := uint64(0); ; {
		e, err := rc.Do(ctx, rc.B().Scan().Cursor(cursor).Match("{"+ns+":"+level+":*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.Elements...)
		if cursor = e.Cursor; cursor == 0 {
			break
		}
	}
	if len(keys) != 1 {
		t.Fatalf("the %s level holds %d values in Redis (%v), want 1", level, len(keys), keys)
	}
	ms, err := rc.Do(ctx, rc.B().Pttl().Key(keys[0]).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ms) * time.Millisecond
}

// TestSearchTierCacheTTLs: each tier's answers live in a cache of its own
// for that tier's TTL, by default (search and facets 15 minutes, the
// guide's popular-query cache; autocomplete 60 s) and as configured. The
// TTL is read where it is enforced across instances, in Redis: the value
// stays there for TTL + StaleTTL (each ±10 % jitter). A second read is
// a hit in each tier's cache.
func TestSearchTierCacheTTLs(t *testing.T) {
	rc := testdb.Redis(t)
	for _, tc := range []struct {
		name                    string
		cfg                     storefront.CacheConfig
		search, suggest, facets time.Duration
	}{
		// The defaults: the guide's 15 minutes for query results, 60 s for autocomplete.
		{"defaults", storefront.CacheConfig{}, storefront.SearchTTL, storefront.SuggestTTL, storefront.FacetsTTL},
		// Each tier's own, all different, so none can stand in for another.
		{"configured", storefront.CacheConfig{SearchCacheTTL: 30 * time.Minute, SuggestCacheTTL: 2 * time.Minute, FacetsCacheTTL: 10 * time.Minute},
			30 * time.Minute, 2 * time.Minute, 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, testdb.SQLite(t))
			seed(t, s, 5, 30, 0)
			cfg := tc.cfg
			cfg.Redis, cfg.Namespace, cfg.Registerer = rc, testdb.Namespace(t), prometheus.NewRegistry()
			c, err := storefront.NewCached(s, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			reg := cfg.Registerer.(*prometheus.Registry)
			ctx := context.Background()
			read := func() {
				if _, err := c.Search(ctx, "rated", 5); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Suggest(ctx, "a", 5); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Facets(ctx, "rated"); err != nil {
					t.Fatal(err)
				}
			}
			read()
			for _, l := range []struct {
				level string
				ttl   time.Duration
			}{{"search", tc.search}, {"suggest", tc.suggest}, {"facets", tc.facets}} {
				got := l2TTL(t, rc, cfg.Namespace, l.level)
				lo, hi := l.ttl*9/10+cache.DefaultStaleTTL*9/10-5*time.Second, l.ttl*11/10+cache.DefaultStaleTTL*11/10
				if got < lo || got > hi {
					t.Errorf("%s: in Redis for %v more, want between %v and %v (TTL %v + StaleTTL %v, ±10 %%)", l.level, got, lo, hi, l.ttl, cache.DefaultStaleTTL)
				}
			}
			read() // hits: no load
			for _, level := range []string{"search", "suggest", "facets"} {
				if n := cacheCounter(t, reg, "strata_cache_loads_total", level); n != 1 {
					t.Errorf("%s: %v loads after two reads, want 1", level, n)
				}
			}
		})
	}
}

// TestParseSearchTiers: the --search-tier form, good and bad.
func TestParseSearchTiers(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		specs []string
		want  storefront.SearchTiers
		err   string // in the error; "" for none
	}{
		// None: every tier's defaults (the zero value).
		{nil, storefront.SearchTiers{}, ""},
		// A limit alone keeps the default budget.
		{[]string{"search=32"}, storefront.SearchTiers{Search: storefront.TierConfig{MaxInFlight: 32}}, ""},
		// A limit and a budget; each tier its own.
		{[]string{"autocomplete=4/30ms", "facets=2/1s"}, storefront.SearchTiers{
			Autocomplete: storefront.TierConfig{MaxInFlight: 4, Budget: 30 * ms}, Facets: storefront.TierConfig{MaxInFlight: 2, Budget: time.Second}}, ""},
		// The bounds themselves.
		{[]string{"search=10000/10s", "facets=1/1ms"}, storefront.SearchTiers{
			Search: storefront.TierConfig{MaxInFlight: 10000, Budget: 10 * time.Second}, Facets: storefront.TierConfig{MaxInFlight: 1, Budget: ms}}, ""},
		// No '='.
		{[]string{"search"}, storefront.SearchTiers{}, `tier 1, "search": want NAME=MAX_IN_FLIGHT[/BUDGET]`},
		// A tier that does not exist, in second place.
		{[]string{"search=1", "checkout=1"}, storefront.SearchTiers{}, `tier 2, "checkout=1": unknown tier "checkout" (want search, autocomplete or facets)`},
		// Names are exact.
		{[]string{"Search=1"}, storefront.SearchTiers{}, `unknown tier "Search"`},
		// A tier set twice.
		{[]string{"facets=1", "facets=2"}, storefront.SearchTiers{}, "the facets tier is set twice"},
		// Limits out of range or not canonical.
		{[]string{"search=0"}, storefront.SearchTiers{}, `between 1 and 10000, got "0"`},
		{[]string{"search=10001"}, storefront.SearchTiers{}, `got "10001"`},
		{[]string{"search=-1"}, storefront.SearchTiers{}, `got "-1"`},
		{[]string{"search=08"}, storefront.SearchTiers{}, `got "08"`},
		{[]string{"search=/50ms"}, storefront.SearchTiers{}, `got ""`},
		// Budgets out of range or not durations.
		{[]string{"search=1/"}, storefront.SearchTiers{}, `the budget must be a duration between 1ms and 10s, such as 50ms, got ""`},
		{[]string{"search=1/50"}, storefront.SearchTiers{}, `got "50"`},
		{[]string{"search=1/11s"}, storefront.SearchTiers{}, `got "11s"`},
		{[]string{"search=1/999us"}, storefront.SearchTiers{}, `got "999us"`},
		{[]string{"search=1/-5ms"}, storefront.SearchTiers{}, `got "-5ms"`},
		{[]string{"search=1/50ms/2"}, storefront.SearchTiers{}, `got "50ms/2"`},
		// A huge spec is quoted in part.
		{[]string{"search=" + strings.Repeat("9", 100_000)}, storefront.SearchTiers{}, "(100007 bytes)"},
	} {
		got, err := storefront.ParseSearchTiers(tc.specs...)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseSearchTiers(%q) = %+v, %v, want %+v", tc.specs, got, err, tc.want)
		case tc.err != "" && (err == nil || !errors.Is(err, storefront.ErrBadSearchTier) || !strings.Contains(err.Error(), tc.err) || len(err.Error()) > maxErrorResponse):
			t.Errorf("ParseSearchTiers(%.80q) = %v, want an ErrBadSearchTier saying %q", tc.specs, clip(fmt.Sprint(err)), tc.err)
		}
	}
}
