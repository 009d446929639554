package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
)

// moveTables are the storefront's sharded tables, as a move sees them.
var moveTables = []Table{{Name: "users", Key: "id"}, {Name: "user_actions", Key: "user_id"}}

const moveSchema = `
CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE IF NOT EXISTS user_actions (user_id bigint NOT NULL REFERENCES users (id), id bigint NOT NULL,
	kind text NOT NULL, PRIMARY KEY (user_id, id));`

// moveSetup returns the control database (a map with shard "a" owning
// every virtual shard, and an empty shard "b" added), with users and
// actions on a, and handles on a and b. Cleanup drops the move's
// subscriptions first, so that the databases can go.
func moveSetup(t *testing.T, users, actionsPerUser int) (ctl, a, b *sql.DB) {
	t.Helper()
	ctl, _ = controlDB(t)
	urls := testdb.ShardDatabases(t)
	a, b = openDB(t, urls[0]), openDB(t, urls[1])
	t.Cleanup(func() { dropMoves(t, a, b) })
	m, err := NewHashMap([]Shard{{Name: "a", URL: urls[0]}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(t.Context(), ctl, m); err != nil {
		t.Fatal(err)
	}
	if _, err := AddShard(t.Context(), ctl, Shard{Name: "b", URL: urls[1]}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, a, moveSchema)
	mustExec(t, a, fmt.Sprintf(`INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, %d) g`, users))
	mustExec(t, a, fmt.Sprintf(`INSERT INTO user_actions SELECT u, u * 1000 + k, 'view' FROM generate_series(1, %d) u, generate_series(1, %d) k`, users, actionsPerUser))
	return ctl, a, b
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// dropMoves drops every move's subscription on b (which drops its slot on
// a) and publication on a.
func dropMoves(t *testing.T, a, b *sql.DB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := b.QueryContext(ctx, `SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		t.Errorf("list subscriptions: %v", err)
		return
	}
	var subs []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		subs = append(subs, s)
	}
	rows.Close()
	for _, s := range subs {
		if _, err := b.ExecContext(ctx, `DROP SUBSCRIPTION `+s); err != nil {
			t.Errorf("drop subscription %s: %v", s, err)
		}
	}
	if _, err := a.ExecContext(ctx, `DO $$ DECLARE p text; BEGIN FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE 'DROP PUBLICATION ' || quote_ident(p); END LOOP; END $$`); err != nil {
		t.Errorf("drop publications: %v", err)
	}
}

// countIn counts table t's rows in virtual shards r on db.
func countIn(t *testing.T, db *sql.DB, tb Table, r VRange) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+tb.Name+` WHERE `+r.SQL(tb.Key, VirtualShards)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPlanMove(t *testing.T) {
	ctl, _, _ := moveSetup(t, 10, 1)
	ctx := t.Context()
	half := VRange{0, 499}
	mv, err := PlanMove(ctx, ctl, half, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Source != "a" || mv.Target != "b" || mv.Phase != PhasePlanned || !mv.Active {
		t.Fatalf("planned move = %+v", mv)
	}
	for _, c := range []struct {
		r      VRange
		target string
		tables []Table
		want   error
	}{
		{VRange{400, 600}, "b", moveTables, ErrMoveConflict},
		{VRange{600, 700}, "a", moveTables, ErrBadMove},  // already a's
		{VRange{600, 700}, "zz", moveTables, ErrBadMove}, // no such shard
		{VRange{600, 1000}, "b", moveTables, ErrBadMove}, // out of the keyspace
		{VRange{600, 700}, "b", nil, ErrBadMove},         // nothing to move
		{VRange{600, 700}, "b", []Table{{Name: "users"}}, ErrBadMove},
	} {
		if _, err := PlanMove(ctx, ctl, c.r, c.target, c.tables); !errors.Is(err, c.want) {
			t.Errorf("PlanMove(%v, %s, %v) = %v, want %v", c.r, c.target, c.tables, err, c.want)
		}
	}
	moves, err := Moves(ctx, ctl, true)
	if err != nil || len(moves) != 1 || moves[0].ID != mv.ID || len(moves[0].Tables) != 2 {
		t.Fatalf("Moves = %+v, %v", moves, err)
	}
	if _, err := AddShard(ctx, ctl, Shard{Name: "b", URL: "postgres://x/y"}); !errors.Is(err, ErrBadMap) {
		t.Errorf("adding b twice: %v, want ErrBadMap", err)
	}
}

// TestRunMoveCopies: a move copies its virtual shards' rows (and only
// those) to the target through logical replication, then streams the
// source's changes; running it again resumes without harm.
func TestRunMoveCopies(t *testing.T) {
	ctl, a, b := moveSetup(t, 2000, 10)
	ctx := t.Context()
	half := VRange{0, 499}
	mv, err := PlanMove(ctx, ctl, half, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	var last Progress
	cfg := MoveConfig{
		Prepare: func(ctx context.Context, target *sql.DB) error {
			_, err := target.ExecContext(ctx, moveSchema)
			return err
		},
		Poll:       50 * time.Millisecond,
		OnProgress: func(p Progress) { last = p },
	}
	got, err := RunMove(ctx, ctl, mv.ID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != PhaseCatchingUp || last.TablesDone != 2 || last.LagBytes < 0 {
		t.Fatalf("after RunMove: phase %s, progress %+v", got.Phase, last)
	}
	for _, tb := range moveTables {
		src, dst := countIn(t, a, tb, half), countIn(t, b, tb, half)
		var all int64
		b.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+tb.Name).Scan(&all)
		if src == 0 || dst != src || all != dst {
			t.Fatalf("%s: %d rows to move on a, %d copied to b, %d rows on b in all", tb.Name, src, dst, all)
		}
	}
	// The change stream: a new row of a moving user arrives on b.
	var user int64
	if err := a.QueryRowContext(ctx, `SELECT id FROM users WHERE `+half.SQL("id", VirtualShards)+` LIMIT 1`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	mustExec(t, a, fmt.Sprintf(`INSERT INTO user_actions VALUES (%d, 99999999, 'cart')`, user))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		b.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_actions WHERE id = 99999999`).Scan(&n)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a change on the source did not reach the target within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Running it again changes nothing and fails nothing.
	if again, err := RunMove(ctx, ctl, mv.ID, cfg); err != nil || again.Phase != PhaseCatchingUp {
		t.Fatalf("RunMove again: %+v, %v", again, err)
	}
}

// TestRunMoveResumes: a move stopped after its publication was made
// (as a killed mover leaves it) resumes from its recorded phase.
func TestRunMoveResumes(t *testing.T) {
	ctl, a, b := moveSetup(t, 200, 5)
	ctx := t.Context()
	r := VRange{500, 999}
	mv, err := PlanMove(ctx, ctl, r, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	// A pre-flight that fails stops the move where it is, with the error recorded.
	failing := MoveConfig{Check: func(context.Context, *sql.DB, *sql.DB, *Move, int) error { return errors.New("planted problem") }}
	if _, err := RunMove(ctx, ctl, mv.ID, failing); err == nil {
		t.Fatal("RunMove with a failing check: want an error")
	}
	if moves, _ := Moves(ctx, ctl, true); moves[0].Phase != PhasePlanned || moves[0].Error == "" {
		t.Fatalf("after a failed pre-flight: %+v", moves[0])
	}
	cfg := MoveConfig{Prepare: func(ctx context.Context, target *sql.DB) error {
		_, err := target.ExecContext(ctx, moveSchema)
		return err
	}, Poll: 50 * time.Millisecond}
	// As if killed after the publication: prepare by hand, record prepared,
	// and make the publication only.
	if err := cfg.Prepare(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := setPhase(ctx, ctl, mv, PhasePrepared); err != nil {
		t.Fatal(err)
	}
	mustExec(t, a, fmt.Sprintf(`CREATE PUBLICATION strata_move_%d FOR TABLE users WHERE %s, TABLE user_actions WHERE %s`,
		mv.ID, r.SQL("id", VirtualShards), r.SQL("user_id", VirtualShards)))
	got, err := RunMove(ctx, ctl, mv.ID, cfg)
	if err != nil || got.Phase != PhaseCatchingUp || got.Error != "" {
		t.Fatalf("resumed move: %+v, %v", got, err)
	}
	for _, tb := range moveTables {
		if src, dst := countIn(t, a, tb, r), countIn(t, b, tb, r); src == 0 || dst != src {
			t.Fatalf("%s: %d rows to move, %d copied", tb.Name, src, dst)
		}
	}
}
