package storefront_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// FuzzSearch: whatever the query, Search either answers (possibly with no
// results) or rejects the query with a FieldError on q. A query that
// reaches the engine never fails, so no input can be query syntax.
func FuzzSearch(f *testing.F) {
	for _, s := range []string{
		"kettle", "wireless headphones", `"`, `"kettle`, "title:kettle", "NEAR(a b, 2)", "kettle*", "a AND b OR NOT c",
		"a & b | !c", "'; DROP TABLE products; --", "^x", "-x", "x:*", "{a b}", "café", "\x00", "\xff", strings.Repeat("x ", 150),
	} {
		f.Add(s)
	}
	s, err := storefront.Open(context.Background(), testdb.SQLite(f), storefront.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	if _, err := storefront.Seed(context.Background(), s, storefront.SeedConfig{Users: 1, Products: 50, RandSeed: 1}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q string) {
		res, err := s.Search(context.Background(), q, 10)
		if err != nil {
			var fe *storefront.FieldError
			if !errors.As(err, &fe) || fe.Field != "q" {
				t.Fatalf("Search(%q): %v", q, err)
			}
			return
		}
		if !utf8.ValidString(q) || len(res) > 10 {
			t.Fatalf("Search(%q) = %d results", q, len(res))
		}
	})
}

// FuzzSuggest: whatever the prefix, Suggest either answers with at most
// the limit of products whose title starts with the prefix, ASCII case
// ignored (SQLite's lower() folds ASCII only, as SuggestPrefix does), or
// rejects the prefix with a FieldError on prefix: never another error,
// whatever bytes reach the range query.
func FuzzSuggest(f *testing.F) {
	for _, s := range []string{
		"a", "Acme", "acme c", "ACME COMPACT", "  acme", "acme ", "%", "_", "a%b", "'; DROP TABLE products; --",
		`\x`, "é", "É", "\U0010FFFF", "\x00", "\xff", "a\u202e", strings.Repeat("x", 101), "\u00a0", "",
	} {
		f.Add(s)
	}
	s, err := storefront.Open(context.Background(), testdb.SQLite(f), storefront.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	if _, err := storefront.Seed(context.Background(), s, storefront.SeedConfig{Users: 1, Products: 200, RandSeed: 1}); err != nil {
		f.Fatal(err)
	}
	fold := func(s string) string {
		return strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, s)
	}
	f.Fuzz(func(t *testing.T, prefix string) {
		res, err := s.Suggest(context.Background(), prefix, 5)
		if err != nil {
			var fe *storefront.FieldError
			if !errors.As(err, &fe) || fe.Field != "prefix" {
				t.Fatalf("Suggest(%q): %v", prefix, err)
			}
			return
		}
		p, perr := storefront.SuggestPrefix(prefix)
		if perr != nil || len(res) > 5 {
			t.Fatalf("Suggest(%q) = %d results, SuggestPrefix: %v", prefix, len(res), perr)
		}
		for _, r := range res {
			if !strings.HasPrefix(fold(r.Title), p) {
				t.Fatalf("Suggest(%q) suggested %q", prefix, r.Title)
			}
		}
	})
}

// FuzzParseSearchTiers: whatever the spec, ParseSearchTiers either sets
// the one tier it names within the bounds, or refuses it with an
// ErrBadSearchTier of bounded length.
func FuzzParseSearchTiers(f *testing.F) {
	for _, s := range []string{"search=16", "autocomplete=8/50ms", "facets=4/200ms", "search=0", "x=1", "search=1/1h", "=", "search=1/", "search==1", "facets=1/1e3ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		got, err := storefront.ParseSearchTiers(spec)
		if err != nil {
			if !errors.Is(err, storefront.ErrBadSearchTier) || len(err.Error()) > maxErrorResponse {
				t.Fatalf("ParseSearchTiers(%q): %v", spec, err)
			}
			return
		}
		set := 0
		for _, c := range []storefront.TierConfig{got.Search, got.Autocomplete, got.Facets} {
			if c == (storefront.TierConfig{}) {
				continue
			}
			set++
			if c.MaxInFlight < 1 || c.MaxInFlight > storefront.MaxTierInFlight || c.Budget != 0 && (c.Budget < time.Millisecond || c.Budget > 10*time.Second) {
				t.Fatalf("ParseSearchTiers(%q) = %+v", spec, got)
			}
		}
		if set != 1 {
			t.Fatalf("ParseSearchTiers(%q) set %d tiers", spec, set)
		}
	})
}

// FuzzCreateUser: whatever the body of POST /users, the answer is 201 with
// a user whose fields are valid, visible text, or a bounded JSON error
// naming a field; never a 5xx.
func FuzzCreateUser(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","name":"A","region":"eu"}`,
		`{"email":"A@Example.COM ","name":" José ","region":"EU-west"}`,
		`{"email":"a\u202e@example.com","name":"A","region":"eu"}`,
		"{\"email\":\"a\xff@example.com\",\"name\":\"A\",\"region\":\"eu\"}",
		`{"email":"a@example.com","name":"a\u2028b","region":"eu"}`,
		`{"email":"a@-b.example","name":"A","region":"-"}`,
		`{"email":"a@example.com","name":"A","region":"eu","x":1}`,
		`{"email":"a@example.com","email":"b@example.com"}`, `{}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	s, err := storefront.Open(context.Background(), testdb.SQLite(f), storefront.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	h := storefront.NewHandler(s, storefront.HandlerConfig{})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/users", strings.NewReader(string(body))))
		switch rec.Code {
		case 201:
			var u storefront.User
			if err := json.Unmarshal(rec.Body.Bytes(), &u); err != nil {
				t.Fatalf("201 for %q is not a user: %v", body, err)
			}
			for _, v := range []string{u.Email, u.Name, u.Region} {
				if !utf8.ValidString(v) || strings.ContainsFunc(v, invisible) || v != strings.TrimSpace(v) || v == "" {
					t.Fatalf("201 for %q stored %q", body, v)
				}
			}
		case 400, 409, 413, 415:
			var e struct{ Error, Field string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Field == "" || !strings.HasPrefix(e.Error, e.Field+" ") {
				t.Fatalf("%d for %q: not an error naming a field: %s", rec.Code, body, rec.Body)
			}
			if rec.Body.Len() > maxErrorResponse || strings.ContainsFunc(e.Error, invisible) {
				t.Fatalf("%d for %q: error of %d bytes or with an invisible character: %q", rec.Code, body, rec.Body.Len(), e.Error)
			}
		default:
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}
