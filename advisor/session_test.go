package advisor

import (
	"slices"
	"testing"
)

func TestStatementKind(t *testing.T) {
	cases := []struct{ text, want string }{
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
	}
	for _, c := range cases {
		if got := statementKind(c.text); got != c.want {
			t.Errorf("statementKind(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

func TestConjuncts(t *testing.T) {
	cases := []struct {
		cond string
		want []string
	}{
		// one comparison, its parentheses stripped
		{"(o.a = 1)", []string{"o.a = 1"}},
		// top-level ANDs split; an OR group stays whole
		{"((o.a = 1) AND ((o.b = 2) OR (o.c = 3)))", []string{"(o.a = 1)", "((o.b = 2) OR (o.c = 3))"}},
		// an AND inside a string literal is not a conjunction
		{"((o.s = 'x AND y'::text) AND (o.a > 2))", []string{"(o.s = 'x AND y'::text)", "(o.a > 2)"}},
		// a quote escaped by doubling inside a literal
		{"((o.s = 'it''s (AND'::text) AND (o.a = 1))", []string{"(o.s = 'it''s (AND'::text)", "(o.a = 1)"}},
		// two groups side by side keep their own parentheses
		{"(o.a = 1) AND (o.b = 2)", []string{"(o.a = 1)", "(o.b = 2)"}},
	}
	for _, c := range cases {
		if got := conjuncts(c.cond); !slices.Equal(got, c.want) {
			t.Errorf("conjuncts(%q) = %q, want %q", c.cond, got, c.want)
		}
	}
}

// FuzzConjuncts: any qualifier, no panic, and the conjuncts are pieces of
// it.
func FuzzConjuncts(f *testing.F) {
	for _, s := range []string{"((a = 1) AND (b = 2))", "(", ")", "'", "(('') AND", " AND  AND "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cond string) {
		for _, c := range conjuncts(cond) {
			if len(c) > len(cond) {
				t.Fatalf("conjunct %q longer than %q", c, cond)
			}
		}
	})
}
