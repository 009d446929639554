package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The cutover (the guide's write migration) of a caught-up move, bounded
// in time: switchOwner below, from the forward stream to the back one.
// Past CutoverConfig.Pause the fence is lifted and the cutover aborts
// with ErrCutoverAborted, naming what it waited for: the service goes on,
// on the old owner.

// Phases of the cutover.
const (
	// PhaseCuttingOver is recorded before the fence: a run that finds it
	// (the last one crashed) finishes the cutover if the map says the
	// target owns the virtual shards, and undoes it otherwise.
	PhaseCuttingOver = "cut-over-started"
	// PhaseCutOver: the target owns the virtual shards; the back stream
	// carries its changes to the source until cleanup (or a rollback).
	PhaseCutOver = "cut-over"
)

// DefaultPause bounds a cutover's write pause (seed: Sharding, write
// migration; the bound is the 500 ms default).
const DefaultPause = 500 * time.Millisecond

// ErrCutoverAborted: the cutover did not get every live instance's fence
// and the target's catch-up within its pause; nothing changed hands.
var ErrCutoverAborted = errors.New("shard: cutover aborted")

// CutoverConfig tunes Cutover (and a rollback's switch back). The zero
// value means the defaults.
type CutoverConfig struct {
	// Pause bounds the write pause (fence to flip); 0 means DefaultPause.
	Pause time.Duration
	// LiveWithin tells a live instance by its last heartbeat; 0 means
	// three DefaultHeartbeat periods.
	LiveWithin time.Duration
	// Hook, if set, is called at each step of the switch ("fenced",
	// "slot-made", "flipped"): for observers, and for fault tests that
	// kill the process there.
	Hook func(step string)
}

// hook calls c.Hook, if set.
func (c *CutoverConfig) hook(step string) {
	if c.Hook != nil {
		c.Hook(step)
	}
}

func (c *CutoverConfig) setDefaults() {
	if c.Pause <= 0 {
		c.Pause = DefaultPause
	}
	if c.LiveWithin <= 0 {
		c.LiveWithin = 3 * DefaultHeartbeat
	}
}

// CutoverReport says what a cutover did and how long writes were paused.
type CutoverReport struct {
	FenceEpoch, FlipEpoch int64
	// Pause is from the fenced map's commit to the flipped map's.
	Pause time.Duration
	// Instances are the live instances that applied the fence.
	Instances []string
}

// Cutover hands the virtual shards of move id to its target (see above)
// and records phase cut-over. The move must have been caught up
// (catching-up, verified or reading); RunMove verifies and rolls reads
// out first, then calls it.
func Cutover(ctx context.Context, db *sql.DB, id int64, cfg CutoverConfig) (*CutoverReport, error) {
	cfg.setDefaults()
	unlock, err := lockMove(ctx, db, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	mv, err := loadMove(ctx, db, id)
	if err != nil {
		return nil, err
	}
	switch mv.Phase {
	case PhaseCatchingUp, PhaseVerified, PhaseReading:
	default:
		return nil, fmt.Errorf("%w: move %d is %s; a cutover needs it caught up (catching-up, verified or reading)", ErrBadMove, id, mv.Phase)
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
	rep, err := cutover(ctx, db, m, mv, src, dst, cfg)
	if err != nil {
		return rep, recordError(ctx, db, mv, err)
	}
	return rep, nil
}

// cutover runs Cutover on an open, locked move. If it aborts, the move
// is back in its phase before.
func cutover(ctx context.Context, db *sql.DB, m *Map, mv *Move, src, dst *sql.DB, cfg CutoverConfig) (*CutoverReport, error) {
	prev := mv.Phase
	fwd, back := streams(mv, src, dst)
	// The back stream's publication and marker now; its slot in the fence.
	if err := back.publish(ctx, mv, len(m.Owners), false); err != nil {
		return nil, err
	}
	if err := setPhase(ctx, db, mv, PhaseCuttingOver); err != nil {
		return nil, err
	}
	rep, undone, err := switchOwner(ctx, db, mv, fwd, back, shardIndex(m, mv.Target), cfg)
	if err != nil {
		if undone {
			if perr := setPhase(context.WithoutCancel(ctx), db, mv, prev); perr != nil {
				err = errors.Join(err, perr)
			}
		}
		return rep, err
	}
	return rep, setPhase(ctx, db, mv, PhaseCutOver)
}

// shardIndex is the index of the shard named name in m, or -1.
func shardIndex(m *Map, name string) int {
	return slices.IndexFunc(m.Shards, func(s Shard) bool { return s.Name == name })
}

// switchOwner hands mv's virtual shards from old.from (their owner) to
// old.to (shard owner of the map), whose changes nw will carry back:
//
//  1. fence: a map that fences the virtual shards, so every instance
//     that applies it holds their writes (Router.Write);
//  2. wait until every live instance has applied it (an instance that has
//     not cannot be trusted to hold its writes) and old has delivered
//     every change committed before the fence (its marker row, changed
//     now, arrives after all of them);
//  3. stop old, and move nw's slot (made before the fence) past
//     everything old applied: nw starts where old stopped;
//  4. flip: a map in which the new owner owns the virtual shards and
//     nothing is fenced; the held writes go to it;
//  5. subscribe nw on its slot and drop old's subscription and slot.
//
// Steps 1 to 3 must fit in cfg.Pause; past it switchOwner lifts the fence,
// restarts old, drops nw's slot and returns ErrCutoverAborted with undone
// set: the service goes on with the old owner. An error with undone unset
// leaves the switch to recoverSwitch.
func switchOwner(ctx context.Context, db *sql.DB, mv *Move, old, nw stream, owner int, cfg CutoverConfig) (rep *CutoverReport, undone bool, err error) {
	rep = &CutoverReport{}
	// A slot of nw left by an earlier attempt (its creation cancelled at
	// the deadline, or the mover killed) has decoded old's changes since:
	// it must not serve as nw's start.
	if err := nw.dropSlot(ctx); err != nil {
		return rep, true, err
	}
	// The lag check before the fence: old must deliver now, or the fence
	// would only wait out its pause (a stream just restarted takes
	// seconds to resume).
	if err := flowing(ctx, old, preFenceWait); err != nil {
		return rep, true, err
	}
	// nw's slot is made now, outside the pause: making one waits for
	// every transaction running on its server. It decodes what old
	// applies from now on; inside the fence it is moved past all of it.
	sctx, scancel := context.WithTimeout(ctx, preFenceWait)
	err = nw.makeSlot(sctx)
	scancel()
	if err != nil {
		return rep, true, errors.Join(err, nw.dropSlot(context.WithoutCancel(ctx)))
	}
	fenced, err := UpdateMap(ctx, db, func(m *Map) error { return setFence(m, mv, owner, true) })
	if err != nil {
		// Whether it committed is unknown: undo it if it did.
		if _, serr := settle(ctx, db, mv, old, nw, owner); serr != nil {
			return rep, false, errors.Join(fmt.Errorf("fence: %w", err), serr)
		}
		return rep, true, fmt.Errorf("fence: %w", err)
	}
	start := time.Now()
	rep.FenceEpoch = fenced.Epoch
	cfg.hook("fenced")
	pctx, cancel := context.WithDeadline(ctx, start.Add(cfg.Pause))
	defer cancel()
	err = awaitFence(pctx, db, old, fenced.Epoch, cfg.LiveWithin, rep)
	if err == nil {
		err = old.setEnabled(pctx, false)
	}
	if err == nil {
		err = nw.advanceSlot(pctx)
	}
	if err == nil {
		cfg.hook("slot-made")
	}
	if err != nil {
		err = fmt.Errorf("%w after %v: %w", ErrCutoverAborted, time.Since(start).Round(time.Millisecond), err)
		if uerr := unswitch(context.WithoutCancel(ctx), db, mv, old, nw); uerr != nil {
			return rep, false, errors.Join(err, uerr)
		}
		return rep, true, err
	}
	// The flip is not cancelled with ctx (an interrupted mover): once the
	// slot is made, finishing is as quick as undoing.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer fcancel()
	flipped, err := UpdateMap(fctx, db, func(m *Map) error {
		if i := moveIndex(m, mv); i < 0 || !m.Moves[i].Fenced {
			return fmt.Errorf("%w: the fence of virtual shards %s is no longer in the map (another process lifted it)", ErrCutoverAborted, mv.VShards)
		}
		for v := mv.VShards.Lo; v <= mv.VShards.Hi; v++ {
			m.Owners[v] = owner
		}
		m.Moves = slices.DeleteFunc(m.Moves, func(x MapMove) bool { return x.VShards == mv.VShards })
		return nil
	})
	if err != nil {
		// Whether it committed is unknown: finish or undo by the map.
		done, serr := settle(ctx, db, mv, old, nw, owner)
		switch {
		case serr != nil:
			return rep, false, errors.Join(fmt.Errorf("flip ownership: %w", err), serr)
		case !done:
			return rep, true, fmt.Errorf("flip ownership: %w", err)
		}
		rep.Pause = time.Since(start) // it had committed; settle finished it
		return rep, false, nil
	}
	rep.Pause, rep.FlipEpoch = time.Since(start), flipped.Epoch
	cfg.hook("flipped")
	return rep, false, finishSwitch(ctx, flipped, old, nw)
}

// preFenceWait bounds the lag check before a fence.
const preFenceWait = time.Minute

// flowing touches s's marker and waits, up to d, until the receiving side
// shows it.
func flowing(ctx context.Context, s stream, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	at, err := s.touch(ctx)
	if err != nil {
		return err
	}
	for {
		seen, err := s.seen(ctx, at)
		if err == nil && seen {
			return nil
		}
		if err == nil {
			err = pause(ctx, 5*time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("%w: %s has not applied %s's changes of the last %v (stream %s): %w", ErrReplication, s.to.name, s.from.name, d, s.name, err)
		}
	}
}

// settle finishes or undoes (recoverSwitch) a switch whose map update
// failed, so that no fence stays on for want of a resume; its failure is
// returned (the next run recovers then), with whether the map had
// flipped.
func settle(ctx context.Context, db *sql.DB, mv *Move, old, nw stream, owner int) (flipped bool, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	m, err := Load(ctx, db)
	if err != nil {
		return false, fmt.Errorf("settle the switch: %w", err)
	}
	if flipped, err = recoverSwitch(ctx, db, m, mv, old, nw, owner); err != nil {
		return flipped, fmt.Errorf("settle the switch: %w", err)
	}
	return flipped, nil
}

// finishSwitch subscribes nw on the slot made in the fence and drops old.
func finishSwitch(ctx context.Context, m *Map, old, nw stream) error {
	if err := nw.subscribe(ctx, m, false, true); err != nil {
		return fmt.Errorf("start replication back: %w", err)
	}
	if err := old.unsubscribe(ctx); err != nil {
		return fmt.Errorf("stop replication forward: %w", err)
	}
	return nil
}

// unswitch undoes a switch that did not flip: the fence lifted first (the
// old owner takes writes again), then nw's slot dropped (it would carry
// old's changes back) and old restarted.
func unswitch(ctx context.Context, db *sql.DB, mv *Move, old, nw stream) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var lift error
	m, err := Load(ctx, db)
	switch {
	case err != nil:
		lift = fmt.Errorf("lift the fence: %w", err)
	case moveIndex(m, mv) >= 0 && m.Moves[moveIndex(m, mv)].Fenced:
		if _, err := UpdateMap(ctx, db, func(m *Map) error { return setFence(m, mv, 0, false) }); err != nil {
			lift = fmt.Errorf("lift the fence: %w", err)
		}
	}
	// Each step runs whatever the others did: old restarted, above all.
	return errors.Join(lift, nw.dropSlot(ctx), old.setEnabled(ctx, true))
}

// recoverSwitch finishes a switch to owner that a crash interrupted, if
// it flipped (the map gives the virtual shards to owner), or undoes it.
func recoverSwitch(ctx context.Context, db *sql.DB, m *Map, mv *Move, old, nw stream, owner int) (flipped bool, err error) {
	if m.Owners[mv.VShards.Lo] == owner {
		return true, finishSwitch(ctx, m, old, nw)
	}
	return false, unswitch(ctx, db, mv, old, nw)
}

// setFence fences (or unfences) mv's virtual shards in m, adding its
// MapMove (towards shard to) if the map has none yet.
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
// until s has delivered every change committed before the fence (shown by
// its marker row, changed on s.from now).
func awaitFence(ctx context.Context, db *sql.DB, s stream, epoch int64, liveWithin time.Duration, rep *CutoverReport) error {
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
	// Touch the marker on s.from: the fence is in force on every live
	// instance, so every write of the moving rows committed before this
	// one. When s.to shows the new value, it has applied all of them
	// (logical replication applies in commit order).
	at, err := s.touch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s did not take the move's marker in time: %w", s.from.name, err)
		}
		return err
	}
	for {
		seen, err := s.seen(ctx, at)
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("%s had not applied %s's changes up to the fence", s.to.name, s.from.name)
		}
		if err != nil {
			return err
		}
		if seen {
			return nil
		}
		if err := pause(ctx, time.Millisecond); err != nil {
			return fmt.Errorf("%s had not applied %s's changes up to the fence", s.to.name, s.from.name)
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
