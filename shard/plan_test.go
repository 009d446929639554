package shard_test

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// TestStrategyFor checks the guide's rules alone: size → strategy and
// shard count, with the seed's floor division (size_gb // 50).
func TestStrategyFor(t *testing.T) {
	for _, tc := range []struct {
		sizeGB   float64
		strategy string
		shards   int
	}{
		// an empty database is small: vertical partitioning
		{0, shard.StrategyVertical, 0},
		// the first example
		{40, shard.StrategyVertical, 0},
		// just under the 100 GB threshold is still vertical
		{99.99, shard.StrategyVertical, 0},
		// 100 GB is not under 100: hash; ⌊100/50⌋ = 2, a power of two already
		{100, shard.StrategyHash, 2},
		// ⌊149/50⌋ = 2: the floor, not the ceiling, of size / 50
		{149, shard.StrategyHash, 2},
		// ⌊150/50⌋ = 3 rounds up to the next power of two, 4
		{150, shard.StrategyHash, 4},
		// the second example: ⌊400/50⌋ = 8, already a power of two
		{400, shard.StrategyHash, 8},
		// ⌊450/50⌋ = 9 → 16
		{450, shard.StrategyHash, 16},
		// ⌊999/50⌋ = 19 → 32: the largest hash count (the cap of 64 never binds under 1,000 GB at 50 GB a shard)
		{999, shard.StrategyHash, 32},
		// 1,000 GB is not under 1,000: range; max(16, 20) = 20
		{1000, shard.StrategyRange, 20},
		// ⌊799/50⌋ = 15 would be below 16, but 799 GB is hash anyway; 1,001 GB: max(16, 20) = 20
		{1001, shard.StrategyRange, 20},
		// the third example: max(16, ⌊4000/50⌋) = 80, not a power of two
		{4000, shard.StrategyRange, 80},
		// far past the cap of hash sharding: range counts are not capped
		{100000, shard.StrategyRange, 2000},
	} {
		strategy, n, why := shard.StrategyFor(tc.sizeGB)
		if strategy != tc.strategy || n != tc.shards {
			t.Errorf("StrategyFor(%v) = %s, %d, want %s, %d (%s)", tc.sizeGB, strategy, n, tc.strategy, tc.shards, why)
		}
		if why == "" {
			t.Errorf("StrategyFor(%v): no why", tc.sizeGB)
		}
	}
}

// TestPlanConfigBad: out-of-range settings are refused before the
// database is read.
func TestPlanConfigBad(t *testing.T) {
	for _, cfg := range []shard.PlanConfig{
		{SizeGB: -1},                // a negative size
		{SizeGB: math.NaN()},        // not a number
		{SizeGB: math.Inf(1)},       // infinite
		{Growth: -0.1},              // shrinking is not growth
		{Growth: 1000},              // 100,000 % a year
		{Growth: 1, NoGrowth: true}, // contradictory
	} {
		if _, err := shard.Plan(context.Background(), nil, cfg); !errors.Is(err, shard.ErrBadPlanConfig) {
			t.Errorf("Plan(%+v) = %v, want ErrBadPlanConfig", cfg, err)
		}
	}
}

// seededStorefront returns a fresh PostgreSQL database with the
// storefront's schema and data, pg_stat_statements, a few storefront
// reads in the workload, and fresh statistics.
func seededStorefront(t *testing.T) *sql.DB {
	t.Helper()
	url := testdb.PostgresDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(ctx, "CREATE EXTENSION pg_stat_statements"); err != nil {
		t.Fatal(err)
	}
	st, err := storefront.Open(ctx, url, storefront.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storefront.Seed(ctx, st, storefront.SeedConfig{Users: 2000, Products: 500, Actions: 50000, RandSeed: 1}); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 40; id++ {
		if _, err := st.GetUser(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recommend(ctx, id, 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.GetProduct(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Closing the store ends its backends, which flushes their table
	// statistics (PostgreSQL 15 holds them up to 10 s in an idle backend).
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestPlanStorefront: on the seeded storefront the planner shards users
// and user_actions by users.id, keeps products as reference data, and at
// 40, 400 and 4,000 GB gives the guide's strategy and shard count.
func TestPlanStorefront(t *testing.T) {
	db := seededStorefront(t)
	ctx := context.Background()
	for _, tc := range []struct {
		sizeGB   float64
		strategy string
		shards   int
	}{
		// the measured store is a few MB: even grown 50 %, vertical
		{0, shard.StrategyVertical, 0},
		// under 100 GB: vertical partitioning
		{40, shard.StrategyVertical, 0},
		// ⌊400/50⌋ = 8, a power of two: hash over 8 (growth is not applied to an override; 600 GB would give 16)
		{400, shard.StrategyHash, 8},
		// max(16, ⌊4000/50⌋) = 80 initial range shards
		{4000, shard.StrategyRange, 80},
	} {
		s, err := shard.Plan(ctx, db, shard.PlanConfig{SizeGB: tc.sizeGB})
		if err != nil {
			t.Fatalf("size %v: %v", tc.sizeGB, err)
		}
		var text strings.Builder
		if err := s.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		t.Logf("--size-gb %v:\n%s", tc.sizeGB, text.String())
		if s.Strategy != tc.strategy || s.ShardCount != tc.shards {
			t.Errorf("size %v: %s with %d shards, want %s with %d", tc.sizeGB, s.Strategy, s.ShardCount, tc.strategy, tc.shards)
		}
		checkStorefrontKey(t, s)
		if tc.sizeGB > 0 && s.Inputs.PlanningSizeGB != tc.sizeGB {
			t.Errorf("size %v: planned for %v GB; an override is planned as given", tc.sizeGB, s.Inputs.PlanningSizeGB)
		}
		if tc.sizeGB == 0 {
			want := float64(s.Inputs.MeasuredBytes) / (1 << 30) * (1 + shard.DefaultGrowth)
			if math.Abs(s.Inputs.PlanningSizeGB-want) > 1e-12 || !strings.Contains(s.Inputs.SizeBasis, "in a year") {
				t.Errorf("measured: planned for %v GB (%s), want the size in a year, %v", s.Inputs.PlanningSizeGB, s.Inputs.SizeBasis, want)
			}
		}
		for _, field := range []struct {
			name string
			n    int
		}{{"migration plan", len(s.MigrationPlan)}, {"monitoring", len(s.MonitoringRequirements)},
			{"rollback", len(s.RollbackStrategy)}, {"complexity reasons", len(s.Complexity.Reasons)}} {
			if field.n == 0 {
				t.Errorf("size %v: no %s", tc.sizeGB, field.name)
			}
		}
		// The fields are computed from what was read: they name the tables.
		all := s.Recommendation + strings.Join(s.MonitoringRequirements, " ") + strings.Join(s.RollbackStrategy, " ")
		for _, p := range s.MigrationPlan {
			all += strings.Join(p.Tasks, " ")
		}
		if !strings.Contains(all, "users, user_actions") || !strings.Contains(all, "products") {
			t.Errorf("size %v: the plan does not name the tables:\n%s", tc.sizeGB, all)
		}
	}
}

// checkStorefrontKey checks the key, the colocation and the reference
// data of a storefront plan.
func checkStorefrontKey(t *testing.T, s *shard.Strategy) {
	t.Helper()
	k := s.ShardKey
	if k.Table != "users" || k.Column != "id" || !slices.Equal(k.Columns, []string{"users.id", "user_actions.user_id"}) {
		t.Errorf("shard key %s.%s %v, want users.id with user_actions.user_id", k.Table, k.Column, k.Columns)
	}
	if k.Source != "workload" || k.Statements == 0 || !(k.WorkloadShare > 0) || k.Distinct < 1000 {
		t.Errorf("key from %s: %d statements, %v of calls, %v distinct", k.Source, k.Statements, k.WorkloadShare, k.Distinct)
	}
	if !slices.Equal(s.Colocated, []string{"users", "user_actions"}) {
		t.Errorf("colocated %v, want users and user_actions", s.Colocated)
	}
	if !slices.Equal(s.Reference, []string{"products"}) {
		t.Errorf("reference %v, want products", s.Reference)
	}
	if k.HotKey.Column != "user_actions.user_id" || !(k.HotKey.TopShare > 0) || !(k.HotKey.Top1PctShare >= k.HotKey.TopShare) {
		t.Errorf("hot key %+v", k.HotKey)
	}
	if len(s.Why) < 3 || s.Inputs.ReadWriteRatio <= 0 || s.Inputs.MeasuredBytes <= 0 {
		t.Errorf("why %q, inputs %+v", s.Why, s.Inputs)
	}
}

// TestPlanTableAndFallback: --table restricts the plan to a table's key
// candidates; an unknown table is ErrUnknownTable; without
// pg_stat_statements the keys decide, and a note says so.
func TestPlanTableAndFallback(t *testing.T) {
	url := testdb.PostgresDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := storefront.Open(ctx, url, storefront.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storefront.Seed(ctx, st, storefront.SeedConfig{Users: 2000, Products: 500, Actions: 20000, RandSeed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := shard.Plan(ctx, db, shard.PlanConfig{NoGrowth: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.ShardKey.Table != "users" || s.ShardKey.Source != "keys" || !strings.Contains(strings.Join(s.Notes, " "), "pg_stat_statements is not created") {
		t.Errorf("without pg_stat_statements: key %s from %s, notes %q", s.ShardKey.Table, s.ShardKey.Source, s.Notes)
	}
	if s.Inputs.Growth != 0 || s.Inputs.PlanningSizeGB != float64(s.Inputs.MeasuredBytes)/(1<<30) {
		t.Errorf("NoGrowth: growth %v, planned %v GB for %d bytes", s.Inputs.Growth, s.Inputs.PlanningSizeGB, s.Inputs.MeasuredBytes)
	}
	// products alone has 500 ids, fewer than the virtual shards: still
	// planned, with a note.
	s, err = shard.Plan(ctx, db, shard.PlanConfig{Table: "products"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ShardKey.Table != "products" || !strings.Contains(strings.Join(s.Notes, " "), "virtual shards") {
		t.Errorf("--table products: key %s.%s, notes %q", s.ShardKey.Table, s.ShardKey.Column, s.Notes)
	}
	// user_actions references products.id: colocated with it; tables not
	// joined to them are left out of a restricted plan.
	if !slices.Equal(s.Colocated, []string{"products", "user_actions"}) {
		t.Errorf("--table products: colocated %v", s.Colocated)
	}
	for _, tab := range s.Inputs.Tables {
		if tab.Name == "schema_migrations" {
			t.Errorf("--table products lists an unrelated table: %+v", tab)
		}
	}
	if _, err := shard.Plan(ctx, db, shard.PlanConfig{Table: "nope"}); !errors.Is(err, shard.ErrUnknownTable) {
		t.Errorf("unknown table: %v", err)
	}
}
