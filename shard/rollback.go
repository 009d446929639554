package shard

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The end of a move: Cleanup after the cutover (the guide's cleanup),
// or Rollback at any phase before it.

// Phases of the cleanup and of a rollback.
const (
	// PhaseCleaning: Cleanup has dropped, or is dropping, the move's
	// replication and deletes the moved rows from the source.
	PhaseCleaning = "cleaning"
	// PhaseDone: the move is finished (inactive).
	PhaseDone = "done"
	// PhaseRollingBack: a rollback of a move not cut over is undoing it.
	PhaseRollingBack = "rolling-back"
	// PhaseSwitchingBack: a rollback of a cut-over move hands the virtual
	// shards back to the source (the cutover's switch, the other way).
	PhaseSwitchingBack = "switching-back"
	// PhaseSwitchedBack: the source owns them again, the forward stream
	// runs, and the rollback verifies the copies before dropping them.
	PhaseSwitchedBack = "switched-back"
	// PhaseUndoing: the rollback drops the replication and deletes the
	// copies from the target.
	PhaseUndoing = "undoing"
	// PhaseRolledBack: the move is undone (inactive).
	PhaseRolledBack = "rolled-back"
)

// Defaults of CleanupConfig.
const (
	// DefaultDeleteBatch is how many shard keys one DELETE of the cleanup
	// takes: small statements, so the service's own queries never queue
	// behind a long one.
	DefaultDeleteBatch = 100
	// DefaultDeletePause is the pause between two DELETEs.
	DefaultDeletePause = 10 * time.Millisecond
)

// CleanupConfig tunes Cleanup (and the deletes of a rollback). The zero
// value means the defaults.
type CleanupConfig struct {
	// Soak: Cleanup refuses a move cut over less than Soak ago (the
	// user's time to watch the new owner before the way back goes).
	Soak time.Duration
	// Batch is how many shard keys each DELETE takes; 0 means
	// DefaultDeleteBatch.
	Batch int
	// Pause is the pause between DELETEs; 0 means DefaultDeletePause.
	Pause time.Duration
	// LiveWithin tells a live instance by its last heartbeat; 0 means
	// three DefaultHeartbeat periods.
	LiveWithin time.Duration
	// Hook, if set, is called before the work of each phase (and of
	// each DELETE, with "delete"): for observers, and for fault tests
	// that kill the process there.
	Hook func(step string)
	// Logger receives the steps; nil means slog.Default().
	Logger *slog.Logger
}

func (c *CleanupConfig) setDefaults() {
	if c.Batch <= 0 {
		c.Batch = DefaultDeleteBatch
	}
	if c.Pause <= 0 {
		c.Pause = DefaultDeletePause
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LiveWithin <= 0 {
		c.LiveWithin = 3 * DefaultHeartbeat
	}
}

// hook calls c.Hook, if set.
func (c *CleanupConfig) hook(step string) {
	if c.Hook != nil {
		c.Hook(step)
	}
}

// Cleanup ends move id, cut over at least cfg.Soak ago: it drops both
// streams (subscriptions, slots, publications, marker rows), then deletes
// the moved rows from the source in small batches, and records the move
// done. The move can no longer be rolled back once it starts. Running it
// again after a crash finishes it.
func Cleanup(ctx context.Context, db *sql.DB, id int64, cfg CleanupConfig) (*Move, error) {
	cfg.setDefaults()
	mv, m, src, dst, release, err := openMove(ctx, db, id)
	if err != nil {
		return mv, err
	}
	defer release()
	switch mv.Phase {
	case PhaseCutOver:
		if age := time.Since(mv.UpdatedAt); age < cfg.Soak {
			return mv, fmt.Errorf("%w: move %d cut over %v ago, under the soak of %v", ErrBadMove, id, age.Round(time.Second), cfg.Soak)
		}
		// Before the point of no return: every instance routes by the
		// new owner (a rollback stays possible if one does not).
		if err := awaitApplied(ctx, db, m.Epoch, cfg.LiveWithin); err != nil {
			return mv, recordError(ctx, db, mv, err)
		}
		if err := setPhase(ctx, db, mv, PhaseCleaning); err != nil {
			return mv, err
		}
	case PhaseCleaning:
	default:
		return mv, fmt.Errorf("%w: move %d is %s; cleanup follows the cutover (cut-over)", ErrBadMove, id, mv.Phase)
	}
	cfg.hook(PhaseCleaning)
	fwd, back := streams(mv, src, dst)
	for _, s := range []stream{back, fwd} {
		if err := s.remove(ctx); err != nil {
			return mv, recordError(ctx, db, mv, err)
		}
	}
	n, err := deleteMoved(ctx, end{src, mv.Source}, mv, len(m.Owners), cfg)
	if err != nil {
		return mv, recordError(ctx, db, mv, err)
	}
	cfg.Logger.Info("shard: move cleaned up", "move", mv.ID, "deleted_rows", n, "from", mv.Source)
	return mv, finish(ctx, db, mv, PhaseDone)
}

// RollbackConfig tunes Rollback. The zero value means the defaults.
type RollbackConfig struct {
	// Cutover tunes the switch back of a cut-over move.
	Cutover CutoverConfig
	// Verify tunes the comparison after the switch back; a zero Retries
	// means DefaultMoveVerifyRetries.
	Verify VerifyConfig
	// Cleanup tunes the deletes of the copies on the target (its Soak is
	// not used).
	Cleanup CleanupConfig
}

// Rollback undoes move id at any phase before its cleanup. Before the
// cutover, it drops the forward stream and the target's copies, and
// takes the move out of the map (reads go back to the owner). After it,
// it first hands the virtual shards back to the source over the back
// stream, with the cutover's fence and bound (ErrCutoverAborted if an
// instance does not apply it in time: run Rollback again), then verifies
// that source and target agree (nothing written to the target is lost),
// then drops both streams and the copies. It records rolled-back; running
// it again after a crash finishes it.
func Rollback(ctx context.Context, db *sql.DB, id int64, cfg RollbackConfig) (*Move, error) {
	cfg.Cutover.setDefaults()
	cfg.Cleanup.setDefaults()
	if cfg.Cutover.Hook == nil {
		cfg.Cutover.Hook = cfg.Cleanup.Hook
	}
	if cfg.Verify.Retries == 0 {
		cfg.Verify.Retries = DefaultMoveVerifyRetries
	}
	mv, m, src, dst, release, err := openMove(ctx, db, id)
	if err != nil {
		return mv, err
	}
	defer release()
	fwd, back := streams(mv, src, dst)
	log := cfg.Cleanup.Logger
	switch mv.Phase {
	case PhaseCleaning:
		return mv, fmt.Errorf("%w: move %d is being cleaned up (the source's copies are going): it can no longer be rolled back; run strata shard cleanup to finish it", ErrBadMove, id)
	case PhaseRollingBack, PhaseSwitchingBack, PhaseSwitchedBack, PhaseUndoing:
	default:
		if mv.Phase == PhaseCuttingOver {
			if err := recoverCutover(ctx, db, m, mv, src, dst); err != nil {
				return mv, recordError(ctx, db, mv, err)
			}
		}
		next := PhaseRollingBack
		if mv.Phase == PhaseCutOver {
			next = PhaseSwitchingBack
		}
		if err := setPhase(ctx, db, mv, next); err != nil {
			return mv, err
		}
	}
	log.Info("shard: move rollback", "move", mv.ID, "phase", mv.Phase)
	steps := []struct {
		from, to string
		run      func() error
	}{
		{PhaseRollingBack, PhaseUndoing, func() error { return unswitch(ctx, db, mv, fwd, back) }},
		{PhaseSwitchingBack, PhaseSwitchedBack, func() error { return switchBack(ctx, db, mv, fwd, back, cfg.Cutover) }},
		{PhaseSwitchedBack, PhaseUndoing, func() error {
			// The forward stream was just made: it must deliver before
			// the copies can compare (a new worker can take seconds to
			// start).
			if err := flowing(ctx, fwd, preFenceWait); err != nil {
				return err
			}
			mv.Verify = nil // the forward reports are of another time
			return verifyMove(ctx, db, src, dst, mv, len(m.Owners), MoveConfig{Verify: cfg.Verify, Logger: log})
		}},
		{PhaseUndoing, PhaseRolledBack, func() error { return undo(ctx, db, mv, fwd, back, len(m.Owners), cfg.Cleanup) }},
	}
	for _, st := range steps {
		if mv.Phase != st.from {
			continue
		}
		cfg.Cleanup.hook(st.from)
		if err := st.run(); err != nil {
			return mv, recordError(ctx, db, mv, err)
		}
		if st.to == PhaseRolledBack {
			return mv, finish(ctx, db, mv, PhaseRolledBack)
		}
		if err := setPhase(ctx, db, mv, st.to); err != nil {
			return mv, err
		}
	}
	return mv, nil
}

// switchBack hands a cut-over move's virtual shards back to its source:
// what a crash of an earlier attempt left is finished (the cutover's
// streams) or undone (this switch's fence and slot) first; a switch that
// flipped before the crash is only finished.
func switchBack(ctx context.Context, db *sql.DB, mv *Move, fwd, back stream, cfg CutoverConfig) error {
	m, err := Load(ctx, db)
	if err != nil {
		return err
	}
	source := shardIndex(m, mv.Source)
	if m.Owners[mv.VShards.Lo] == source {
		return finishSwitch(ctx, m, back, fwd)
	}
	if err := finishSwitch(ctx, m, fwd, back); err != nil {
		return err
	}
	if err := unswitch(ctx, db, mv, back, fwd); err != nil {
		return err
	}
	if err := fwd.publish(ctx, mv, len(m.Owners), false); err != nil {
		return err
	}
	_, _, err = switchOwner(ctx, db, mv, back, fwd, source, cfg)
	return err
}

// undo takes the move out of the map (reads of its virtual shards go
// back to the owner), waits for the live instances to apply that, drops
// both streams and deletes the copies of its rows from the target.
func undo(ctx context.Context, db *sql.DB, mv *Move, fwd, back stream, n int, cfg CleanupConfig) error {
	m, err := Load(ctx, db)
	if err != nil {
		return err
	}
	if moveIndex(m, mv) >= 0 {
		if m, err = UpdateMap(ctx, db, func(m *Map) error {
			m.Moves = slices.DeleteFunc(m.Moves, func(x MapMove) bool { return x.VShards == mv.VShards })
			return nil
		}); err != nil {
			return fmt.Errorf("take the move out of the map: %w", err)
		}
	}
	if err := awaitApplied(ctx, db, m.Epoch, cfg.LiveWithin); err != nil {
		return err
	}
	for _, s := range []stream{fwd, back} {
		if err := s.remove(ctx); err != nil {
			return err
		}
	}
	deleted, err := deleteMoved(ctx, fwd.to, mv, n, cfg)
	if err != nil {
		return err
	}
	// Indexes left out of a copy the rollback cut short (built on the
	// emptied tables, quickly).
	if _, err := buildIndexes(ctx, db, fwd.to.db, mv, nil); err != nil {
		return err
	}
	cfg.Logger.Info("shard: move rolled back", "move", mv.ID, "deleted_rows", deleted, "from", mv.Target)
	return nil
}

// DefaultApplyWait bounds how long Cleanup and Rollback wait for the live
// instances to apply the map before they delete rows an instance that has
// not could still read.
const DefaultApplyWait = time.Minute

// awaitApplied waits until every instance with a heartbeat within
// liveWithin has applied epoch, up to DefaultApplyWait.
func awaitApplied(ctx context.Context, db *sql.DB, epoch int64, liveWithin time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultApplyWait)
	defer cancel()
	for {
		ins, err := Instances(ctx, db, liveWithin)
		if err != nil {
			return err
		}
		var behind []string
		for _, in := range ins {
			if in.AppliedEpoch < epoch {
				behind = append(behind, fmt.Sprintf("%s on %s (epoch %d)", in.ID, in.Host, in.AppliedEpoch))
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("instances have not applied map epoch %d within %v, so rows they may read stay: %s", epoch, DefaultApplyWait, strings.Join(behind, ", "))
		}
	}
}

// openMove locks move id, reads it and the map, and opens its ends; the
// move must be active.
func openMove(ctx context.Context, db *sql.DB, id int64) (mv *Move, m *Map, src, dst *sql.DB, release func(), err error) {
	unlock, err := lockMove(ctx, db, id)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	fail := func(err error) (*Move, *Map, *sql.DB, *sql.DB, func(), error) {
		unlock()
		return mv, nil, nil, nil, nil, err
	}
	if mv, err = loadMove(ctx, db, id); err != nil {
		return fail(err)
	}
	if !mv.Active {
		return fail(fmt.Errorf("%w: move %d is no longer active (%s)", ErrBadMove, id, mv.Phase))
	}
	if m, err = Load(ctx, db); err != nil {
		return fail(err)
	}
	src, dst, closeBoth, err := openEnds(ctx, m, mv)
	if err != nil {
		return fail(recordError(ctx, db, mv, err))
	}
	return mv, m, src, dst, func() { closeBoth(); unlock() }, nil
}

// finish records mv's last phase and makes it inactive.
func finish(ctx context.Context, db *sql.DB, mv *Move, phase string) error {
	if err := db.QueryRowContext(ctx, `UPDATE strata_shard.moves SET phase = $2, active = false, error = NULL, updated_at = now() WHERE id = $1 RETURNING updated_at`,
		mv.ID, phase).Scan(&mv.UpdatedAt); err != nil {
		return fmt.Errorf("shard: move %d: record phase %s: %w", mv.ID, phase, err)
	}
	mv.Phase, mv.Active, mv.Error = phase, false, ""
	return nil
}

// deleteMoved deletes the rows of mv's virtual shards from e, table by
// table in reverse order (children before the rows they reference), a
// batch of shard keys per statement, and returns how many went.
func deleteMoved(ctx context.Context, e end, mv *Move, n int, cfg CleanupConfig) (int64, error) {
	var total int64
	for i := len(mv.Tables) - 1; i >= 0; i-- {
		t := mv.Tables[i]
		tbl, key := pgx.Identifier{t.Name}.Sanitize(), pgx.Identifier{t.Key}.Sanitize()
		pick := `SELECT DISTINCT ` + key + ` FROM ` + tbl + ` WHERE ` + key + ` > $1 AND ` + mv.VShards.SQL(key, n) + ` ORDER BY 1 LIMIT $2`
		last := int64(math.MinInt64)
		for {
			keys, err := pickKeys(ctx, e.db, pick, last, cfg.Batch)
			if isUndefinedTable(err) {
				break // never made there (a move rolled back before it was prepared)
			}
			if err != nil {
				return total, &Error{Shard: e.name, Err: fmt.Errorf("delete moved rows of %s: %w", t.Name, err)}
			}
			if len(keys) == 0 {
				break
			}
			res, err := e.db.ExecContext(ctx, `DELETE FROM `+tbl+` WHERE `+key+` = ANY($1)`, keys)
			if err != nil {
				return total, &Error{Shard: e.name, Err: fmt.Errorf("delete moved rows of %s: %w", t.Name, err)}
			}
			if k, err := res.RowsAffected(); err == nil {
				total += k
			}
			last = keys[len(keys)-1]
			cfg.hook("delete")
			if err := pause(ctx, cfg.Pause); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// pickKeys runs pick (keys after last, at most limit).
func pickKeys(ctx context.Context, db *sql.DB, pick string, last int64, limit int) ([]int64, error) {
	rows, err := db.QueryContext(ctx, pick, last, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []int64
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}
