package advisor

import (
	"slices"
	"testing"
)

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
