package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/replica"
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

// dropMoves drops every subscription on a and b (which drops its slot on
// the other side), then every publication.
func dropMoves(t *testing.T, a, b *sql.DB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, db := range []*sql.DB{a, b} {
		rows, err := db.QueryContext(ctx, `SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
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
			if _, err := db.ExecContext(ctx, `DROP SUBSCRIPTION `+s); err != nil {
				t.Errorf("drop subscription %s: %v", s, err)
			}
		}
	}
	for _, db := range []*sql.DB{a, b} {
		if _, err := db.ExecContext(ctx, `DO $$ DECLARE p text; BEGIN FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE 'DROP PUBLICATION ' || quote_ident(p); END LOOP; END $$`); err != nil {
			t.Errorf("drop publications: %v", err)
		}
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
	ctx := bounded(t)
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
		Until:      PhaseCatchingUp,
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
	ctx := bounded(t)
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
	}, Poll: 50 * time.Millisecond, Until: PhaseCatchingUp}
	// As if killed after the publication: prepare by hand, record prepared,
	// and make the publication only.
	if err := cfg.Prepare(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := setPhase(ctx, ctl, mv, PhasePrepared); err != nil {
		t.Fatal(err)
	}
	mustExec(t, a, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE users WHERE %s, TABLE user_actions WHERE %s`,
		mv.name(), r.SQL("id", VirtualShards), r.SQL("user_id", VirtualShards)))
	// Another process running the same move meanwhile is refused.
	unlock, err := lockMove(ctx, ctl, mv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RunMove(ctx, ctl, mv.ID, cfg); !errors.Is(err, ErrMoveBusy) {
		t.Fatalf("RunMove while another process runs it: %v, want ErrMoveBusy", err)
	}
	unlock()
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

// caughtUp plans and runs a move of r to b, up to catching-up.
func caughtUp(t *testing.T, ctl *sql.DB, r VRange) *Move {
	t.Helper()
	mv, err := PlanMove(t.Context(), ctl, r, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	cfg := MoveConfig{Prepare: func(ctx context.Context, target *sql.DB) error {
		_, err := target.ExecContext(ctx, moveSchema)
		return err
	}, Poll: 20 * time.Millisecond, Until: PhaseCatchingUp}
	if mv, err = RunMove(bounded(t), ctl, mv.ID, cfg); err != nil || mv.Phase != PhaseCatchingUp {
		t.Fatalf("RunMove: %+v, %v", mv, err)
	}
	return mv
}

// TestCutover: with an instance following the map and writing to the
// moving virtual shards all along, the cutover hands them to the target
// within its pause; every acknowledged write is on the target afterwards;
// writes after the flip go to the target and flow back to the source.
func TestCutover(t *testing.T) {
	ctl, a, b := moveSetup(t, 300, 3)
	ctx := bounded(t)
	half := VRange{0, 499}
	mv := caughtUp(t, ctl, half)
	// An instance: a router that follows the map.
	var r *Router
	f := follow(t, ctl, "", FollowConfig{ID: "writer", Poll: 10 * time.Millisecond, OnChange: func(ctx context.Context, m *Map) (err error) {
		if r == nil {
			r, err = New(ctx, m, Config{})
			return err
		}
		return r.Apply(ctx, m)
	}})
	t.Cleanup(func() { f.Close(); r.Close() })
	var user int64
	if err := a.QueryRowContext(ctx, `SELECT id FROM users WHERE `+half.SQL("id", VirtualShards)+` ORDER BY id LIMIT 1`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	acked := make(chan int64, 100000)
	done := make(chan error, 1)
	go func() {
		id := int64(50_000_000)
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			id++
			_, err := r.Write(ctx, user, func(ctx context.Context, q replica.Querier) error {
				_, err := q.ExecContext(ctx, `INSERT INTO user_actions VALUES ($1, $2, 'view')`, user, id)
				return err
			})
			if err != nil && !errors.Is(err, ErrFenced) {
				done <- err
				return
			}
			if err == nil {
				acked <- id
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // writes before the cutover
	rep, err := Cutover(ctx, ctl, mv.ID, CutoverConfig{Pause: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // writes after it
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(acked)
	t.Logf("cutover: fence epoch %d, flip epoch %d, pause %v, instances %v", rep.FenceEpoch, rep.FlipEpoch, rep.Pause, rep.Instances)
	if len(rep.Instances) != 1 || rep.Pause > 2*time.Second {
		t.Fatalf("report %+v", rep)
	}
	m, _ := Load(ctx, ctl)
	if m.Owner(user) != 1 || len(m.Moves) != 0 {
		t.Fatalf("after the cutover the user is on %s, moves %v", m.Shards[m.Owner(user)].Name, m.Moves)
	}
	n := 0
	for id := range acked {
		var ok bool
		if err := b.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM user_actions WHERE user_id = $1 AND id = $2)`, user, id).Scan(&ok); err != nil || !ok {
			t.Fatalf("acknowledged write %d is not on the target (%v)", id, err)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d writes acknowledged", n)
	}
	// Reverse replication: a write on the new owner reaches the old one.
	mustExec(t, b, fmt.Sprintf(`INSERT INTO user_actions VALUES (%d, 77777777, 'cart')`, user))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		a.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM user_actions WHERE id = 77777777)`).Scan(&ok)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a write on the new owner did not flow back to the source within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if moves, _ := Moves(ctx, ctl, true); moves[0].Phase != PhaseCutOver {
		t.Fatalf("phase after the cutover: %s", moves[0].Phase)
	}
	t.Logf("%d writes acknowledged, all on the target", n)
}

// TestCutoverAborts: a live instance that does not apply the fence (as
// one stopped with SIGSTOP) makes the cutover abort within its pause; the
// fence is lifted and the virtual shards stay with their owner.
func TestCutoverAborts(t *testing.T) {
	ctl, _, _ := moveSetup(t, 50, 1)
	ctx := bounded(t)
	mv := caughtUp(t, ctl, VRange{0, 499})
	before, _ := Load(ctx, ctl)
	// A live instance (fresh heartbeat) stuck on the current epoch.
	if _, err := ctl.ExecContext(ctx, `INSERT INTO strata_shard.instances VALUES ('stuck', 'h', $1, now(), now())`, before.Epoch); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Cutover(ctx, ctl, mv.ID, CutoverConfig{Pause: 300 * time.Millisecond})
	took := time.Since(start)
	if !errors.Is(err, ErrCutoverAborted) || !strings.Contains(err.Error(), "stuck") {
		t.Fatalf("Cutover with a stuck instance: %v, want ErrCutoverAborted naming it", err)
	}
	if took > 300*time.Millisecond+5*time.Second {
		t.Fatalf("the aborted cutover took %v", took)
	}
	after, _ := Load(ctx, ctl)
	for _, mm := range after.Moves {
		if mm.Fenced {
			t.Fatalf("the fence stayed after the abort: %+v", after.Moves)
		}
	}
	if !slices.Equal(after.Owners, before.Owners) {
		t.Fatal("the owners changed in an aborted cutover")
	}
	if moves, _ := Moves(ctx, ctl, true); moves[0].Phase != PhaseCatchingUp || moves[0].Error == "" {
		t.Fatalf("after the abort: %+v", moves[0])
	}
}

// bounded is t's context with a deadline far above what a move of the
// tests' few rows takes, so that a replication that never finishes fails
// the test instead of hanging the package's run.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}
