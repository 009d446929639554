package shard

import (
	"context"
	"database/sql"
	"slices"
	"testing"
)

// indexSchema adds the target's secondary indexes to moveSchema: a
// unique constraint and a plain index.
const indexSchema = moveSchema + `
DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'users_email_key') THEN
		ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
	END IF;
END $$;
CREATE INDEX IF NOT EXISTS user_actions_kind ON user_actions (kind, id);`

// indexedConfig is moveConfig with indexSchema as the target's schema.
func indexedConfig() MoveConfig {
	cfg := moveConfig()
	cfg.Prepare = func(ctx context.Context, target *sql.DB) error {
		_, err := target.ExecContext(ctx, indexSchema)
		return err
	}
	return cfg
}

// secondaryIndexes lists the names of the indexes of the moving tables on
// db other than their primary keys.
func secondaryIndexes(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT indexrelid::regclass::text FROM pg_index
		WHERE indrelid IN (to_regclass('users'), to_regclass('user_actions')) AND NOT indisprimary ORDER BY 1`)
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

// wantIndexes are the secondary indexes indexSchema makes.
var wantIndexes = []string{"user_actions_kind", "users_email_key"}

// TestMoveDefersIndexes: a move to a fresh target copies without the
// target's secondary indexes (recorded on the move, absent while the copy
// runs) and builds them before it counts as caught up; a mover stopped
// after building one of them builds the other when it runs again, and
// the unique constraint comes back as a constraint.
func TestMoveDefersIndexes(t *testing.T) {
	ctl, _, b := moveSetup(t, 300, 3)
	ctx := bounded(t)
	mv, err := PlanMove(ctx, ctl, VRange{0, 499}, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	cfg := indexedConfig()
	cfg.Until = PhaseCatchingUp
	var during []string
	var recorded []DeferredIndex
	reached := crashAt("index", func(hook func(string)) {
		cfg.Hook = func(step string) {
			if step == PhaseCopying {
				during = secondaryIndexes(t, b)
				got, err := loadMove(ctx, ctl, mv.ID)
				if err != nil {
					t.Error(err)
					return
				}
				recorded = got.DeferredIndexes
			}
			hook(step)
		}
		_, err = RunMove(ctx, ctl, mv.ID, cfg)
	})
	if !reached {
		t.Fatalf("the mover built no index (err %v)", err)
	}
	if len(during) != 0 {
		t.Errorf("secondary indexes on the target while the copy ran: %v", during)
	}
	var names []string
	for _, d := range recorded {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, wantIndexes) {
		t.Errorf("recorded deferred indexes %v, want %v", names, wantIndexes)
	}
	if got := secondaryIndexes(t, b); len(got) != 1 {
		t.Errorf("after a mover stopped at its first build: indexes %v, want one of %v", got, wantIndexes)
	}
	cfg.Hook = nil
	got, err := RunMove(ctx, ctl, mv.ID, cfg)
	if err != nil || got.Phase != PhaseCatchingUp {
		t.Fatalf("RunMove again: %+v, %v", got, err)
	}
	if got := secondaryIndexes(t, b); !slices.Equal(got, wantIndexes) {
		t.Errorf("indexes on the target after the catch-up: %v, want %v", got, wantIndexes)
	}
	var isConstraint bool
	if err := b.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'users_email_key' AND contype = 'u')`).Scan(&isConstraint); err != nil || !isConstraint {
		t.Errorf("users_email_key is not a unique constraint again (%v)", err)
	}
}

// TestMoveKeepsIndexesOfBusyTarget: a target that already owns virtual
// shards serves queries that need its indexes, so a move to it leaves
// them in place and records none.
func TestMoveKeepsIndexesOfBusyTarget(t *testing.T) {
	ctl, _, b := moveSetup(t, 100, 1)
	ctx := bounded(t)
	mustExec(t, b, indexSchema)
	if _, err := UpdateMap(ctx, ctl, func(m *Map) error {
		for v := 900; v < VirtualShards; v++ {
			m.Owners[v] = 1 // b (its rows stay on a: no query reads them here)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mv, err := PlanMove(ctx, ctl, VRange{0, 499}, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	cfg := indexedConfig()
	cfg.Until = PhaseCopying
	var during []string
	cfg.Hook = func(step string) {
		if step == PhasePrepared { // the prepare has run
			during = secondaryIndexes(t, b)
		}
	}
	got, err := RunMove(ctx, ctl, mv.ID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.DeferredIndexes) != 0 {
		t.Errorf("deferred indexes recorded for a busy target: %+v", got.DeferredIndexes)
	}
	if now := secondaryIndexes(t, b); !slices.Equal(now, wantIndexes) || !slices.Equal(during, wantIndexes) {
		t.Errorf("the busy target's indexes: %v after the prepare, %v while copying; want %v", now, during, wantIndexes)
	}
}

// TestRollbackBuildsIndexes: a move rolled back while it copies (its
// indexes left out) leaves the target with them again.
func TestRollbackBuildsIndexes(t *testing.T) {
	ctl, _, b := moveSetup(t, 100, 2)
	ctx := bounded(t)
	mv, err := PlanMove(ctx, ctl, VRange{0, 499}, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	cfg := indexedConfig()
	cfg.Until = PhaseCopying
	if _, err := RunMove(ctx, ctl, mv.ID, cfg); err != nil {
		t.Fatal(err)
	}
	if got := secondaryIndexes(t, b); len(got) != 0 {
		t.Fatalf("indexes on the target while it copies: %v", got)
	}
	if got, err := Rollback(ctx, ctl, mv.ID, RollbackConfig{}); err != nil || got.Phase != PhaseRolledBack {
		t.Fatalf("Rollback: %+v, %v", got, err)
	}
	if got := secondaryIndexes(t, b); !slices.Equal(got, wantIndexes) {
		t.Errorf("indexes on the target after the rollback: %v, want %v", got, wantIndexes)
	}
}

// TestMergeIndexes: what a resumed prepare finds is added to what the
// first recorded, never replacing it (the first run dropped them: the
// second finds fewer).
func TestMergeIndexes(t *testing.T) {
	a := DeferredIndex{Table: "users", Name: "a", Def: "CREATE INDEX a ON users (x)"}
	b := DeferredIndex{Table: "users", Name: "b", Def: "CREATE INDEX b ON users (y)"}
	c := DeferredIndex{Table: "user_actions", Name: "a", Def: "CREATE INDEX a2 ON user_actions (x)"}
	for _, tc := range []struct {
		name            string
		recorded, found []DeferredIndex
		want            []DeferredIndex
	}{
		// a first prepare records what it finds
		{"first", nil, []DeferredIndex{a, b}, []DeferredIndex{a, b}},
		// a resumed one after the drops finds nothing and keeps the record
		{"resumed", []DeferredIndex{a, b}, nil, []DeferredIndex{a, b}},
		// one found again is not listed twice; a new one is added
		{"again", []DeferredIndex{a}, []DeferredIndex{a, b}, []DeferredIndex{a, b}},
		// the same name on another table is another index
		{"other table", []DeferredIndex{a}, []DeferredIndex{c}, []DeferredIndex{a, c}},
	} {
		if got := mergeIndexes(tc.recorded, tc.found); !slices.Equal(got, tc.want) {
			t.Errorf("%s: mergeIndexes = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
