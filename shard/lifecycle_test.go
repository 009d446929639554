package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/replica"
)

// moveObjects lists the replication objects of moves in db's database:
// slots, subscriptions and publications named strata_move_* (slots and
// subscriptions are listed server-wide; other tests' are not ours).
func moveObjects(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'strata\_move\_%' AND database = current_database()
		UNION ALL SELECT 'subscription ' || subname FROM pg_subscription WHERE subname LIKE 'strata\_move\_%'
			AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'strata\_move\_%' ORDER BY 1`)
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

// noObjects fails t if a move's replication object is left on a or b.
func noObjects(t *testing.T, a, b *sql.DB) {
	t.Helper()
	if left := append(moveObjects(t, a), moveObjects(t, b)...); len(left) > 0 {
		t.Fatalf("replication objects left behind: %v", left)
	}
}

// flowsBack writes an action of user on from and waits (10 s at most)
// until it is on to: the stream from from to to runs.
func flowsBack(t *testing.T, from, to *sql.DB, user, id int64) {
	t.Helper()
	mustExec(t, from, fmt.Sprintf(`INSERT INTO user_actions VALUES (%d, %d, 'cart')`, user, id))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var ok bool
		if err := to.QueryRowContext(t.Context(), `SELECT EXISTS (SELECT 1 FROM user_actions WHERE id = $1)`, id).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("action %d written on one side did not reach the other within 10 s", id)
		}
	}
}

// firstUser is the lowest user id of virtual shards r on db.
func firstUser(t *testing.T, db *sql.DB, r VRange) int64 {
	t.Helper()
	var user int64
	if err := db.QueryRowContext(t.Context(), `SELECT id FROM users WHERE `+r.SQL("id", VirtualShards)+` ORDER BY id LIMIT 1`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	return user
}

// moveConfig runs a whole move quickly: the test schema, short polls and
// dwells.
func moveConfig() MoveConfig {
	return MoveConfig{
		Prepare: func(ctx context.Context, target *sql.DB) error {
			_, err := target.ExecContext(ctx, moveSchema)
			return err
		},
		Poll: 20 * time.Millisecond, ReadShares: []int{50, 100}, ReadDwell: 100 * time.Millisecond,
		Cutover: CutoverConfig{Pause: 5 * time.Second},
	}
}

// TestMoveWhole: RunMove takes a move from planned to cut-over while an
// instance that follows the map writes and reads the moving virtual
// shards all along: the reads are spread to the target by the map's read
// share, every acknowledged write is on the target at the end, the
// verify reports are kept and clean. Cleanup then refuses until the soak
// has passed, and afterwards leaves the source without the moved rows
// and both sides without any replication object.
func TestMoveWhole(t *testing.T) {
	ctl, a, b := moveSetup(t, 400, 3)
	ctx := bounded(t)
	half := VRange{0, 499}
	user := firstUser(t, a, half)
	var r atomic.Pointer[Router]
	f := follow(t, ctl, "", FollowConfig{ID: "writer", Poll: 10 * time.Millisecond, OnChange: func(ctx context.Context, m *Map) error {
		if cur := r.Load(); cur != nil {
			return cur.Apply(ctx, m)
		}
		nr, err := New(ctx, m, Config{})
		r.Store(nr)
		return err
	}})
	t.Cleanup(func() { f.Close(); r.Load().Close() })
	stop := make(chan struct{})
	done := make(chan instanceResult, 1)
	go func() { done <- instance(ctx, &r, b, user, stop) }()
	mv, err := PlanMove(ctx, ctl, half, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	var reports []*CutoverReport
	cfg := moveConfig()
	cfg.OnCutover = func(rep *CutoverReport, err error) { reports = append(reports, rep) }
	got, err := RunMove(ctx, ctl, mv.ID, cfg)
	close(stop)
	res := <-done
	if res.err != nil {
		t.Fatalf("the instance: %v", res.err)
	}
	acked := res.acked
	if err != nil || got.Phase != PhaseCutOver {
		t.Fatalf("RunMove: %+v, %v", got, err)
	}
	if res.onTarget == 0 {
		t.Error("no read went to the target during the read migration")
	}
	for _, tb := range moveTables {
		if rep := got.Verify[tb.Name]; rep == nil || !rep.Clean() || rep.Rows == 0 {
			t.Errorf("verify report of %s: %+v", tb.Name, rep)
		}
	}
	m, _ := Load(ctx, ctl)
	if m.Shards[m.Owner(user)].Name != "b" || len(m.Moves) != 0 {
		t.Fatalf("after the move: owner %s, moves %+v", m.Shards[m.Owner(user)].Name, m.Moves)
	}
	if len(acked) < 10 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	for _, id := range acked {
		var ok bool
		if err := b.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM user_actions WHERE user_id = $1 AND id = $2)`, user, id).Scan(&ok); err != nil || !ok {
			t.Fatalf("acknowledged write %d is not on the target (%v)", id, err)
		}
	}
	t.Logf("%d writes acknowledged, %d reads on the target; cutover pause %v", len(acked), res.onTarget, reports[len(reports)-1].Pause)

	if _, err := Cleanup(ctx, ctl, mv.ID, CleanupConfig{Soak: time.Hour}); !errors.Is(err, ErrBadMove) || !strings.Contains(err.Error(), "soak") {
		t.Fatalf("Cleanup before the soak: %v, want ErrBadMove naming the soak", err)
	}
	before := countIn(t, b, moveTables[1], half)
	done2, err := Cleanup(ctx, ctl, mv.ID, CleanupConfig{Batch: 7})
	if err != nil || done2.Phase != PhaseDone || done2.Active {
		t.Fatalf("Cleanup: %+v, %v", done2, err)
	}
	for _, tb := range moveTables {
		if n := countIn(t, a, tb, half); n != 0 {
			t.Errorf("%s: %d moved rows left on the source", tb.Name, n)
		}
	}
	if after := countIn(t, b, moveTables[1], half); after != before {
		t.Errorf("the target's rows went from %d to %d in the cleanup", before, after)
	}
	noObjects(t, a, b)
	if _, err := Rollback(ctx, ctl, mv.ID, RollbackConfig{}); !errors.Is(err, ErrBadMove) {
		t.Fatalf("Rollback of a finished move: %v, want ErrBadMove", err)
	}
}

// instanceResult is what instance did.
type instanceResult struct {
	acked    []int64 // action ids whose writes were acknowledged
	onTarget int64   // reads answered by target
	err      error
}

// instance writes and reads actions of user through the router r (as a
// service instance would) until stop, counting the reads target answers.
func instance(ctx context.Context, r *atomic.Pointer[Router], target *sql.DB, user int64, stop <-chan struct{}) (res instanceResult) {
	var tport int
	if res.err = target.QueryRowContext(ctx, `SELECT inet_server_port()`).Scan(&tport); res.err != nil {
		return res
	}
	for id := int64(60_000_000); ; id++ {
		select {
		case <-stop:
			return res
		default:
		}
		rt := r.Load()
		_, err := rt.Write(ctx, user, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, `INSERT INTO user_actions VALUES ($1, $2, 'view')`, user, id)
			return err
		})
		switch {
		case err == nil:
			res.acked = append(res.acked, id)
		case !errors.Is(err, ErrFenced):
			res.err = err
			return res
		}
		err = rt.Read(ctx, user, func(ctx context.Context, q replica.Querier) error {
			var port int
			if err := q.QueryRowContext(ctx, `SELECT inet_server_port()`).Scan(&port); err != nil {
				return err
			}
			if port == tport {
				res.onTarget++
			}
			return nil
		})
		if err != nil {
			res.err = fmt.Errorf("read: %w", err)
			return res
		}
	}
}

// TestRollbackBeforeCutover: a verified move with a read share is
// undone: no read share in the map, the owners unchanged, the target
// without the copies, no replication object left.
func TestRollbackBeforeCutover(t *testing.T) {
	ctl, a, b := moveSetup(t, 200, 2)
	ctx := bounded(t)
	half := VRange{0, 499}
	mv := caughtUp(t, ctl, half)
	before, _ := Load(ctx, ctl)
	if _, err := UpdateMap(ctx, ctl, func(m *Map) error {
		m.Moves = append(m.Moves, MapMove{VShards: half, To: 1, ReadShare: 10})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := Rollback(ctx, ctl, mv.ID, RollbackConfig{})
	if err != nil || got.Phase != PhaseRolledBack || got.Active {
		t.Fatalf("Rollback: %+v, %v", got, err)
	}
	after, _ := Load(ctx, ctl)
	if len(after.Moves) != 0 || !slices.Equal(after.Owners, before.Owners) {
		t.Fatalf("map after the rollback: moves %+v, owners changed %v", after.Moves, !slices.Equal(after.Owners, before.Owners))
	}
	for _, tb := range moveTables {
		if n := countIn(t, b, tb, half); n != 0 {
			t.Errorf("%s: %d copies left on the target", tb.Name, n)
		}
		if n := countIn(t, a, tb, half); n == 0 {
			t.Errorf("%s: the source lost its rows", tb.Name)
		}
	}
	noObjects(t, a, b)
}

// TestRollbackPlanned: a move only recorded (nothing made on the
// target, whose tables do not exist) rolls back.
func TestRollbackPlanned(t *testing.T) {
	ctl, a, b := moveSetup(t, 10, 1)
	ctx := bounded(t)
	mv, err := PlanMove(ctx, ctl, VRange{0, 499}, "b", moveTables)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Rollback(ctx, ctl, mv.ID, RollbackConfig{}); err != nil || got.Phase != PhaseRolledBack {
		t.Fatalf("Rollback of a planned move: %+v, %v", got, err)
	}
	if moves, _ := Moves(ctx, ctl, true); len(moves) != 0 {
		t.Fatalf("active moves after the rollback: %+v", moves)
	}
	noObjects(t, a, b)
}

// TestRollbackAfterCutover: a cut-over move whose new owner took a write
// is handed back: the source owns the virtual shards again and has the
// write, the target's copies are gone, nothing is left behind.
func TestRollbackAfterCutover(t *testing.T) {
	ctl, a, b := moveSetup(t, 200, 2)
	ctx := bounded(t)
	half := VRange{0, 499}
	mv := caughtUp(t, ctl, half)
	if _, err := Cutover(ctx, ctl, mv.ID, CutoverConfig{Pause: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	user := firstUser(t, a, half)
	flowsBack(t, b, a, user, 70_000_001) // written on the new owner
	got, err := Rollback(ctx, ctl, mv.ID, RollbackConfig{Cutover: CutoverConfig{Pause: 5 * time.Second}})
	if err != nil || got.Phase != PhaseRolledBack {
		t.Fatalf("Rollback: %+v, %v", got, err)
	}
	m, _ := Load(ctx, ctl)
	if m.Shards[m.Owner(user)].Name != "a" || len(m.Moves) != 0 {
		t.Fatalf("after the rollback: owner %s, moves %+v", m.Shards[m.Owner(user)].Name, m.Moves)
	}
	var ok bool
	if err := a.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM user_actions WHERE id = 70000001)`).Scan(&ok); err != nil || !ok {
		t.Fatalf("the write made on the target during the cutover is not on the source (%v)", err)
	}
	for _, tb := range moveTables {
		if n := countIn(t, b, tb, half); n != 0 {
			t.Errorf("%s: %d copies left on the target", tb.Name, n)
		}
	}
	noObjects(t, a, b)
}

// crash is the panic a test hook throws to stop a run where a killed
// process would stop.
type crash string

// crashAt runs f with a hook that stops it at step, as a kill there
// would; it reports whether the step was reached.
func crashAt(step string, f func(hook func(string))) (reached bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			reached = true
		}
	}()
	f(func(s string) {
		if s == step {
			panic(crash(s))
		}
	})
	return false
}

// TestMoveCrashes: a mover stopped at each step of the cutover and of the
// rollback (as kill -9 would stop it) is finished by the next run: the
// cutover completes (or the rollback), the streams are the ones the phase
// needs and no others, the service's writes are not fenced.
func TestMoveCrashes(t *testing.T) {
	for _, step := range []string{"fenced", "slot-made", "flipped"} {
		t.Run("cutover/"+step, func(t *testing.T) {
			ctl, a, b := moveSetup(t, 50, 1)
			ctx := bounded(t)
			half := VRange{0, 499}
			mv := caughtUp(t, ctl, half)
			cfg := moveConfig()
			if !crashAt(step, func(hook func(string)) {
				cfg.Hook = hook
				RunMove(ctx, ctl, mv.ID, cfg) //nolint:errcheck // crashes
			}) {
				t.Fatalf("the cutover never reached %s", step)
			}
			cfg.Hook = nil
			got, err := RunMove(ctx, ctl, mv.ID, cfg)
			if err != nil || got.Phase != PhaseCutOver {
				t.Fatalf("resumed: %+v, %v", got, err)
			}
			if want := []string{"publication " + mv.name(), "slot " + mv.name() + "_back"}; !slices.Equal(moveObjects(t, a), []string{want[0], "subscription " + mv.name() + "_back"}) ||
				!slices.Equal(moveObjects(t, b), []string{"publication " + mv.name() + "_back", want[1]}) {
				t.Fatalf("after the resumed cutover: source %v, target %v", moveObjects(t, a), moveObjects(t, b))
			}
			m, _ := Load(ctx, ctl)
			if len(m.Moves) != 0 || m.Shards[m.Owners[0]].Name != "b" {
				t.Fatalf("map after the resumed cutover: %+v", m.Moves)
			}
			flowsBack(t, b, a, firstUser(t, a, half), 71_000_001)

			// Then a rollback, crashed at the same step of its switch back.
			rcfg := RollbackConfig{Cutover: CutoverConfig{Pause: 5 * time.Second}}
			if !crashAt(step, func(hook func(string)) {
				rcfg.Cleanup.Hook = hook
				Rollback(ctx, ctl, mv.ID, rcfg) //nolint:errcheck // crashes
			}) {
				t.Fatalf("the rollback never reached %s", step)
			}
			rcfg.Cleanup.Hook = nil
			if got, err := Rollback(ctx, ctl, mv.ID, rcfg); err != nil || got.Phase != PhaseRolledBack {
				t.Fatalf("resumed rollback: %+v, %v", got, err)
			}
			var ok bool
			if err := a.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM user_actions WHERE id = 71000001)`).Scan(&ok); err != nil || !ok {
				t.Fatalf("the write on the target is not on the source after the rollback (%v)", err)
			}
			noObjects(t, a, b)
		})
	}
	t.Run("cleanup/delete", func(t *testing.T) {
		ctl, a, b := moveSetup(t, 50, 2)
		ctx := bounded(t)
		half := VRange{0, 499}
		mv := caughtUp(t, ctl, half)
		if _, err := Cutover(ctx, ctl, mv.ID, CutoverConfig{Pause: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if !crashAt("delete", func(hook func(string)) {
			Cleanup(ctx, ctl, mv.ID, CleanupConfig{Batch: 3, Hook: hook}) //nolint:errcheck // crashes
		}) {
			t.Fatal("the cleanup never deleted")
		}
		if _, err := Rollback(ctx, ctl, mv.ID, RollbackConfig{}); !errors.Is(err, ErrBadMove) {
			t.Fatalf("Rollback during the cleanup: %v, want ErrBadMove", err)
		}
		if got, err := Cleanup(ctx, ctl, mv.ID, CleanupConfig{}); err != nil || got.Phase != PhaseDone {
			t.Fatalf("resumed cleanup: %+v, %v", got, err)
		}
		for _, tb := range moveTables {
			if n := countIn(t, a, tb, half); n != 0 {
				t.Errorf("%s: %d moved rows left on the source", tb.Name, n)
			}
		}
		noObjects(t, a, b)
	})
}

// TestLagMeter: the lag of a caught-up stream is known after two
// measures and stays under a second; with the subscription stopped it
// grows at least as fast as time passes; restarted, it falls back to 0.
func TestLagMeter(t *testing.T) {
	ctl, a, b := moveSetup(t, 20, 1)
	ctx := bounded(t)
	mv := caughtUp(t, ctl, VRange{0, 499})
	fwd, _ := streams(mv, a, b)
	meter := lagMeter{s: fwd}
	if _, known, err := meter.measure(ctx); err != nil || known {
		t.Fatalf("first measure: known %v, %v; want unknown", known, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lag, known, err := meter.measure(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if known && lag < time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a caught-up stream: lag %v, known %v after 10 s", lag, known)
		}
	}
	mustExec(t, b, `ALTER SUBSCRIPTION `+fwd.ident()+` DISABLE`)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) { // its worker stops
		var running bool
		if err := b.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL)`, fwd.name).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the disabled subscription's worker still runs after 20 s")
		}
	}
	start := time.Now()
	var lag time.Duration
	for range 4 {
		time.Sleep(100 * time.Millisecond)
		var err error
		if lag, _, err = meter.measure(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The first change the target has not shown was made before the
	// first of the 4 measures, at least 300 ms before the last.
	if lag < 300*time.Millisecond || lag > time.Since(start)+time.Second {
		t.Fatalf("with the subscription stopped for %v the lag reads %v", time.Since(start), lag)
	}
	mustExec(t, b, `ALTER SUBSCRIPTION `+fwd.ident()+` ENABLE`)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		lag, _, err := meter.measure(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lag is still %v 20 s after the subscription restarted", lag)
		}
	}
}
