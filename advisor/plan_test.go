package advisor

import (
	"errors"
	"strings"
	"testing"
)

// mustParsePlan decodes an EXPLAIN (FORMAT JSON) document or fails the test.
func mustParsePlan(t testing.TB, doc string) *Plan {
	t.Helper()
	p, err := ParsePlan([]byte(doc))
	if err != nil {
		t.Fatalf("ParsePlan: %v\n%s", err, doc)
	}
	return p
}

// planSeeds are real-shaped EXPLAIN outputs: plain, VERBOSE, ANALYZE, with
// subplans and nesting.
var planSeeds = []string{
	`[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "users", "Startup Cost": 0, "Total Cost": 147, "Plan Rows": 25, "Plan Width": 8, "Filter": "(lower(users.email) = $1)"}}]`,
	`[{"Plan": {"Node Type": "Limit", "Total Cost": 9.6, "Plan Rows": 20, "Plans": [{"Node Type": "Index Scan", "Parent Relationship": "Outer", "Relation Name": "products", "Index Name": "products_pkey", "Total Cost": 156.3, "Plan Rows": 2000}]}}]`,
	`[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "users", "Total Cost": 9782447.9, "Plan Rows": 1041, "Output": ["u.id", "(SubPlan 1)"], "Plans": [{"Node Type": "Aggregate", "Parent Relationship": "SubPlan", "Subplan Name": "SubPlan 1", "Total Cost": 9397, "Plan Rows": 1}]}}]`,
	`[{"Plan": {"Node Type": "Sort", "Total Cost": 10, "Plan Rows": 5, "Actual Rows": 5, "Actual Loops": 1, "Sort Method": "external merge", "Sort Space Type": "Disk", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t", "Actual Rows": 5, "Actual Loops": 1, "Rows Removed by Filter": 100}]}, "Planning Time": 0.1, "Triggers": [], "Execution Time": 1.5}]`,
	`[]`,
	`{}`,
	`[{"Plan": null}]`,
	`[{"Plan": {"Plans": [null]}}]`,
}

// FuzzParsePlan checks that ParsePlan never panics, and that a plan it
// returns has a root and every node a type.
func FuzzParsePlan(f *testing.F) {
	for _, s := range planSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePlan(b)
		if err != nil {
			if p != nil {
				t.Fatalf("a plan with an error: %v", err)
			}
			return
		}
		if p == nil || p.Root == nil {
			t.Fatalf("no error and no root for %q", b)
		}
		p.Root.Walk(func(n, _ *Node) {
			if n.Type == "" {
				t.Fatalf("a node without a type in %q", b)
			}
		})
		_ = p.Cost()
	})
}

// TestParsePlanErrors checks that malformed EXPLAIN output is refused with
// errBadPlan and a message saying what is wrong.
func TestParsePlanErrors(t *testing.T) {
	deep := strings.Repeat(`{"Node Type": "Result", "Plans": [`, maxPlanDepth+2) + `{"Node Type": "Result"}` + strings.Repeat(`]}`, maxPlanDepth+2)
	tests := []struct {
		name, doc, want string
	}{
		// Not JSON at all.
		{"not json", `QUERY PLAN`, "invalid character"},
		// TEXT-format EXPLAIN pasted by mistake decodes as nothing useful.
		{"object not array", `{"Plan": {"Node Type": "Result"}}`, "cannot unmarshal"},
		// An empty array has no plan.
		{"empty", `[]`, "got 0"},
		// Two statements' plans are not one plan.
		{"two plans", `[{"Plan": {"Node Type": "Result"}}, {"Plan": {"Node Type": "Result"}}]`, "got 2"},
		// An object without "Plan".
		{"no plan key", `[{"Planning Time": 1}]`, `"Plan" key`},
		// A node without its type.
		{"no node type", `[{"Plan": {"Total Cost": 1}}]`, "without \"Node Type\""},
		// A null child node.
		{"null child", `[{"Plan": {"Node Type": "Append", "Plans": [null]}}]`, "null node"},
		// Nesting past maxPlanDepth is refused rather than walked.
		{"too deep", `[{"Plan": ` + deep + `}]`, "nested deeper"},
		// Output over maxPlanBytes is refused before decoding.
		{"too large", strings.Repeat(" ", maxPlanBytes+1), "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePlan([]byte(tc.doc))
			if err == nil {
				t.Fatalf("no error; plan %+v", p)
			}
			if !errors.Is(err, errBadPlan) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want errBadPlan containing %q", err, tc.want)
			}
		})
	}
}

// TestParsePlanAnalyzed checks that an ANALYZE document is marked analyzed
// with its execution time, and a plain one is not.
func TestParsePlanAnalyzed(t *testing.T) {
	if p := mustParsePlan(t, planSeeds[3]); !p.Analyzed || p.ExecutionMs != 1.5 || p.Root.Plans[0].RowsRemovedByFilter != 100 {
		t.Errorf("analyzed plan decoded as %+v", p)
	}
	if p := mustParsePlan(t, planSeeds[0]); p.Analyzed || p.Cost() != 147 {
		t.Errorf("plain plan decoded as %+v", p)
	}
}
