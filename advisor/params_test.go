package advisor

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseArray(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{`{a,b}`, []string{"a", "b"}},                   // plain elements
		{`{"a b","c,d"}`, []string{"a b", "c,d"}},       // quoted, with a space and a comma
		{`{"say \"hi\"",x}`, []string{`say "hi"`, "x"}}, // escaped quotes
		{`{NULL,"NULL",1}`, []string{"NULL", "1"}},      // NULL dropped, the string "NULL" kept
		{`{}`, nil},           // empty
		{`not an array`, nil}, // not an array at all
		{`{2026-01-01 00:00:00+00}`, []string{"2026-01-01 00:00:00+00"}}, // a timestamp
	}
	for _, c := range cases {
		if got := parseArray(c.in); !slices.Equal(got, c.want) {
			t.Errorf("parseArray(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParamUses(t *testing.T) {
	cases := []struct {
		text string
		want map[int]use
	}{
		// column = $n and $n = column
		{"SELECT 1 FROM t WHERE a = $1 AND $2 = b", map[int]use{1: {"a", "eq"}, 2: {"b", "eq"}}},
		// a lower and an upper bound on one column make a window
		{"SELECT 1 FROM t WHERE at >= $1 AND at < $2", map[int]use{1: {"at", "between-low"}, 2: {"at", "between-high"}}},
		// a lone bound keeps its direction; $n > col is col < $n
		{"SELECT 1 FROM t WHERE a > $1 AND $2 > b", map[int]use{1: {"a", "gt"}, 2: {"b", "lt"}}},
		// IN lists, = ANY arrays, BETWEEN, LIKE
		{"SELECT 1 FROM t WHERE a IN ($1, $2) AND b = ANY($3) AND c BETWEEN $4 AND $5 AND d LIKE $6",
			map[int]use{1: {"a", "eq"}, 2: {"a", "eq"}, 3: {"b", "array"}, 4: {"c", "between-low"}, 5: {"c", "between-high"}, 6: {"d", "like"}}},
		// LIMIT and OFFSET, and an alias-qualified column
		{"SELECT 1 FROM t x WHERE x.a = $1 LIMIT $2 OFFSET $3", map[int]use{1: {"x.a", "eq"}, 2: {"", "limit"}, 3: {"", "offset"}}},
	}
	for _, c := range cases {
		got := paramUses(c.text)
		if len(got) != len(c.want) {
			t.Errorf("paramUses(%q) = %v, want %v", c.text, got, c.want)
			continue
		}
		for n, u := range c.want {
			if got[n] != u {
				t.Errorf("paramUses(%q)[$%d] = %v, want %v", c.text, n, got[n], u)
			}
		}
	}
}

func TestBindParams(t *testing.T) {
	cat := &Catalog{Tables: map[string]*Table{"orders": {Name: "orders", Rows: 1000, Columns: map[string]*Column{
		"customer_id": {Name: "customer_id", HasStats: true, NDistinct: -1, Histogram: []string{"1", "250", "500", "750", "1000"}},
		"status":      {Name: "status", HasStats: true, NDistinct: 3, MostCommon: []string{"paid", "new", "shipped"}},
		"note":        {Name: "note"},
	}}}}
	cases := []struct {
		text   string
		types  []string
		want   []string
		source string // a prefix; "" when binding must fail
	}{
		// a unique column takes its median histogram bound; a common-value
		// column its middle common value; LIMIT an assumed page
		{"SELECT * FROM orders WHERE customer_id = $1 AND status = $2 LIMIT $3", []string{"bigint", "text", "bigint"},
			[]string{"500", "new", "20"}, "pg_stats; assumed LIMIT 20"},
		// a column without statistics cannot be bound: generic plan instead
		{"SELECT * FROM orders WHERE note = $1", []string{"text"}, nil, ""},
		// a parameter compared with no column cannot be bound
		{"SELECT * FROM orders WHERE lower(note) = $1", []string{"text"}, nil, ""},
	}
	for _, c := range cases {
		got, source, ok := bindParams(c.text, c.types, cat)
		if ok != (c.source != "") || (ok && (!slices.Equal(got, c.want) || !strings.HasPrefix(source, c.source))) {
			t.Errorf("bindParams(%q) = %q, %q, %v; want %q, %q", c.text, got, source, ok, c.want, c.source)
		}
	}
	if got := substitute("SELECT $1, $2", []string{"it's", "2"}, []string{"text", "bigint"}); got != "SELECT ('it''s'::text), ('2'::bigint)" {
		t.Errorf("substitute quoted %q", got)
	}
}

// FuzzParseArray: any text, no panic, and every element of a well-formed
// result round-trips through quoting.
func FuzzParseArray(f *testing.F) {
	for _, s := range []string{`{a,b}`, `{"a,b",NULL}`, `{"x\"y"}`, `{`, `}`, `{\}`, `{""}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range parseArray(s) {
			if len(e) > len(s) {
				t.Fatalf("element %q longer than the input %q", e, s)
			}
		}
	})
}

// FuzzBindParams: any query text, no panic; a successful binding gives a
// value to every parameter and leaves none of $1…$n in the bound text.
func FuzzBindParams(f *testing.F) {
	cat := &Catalog{Tables: map[string]*Table{"t": {Name: "t", Rows: 10, Columns: map[string]*Column{
		"a": {Name: "a", HasStats: true, MostCommon: []string{"1", "2"}, Histogram: []string{"1", "5", "9"}},
	}}}}
	for _, s := range []string{"SELECT * FROM t WHERE a = $1", "SELECT * FROM t WHERE a BETWEEN $1 AND $2 LIMIT $3",
		"SELECT * FROM t x WHERE x.a IN ($1) OFFSET $2", "$1", "WHERE a > $99999999999999999999"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, text string, n int) {
		n = max(0, min(n, 8))
		types := slices.Repeat([]string{"bigint"}, n)
		vals, _, ok := bindParams(text, types, cat)
		if !ok {
			return
		}
		if len(vals) != n {
			t.Fatalf("%d values for %d parameters", len(vals), n)
		}
		bound := substitute(text, vals, types)
		for _, m := range reParam.FindAllStringSubmatch(bound, -1) {
			if k, err := strconv.Atoi(m[1]); err == nil && k >= 1 && k <= n {
				t.Fatalf("$%d left in the bound text %q", k, bound)
			}
		}
	})
}
