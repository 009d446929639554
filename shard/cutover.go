package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The cutover (the guide's write migration) of a caught-up move, bounded
// in time:
//
//  1. fence: a map that fences the moving virtual shards, so every
//     instance that applies it holds their writes (Router.Write);
//  2. wait until every live instance has applied it (an instance that has
//     not cannot be trusted to hold its writes) and the target has
//     applied every change committed on the source before the fence
//     (a marker row published with the moving rows, changed after the
//     fence, arrives after all of them);
//  3. flip: a map in which the target owns the virtual shards and nothing
//     is fenced; the held writes go to the new owner;
//  4. start reverse replication (target to source, no initial copy), so
//     the move can still be undone without loss.
//
// Steps 1 and 2 must fit in CutoverConfig.Pause; past it the fence is
// lifted and the cutover aborts with ErrCutoverAborted, naming what it
// waited for: the service goes on, on the old owner.

// Phases after catching-up.
const (
	PhaseCutOver = "cut-over" // the target owns the virtual shards; reverse replication runs
)

// DefaultPause bounds a cutover's write pause (seed: the 500 ms
// default; Router's DefaultFenceWait holds writes as long).
const DefaultPause = DefaultFenceWait

// ErrCutoverAborted: the cutover did not get every live instance's fence
// and the target's catch-up within its pause; nothing changed hands.
var ErrCutoverAborted = errors.New("shard: cutover aborted")

// CutoverConfig tunes Cutover. The zero value means the defaults.
type CutoverConfig struct {
	// Pause bounds the write pause (fence to flip); 0 means DefaultPause.
	Pause time.Duration
	// LiveWithin tells a live instance by its last heartbeat; 0 means
	// three DefaultHeartbeat periods.
	LiveWithin time.Duration
}

// CutoverReport says what a cutover did and how long writes were paused.
type CutoverReport struct {
	FenceEpoch, FlipEpoch int64
	// Pause is from the fenced map's commit to the flipped map's.
	Pause time.Duration
	// Instances are the live instances that applied the fence.
	Instances []string
}

// Cutover hands the virtual shards of move id, caught up, to its target
// (see above) and records phase cut-over.
func Cutover(ctx context.Context, db *sql.DB, id int64, cfg CutoverConfig) (*CutoverReport, error) {
	if cfg.Pause <= 0 {
		cfg.Pause = DefaultPause
	}
	if cfg.LiveWithin <= 0 {
		cfg.LiveWithin = 3 * DefaultHeartbeat
	}
	unlock, err := lockMove(ctx, db, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	mv, err := loadMove(ctx, db, id)
	if err != nil {
		return nil, err
	}
	if mv.Phase != PhaseCatchingUp {
		return nil, fmt.Errorf("%w: move %d is %s; a cutover needs it catching-up", ErrBadMove, id, mv.Phase)
	}
	m, err := Load(ctx, db)
	if err != nil {
		return nil, err
	}
	src, dst, closeBoth, err := openEnds(ctx, m, mv)
	if err != nil {
		return nil, recordError(ctx, db, mv, err)
	}
	defer closeBoth()
	to := slices.IndexFunc(m.Shards, func(s Shard) bool { return s.Name == mv.Target })
	rep := &CutoverReport{}

	fenced, err := UpdateMap(ctx, db, func(m *Map) error { return setFence(m, mv, to, true) })
	if err != nil {
		return nil, recordError(ctx, db, mv, fmt.Errorf("fence: %w", err))
	}
	start := time.Now()
	rep.FenceEpoch = fenced.Epoch
	pctx, cancel := context.WithDeadline(ctx, start.Add(cfg.Pause))
	defer cancel()
	if err := awaitFence(pctx, db, src, dst, mv, fenced.Epoch, cfg.LiveWithin, rep); err != nil {
		// Lift the fence (not bounded by the pause): the old owner goes on.
		if _, lerr := UpdateMap(context.WithoutCancel(ctx), db, func(m *Map) error { return setFence(m, mv, to, false) }); lerr != nil {
			err = errors.Join(err, fmt.Errorf("lift the fence: %w", lerr))
		}
		return rep, recordError(ctx, db, mv, fmt.Errorf("%w after %v: %w", ErrCutoverAborted, time.Since(start).Round(time.Millisecond), err))
	}
	flipped, err := UpdateMap(ctx, db, func(m *Map) error {
		for v := mv.VShards.Lo; v <= mv.VShards.Hi; v++ {
			m.Owners[v] = to
		}
		m.Moves = slices.DeleteFunc(m.Moves, func(x MapMove) bool { return x.VShards == mv.VShards })
		return nil
	})
	if err != nil {
		return rep, recordError(ctx, db, mv, fmt.Errorf("flip ownership: %w", err))
	}
	rep.Pause, rep.FlipEpoch = time.Since(start), flipped.Epoch
	if err := reverse(ctx, src, dst, flipped, mv); err != nil {
		return rep, recordError(ctx, db, mv, fmt.Errorf("start reverse replication: %w", err))
	}
	return rep, setPhase(ctx, db, mv, PhaseCutOver)
}

// setFence fences (or unfences) mv's virtual shards in m, adding its
// MapMove if the map has none yet.
func setFence(m *Map, mv *Move, to int, on bool) error {
	i := slices.IndexFunc(m.Moves, func(x MapMove) bool { return x.VShards == mv.VShards })
	if i < 0 {
		if !on {
			return nil
		}
		m.Moves = append(m.Moves, MapMove{VShards: mv.VShards, To: to})
		i = len(m.Moves) - 1
	}
	m.Moves[i].Fenced = on
	return nil
}

// awaitFence waits until every live instance has applied epoch, then
// until the target has applied every change the source committed before
// the fence (shown by the move's marker row, changed on the source now).
func awaitFence(ctx context.Context, db, src, dst *sql.DB, mv *Move, epoch int64, liveWithin time.Duration, rep *CutoverReport) error {
	var behind []string
	waiting := func() error {
		return fmt.Errorf("instances that have not applied the fence (epoch %d): %s", epoch, strings.Join(behind, ", "))
	}
	for {
		ins, err := Instances(ctx, db, liveWithin)
		if err != nil {
			if ctx.Err() != nil && len(behind) > 0 {
				return waiting() // the pause ran out while asking again
			}
			return err
		}
		behind = behind[:0]
		rep.Instances = rep.Instances[:0]
		for _, in := range ins {
			if in.AppliedEpoch < epoch {
				behind = append(behind, fmt.Sprintf("%s on %s (epoch %d)", in.ID, in.Host, in.AppliedEpoch))
			} else {
				rep.Instances = append(rep.Instances, in.ID)
			}
		}
		if len(behind) == 0 {
			break
		}
		if err := pause(ctx, 5*time.Millisecond); err != nil {
			return waiting()
		}
	}
	// Touch the move's marker on the source: the fence is in force on
	// every live instance, so every write of the moving rows committed
	// before this one. When the target shows the new value, it has
	// applied all of them (logical replication applies in commit order).
	var at time.Time
	if err := src.QueryRowContext(ctx, `UPDATE `+markerTable+` SET at = clock_timestamp() WHERE move = $1 RETURNING at`, mv.name()).Scan(&at); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("the source did not take the move's marker in time: %w", err)
		}
		return &Error{Shard: mv.Source, Err: fmt.Errorf("touch the move's marker: %w", err)}
	}
	for {
		var seen bool
		err := dst.QueryRowContext(ctx, `SELECT COALESCE((SELECT at = $2 FROM `+markerTable+` WHERE move = $1), false)`, mv.name(), at).Scan(&seen)
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("the target had not applied the source's changes up to the fence")
		}
		if err != nil {
			return &Error{Shard: mv.Target, Err: fmt.Errorf("read the move's marker: %w", err)}
		}
		if seen {
			return nil
		}
		if err := pause(ctx, time.Millisecond); err != nil {
			return fmt.Errorf("the target had not applied the source's changes up to the fence")
		}
	}
}

// pause waits d, or returns ctx's error.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// reverse stops the forward subscription and starts replication from the
// target back to the source for the moved virtual shards, without a copy
// (the source has the rows up to the flip), unless it runs already.
func reverse(ctx context.Context, src, dst *sql.DB, m *Map, mv *Move) error {
	name := mv.name()
	if _, err := dst.ExecContext(ctx, `ALTER SUBSCRIPTION `+pgx.Identifier{name}.Sanitize()+` DISABLE`); err != nil {
		return &Error{Shard: mv.Target, Err: fmt.Errorf("disable subscription %s: %w", name, err)}
	}
	return replicate(ctx, m, mv, len(m.Owners), end{dst, mv.Target}, end{src, mv.Source}, name+"_back", false)
}
