package advisor

import (
	"math"
	"strings"
	"testing"
)

// fdCatalog is a catalogue of one large table (orders, 200,000 rows) and
// one small one (tiny, 500 rows).
func fdCatalog() *Catalog {
	return &Catalog{Tables: map[string]*Table{
		"orders": {Name: "orders", Rows: 200_000, Columns: map[string]*Column{}},
		"tiny":   {Name: "tiny", Rows: 500, Columns: map[string]*Column{}},
	}}
}

// TestPlanFindings checks each kind of finding on hand-built plans, and
// that plans without the problem give none.
func TestPlanFindings(t *testing.T) {
	tests := []struct {
		name string
		plan string // "" for a query without a plan
		want []string
	}{
		// A Seq Scan of a 200,000-row table that returns 20 rows: a large
		// scan and 10,000 rows examined per row returned.
		{"large seq scan", `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 8000, "Plan Rows": 20, "Filter": "(orders.customer_id = 5)"}}]`,
			[]string{"seq_scan orders 200000 rows", "examined_ratio orders 200000 rows to return 20"}},
		// A parallel Seq Scan under a Gather of 2 workers: its 10 rows are one
		// process's share, 24 in all (PostgreSQL's divisor 2.4).
		{"parallel seq scan", `[{"Plan": {"Node Type": "Gather", "Workers Planned": 2, "Total Cost": 9000, "Plan Rows": 24, "Plans": [
			{"Node Type": "Seq Scan", "Parallel Aware": true, "Relation Name": "orders", "Total Cost": 8000, "Plan Rows": 10}]}}]`,
			[]string{"seq_scan orders 200000 rows (estimated 24 kept", "examined_ratio orders 200000 rows to return 24"}},
		// A Seq Scan of a 500-row table is not large, and 500/20 is under the ratio.
		{"small seq scan", `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "tiny", "Total Cost": 10, "Plan Rows": 20}}]`, nil},
		// A Seq Scan of the large table returning most of it: a large scan, but the ratio is fine.
		{"large scan returns most", `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 8000, "Plan Rows": 150000}}]`,
			[]string{"seq_scan orders"}},
		// Analyzed: examined is (actual + removed) × loops, returned the root's actual rows.
		{"analyzed ratio", `[{"Plan": {"Node Type": "Index Scan", "Relation Name": "tiny", "Total Cost": 10, "Plan Rows": 1, "Actual Rows": 1, "Actual Loops": 10, "Rows Removed by Filter": 500}, "Execution Time": 1}]`,
			[]string{"examined_ratio tiny 5010 rows to return 10"}},
		// Analyzed sort on disk, and a hash that needed 4 batches: two spills.
		{"spills", `[{"Plan": {"Node Type": "Sort", "Total Cost": 10, "Plan Rows": 1000, "Actual Rows": 1000, "Actual Loops": 1, "Sort Method": "external merge", "Sort Space Type": "Disk",
			"Plans": [{"Node Type": "Hash", "Total Cost": 5, "Plan Rows": 1000, "Actual Rows": 1000, "Actual Loops": 1, "Hash Batches": 4, "Original Hash Batches": 1}]}, "Execution Time": 1}]`,
			[]string{"spill external merge", "spill 4 batches"}},
		// The same sort fields without ANALYZE are not reported (EXPLAIN cannot know).
		{"no spill unanalyzed", `[{"Plan": {"Node Type": "Hash", "Total Cost": 5, "Plan Rows": 1000, "Hash Batches": 4}}]`, nil},
		// A nested loop with 5,000 outer rows and an inner side of cost 40: 200,000 units of work.
		{"nested loop", `[{"Plan": {"Node Type": "Nested Loop", "Total Cost": 200000, "Plan Rows": 5000, "Plans": [
			{"Node Type": "Function Scan", "Total Cost": 50, "Plan Rows": 5000},
			{"Node Type": "Index Scan", "Relation Name": "tiny", "Total Cost": 40, "Plan Rows": 1}]}}]`,
			[]string{"nested_loop tiny 5000 times at cost 40.0"}},
		// A nested loop over 10 outer rows is cheap, whatever the inner cost.
		{"small nested loop", `[{"Plan": {"Node Type": "Nested Loop", "Total Cost": 100, "Plan Rows": 10, "Plans": [
			{"Node Type": "Function Scan", "Total Cost": 1, "Plan Rows": 10},
			{"Node Type": "Function Scan", "Total Cost": 1000, "Plan Rows": 1}]}}]`, nil},
		// Analyzed: 5 rows estimated, 900 found (180× off); the unexecuted node is skipped.
		{"misestimate", `[{"Plan": {"Node Type": "Function Scan", "Total Cost": 1, "Plan Rows": 5, "Actual Rows": 900, "Actual Loops": 1,
			"Plans": [{"Node Type": "Function Scan", "Total Cost": 1, "Plan Rows": 100000, "Actual Rows": 0, "Actual Loops": 0}]}, "Execution Time": 1}]`,
			[]string{"misestimate estimated 5 rows, actually 900 per loop (180× off)"}},
		// Below a Limit, fewer rows than estimated is the Limit stopping early, not a mis-estimate.
		{"under limit", `[{"Plan": {"Node Type": "Limit", "Total Cost": 1, "Plan Rows": 20, "Actual Rows": 20, "Actual Loops": 1,
			"Plans": [{"Node Type": "Function Scan", "Total Cost": 1, "Plan Rows": 5000, "Actual Rows": 20, "Actual Loops": 1}]}, "Execution Time": 1}]`, nil},
		// Estimates within 10× are not mis-estimates.
		{"estimate close", `[{"Plan": {"Node Type": "Function Scan", "Total Cost": 1, "Plan Rows": 100, "Actual Rows": 900, "Actual Loops": 1}, "Execution Time": 1}]`, nil},
		// A query that could not be explained gives nothing.
		{"no plan", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &Query{ID: 7, Text: "SELECT 1", kind: "select"}
			if tc.plan != "" {
				q.plan = mustParsePlan(t, tc.plan)
			}
			got := planFindings([]*Query{q}, fdCatalog())
			if len(got) != len(tc.want) {
				t.Fatalf("got %d findings, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, f := range got {
				if f.QueryID != 7 || strings.Contains(f.Detail, "\n") {
					t.Errorf("finding %d: query %d, detail %q", i, f.QueryID, f.Detail)
				}
				w := strings.Fields(tc.want[i])
				if f.Kind != w[0] {
					t.Errorf("finding %d: kind %q, want %q", i, f.Kind, w[0])
				}
				rest := strings.Join(w[1:], " ")
				if w[0] != "spill" && w[0] != "misestimate" && len(w) > 1 {
					if f.Table != w[1] {
						t.Errorf("finding %d: table %q, want %q", i, f.Table, w[1])
					}
					rest = strings.Join(w[2:], " ")
				}
				if !strings.Contains(f.Detail, rest) {
					t.Errorf("finding %d: detail %q lacks %q", i, f.Detail, rest)
				}
			}
		})
	}
}

// TestPlanFindingsOrder checks that findings follow the queries' order and
// that one table scanned twice in a plan is reported once.
func TestPlanFindingsOrder(t *testing.T) {
	twice := `[{"Plan": {"Node Type": "Append", "Total Cost": 16000, "Plan Rows": 150000, "Plans": [
		{"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 8000, "Plan Rows": 75000},
		{"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 8000, "Plan Rows": 75000}]}}]`
	qs := []*Query{{ID: 2, plan: mustParsePlan(t, twice)}, {ID: 1, plan: mustParsePlan(t, twice)}}
	got := planFindings(qs, fdCatalog())
	if len(got) != 2 || got[0].QueryID != 2 || got[1].QueryID != 1 || got[0].Kind != "seq_scan" {
		t.Errorf("got %+v, want one seq_scan for query 2, then one for query 1", got)
	}
}

// TestParallelDivisor: PostgreSQL's get_parallel_divisor (costsize.c):
// workers, plus the leader's 1 − 0.3 × workers while that is positive.
func TestParallelDivisor(t *testing.T) {
	for _, c := range []struct{ workers, want float64 }{
		{0, 1},   // the leader alone
		{1, 1.7}, // 1 + 0.7
		{2, 2.4}, // 2 + 0.4, the default max_parallel_workers_per_gather
		{3, 3.1}, // 3 + 0.1
		{4, 4},   // the leader's share is gone
		{8, 8},
	} {
		if got := parallelDivisor(c.workers); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("parallelDivisor(%v) = %v, want %v", c.workers, got, c.want)
		}
	}
}

// TestExamined checks the one count of rows a scan examines, node by node.
func TestExamined(t *testing.T) {
	tbl := &Table{Name: "orders", Rows: 200_000}
	gather := func(workers float64) *Node { return &Node{Type: "Gather", WorkersPlanned: workers} }
	for _, c := range []struct {
		name     string
		n        *Node
		t        *Table
		analyzed bool
		gather   *Node
		want     float64
	}{
		{"seq scan: the table", &Node{Type: "Seq Scan", PlanRows: 20}, tbl, false, nil, 200_000},
		{"parallel seq scan: still the table", &Node{Type: "Seq Scan", ParallelAware: true, PlanRows: 20}, tbl, false, gather(2), 200_000},
		{"seq scan of an unknown table: its estimate", &Node{Type: "Seq Scan", PlanRows: 20}, nil, false, nil, 20},
		{"index scan: its estimate", &Node{Type: "Index Scan", PlanRows: 50}, tbl, false, nil, 50},
		{"parallel index scan, 3 workers: × 3.1", &Node{Type: "Index Scan", ParallelAware: true, PlanRows: 1000}, tbl, false, gather(3), 3100},
		{"parallel index scan, 6 workers: × 6", &Node{Type: "Index Scan", ParallelAware: true, PlanRows: 1000}, tbl, false, gather(6), 6000},
		{"not parallel aware under a Gather: as is", &Node{Type: "Index Scan", PlanRows: 1000}, tbl, false, gather(2), 1000},
		{"analyzed: (actual + removed) × loops", &Node{Type: "Index Scan", PlanRows: 1, ActualRows: 10, RowsRemovedByFilter: 90, ActualLoops: 3}, tbl, true, nil, 300},
		{"analyzed seq scan: what it read, not the table", &Node{Type: "Seq Scan", ActualRows: 10, RowsRemovedByFilter: 990, ActualLoops: 1}, tbl, true, nil, 1000},
		// Analyzed, a parallel node's actual rows are per process and its
		// loops count the processes: no divisor on top.
		{"analyzed parallel: no divisor", &Node{Type: "Seq Scan", ParallelAware: true, ActualRows: 100, RowsRemovedByFilter: 900, ActualLoops: 3}, tbl, true, gather(2), 3000},
	} {
		if got := examined(c.n, c.t, c.analyzed, c.gather); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s: examined = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestExaminedShared: the findings (and the rewrite rule, through
// planExamined) and the partitioning rule count a plan's examined rows
// the same way, parallel scans included: the nearest Gather's workers,
// found through a node between them.
func TestExaminedShared(t *testing.T) {
	js := `[{"Plan": {"Node Type": "Gather Merge", "Workers Planned": 3, "Plan Rows": 31000, "Plans": [
		{"Node Type": "Sort", "Plan Rows": 10000, "Plans": [
		{"Node Type": "Index Scan", "Parallel Aware": true, "Relation Name": "orders", "Alias": "orders", "Plan Rows": 10000},
		{"Node Type": "Seq Scan", "Relation Name": "tiny", "Alias": "tiny", "Plan Rows": 10}]}]}}]`
	q := &Query{ID: 1, Text: "SELECT 1", Calls: 1, plan: mustParsePlan(t, js)}
	cat := fdCatalog()
	total, top := planExamined(q.plan, cat)
	// 10,000 × 3.1 for the parallel index scan, plus tiny's 500 rows.
	if math.Abs(total-31_500) > 1e-6 || top == nil || top.Relation != "orders" {
		t.Errorf("planExamined = %v, top %+v; want 31500, orders", total, top)
	}
	if got := planScanExamined(top, q.plan, cat); math.Abs(got-31_000) > 1e-6 {
		t.Errorf("planScanExamined = %v, want 31000", got)
	}
	usage, _ := partUsage([]*Query{q}, cat)
	for name, want := range map[string]float64{"orders": 31_000, "tiny": 500} {
		if len(usage[name]) != 1 || math.Abs(usage[name][0].examined-want) > 1e-6 {
			t.Errorf("partUsage %s: %+v, want examined %v", name, usage[name], want)
		}
	}
	if got := usage["orders"][0].returned; math.Abs(got-31_000) > 1e-6 {
		t.Errorf("partUsage orders returned %v, want 31000", got)
	}
}
