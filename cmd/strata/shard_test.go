package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// TestShardPlanBadInput: each way strata shard plan cannot run says what
// is wrong in one line, exit 2 for a bad command line and 1 for a database
// that cannot be read, never showing a password or a huge input.
func TestShardPlanBadInput(t *testing.T) {
	huge := "sqlite://" + strings.Repeat("x", 100_000)
	const pg = "postgres://a@127.0.0.1:1/x"
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
		code int
		want []string // in stdout+stderr
	}{
		// --db has no default: the planner must not guess a database
		{"missing db", fixed("shard", "plan"), 2, []string{"--db is required"}},
		// SQLite has none of PostgreSQL's statistics
		{"sqlite", fixed("shard", "plan", "--db", "sqlite://u:s3cret@strata.db"), 2, []string{"not a PostgreSQL URL: the sharding planner needs PostgreSQL"}},
		// a keyword/value string is not a URL; its password stays hidden
		{"keyword string", fixed("shard", "plan", "--db", "host=127.0.0.1 password=s3cret"), 2, []string{"not a PostgreSQL URL", "password=xxxxx"}},
		// a URL pgx cannot parse, its password masked
		{"bad port", fixed("shard", "plan", "--db", "postgres://strata:s3cret@127.0.0.1:99999/x"), 2, []string{"--db: cannot parse", "invalid port"}},
		// a huge value is not echoed whole
		{"huge db", fixed("shard", "plan", "--db", huge), 2, []string{"bytes)", "needs PostgreSQL"}},
		// port 1 refuses connections: a runtime error, in one line, without the password
		{"unreachable", fixed("shard", "plan", "--db", "postgres://strata:s3cret@127.0.0.1:1/x"), 1,
			[]string{"strata: cannot reach the database at 127.0.0.1:1/x: ", "connection refused"}},
		// a negative size
		{"negative size", fixed("shard", "plan", "--db", pg, "--size-gb", "-5"), 2, []string{"--size-gb -5: want 0 (measured) or a positive size"}},
		// a negative growth
		{"negative growth", fixed("shard", "plan", "--db", pg, "--growth", "-0.5"), 2, []string{"--growth -0.5: want a yearly fraction"}},
		// not a number
		{"NaN growth", fixed("shard", "plan", "--db", pg, "--growth", "NaN"), 2, []string{"--growth NaN"}},
		// a size that is not a number at all is cobra's usage error
		{"words for size", fixed("shard", "plan", "--db", pg, "--size-gb", "lots"), 2, []string{"invalid argument \"lots\""}},
		// a huge table name is not echoed whole
		{"huge table", fixed("shard", "plan", "--db", pg, "--table", strings.Repeat("t", 100_000)), 2, []string{"--table", "bytes)", "longer than any PostgreSQL table name"}},
		// positional arguments are refused
		{"argument", fixed("shard", "plan", "extra"), 2, []string{"takes no arguments"}},
		// a table the database does not have is a usage error naming it
		{"unknown table", func(t *testing.T) []string {
			return []string{"shard", "plan", "--db", testdb.PostgresDatabase(t), "--table", "nope"}
		}, 2, []string{`--table "nope": "nope" is not a table of database`}},
		// a database without tables has nothing to shard
		{"empty database", func(t *testing.T) []string {
			return []string{"shard", "plan", "--db", testdb.PostgresDatabase(t)}
		}, 1, []string{"no shard key candidate", "has no user tables"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errOut := runBadInput(t, tc.args(t), tc.code, tc.want)
			if n := strings.Count(strings.TrimSpace(errOut), "\n"); n > 1 { // the error and the usage hint
				t.Errorf("error takes %d lines:\n%s", n+1, errOut)
			}
		})
	}
}

// TestShardPlanHappyPath: on the seeded storefront, strata shard plan
// prints a text plan, and with --json a plan that decodes into
// shard.Strategy with the guide's answer for --size-gb 400.
func TestShardPlanHappyPath(t *testing.T) {
	url := testdb.PostgresDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE EXTENSION pg_stat_statements"); err != nil {
		t.Fatal(err)
	}
	st, err := storefront.Open(ctx, url, storefront.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storefront.Seed(ctx, st, storefront.SeedConfig{Users: 2000, Products: 500, Actions: 20000, RandSeed: 1}); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 20; id++ {
		if _, err := st.Recommend(ctx, id, 10); err != nil {
			t.Fatal(err)
		}
	}
	// Closing the store ends its backends, which flushes their table
	// statistics (PostgreSQL 15 holds them up to 10 s in an idle backend).
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI(t, "shard", "plan", "--db", url)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, w := range []string{"Strategy:     vertical_partitioning", "Shard key:    users.id", "Colocated:    users, user_actions", "Reference:    products",
		"Migration plan:", "Monitoring requirements:", "Rollback strategy:", "the size in a year"} {
		if !strings.Contains(out, w) {
			t.Errorf("text plan lacks %q:\n%s", w, out)
		}
	}

	code, out, errOut = runCLI(t, "shard", "plan", "--db", url, "--size-gb", "400", "--table", "user_actions", "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var s shard.Strategy
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if s.Strategy != shard.StrategyHash || s.ShardCount != 8 || s.ShardKey.Table != "users" || s.ShardKey.Column != "id" ||
		s.Table != "user_actions" || len(s.MigrationPlan) == 0 || s.Inputs.PlanningSizeGB != 400 {
		t.Errorf("--json plan: %s, %d shards, key %s.%s, table %q, planned %v GB", s.Strategy, s.ShardCount, s.ShardKey.Table, s.ShardKey.Column, s.Table, s.Inputs.PlanningSizeGB)
	}
	for _, key := range []string{`"shard_count": 8`, `"migration_plan"`, `"monitoring_requirements"`, `"rollback_strategy"`, `"shard_key"`, `"read_write_ratio"`} {
		if !strings.Contains(out, key) {
			t.Errorf("--json lacks %s", key)
		}
	}

	// --growth 0 plans for the measured size as it is.
	code, out, errOut = runCLI(t, "shard", "plan", "--db", url, "--growth", "0", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.Inputs.Growth != 0 {
		t.Errorf("--growth 0: exit %d, growth %v\nstderr: %s", code, s.Inputs.Growth, errOut)
	}
}
