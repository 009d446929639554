package advisor

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// rwCatalog is a small catalogue shaped like the planted workload: orders
// (indexed on id, customer_id, created_at; referrer_id nullable and
// unindexed; note wide), users (email unique), events (ref_id nullable,
// account_id NOT NULL) and products (id primary key).
func rwCatalog() *Catalog {
	col := func(name string, notNull bool, width int) *Column {
		return &Column{Name: name, NotNull: notNull, AvgWidth: width, HasStats: true, NullFrac: 0.5}
	}
	ix := func(table, name string, unique, primary bool, cols ...string) *Index {
		return &Index{Name: name, Table: table, Method: "btree", Columns: cols, Unique: unique, Primary: primary, Valid: true}
	}
	return &Catalog{Tables: map[string]*Table{
		"orders": {Schema: "public", Name: "orders", Rows: 200_000,
			Columns: map[string]*Column{"id": col("id", true, 8), "customer_id": col("customer_id", true, 8),
				"referrer_id": col("referrer_id", false, 8), "status": col("status", true, 6),
				"created_at": col("created_at", true, 8), "note": col("note", true, 192)},
			Indexes: []*Index{ix("orders", "orders_pkey", true, true, "id"), ix("orders", "orders_customer", false, false, "customer_id"),
				ix("orders", "orders_created", false, false, "created_at")}},
		"users": {Schema: "public", Name: "users", Rows: 5000,
			Columns: map[string]*Column{"id": col("id", true, 8), "email": col("email", true, 20), "region": col("region", true, 6)},
			Indexes: []*Index{ix("users", "users_pkey", true, true, "id"), ix("users", "users_email_key", true, false, "email")}},
		"events": {Schema: "public", Name: "events", Rows: 200_000,
			Columns: map[string]*Column{"account_id": col("account_id", true, 8), "ref_id": col("ref_id", false, 8), "amount": col("amount", true, 8)}},
		"products": {Schema: "public", Name: "products", Rows: 2000,
			Columns: map[string]*Column{"id": col("id", true, 8), "title": col("title", true, 20), "category": col("category", true, 8)},
			Indexes: []*Index{ix("products", "products_pkey", true, true, "id")}},
	}}
}

// Plans for the cases, in EXPLAIN (FORMAT JSON, VERBOSE) form.
const (
	planFunc     = `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "users", "Total Cost": 147, "Plan Rows": 25, "Plan Width": 8, "Filter": "(lower(users.email) = $1)"}}]`
	planRegion   = `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "users", "Total Cost": 147, "Plan Rows": 100, "Plan Width": 8, "Filter": "(lower(users.region) = $1)"}}]`
	planCast     = `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 9000, "Plan Rows": 500, "Plan Width": 8, "Filter": "((orders.created_at)::date = $1)"}}]`
	planOffset   = `[{"Plan": {"Node Type": "Limit", "Startup Cost": 7.8, "Total Cost": 9.4, "Plan Rows": 20, "Plan Width": 35, "Plans": [{"Node Type": "Index Scan", "Parent Relationship": "Outer", "Relation Name": "products", "Total Cost": 156, "Plan Rows": 2000, "Plan Width": 35}]}}]`
	planStar     = `[{"Plan": {"Node Type": "Index Scan", "Relation Name": "orders", "Total Cost": 30, "Plan Rows": 10, "Plan Width": 250, "Index Cond": "(orders.customer_id = $1)"}}]`
	planNarrow   = `[{"Plan": {"Node Type": "Index Scan", "Relation Name": "users", "Total Cost": 8, "Plan Rows": 1, "Plan Width": 40, "Index Cond": "(users.id = $1)"}}]`
	planNotIn    = `[{"Plan": {"Node Type": "Aggregate", "Total Cost": 14670, "Plan Rows": 1, "Plan Width": 8, "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "events", "Alias": "e", "Total Cost": 13565, "Plan Rows": 100000, "Filter": "(NOT (hashed SubPlan 1))", "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "SubPlan", "Subplan Name": "SubPlan 1", "Relation Name": "events", "Total Cost": 7262, "Plan Rows": 199980, "Filter": "(events.amount < $1)"}]}]}}]`
	planOr       = `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 8147, "Plan Rows": 24, "Plan Width": 8, "Filter": "((orders.customer_id = $1) OR (orders.referrer_id = $2))"}}]`
	planOrSame   = `[{"Plan": {"Node Type": "Bitmap Heap Scan", "Relation Name": "orders", "Total Cost": 80, "Plan Rows": 24, "Plan Width": 8, "Recheck Cond": "((orders.customer_id = $1) OR (orders.customer_id = $2))"}}]`
	planCorr     = `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "u", "Total Cost": 9782447, "Plan Rows": 1041, "Plan Width": 16, "Output": ["u.id", "(SubPlan 1)"], "Filter": "(u.region = $1)", "Plans": [{"Node Type": "Aggregate", "Parent Relationship": "SubPlan", "Subplan Name": "SubPlan 1", "Total Cost": 9397, "Plan Rows": 1, "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders", "Alias": "o", "Total Cost": 9397, "Plan Rows": 10, "Filter": "(o.customer_id = u.id)"}]}]}}]`
	planCorrFew  = `[{"Plan": {"Node Type": "Index Scan", "Relation Name": "users", "Alias": "u", "Total Cost": 100, "Plan Rows": 10, "Plan Width": 16, "Index Cond": "(u.id < $1)", "Plans": [{"Node Type": "Aggregate", "Parent Relationship": "SubPlan", "Subplan Name": "SubPlan 1", "Total Cost": 9, "Plan Rows": 1, "Plans": [{"Node Type": "Index Scan", "Parent Relationship": "Outer", "Relation Name": "orders", "Alias": "o", "Total Cost": 9, "Plan Rows": 10, "Index Cond": "(o.customer_id = u.id)"}]}]}}]`
	planSort     = `[{"Plan": {"Node Type": "Sort", "Total Cost": 8742, "Plan Rows": 20025, "Plan Width": 16, "Sort Key": ["events.created_at DESC"], "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "events", "Total Cost": 7262, "Plan Rows": 20025, "Filter": "(events.amount > $1)"}]}}]`
	planSortGM   = `[{"Plan": {"Node Type": "Gather Merge", "Total Cost": 9742, "Plan Rows": 20025, "Plan Width": 16, "Plans": [{"Node Type": "Sort", "Parent Relationship": "Outer", "Total Cost": 8742, "Plan Rows": 10000, "Sort Key": ["events.created_at DESC"], "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "events", "Total Cost": 7262, "Plan Rows": 10012}]}]}}]`
	planSortFew  = `[{"Plan": {"Node Type": "Sort", "Total Cost": 100, "Plan Rows": 500, "Plan Width": 16, "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "products", "Total Cost": 50, "Plan Rows": 500}]}}]`
	planLookup   = `[{"Plan": {"Node Type": "Index Scan", "Relation Name": "products", "Total Cost": 8.3, "Plan Rows": 1, "Plan Width": 28, "Index Cond": "(products.id = $1)"}}]`
	planCategory = `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "products", "Total Cost": 40, "Plan Rows": 1, "Plan Width": 28, "Filter": "(products.category = $1)"}}]`
	planStatus   = `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Total Cost": 8000, "Plan Rows": 20, "Plan Width": 16, "Filter": "(orders.status = $1)"}}]`
)

// TestDetectRewrites runs the rules over hand-built queries: each planted
// shape fires its rule, and the look-alikes that are fine do not.
func TestDetectRewrites(t *testing.T) {
	tests := []struct {
		name, text, bound, plan string
		calls, rows             int64
		covered                 bool
		want                    []string // the rules, in order
		sql                     string   // a piece of the first advice's SQL
		mechanical              bool     // the first advice has a rewritten statement or hypothetical index to check
	}{
		// lower() over the unique email column, which the Seq Scan filters by: an expression index.
		{name: "function", text: "SELECT id FROM users WHERE lower(email) = $1", plan: planFunc,
			want: []string{"function_on_column"}, sql: `CREATE INDEX CONCURRENTLY ON "public"."users" (lower(email))`, mechanical: true},
		// The same function over an unindexed column is the index advisor's business, not a rewrite.
		{name: "function unindexed", text: "SELECT id FROM users WHERE lower(region) = $1", plan: planRegion},
		// A cast of an indexed timestamp compared with a date: an expression index on the cast.
		{name: "cast", text: "SELECT id FROM orders WHERE created_at::date = $1", plan: planCast,
			want: []string{"function_on_column"}, sql: "((created_at::date))", mechanical: true},
		// OFFSET pagination, with the bound values: keyset pagination, not checkable.
		{name: "offset", text: "SELECT id, title FROM products ORDER BY id LIMIT $1 OFFSET $2",
			bound: "SELECT id, title FROM products ORDER BY id LIMIT ('20'::bigint) OFFSET ('100'::bigint)", plan: planOffset,
			want: []string{"offset_pagination"}, sql: "WHERE id > $3 ORDER BY id LIMIT $1"},
		// OFFSET 0 is the first page: nothing is discarded.
		{name: "offset zero", text: "SELECT id, title FROM products ORDER BY id LIMIT 20 OFFSET 0", plan: planOffset},
		// SELECT * of 250-byte rows: name the columns; the wide note column is left out of the shape.
		{name: "select star", text: "SELECT * FROM orders WHERE customer_id = $1", plan: planStar,
			want: []string{"select_star"}, sql: "SELECT created_at, customer_id, id, referrer_id, status FROM orders"},
		// SELECT * of narrow rows is fine.
		{name: "select star narrow", text: "SELECT * FROM users WHERE id = $1", plan: planNarrow},
		// NOT IN over the nullable ref_id: NOT EXISTS, high risk, mechanically rewritten.
		{name: "not in nullable", text: "SELECT count(*) FROM events e WHERE e.account_id NOT IN (SELECT ref_id FROM events WHERE amount < $1)",
			plan: planNotIn, want: []string{"not_in_nullable"}, mechanical: true,
			sql: "NOT EXISTS (SELECT 1 FROM events nin WHERE (amount < $1) AND nin.ref_id = e.account_id)"},
		// NOT IN over the NOT NULL account_id is safe as it is; only the guide's ratio remains (a count reads every row).
		{name: "not in not null", text: "SELECT count(*) FROM events e WHERE e.ref_id NOT IN (SELECT account_id FROM events WHERE amount < $1)", plan: planNotIn,
			want: []string{"examined_ratio"}},
		// OR over two columns of orders with a Seq Scan: UNION ALL (and an index on referrer_id).
		{name: "or", text: "SELECT id FROM orders WHERE customer_id = $1 OR referrer_id = $2", plan: planOr,
			want: []string{"or_across_columns"}, mechanical: true,
			sql: "CREATE INDEX CONCURRENTLY ON \"public\".\"orders\" (\"referrer_id\");\nSELECT id FROM orders WHERE customer_id = $1 UNION ALL SELECT id FROM orders WHERE (referrer_id = $2) AND (customer_id = $1) IS NOT TRUE"},
		// OR over one column is an IN list an index serves.
		{name: "or same column", text: "SELECT id FROM orders WHERE customer_id = $1 OR customer_id = $2", plan: planOrSame},
		// A correlated max() per user over 1041 users: a grouped LEFT JOIN, mechanically built.
		{name: "correlated", text: "SELECT u.id, (SELECT max(o.created_at) FROM orders o WHERE o.customer_id = u.id) FROM users u WHERE u.region = $1",
			plan: planCorr, want: []string{"correlated_subquery"}, mechanical: true,
			sql: "SELECT u.id, sq.max FROM users u LEFT JOIN (SELECT o.customer_id, max(o.created_at) AS max FROM orders o GROUP BY o.customer_id) sq ON sq.customer_id = u.id WHERE u.region = $1"},
		// A correlated subquery over 10 outer rows is cheap enough.
		{name: "correlated few", text: "SELECT u.id, (SELECT max(o.created_at) FROM orders o WHERE o.customer_id = u.id) FROM users u WHERE u.id < $1", plan: planCorrFew},
		// A hashed SubPlan (NOT IN over NOT NULL) runs once, so it is not correlated (covered: no ratio advice either).
		{name: "hashed subplan", text: "SELECT count(*) FROM events e WHERE e.ref_id NOT IN (SELECT account_id FROM events)", plan: planNotIn, covered: true},
		// 20,025 rows sorted and returned whole: add a LIMIT, checked with a top-N sort.
		{name: "sort no limit", text: "SELECT id, created_at FROM events WHERE amount > $1 ORDER BY created_at DESC", plan: planSort,
			want: []string{"sort_without_limit"}, sql: "ORDER BY created_at DESC LIMIT $2", mechanical: true},
		// The same under a Gather Merge.
		{name: "sort gather merge", text: "SELECT id, created_at FROM events ORDER BY created_at DESC", plan: planSortGM,
			want: []string{"sort_without_limit"}, sql: "LIMIT $1", mechanical: true},
		// 500 sorted rows are few.
		{name: "sort few", text: "SELECT id FROM products ORDER BY title", plan: planSortFew},
		// A primary-key lookup run 5,000 times against a median of 50: batch with = ANY.
		{name: "n+1", text: "SELECT id, title FROM products WHERE id = $1", plan: planLookup, calls: 5000, rows: 4990,
			want: []string{"n_plus_one"}, sql: "WHERE id = ANY($1)"},
		// Only the WHERE key becomes an array, under its own parameter: a
		// look-alike comparison in the select list (parent_id = $1 holds
		// "id = $1") and the other parameter are left alone.
		{name: "n+1 other params", text: "SELECT id, (parent_id = $1) AS top FROM products WHERE id = $2", plan: planLookup, calls: 5000, rows: 4990,
			want: []string{"n_plus_one"}, sql: "SELECT id, (parent_id = $1) AS top FROM products WHERE id = ANY($2)"},
		// The same lookup run as often as the rest of the workload is normal.
		{name: "n+1 rare", text: "SELECT id, title FROM products WHERE id = $1", plan: planLookup, calls: 60, rows: 60},
		// A frequent lookup by a non-unique column is not a single-row lookup (its Seq Scan trips the ratio rule).
		{name: "n+1 not unique", text: "SELECT id, title FROM products WHERE category = $1", plan: planCategory, calls: 5000, rows: 4990,
			want: []string{"examined_ratio"}, sql: "Seq Scan on products keeps 1 of 2000 rows read"},
		// 200,000 rows read for 20 and no rule explains it: the guide's examined_ratio.
		{name: "examined", text: "SELECT id FROM orders WHERE status = $1", plan: planStatus, want: []string{"examined_ratio"}, sql: "(orders.status = $1)"},
		// The same query helped by an index recommendation gets no rewrite advice.
		{name: "examined covered", text: "SELECT id FROM orders WHERE status = $1", plan: planStatus, covered: true},
	}
	cat := rwCatalog()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &Query{ID: 42, Text: tc.text, Calls: tc.calls, Rows: tc.rows, kind: "select", bound: tc.bound, plan: mustParsePlan(t, tc.plan)}
			q.Cost = q.plan.Cost()
			w := rwWorkload{medianCalls: 50, covered: map[int64]bool{}}
			if tc.covered {
				w.covered[42] = true
			}
			got := detectRewrites(q, cat, w)
			var rules []string
			for _, rw := range got {
				rules = append(rules, rw.rec.Rule)
				checkFields(t, rw.rec)
			}
			if strings.Join(rules, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("rules %v, want %v", rules, tc.want)
			}
			if len(got) == 0 {
				return
			}
			if !strings.Contains(got[0].rec.SQL, tc.sql) {
				t.Errorf("SQL %q lacks %q", got[0].rec.SQL, tc.sql)
			}
			if got[0].checkable() != tc.mechanical {
				t.Errorf("checkable %v, want %v", got[0].checkable(), tc.mechanical)
			}
		})
	}
}

// checkFields checks what every rewrite recommendation must carry.
func checkFields(t *testing.T, r Recommendation) {
	t.Helper()
	if r.Kind != KindRewrite || len(r.Queries) != 1 || r.Queries[0] != 42 || r.Reason == "" || r.SQL == "" || r.Table == "" {
		t.Errorf("incomplete recommendation %+v", r)
	}
	if r.Effort != Low && r.Effort != Medium || r.Risk != Low && r.Risk != Medium && r.Risk != High {
		t.Errorf("%s: effort %q, risk %q", r.Rule, r.Effort, r.Risk)
	}
	if r.EstimatedImprovementPct < 0 || r.EstimatedImprovementPct >= 100 || math.IsNaN(r.EstimatedImprovementPct) {
		t.Errorf("%s: improvement %v", r.Rule, r.EstimatedImprovementPct)
	}
	if r.Rule == "not_in_nullable" && r.Risk != High || r.Rule == "function_on_column" && r.Effort != Low {
		t.Errorf("%s: effort %q, risk %q", r.Rule, r.Effort, r.Risk)
	}
}

// TestRewriteEstimates checks the computed estimates of the unchecked rules
// against their documented formulas.
func TestRewriteEstimates(t *testing.T) {
	cat := rwCatalog()
	w := rwWorkload{medianCalls: 50, covered: map[int64]bool{}}
	est := func(text, bound, plan string, calls, rows int64) float64 {
		q := &Query{ID: 42, Text: text, bound: bound, kind: "select", Calls: calls, Rows: rows, plan: mustParsePlan(t, plan)}
		got := detectRewrites(q, cat, w)
		if len(got) == 0 {
			t.Fatalf("no advice for %s", text)
		}
		return got[0].rec.EstimatedImprovementPct
	}
	tests := []struct {
		name      string
		got, want float64
	}{
		// offset / (offset + limit) = 100 / 120.
		{"offset", est("SELECT id FROM products ORDER BY id LIMIT $1 OFFSET $2", "SELECT id FROM products ORDER BY id LIMIT ('20'::bigint) OFFSET ('100'::bigint)", planOffset, 0, 0), 100.0 * 100 / 120},
		// Unbound OFFSET $2: assumedOffset over assumedOffset + the Limit's 20 rows.
		{"offset assumed", est("SELECT id FROM products ORDER BY id LIMIT $1 OFFSET $2", "", planOffset, 0, 0), 100.0 * assumedOffset / (assumedOffset + 20)},
		// note's 192 bytes of a 250-byte row.
		{"select star", est("SELECT * FROM orders WHERE customer_id = $1", "", planStar, 0, 0), 100.0 * 192 / 250},
		// (runs − 1) × subplan cost / plan cost, capped at 99.
		{"correlated", est("SELECT u.id, (SELECT 1) FROM users u", "", planCorr, 0, 0), math.Min(99, 100.0*1040*9397/9782447)},
		// 1 − 1/(calls / median).
		{"n+1", est("SELECT id FROM products WHERE id = $1", "", planLookup, 5000, 5000), 100 * (1 - 1/100.0)},
		// scan share × (1 − returned/examined): 1 × (1 − 20/200000).
		{"examined", est("SELECT id FROM orders WHERE status = $1", "", planStatus, 0, 0), 99},
	}
	for _, tc := range tests {
		if math.Abs(tc.got-tc.want) > 0.01 {
			t.Errorf("%s: estimate %.3f, want %.3f", tc.name, tc.got, tc.want)
		}
	}
}

// TestMechanicalRewrites checks the text transforms on the normalised and
// the bound forms, and that shapes they cannot handle are left alone.
func TestMechanicalRewrites(t *testing.T) {
	notIn := func(text string) string {
		ni, ok := parseNotIn(text)
		if !ok {
			return "no match"
		}
		return ni.rewrite(text)
	}
	union := func(text string) string { s, _ := unionOfOr(text); return s }
	join := func(text string) string { s, _ := joinOfCorrelated(text); return s }
	tests := []struct {
		name, got, want string
	}{
		// Bound literals hold parentheses; the OR split ignores them.
		{"or bound", union("SELECT id FROM orders WHERE customer_id = ('1'::bigint) OR referrer_id = ('2'::bigint)"),
			"SELECT id FROM orders WHERE customer_id = ('1'::bigint) UNION ALL SELECT id FROM orders WHERE (referrer_id = ('2'::bigint)) AND (customer_id = ('1'::bigint)) IS NOT TRUE"},
		// DISTINCT needs UNION, which removes the duplicates DISTINCT would.
		{"or distinct", union("SELECT DISTINCT status FROM orders WHERE a = $1 OR b = $2"),
			"SELECT DISTINCT status FROM orders WHERE a = $1 UNION SELECT DISTINCT status FROM orders WHERE (b = $2) AND (a = $1) IS NOT TRUE"},
		// An aggregate in the select list would be split in two: not rewritten.
		{"or aggregate", union("SELECT count(*) FROM orders WHERE a = $1 OR b = $2"), ""},
		// Anything after the WHERE clause (ORDER BY, LIMIT) is not rewritten.
		{"or order by", union("SELECT id FROM orders WHERE a = $1 OR b = $2 ORDER BY id"), ""},
		// Three ORs are not two indexed reads.
		{"or three", union("SELECT id FROM orders WHERE a = $1 OR b = $2 OR c = $3"), ""},
		// An unqualified outer column is qualified with the outer table, so the inner table cannot capture it.
		{"not in unqualified", notIn("SELECT id FROM orders WHERE referrer_id NOT IN (SELECT ref_id FROM events)"),
			"SELECT id FROM orders WHERE NOT EXISTS (SELECT 1 FROM events nin WHERE nin.ref_id = orders.referrer_id)"},
		// The inner alias is kept; a bound literal's parentheses do not end the subquery.
		{"not in alias bound", notIn("SELECT 1 FROM orders o WHERE o.referrer_id NOT IN (SELECT x.ref_id FROM events x WHERE x.amount < ('3'::bigint)) AND o.id > 0"),
			"SELECT 1 FROM orders o WHERE NOT EXISTS (SELECT 1 FROM events x WHERE (x.amount < ('3'::bigint)) AND x.ref_id = o.referrer_id) AND o.id > 0"},
		// A grouped subquery is not a plain read: detected, not rewritten.
		{"not in grouped", notIn("SELECT 1 FROM orders o WHERE o.id NOT IN (SELECT ref_id FROM events GROUP BY ref_id)"), ""},
		// count() over no rows is 0, so the joined form wraps it in COALESCE.
		{"correlated count", join("SELECT u.id, (SELECT count(o.id) FROM orders o WHERE u.id = o.customer_id) FROM users u"),
			"SELECT u.id, COALESCE(sq.count, 0) FROM users u LEFT JOIN (SELECT o.customer_id, count(o.id) AS count FROM orders o GROUP BY o.customer_id) sq ON sq.customer_id = u.id"},
		// A correlation that is not an equality is left alone.
		{"correlated range", join("SELECT u.id, (SELECT max(o.id) FROM orders o WHERE o.created_at > u.id) FROM users u"), ""},
		// Keyset on a descending key uses <, inside an existing WHERE.
		{"keyset desc", keysetSQL("SELECT id FROM t WHERE a = $1 ORDER BY id DESC LIMIT $2 OFFSET $3", "OFFSET $3", "id", true),
			"SELECT id FROM t WHERE id < $4 AND a = $1 ORDER BY id DESC LIMIT $2 -- $4: the last id of the previous page"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestApplyCheck checks the improvement computed from a check's costs.
func TestApplyCheck(t *testing.T) {
	plan := func(cost float64) *Plan { return &Plan{Root: &Node{Type: "Result", TotalCost: cost}} }
	tests := []struct {
		name               string
		before, after, alt float64 // alt 0: not planned
		wantPct            float64
		wantSQL, wantNote  string
	}{
		// Cheaper: 100 × (1 − 40/100).
		{"cheaper", 100, 40, 0, 60, "rewritten", "planner cost 100 → 40"},
		// Dearer: improvement 0, and the note says so.
		{"dearer", 100, 120, 0, 0, "rewritten", "not cheaper"},
		// The original under the hypothetical indexes is as cheap: the DDL alone is the advice.
		{"indexes enough", 100, 12, 10, 90, "CREATE INDEX ON t (a)", "indexes alone are enough"},
	}
	for _, tc := range tests {
		rw := &rewrite{rec: Recommendation{SQL: "rewritten", Effort: Medium, EstimatedImprovementPct: 55},
			hypo: []rwIndex{plainIndex(&Table{Schema: "public", Name: "t"}, "a")}, ddl: "CREATE INDEX ON t (a)"}
		var alt *Plan
		if tc.alt > 0 {
			alt = plan(tc.alt)
		}
		applyCheck(rw, plan(tc.before), plan(tc.after), alt)
		c := rw.rec.Checked
		if math.Abs(rw.rec.EstimatedImprovementPct-tc.wantPct) > 1e-9 || rw.rec.SQL != tc.wantSQL || c == nil || !strings.Contains(c.Note, tc.wantNote) || c.CostBefore != tc.before {
			t.Errorf("%s: %.1f %% %q %+v", tc.name, rw.rec.EstimatedImprovementPct, rw.rec.SQL, c)
		}
	}
}

// TestRwWorkload checks the median of calls and the queries the index
// recommendations cover.
func TestRwWorkload(t *testing.T) {
	qs := []*Query{{ID: 1, Calls: 10}, {ID: 2, Calls: 30}, {ID: 3, Calls: 1000}, {ID: 4, Calls: 20}}
	w := newRwWorkload(qs, []Recommendation{{Kind: KindIndex, Queries: []int64{3}}, {Kind: KindDropIndex, Queries: []int64{4}}})
	if w.medianCalls != 25 || !w.covered[3] || w.covered[4] {
		t.Errorf("workload %+v: want median 25, query 3 covered, 4 not", w)
	}
}

// TestRwBareAll checks the sort keys' column names: qualifiers and
// directions go, and an empty or blank key is left out instead of
// panicking.
func TestRwBareAll(t *testing.T) {
	got := rwBareAll([]string{"", "   ", "events.created_at DESC", "id", "\t"})
	if !slices.Equal(got, []string{"created_at", "id"}) {
		t.Errorf("rwBareAll: %q", got)
	}
	// The same through the rule: a Sort node whose key EXPLAIN left blank.
	plan := `[{"Plan": {"Node Type": "Sort", "Total Cost": 8742, "Plan Rows": 20025, "Plan Width": 16, "Sort Key": [""], "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "events", "Total Cost": 7262, "Plan Rows": 20025}]}}]`
	q := &Query{ID: 42, Text: "SELECT id FROM events ORDER BY created_at", kind: "select", plan: mustParsePlan(t, plan)}
	if rw, ok := ruleSortWithoutLimit(q, rwCatalog(), rwWorkload{}); !ok || len(rw.rec.Columns) != 0 {
		t.Errorf("sort without limit over a blank key: %v %+v", ok, rw.rec)
	}
}

// TestRwIndexDDL checks the DDL of the indexes rewrites assume: the table
// schema-qualified and quoted, an expression key kept as written.
func TestRwIndexDDL(t *testing.T) {
	odd := &Table{Schema: "Sales", Name: `order "x"`}
	tests := []struct{ got, want string }{
		{exprIndex(odd, "lower(email)").ddl(false), `CREATE INDEX ON "Sales"."order ""x""" (lower(email))`},
		{exprIndex(odd, "(created_at::date)").ddl(true), `CREATE INDEX CONCURRENTLY ON "Sales"."order ""x""" ((created_at::date))`},
		{plainIndex(odd, "Ref").ddl(false), `CREATE INDEX ON "Sales"."order ""x""" ("Ref")`},
		{rwDDLText([]rwIndex{plainIndex(odd, "a"), exprIndex(odd, "lower(b)")}, true),
			`CREATE INDEX CONCURRENTLY ON "Sales"."order ""x""" ("a"); CREATE INDEX CONCURRENTLY ON "Sales"."order ""x""" (lower(b))`},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got  %s\nwant %s", tc.got, tc.want)
		}
	}
}

// TestRwReasonQuote checks that a Reason quotes a long query on one line,
// cut at a rune boundary.
func TestRwReasonQuote(t *testing.T) {
	// 13 bytes, then two-byte runes: byte 80 falls inside one.
	text := "SELECT id, 'x" + strings.Repeat("é", 60) + "' AS tag\nFROM users\nWHERE lower(email) = $1"
	q := &Query{ID: 42, Text: text, kind: "select", plan: mustParsePlan(t, planFunc)}
	rw, ok := ruleFunctionOnColumn(q, rwCatalog(), rwWorkload{})
	if !ok {
		t.Fatal("no function_on_column advice")
	}
	quoted, _, _ := strings.Cut(rw.rec.Reason, " applies ")
	if !utf8.ValidString(rw.rec.Reason) || strings.Contains(quoted, "\n") || utf8.RuneCountInString(quoted) != reasonQueryRunes+1 {
		t.Errorf("quoted query %q (%d runes)", quoted, utf8.RuneCountInString(quoted))
	}
}

// TestRwHelpers checks the small lookups the rules share.
func TestRwHelpers(t *testing.T) {
	if n := rwMaxParam("SELECT $1, $12 FROM t WHERE a = $3"); n != 12 {
		t.Errorf("rwMaxParam: %d, want 12", n)
	}
	for _, w := range []string{"and", "exists", "array"} {
		if !rwNotFunction(w) {
			t.Errorf("%s taken for a function", w)
		}
	}
	if rwNotFunction("lower") {
		t.Error("lower taken for a keyword")
	}
	var names []string
	for _, r := range rewriteRules() {
		if slices.Contains(names, r.name) || r.detect == nil {
			t.Errorf("rule %q repeated or without a detector", r.name)
		}
		names = append(names, r.name)
	}
	// The rules are a fresh list each time: changing one does not change the next.
	rules := rewriteRules()
	rules[0].name = "changed"
	if rewriteRules()[0].name != "function_on_column" {
		t.Error("rewriteRules shares its slice")
	}
}

// fakeDB is a database/sql driver that answers what checkRewrite sends:
// EXPLAIN with a one-node plan whose cost cost chooses, HypoPG's create
// and size with numbers; every statement is logged, and one holding fail
// fails with errFake.
type fakeDB struct {
	mu   sync.Mutex
	log  []string
	live int // hypothetical indexes in place
	next int64
	fail string
	cost func(stmt string, live int) float64
}

var errFake = errors.New("fake failure")

func (f *fakeDB) Connect(context.Context) (driver.Conn, error) { return fakeConn{f}, nil }
func (f *fakeDB) Driver() driver.Driver                        { return fakeDriver{f} }

type fakeDriver struct{ f *fakeDB }

func (d fakeDriver) Open(string) (driver.Conn, error) { return fakeConn(d), nil }

type fakeConn struct{ f *fakeDB }

func (c fakeConn) Prepare(query string) (driver.Stmt, error) { return fakeStmt{c.f, query}, nil }
func (c fakeConn) Close() error                              { return nil }
func (c fakeConn) Begin() (driver.Tx, error)                 { return nil, errFake }

// BeginTx fails: database/sql would refuse a read-only transaction
// without it.
func (c fakeConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) { return nil, errFake }

type fakeStmt struct {
	f     *fakeDB
	query string
}

func (s fakeStmt) Close() error  { return nil }
func (s fakeStmt) NumInput() int { return -1 }

// run logs the statement and returns its one value, if any.
func (s fakeStmt) run(args []driver.Value) (driver.Value, error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	entry := s.query
	for _, a := range args {
		entry += fmt.Sprintf(" [%v]", a)
	}
	f.log = append(f.log, entry)
	switch {
	case f.fail != "" && strings.Contains(s.query, f.fail):
		return nil, errFake
	case strings.Contains(s.query, "hypopg_create_index"):
		f.live++
		f.next++
		return f.next, nil
	case strings.Contains(s.query, "hypopg_drop_index"):
		f.live--
	case strings.Contains(s.query, "hypopg_relation_size"):
		return int64(8192), nil
	case strings.HasPrefix(s.query, "EXPLAIN"):
		return fmt.Sprintf(`[{"Plan": {"Node Type": "Result", "Total Cost": %g}}]`, f.cost(s.query, f.live)), nil
	}
	return nil, nil
}

func (s fakeStmt) Exec(args []driver.Value) (driver.Result, error) {
	_, err := s.run(args)
	return driver.RowsAffected(0), err
}

func (s fakeStmt) Query(args []driver.Value) (driver.Rows, error) {
	v, err := s.run(args)
	if err != nil {
		return nil, err
	}
	return &fakeRows{v: v}, nil
}

type fakeRows struct {
	v    driver.Value
	done bool
}

func (r *fakeRows) Columns() []string { return []string{"v"} }
func (r *fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.done || r.v == nil {
		return io.EOF
	}
	dest[0], r.done = r.v, true
	return nil
}

// fakeSession is a session on f's one connection.
func fakeSession(t *testing.T, f *fakeDB) *session {
	t.Helper()
	db := sql.OpenDB(f)
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &session{conn: conn, cat: rwCatalog(), hypopg: `"public"`}
}

// TestCheckRewrite runs the check against the fake database: the original
// is planned through its own prepared statement, the rewrite as a fresh
// one, the hypothetical indexes are made and dropped, and the note says
// only what the check found (the query's cost from the index phase,
// planned among other hypothetical indexes, plays no part).
func TestCheckRewrite(t *testing.T) {
	ctx := context.Background()
	t.Run("or across columns", func(t *testing.T) {
		f := &fakeDB{cost: func(stmt string, live int) float64 {
			switch {
			case strings.Contains(stmt, "EXECUTE "+rewriteStmt):
				return 20
			case live > 0:
				return 16
			}
			return 8000
		}}
		s := fakeSession(t, f)
		q := &Query{ID: 42, Text: "SELECT id FROM orders WHERE customer_id = $1 OR referrer_id = $2", kind: "select",
			prep: "strata_advise_7", nparam: 2, plan: mustParsePlan(t, planOr)}
		q.Cost = 5000 // not what the check plans: no note about it
		rws := detectRewrites(q, s.cat, rwWorkload{covered: map[int64]bool{}})
		if len(rws) == 0 || rws[0].rec.Rule != "or_across_columns" {
			t.Fatalf("detected %+v", rws)
		}
		rw := rws[0]
		s.checkRewrite(ctx, q, &rw)
		c := rw.rec.Checked
		wantNote := `with hypothetical CREATE INDEX ON "public"."orders" ("referrer_id"); the original with the indexes costs 16, no more than the rewrite's 20: the indexes alone are enough; planner cost 8000 → 16`
		if c == nil || c.Note != wantNote || c.CostBefore != 8000 || c.CostAfter != 16 {
			t.Fatalf("check %+v\nwant note %s", c, wantNote)
		}
		if want := `CREATE INDEX CONCURRENTLY ON "public"."orders" ("referrer_id")`; rw.rec.SQL != want {
			t.Errorf("SQL %q, want %q", rw.rec.SQL, want)
		}
		log := strings.Join(f.log, "\n")
		for _, want := range []string{
			"EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE strata_advise_7(NULL, NULL)",
			"PREPARE " + rewriteStmt + " AS SELECT id FROM orders WHERE customer_id = $1 UNION ALL",
			`hypopg_create_index($1) [CREATE INDEX ON "public"."orders" ("referrer_id")]`,
			"hypopg_drop_index($1) [1]",
			"DEALLOCATE " + rewriteStmt,
		} {
			if !strings.Contains(log, want) {
				t.Errorf("the check did not send %q; it sent:\n%s", want, log)
			}
		}
		if strings.Contains(log, "AS "+q.Text) || f.live != 0 {
			t.Errorf("original re-prepared, or %d hypothetical indexes left:\n%s", f.live, log)
		}
	})
	t.Run("expression index", func(t *testing.T) {
		f := &fakeDB{cost: func(_ string, live int) float64 {
			if live > 0 {
				return 8
			}
			return 147
		}}
		s := fakeSession(t, f)
		bound := "SELECT id FROM users WHERE lower(email) = 'a@example.com'"
		q := &Query{ID: 42, Text: "SELECT id FROM users WHERE lower(email) = $1", bound: bound, kind: "select", plan: mustParsePlan(t, planFunc)}
		q.Cost = 1
		rw, ok := ruleFunctionOnColumn(q, s.cat, rwWorkload{})
		if !ok {
			t.Fatal("no function_on_column advice")
		}
		s.checkRewrite(ctx, q, &rw)
		c := rw.rec.Checked
		if c == nil || c.CostBefore != 147 || c.CostAfter != 8 || strings.Contains(c.Note, "; both costs") {
			t.Fatalf("check %+v", c)
		}
		log := strings.Join(f.log, "\n")
		if !strings.Contains(log, "EXPLAIN (FORMAT JSON, VERBOSE) "+bound) ||
			!strings.Contains(log, `hypopg_create_index($1) [CREATE INDEX ON "public"."users" (lower(email))]`) || f.live != 0 {
			t.Errorf("sent:\n%s", log)
		}
	})
	t.Run("errors", func(t *testing.T) {
		f := &fakeDB{fail: "PREPARE " + rewriteStmt, cost: func(string, int) float64 { return 100 }}
		s := fakeSession(t, f)
		q := &Query{ID: 42, Text: "SELECT id FROM orders WHERE customer_id = $1 OR referrer_id = $2", kind: "select",
			prep: "strata_advise_7", nparam: 2, plan: mustParsePlan(t, planOr)}
		if _, err := s.rwPlan(ctx, q, "SELECT 1"); !errors.Is(err, errFake) {
			t.Errorf("rwPlan error %v does not wrap the driver's", err)
		}
		rw := orRewrite(q, s.cat.Table("orders"), "customer_id", "referrer_id", q.plan.Root)
		s.checkRewrite(ctx, q, &rw)
		if c := rw.rec.Checked; c == nil || c.Note != "not checked: the rewrite could not be prepared: fake failure" || f.live != 0 {
			t.Errorf("check %+v, %d hypothetical indexes left", c, f.live)
		}
		if _, err := s.rwSameRows(ctx, "SELECT 1", "SELECT 1"); !errors.Is(err, errFake) {
			t.Errorf("rwSameRows error %v does not wrap the driver's", err)
		}
	})
}
