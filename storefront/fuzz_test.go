package storefront_test

import (
	"context"
	"errors"
	"strings"
	"testing"
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
