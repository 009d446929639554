package advisor_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/advisor"
)

// verifyFactor bounds how far a measured gain may fall short of the
// planner's estimate: the measured improvement must be at least the
// estimated one divided by verifyFactor. Costs are not milliseconds, so
// only the improvement percentages are compared.
const verifyFactor = 2

// TestAdvisePlanted runs the advisor on the planted workload (see
// workload_test.go) and checks each kind of advice against what was
// planted, then verifies the index advice by building it for real.
func TestAdvisePlanted(t *testing.T) {
	url := plantWorkload(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := advisor.Advise(ctx, db, advisor.Config{})
	if err != nil {
		t.Fatalf("Advise: %v", err)
	}
	for _, c := range []struct {
		name  string
		check func(context.Context, *testing.T, *sql.DB, *advisor.Report)
	}{
		{"index advice", checkIndexAdvice},
		{"no existing index advised", checkNoExisting},
		{"write cost outweighs the gain", checkWriteCost},
		{"indexes to drop", checkDrops},
		{"rewrites", checkRewrites},
		{"partitioning", checkPartitioning},
		{"every recommendation is complete", checkComplete},
		{"normalised queries got parameters", checkParams},
		{"verify", checkVerify}, // last: it builds and drops indexes
	} {
		t.Run(c.name, func(t *testing.T) { c.check(ctx, t, db, r) })
	}
}

func checkIndexAdvice(ctx context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	indexes := byKind(r, advisor.KindIndex)
	cases := []struct {
		name string
		want func(advisor.Recommendation) bool
	}{
		// The single-column index on orders.customer_id (SELECT * reads
		// are too wide to cover).
		{"single orders(customer_id)", func(x advisor.Recommendation) bool {
			return x.Table == "orders" && slices.Equal(x.Columns, []string{"customer_id"}) && x.Where == ""
		}},
		// The storefront's dropped user_actions(user_id, created_at DESC):
		// equality column first, then the sort column, in its direction.
		{"multi user_actions(user_id, created_at DESC)", func(x advisor.Recommendation) bool {
			return x.Table == "user_actions" && slices.Equal(x.Columns, []string{"user_id", "created_at DESC"})
		}},
		// The storefront's other dropped index, from the co-purchase read.
		{"multi user_actions(product_id, kind, created_at DESC)", func(x advisor.Recommendation) bool {
			return x.Table == "user_actions" && slices.Equal(x.Columns, []string{"product_id", "kind", "created_at DESC"})
		}},
		// The range read on orders.created_at.
		{"range orders(created_at)", func(x advisor.Recommendation) bool {
			return x.Table == "orders" && slices.Equal(x.Columns, []string{"created_at"}) && x.Where == ""
		}},
		// The partial index for unshipped orders.
		{"partial orders(created_at) WHERE shipped_at IS NULL", func(x advisor.Recommendation) bool {
			return x.Table == "orders" && len(x.Columns) > 0 && x.Columns[0] == "created_at" &&
				strings.Contains(x.Where, "shipped_at") && strings.Contains(x.Where, "IS NULL")
		}},
		// The covering index: events(account_id) INCLUDE (amount), so
		// the read is index-only.
		{"covering events(account_id) INCLUDE (amount)", func(x advisor.Recommendation) bool {
			return x.Table == "events" && slices.Equal(x.Columns, []string{"account_id"}) && slices.Contains(x.Include, "amount")
		}},
	}
	for _, c := range cases {
		if !slices.ContainsFunc(indexes, c.want) {
			t.Errorf("%s: not advised; index advice: %s", c.name, describe(indexes))
		}
	}
}

// checkNoExisting: no advised index is one an existing index already
// serves: a btree with the same predicate whose key starts with the
// advised key and holds its INCLUDE columns.
func checkNoExisting(_ context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	existing := existingIndexes(t, db)
	for _, x := range byKind(r, advisor.KindIndex) {
		for _, e := range existing {
			if e.table != x.Table || e.method != "btree" || e.where != "" && x.Where == "" || x.Where != "" && e.where == "" {
				continue
			}
			key, all := bare(x.Columns), append(append([]string{}, e.cols...), e.include...)
			if len(e.cols) >= len(key) && slices.Equal(e.cols[:len(key)], key) &&
				!slices.ContainsFunc(x.Include, func(c string) bool { return !slices.Contains(all, c) }) {
				t.Errorf("advised %s, which existing index %s already serves", x.SQL, e.name)
			}
		}
	}
	if !slices.ContainsFunc(r.Skipped, func(s string) bool { return strings.Contains(s, "an existing index serves it") }) {
		t.Errorf("no candidate was skipped as served by an existing index (products_pkey serves the OFFSET read); skipped: %q", r.Skipped)
	}
}

func checkDrops(ctx context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	drops := byKind(r, advisor.KindDropIndex)
	for _, want := range []struct{ rule, column string }{
		{"unused", "note"},      // orders_note: never scanned
		{"duplicate", "status"}, // orders_status: a prefix of orders_status_created
	} {
		if !slices.ContainsFunc(drops, func(x advisor.Recommendation) bool {
			return x.Table == "orders" && x.Rule == want.rule && slices.Equal(x.Columns, []string{want.column})
		}) {
			t.Errorf("%s index on orders(%s) not advised; drops: %s", want.rule, want.column, describe(drops))
		}
	}
	for _, x := range drops {
		if strings.Contains(x.SQL, "pkey") {
			t.Errorf("advised dropping a primary key: %s", x.SQL)
		}
	}
}

// checkRewrites: at least four rewrite rules fire on the planted queries
// meant for them.
func checkRewrites(_ context.Context, t *testing.T, _ *sql.DB, r *advisor.Report) {
	text := map[int64]string{}
	for _, q := range r.Queries {
		text[q.ID] = q.Text
	}
	// The rule each planted query is there for.
	want := map[string]string{"or": "or_across_columns", "function": "function_on_column", "offset": "offset_pagination",
		"not_in": "not_in_nullable", "correlated": "correlated_subquery", "no_limit": "sort_without_limit", "single": "select_star"}
	found := map[string]bool{}
	for _, x := range byKind(r, advisor.KindRewrite) {
		for _, id := range x.Queries {
			for _, p := range planted {
				if want[p.name] == x.Rule && text[id] == p.sql {
					found[p.name] = true
				}
			}
		}
	}
	if len(found) < 4 {
		t.Errorf("flagged %d of the planted rewrite cases on their queries (%v), want at least 4", len(found), found)
	}
}

func checkPartitioning(ctx context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	if !slices.ContainsFunc(byKind(r, advisor.KindPartition), func(x advisor.Recommendation) bool {
		return x.Table == "metrics" && slices.Equal(x.Columns, []string{"recorded_at"})
	}) {
		t.Errorf("metrics (%d rows read by time range) not proposed for range partitioning on recorded_at; got %s",
			partitionRows, describe(byKind(r, advisor.KindPartition)))
	}
}

func checkComplete(ctx context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	for _, x := range r.Recommendations {
		if x.Table == "" || x.SQL == "" || x.Effort == "" || x.Risk == "" || x.Reason == "" {
			t.Errorf("incomplete recommendation: %+v", x)
		}
	}
	for i := 1; i < len(r.Recommendations); i++ {
		if r.Recommendations[i].Score > r.Recommendations[i-1].Score {
			t.Fatalf("recommendations not ranked by score: %v after %v", r.Recommendations[i].Score, r.Recommendations[i-1].Score)
		}
	}
}

func checkParams(ctx context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	for _, q := range r.Queries {
		if q.Unexplained == "" && q.Cost == 0 {
			t.Errorf("query %d neither explained nor given a reason", q.ID)
		}
		if strings.Contains(q.Text, "customer_id = $1") && !strings.HasPrefix(q.ParamSource, "pg_stats") {
			t.Errorf("query %q: parameters from %q, want pg_stats", q.Text, q.ParamSource)
		}
	}
}

func checkVerify(ctx context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	v, err := advisor.Advise(ctx, db, advisor.Config{Verify: true, VerifyRuns: 3})
	if err != nil {
		t.Fatalf("Advise with Verify: %v", err)
	}
	// The same workload, the same advice: nothing depends on map order.
	if a, b := sqlOf(r.Recommendations), sqlOf(v.Recommendations); !slices.Equal(a, b) {
		t.Errorf("two runs on the same workload advised differently:\n%s\nthen\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	measured := 0
	for _, x := range byKind(v, advisor.KindIndex) {
		if x.Measured == nil {
			t.Errorf("index %s(%v) not measured", x.Table, x.Columns)
			continue
		}
		if x.Measured.Error != "" {
			t.Errorf("index %s(%v): %s", x.Table, x.Columns, x.Measured.Error)
			continue
		}
		if x.Measured.BeforeMs == 0 {
			// Only when no helped query could run: each says why.
			if len(x.Measured.Skipped) == 0 {
				t.Errorf("index %s(%v): nothing measured and no reason given", x.Table, x.Columns)
			}
			continue
		}
		measured++
		t.Logf("%s(%s): estimated %.1f %%, measured %.1f %% (%.2f → %.2f ms)", x.Table, strings.Join(x.Columns, ", "),
			x.EstimatedImprovementPct, x.Measured.ImprovementPct, x.Measured.BeforeMs, x.Measured.AfterMs)
		est, got := x.EstimatedImprovementPct, x.Measured.ImprovementPct
		if got*verifyFactor < est || est*verifyFactor < got {
			t.Errorf("%s(%v): measured %.1f %% is not within a factor %d of the estimated %.1f %%",
				x.Table, x.Columns, got, verifyFactor, est)
		}
	}
	if measured == 0 {
		t.Fatal("no index advice was measured")
	}
	// Verify drops what it built.
	for _, e := range existingIndexes(t, db) {
		if strings.HasPrefix(e.name, "strata_verify") {
			t.Errorf("verify left index %s behind", e.name)
		}
	}
}

func checkWriteCost(_ context.Context, t *testing.T, _ *sql.DB, r *advisor.Report) {
	for _, x := range byKind(r, advisor.KindIndex) {
		if x.Table == "audit_log" {
			t.Errorf("advised %s although audit_log is written %d times for 2 reads", x.SQL, auditWrites)
		}
	}
	if !slices.ContainsFunc(r.Skipped, func(s string) bool {
		return strings.HasPrefix(s, `audit_log ("actor_id")`) && strings.Contains(s, "of writes")
	}) {
		t.Errorf("audit_log (actor_id) not skipped for its write cost; skipped: %q", r.Skipped)
	}
}

func sqlOf(rs []advisor.Recommendation) []string {
	out := make([]string, len(rs))
	for i, x := range rs {
		out[i] = x.SQL
	}
	return out
}

func byKind(r *advisor.Report, kind string) []advisor.Recommendation {
	var out []advisor.Recommendation
	for _, x := range r.Recommendations {
		if x.Kind == kind {
			out = append(out, x)
		}
	}
	return out
}

func describe(rs []advisor.Recommendation) string {
	var b strings.Builder
	for _, x := range rs {
		b.WriteString("\n  " + x.SQL)
	}
	return b.String()
}

// bare strips sort directions from index columns.
func bare(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = strings.TrimSuffix(c, " DESC")
	}
	return out
}

// index is an existing index, as the catalogue has it.
type index struct {
	table, name, method, where string
	cols, include              []string
}

// existingIndexes lists the test database's indexes.
func existingIndexes(t *testing.T, db *sql.DB) []index {
	t.Helper()
	rows, err := db.Query(`SELECT t.relname, i.relname, am.amname, COALESCE(pg_get_expr(x.indpred, x.indrelid), ''),
		x.indnkeyatts, ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(att, n)
			JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.att ORDER BY k.n)::text
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_am am ON am.oid = i.relam JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []index
	for rows.Next() {
		var e index
		var nkey int
		var cols string
		if err := rows.Scan(&e.table, &e.name, &e.method, &e.where, &nkey, &cols); err != nil {
			t.Fatal(err)
		}
		all := strings.Split(strings.Trim(cols, "{}"), ",")
		e.cols, e.include = all[:min(nkey, len(all))], all[min(nkey, len(all)):]
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
