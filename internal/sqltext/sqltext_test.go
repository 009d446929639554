package sqltext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// kindCases are the advisor's cases (moved from advisor/session_test.go)
// and the shard planner's.
var kindCases = []struct{ text, want string }{
	{"SELECT 1", "select"},                                                        // plain
	{"  (SELECT 1) UNION (SELECT 2)", "select"},                                   // a parenthesised select
	{"/* app=shop */ SELECT * FROM t", "select"},                                  // sqlcommenter's prefix
	{"-- name: GetUser\nSELECT * FROM users WHERE id = $1", "select"},             // sqlc's prefix
	{"WITH x AS (SELECT 1) SELECT * FROM x", "select"},                            // a read-only CTE
	{"WITH d AS (DELETE\n  FROM t RETURNING id) SELECT count(*) FROM d", "write"}, // a data-modifying CTE, formatted
	{"with u as (update t set a = 1 returning *) select 1", "write"},              // lower case
	{"UPDATE t SET a = 1", "update"},                                              // writes
	{"DELETE FROM t", "delete"},
	{"INSERT INTO t VALUES ($1)", "insert"},
	{"SET search_path = x", "other"}, // utility statements
	{"COPY t FROM STDIN", "other"},
	{"", "other"},                // empty: no panic
	{"((((", "other"},            // only parentheses: no panic
	{"/* unterminated", "other"}, // an open comment
	// added with the move
	{"TABLE t", "select"},                                                     // TABLE and VALUES read
	{"VALUES (1), (2)", "select"},                                             //
	{"/* a */ -- b\n/* c\n */ (\n\tselect 1)", "select"},                      // comments of both kinds, stacked
	{"/* insert into t */ WITH x AS (SELECT 1) SELECT 1", "select"},           // a write keyword in the leading comment only
	{"-- only a comment", "other"},                                            // a line comment to the end
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "other"}, // MERGE is not a kind of its own
	{"selectx FROM t", "other"},                                               // a longer word is not the keyword
	{"SELECT1", "select"},                                                     // the keyword ends at the first non-letter
}

func TestKind(t *testing.T) {
	for _, c := range kindCases {
		if got := Kind(c.text); got != c.want {
			t.Errorf("Kind(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

func TestKeyword(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"/* app */ (MERGE INTO t USING s ON true WHEN MATCHED THEN DO NOTHING)", "merge"},
		{"-- x\nWith x AS (SELECT 1) SELECT 1", "with"},
		{"  Begin", "begin"},
		{"(((", ""},
		{"$1", ""},
		{"", ""},
	} {
		if got := Keyword(c.text); got != c.want {
			t.Errorf("Keyword(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// FuzzKind: any text, no panic; the kind is one of six; blanks and a
// comment before a statement do not change it; and it agrees with
// Keyword.
func FuzzKind(f *testing.F) {
	for _, c := range kindCases {
		f.Add(c.text)
	}
	kinds := map[string]bool{"select": true, "insert": true, "update": true, "delete": true, "write": true, "other": true}
	f.Fuzz(func(t *testing.T, text string) {
		k := Kind(text)
		if !kinds[k] {
			t.Fatalf("Kind(%q) = %q, not a kind", text, k)
		}
		for _, prefix := range []string{" ", "\n\t", "/* app=x */ ", "-- name: Q\n"} {
			if pk := Kind(prefix + text); pk != k {
				t.Fatalf("Kind(%q) = %q but Kind(%q) = %q", text, k, prefix+text, pk)
			}
		}
		kw := Keyword(text)
		if kw != strings.ToLower(kw) {
			t.Fatalf("Keyword(%q) = %q, not lower case", text, kw)
		}
		if k == "write" && kw != "with" || k != "other" && kw == "" {
			t.Fatalf("Kind(%q) = %q but Keyword = %q", text, k, kw)
		}
	})
}

func TestIsCatalog(t *testing.T) {
	for _, c := range []struct {
		text string
		want bool
	}{
		{"SELECT * FROM orders WHERE id = $1", false},
		{"UPDATE users SET stats = $1", false}, // a column named like a view is not the view
		{"SELECT relname FROM pg_class WHERE oid = $1", true},
		{"SELECT * FROM pg_catalog.pg_namespace", true},
		{"SELECT query FROM public.pg_stat_statements", true},
		{"SELECT * FROM pg_stats WHERE tablename = $1", true},
		{"SELECT * FROM pg_statistic", true},
		{"SELECT pg_total_relation_size($1::regclass)", true}, // the shard planner's
		{"SELECT relid FROM pg_partition_tree($1)", true},
		{"SELECT * FROM hypopg_create_index($1)", true}, // the advisor's
		{"SELECT pg_get_indexdef($1)", true},
		{"SELECT * FROM strata_query_samples", true},
		{"select CURRENT_SETTING($1)", true}, // case is ignored
		{"SELECT * FROM my_pg_class", false}, // a whole word only
	} {
		if got := IsCatalog(c.text); got != c.want {
			t.Errorf("IsCatalog(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

func TestNotAlias(t *testing.T) {
	// the advisor's words and the shard planner's
	for _, w := range []string{"where", "join", "on", "as", "lateral", "default", "select", "overriding", "tablesample", "returning", "WHERE", "Lateral"} {
		if !NotAlias(w) {
			t.Errorf("NotAlias(%q) = false, want true", w)
		}
	}
	for _, w := range []string{"o", "u", "orders", "x1", ""} {
		if NotAlias(w) {
			t.Errorf("NotAlias(%q) = true, want false", w)
		}
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},             // short enough: as is
		{"abcd", 3, "abc…"},           // cut and marked
		{"äöü", 3, "äöü"},             // runes, not bytes: 6 bytes fit in 3
		{"a😀😀b", 2, "a😀…"},            // a cut after a 4-byte rune
		{"ab\uFFFDc", 3, "ab\uFFFD…"}, // a replacement character in the text stays
		{"", 0, ""},
		{"abc", 0, "…"},
		{"abc", -1, "…"}, // no panic
	} {
		if got := Clip(c.s, c.n); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
	// A cut inside a multi-byte rune never leaves a broken one.
	s := strings.Repeat("日本語", 50)
	for n := range 40 {
		got := Clip(s, n)
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) != n+1 || strings.ContainsRune(got, utf8.RuneError) {
			t.Errorf("Clip(…, %d) = %q", n, got)
		}
	}
}

func TestFirstLine(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int
		want string
	}{
		{"ERROR: x\nDETAIL: y", 100, "ERROR: x"},
		{"no newline", 100, "no newline"},
		{"ééééé\nrest", 3, "ééé…"}, // the line is cut in runes
		{"", 10, ""},
	} {
		if got := FirstLine(c.s, c.max); got != c.want {
			t.Errorf("FirstLine(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
	}
}

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},              // zero prints as bytes
		{1023, "1023 B"},        // under a KiB stays in bytes
		{1024, "1.0 KiB"},       //
		{1536, "1.5 KiB"},       // fractions to a tenth
		{50069504, "47.8 MiB"},  // the advisor's planted orders_note
		{1048535, "1.0 MiB"},    // 1023.96 KiB: not "1024.0 KiB" (the shard planner's old bug)
		{1<<20 - 1, "1.0 MiB"},  // 1023.999 KiB rounds up a unit
		{1048524, "1023.9 KiB"}, // just under the rounding point stays
		{3 << 40, "3.0 TiB"},    // large sizes step up
		{1 << 62, "4.0 EiB"},    // the largest unit
		{1<<63 - 1, "8.0 EiB"},  // the largest int64 stays in EiB
	} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
