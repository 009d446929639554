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

func checkNoExisting(ctx context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	indexes := byKind(r, advisor.KindIndex)
	existing := existingIndexes(t, db)
	for _, x := range indexes {
		key := x.Table + "(" + strings.Join(bare(x.Columns), ",") + ")"
		for _, e := range existing {
			if strings.HasPrefix(e, key) && x.Where == "" && len(x.Include) == 0 {
				t.Errorf("advised %s, which existing index %s already serves", key, e)
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

func checkRewrites(ctx context.Context, t *testing.T, db *sql.DB, r *advisor.Report) {
	rules := map[string]bool{}
	for _, x := range byKind(r, advisor.KindRewrite) {
		rules[x.Rule] = true
	}
	planted := []string{"or_across_columns", "function_on_column", "offset_pagination", "not_in_nullable",
		"correlated_subquery", "sort_without_limit", "select_star"}
	var found []string
	for _, p := range planted {
		if rules[p] {
			found = append(found, p)
		}
	}
	if len(found) < 4 {
		t.Errorf("flagged %d of the planted rewrite cases (%v), want at least 4; rules flagged: %v", len(found), found, rules)
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
	measured := 0
	for _, x := range byKind(v, advisor.KindIndex) {
		if x.Measured == nil {
			t.Errorf("index %s(%v) not measured", x.Table, x.Columns)
			continue
		}
		if x.Measured.BeforeMs == 0 {
			continue // every helped query planned generically
		}
		measured++
		t.Logf("%s(%s): estimated %.1f %%, measured %.1f %% (%.2f → %.2f ms)", x.Table, strings.Join(x.Columns, ", "),
			x.EstimatedImprovementPct, x.Measured.ImprovementPct, x.Measured.BeforeMs, x.Measured.AfterMs)
		if x.Measured.ImprovementPct < x.EstimatedImprovementPct/verifyFactor {
			t.Errorf("%s(%v): measured %.1f %% is not within a factor %d of the estimated %.1f %%",
				x.Table, x.Columns, x.Measured.ImprovementPct, verifyFactor, x.EstimatedImprovementPct)
		}
	}
	if measured == 0 {
		t.Fatal("no index advice was measured")
	}
	// Verify drops what it built.
	for _, e := range existingIndexes(t, db) {
		if strings.Contains(e, "strata_verify") {
			t.Errorf("verify left index %s behind", e)
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

// existingIndexes lists the database's btree indexes as table(col,col) name.
func existingIndexes(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT t.relname || '(' || string_agg(a.attname, ',' ORDER BY k.i) || ') ' || i.relname
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY k(att, i)
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.att
		WHERE n.nspname = 'public'
		GROUP BY t.relname, i.relname`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
