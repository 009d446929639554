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

// Limits of the autocomplete and faceted search tiers (Strata's choices:
// the guide gives none).
const (
	// MaxPrefixLen is the longest autocomplete prefix, in characters:
	// longer than any title worth completing, short enough that a prefix
	// costs nothing to compare or cache.
	MaxPrefixLen = 100
	// DefaultSuggestLimit is how many suggestions /search/suggest returns
	// without limit=: what a drop-down under a search box shows.
	DefaultSuggestLimit = 8
	// MaxSuggestLimit is the largest limit= of /search/suggest: an
	// autocomplete answer is a short list, cheap on every keystroke.
	MaxSuggestLimit = 20
	// MaxFacetValues bounds the values of one facet in an answer, most
	// products first (the seeded catalogue has 16 categories).
	MaxFacetValues = 50
)

// Suggestion is one autocomplete answer: a product whose title starts
// with the prefix typed.
type Suggestion struct {
	ProductID int64  `json:"product_id"`
	Title     string `json:"title"`
	Category  string `json:"category"`
}

const suggestionColumns = `id, title, category`

func scanSuggestion(r scanner) (Suggestion, error) {
	var s Suggestion
	err := r.Scan(&s.ProductID, &s.Title, &s.Category)
	return s, err
}

// SuggestPrefix checks an autocomplete prefix and returns the form that is
// looked up: leading spaces dropped (trailing ones are kept: "acme " is
// not "acme"), ASCII letters lower-cased. The database lower-cases both
// the titles and the prefix again, with its own rules (SQLite and a
// PostgreSQL database in the C locale fold ASCII letters only; one in a
// UTF-8 locale folds every letter), so the match is the same with or
// without this step; it only makes "Acme" and "acme" one cache entry.
func SuggestPrefix(prefix string) (string, error) {
	if !utf8.ValidString(prefix) {
		return "", fieldErr("prefix", "is not valid UTF-8")
	}
	p := strings.TrimLeftFunc(prefix, unicode.IsSpace)
	switch {
	case prefix == "":
		return "", fieldErr("prefix", "is required")
	case p == "":
		return "", fieldErr("prefix", "is blank; give the start of a product title")
	case utf8.RuneCountInString(p) > MaxPrefixLen:
		return "", fieldErr("prefix", "is longer than %d characters", MaxPrefixLen)
	}
	if r, bad := firstBadRune(p); bad {
		return "", fieldErr("prefix", "contains %U, a control, format or separator character", r)
	}
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, p), nil
}

// checkSuggestLimit validates the limit of an autocomplete answer.
func checkSuggestLimit(limit int) error {
	if limit < 1 || limit > MaxSuggestLimit {
		return fieldErr("limit", "must be between 1 and %d, got %d", MaxSuggestLimit, limit)
	}
	return nil
}

// Suggest returns up to limit products whose title starts with prefix,
// ignoring case (see [SuggestPrefix]), in title order: one range scan of
// the title prefix index, however many products match.
func (s *Store) Suggest(ctx context.Context, prefix string, limit int) ([]Suggestion, error) {
	p, err := SuggestPrefix(prefix)
	if err != nil {
		return nil, err
	}
	if err := checkSuggestLimit(limit); err != nil {
		return nil, err
	}
	out, err := readRows(ctx, s, scanSuggestion, s.d.suggestSQL, p, limit)
	if err != nil {
		return nil, fmt.Errorf("storefront: suggest: %w", err)
	}
	if out == nil {
		out = []Suggestion{} // JSON [] rather than null
	}
	return out, nil
}

// FacetCategory names the facet of products by category, the one facet
// the store counts.
const FacetCategory = "category"

// FacetCount is one value of a facet and how many of the products
// matching the query have it.
type FacetCount struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

func scanFacetCount(r scanner) (FacetCount, error) {
	var f FacetCount
	err := r.Scan(&f.Value, &f.Count)
	return f, err
}

// Facets are the counts of a query's matches by facet: a facet's name
// (FacetCategory) and its values, most products first, at most
// MaxFacetValues of them.
type Facets map[string][]FacetCount

// Facets counts the products that match every word of q (as [Store.Search]
// matches them, all of them, not only a page) by category.
func (s *Store) Facets(ctx context.Context, q string) (Facets, error) {
	terms, err := SearchTerms(q)
	if err != nil {
		return nil, err
	}
	counts, err := readRows(ctx, s, scanFacetCount, s.d.facetSQL, s.d.searchArg(terms), MaxFacetValues)
	if err != nil {
		return nil, fmt.Errorf("storefront: facets: %w", err)
	}
	if counts == nil {
		counts = []FacetCount{}
	}
	return Facets{FacetCategory: counts}, nil
}
