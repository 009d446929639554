package storefront

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SearchTerms checks a search query and splits it into the lower-cased words
// that are searched: runs of letters and digits, duplicates dropped, at most
// MaxSearchTerms. Everything else (quotes, operators, punctuation) only
// separates words, so a query can never carry search-engine syntax.
func SearchTerms(q string) ([]string, error) {
	switch {
	case !utf8.ValidString(q):
		return nil, fieldErr("q", "is not valid UTF-8")
	case strings.TrimSpace(q) == "":
		return nil, fieldErr("q", "is required")
	case utf8.RuneCountInString(q) > MaxQueryLen:
		return nil, fieldErr("q", "is longer than %d characters", MaxQueryLen)
	}
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	terms := words[:0]
	seen := make(map[string]bool, len(words))
	for _, w := range words {
		if seen[w] {
			continue
		}
		seen[w] = true
		terms = append(terms, w)
		if len(terms) == MaxSearchTerms {
			break
		}
	}
	if len(terms) == 0 {
		return nil, fieldErr("q", "has no letters or digits to search for")
	}
	return terms, nil
}

// Search returns up to limit products whose title or description contain
// every word of q, best match first (PostgreSQL: ts_rank over a GIN-indexed
// tsvector; SQLite: bm25 over FTS5). Title words weigh more than
// description words.
func (s *Store) Search(ctx context.Context, q string, limit int) ([]Product, error) {
	terms, err := SearchTerms(q)
	if err != nil {
		return nil, err
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	out, err := readRows(ctx, s, scanProduct, s.d.searchSQL, s.d.searchArg(terms), limit)
	if err != nil {
		return nil, fmt.Errorf("storefront: search: %w", err)
	}
	if out == nil {
		out = []Product{} // JSON [] rather than null
	}
	return out, nil
}
