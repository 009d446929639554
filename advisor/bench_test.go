package advisor_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/strata-dev/strata/advisor"
)

// distinctQueries returns n distinct statements over the planted tables:
// every filter column with several operators and select lists, so that
// pg_stat_statements holds n entries with different plans.
func distinctQueries(n int) []string {
	filters := []struct{ table, where string }{
		{"orders", "customer_id = 17"}, {"orders", "referrer_id = 23"}, {"orders", "status = 'paid'"},
		{"orders", "created_at > now() - interval '3 days'"}, {"orders", "total_cents BETWEEN 100 AND 200"},
		{"orders", "shipped_at IS NULL"}, {"events", "account_id = 42"}, {"events", "amount > 990"},
		{"events", "ref_id = 7"}, {"events", "created_at < timestamptz '2026-01-03'"},
		{"metrics", "device_id = 3 AND recorded_at > timestamptz '2026-01-10'"}, {"metrics", "value > 95"},
		{"user_actions", "user_id = 99"}, {"user_actions", "product_id = 5 AND kind = 'cart'"},
		{"users", "region = 'eu'"}, {"products", "category = 'books'"}, {"products", "price_cents < 500"},
	}
	// pg_stat_statements' query id ignores column aliases and constants, so
	// the shapes differ in structure.
	shapes := []string{"SELECT count(*) FROM %s WHERE %s", "SELECT * FROM %s WHERE %s LIMIT 10",
		"SELECT * FROM %s WHERE %s ORDER BY 1 LIMIT 10", "SELECT * FROM %s WHERE %s ORDER BY 1 DESC LIMIT 10",
		"SELECT 1 FROM %s WHERE %s LIMIT 1", "SELECT count(*) FROM %s WHERE NOT (%s)"}
	var out []string
	for _, shape := range shapes {
		for _, f := range filters {
			if len(out) == n {
				return out
			}
			out = append(out, fmt.Sprintf(shape, f.table, f.where))
		}
	}
	return out
}

// BenchmarkAdvise100Queries times one advisor run over a workload of 100
// distinct statements on the planted tables (the target is under 60 s).
func BenchmarkAdvise100Queries(b *testing.B) {
	b.ReportAllocs()
	url := plantWorkload(b)
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	qs := distinctQueries(100)
	if len(qs) != 100 {
		b.Fatalf("generated %d queries, want 100", len(qs))
	}
	// Only the 100: the planted workload's statements are reset away.
	if _, err := db.ExecContext(ctx, `SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)`); err != nil {
		b.Fatal(err)
	}
	for _, q := range qs {
		for range 3 {
			if _, err := db.ExecContext(ctx, q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
	}
	b.ResetTimer()
	var r *advisor.Report
	for b.Loop() {
		if r, err = advisor.Advise(ctx, db, advisor.Config{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(r.Queries) != len(qs) {
		b.Fatalf("the advisor read %d statements, want the %d distinct ones run", len(r.Queries), len(qs))
	}
	b.ReportMetric(float64(len(r.Queries)), "statements")
	b.ReportMetric(float64(len(r.Recommendations)), "recommendations")
}
