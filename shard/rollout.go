package shard

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The steps of a move between the catch-up and the cutover: the verify
// and the guide's read migration.

// ErrVerifyFailed: a move's verify found rows that differ between source
// and target after its retries; the move stays catching-up, and its
// report (Move.Verify) lists them by key.
var ErrVerifyFailed = errors.New("shard: verify found differences")

// verifyMove compares every moving table between source and target
// (Verify), keeping each report on the move's row as it goes, so that an
// interrupted verify resumes where it stopped. A table verified clean by
// an earlier run is not compared again: the stream keeps it so.
func verifyMove(ctx context.Context, db, src, dst *sql.DB, mv *Move, n int, cfg MoveConfig) error {
	if mv.Verify == nil {
		mv.Verify = map[string]*VerifyReport{}
	}
	for _, t := range mv.Tables {
		vc := cfg.Verify
		switch prev := mv.Verify[t.Name]; {
		case prev != nil && prev.Clean():
			continue
		case prev != nil && !prev.Done && prev.Range == mv.VShards && prev.N == n:
			vc.From = prev
		}
		saved := time.Now()
		vc.OnChunk = func(p *VerifyReport) {
			if time.Since(saved) < verifySaveEvery {
				return
			}
			saved = time.Now()
			if err := saveVerify(ctx, db, mv, p); err != nil {
				cfg.Logger.Warn("shard: move verify: keep the progress", "move", mv.ID, "table", t.Name, "err", err)
			}
		}
		cfg.Logger.Info("shard: move verify", "move", mv.ID, "table", t.Name, "resumed", vc.From != nil)
		rep, err := Verify(ctx, src, dst, t, mv.VShards, n, vc)
		if rep != nil {
			if serr := saveVerify(ctx, db, mv, rep); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		if err != nil {
			return err
		}
		if !rep.Clean() {
			return verifyError(rep)
		}
		cfg.Logger.Info("shard: move verified", "move", mv.ID, "table", t.Name, "rows", rep.Rows, "rows_per_second", int64(rep.RowsPerSecond))
	}
	return nil
}

// verifySaveEvery is how often a running verify's progress is saved on
// the move's row: a resumed verify redoes at most this much, and the
// saves (a report, its differences included) do not slow the chunks.
const verifySaveEvery = time.Second

// saveVerify keeps rep as the move's report for its table.
func saveVerify(ctx context.Context, db *sql.DB, mv *Move, rep *VerifyReport) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `UPDATE strata_shard.moves SET verify = jsonb_set(COALESCE(verify, '{}'), ARRAY[$2], $3::jsonb) WHERE id = $1`,
		mv.ID, rep.Table.Name, body); err != nil {
		return fmt.Errorf("shard: move %d: keep the verify of %s: %w", mv.ID, rep.Table.Name, err)
	}
	mv.Verify[rep.Table.Name] = rep
	return nil
}

// verifyError names the differences of a report, the first few by key
// (all of them are in the report).
func verifyError(rep *VerifyReport) error {
	var count int64
	for _, s := range rep.Shards {
		count += s.Diffs
	}
	var first []string
	for _, d := range rep.Diffs[:min(len(rep.Diffs), 5)] {
		s := fmt.Sprintf("%s %s=%d (%s)", d.Kind, rep.Table.Key, d.Key, strings.Join(d.PK, ","))
		if len(d.Columns) > 0 {
			s += " in " + strings.Join(d.Columns, ",")
		}
		first = append(first, s)
	}
	return fmt.Errorf("%w: %s: %d rows differ between source and target, first %s (every one in the move's verify report: strata shard status --json)",
		ErrVerifyFailed, rep.Table.Name, count, strings.Join(first, "; "))
}

// migrate runs the read migration, then the cutover, trying it again
// (a second apart) when it aborts, up to cfg.CutoverAttempts times.
func migrate(ctx context.Context, db, src, dst *sql.DB, mv *Move, cfg MoveConfig) error {
	if err := rollout(ctx, db, src, dst, mv, cfg); err != nil {
		return err
	}
	var err error
	for attempt := 1; attempt <= cfg.CutoverAttempts; attempt++ {
		var m *Map
		if m, err = Load(ctx, db); err != nil {
			return err
		}
		var rep *CutoverReport
		rep, err = cutover(ctx, db, m, mv, src, dst, cfg.Cutover)
		if cfg.OnCutover != nil {
			cfg.OnCutover(rep, err)
		}
		if err == nil {
			cfg.Logger.Info("shard: move cut over", "move", mv.ID, "pause", rep.Pause, "instances", len(rep.Instances))
			return nil
		}
		if !errors.Is(err, ErrCutoverAborted) || mv.Phase != PhaseReading {
			return err
		}
		cfg.Logger.Warn("shard: move cutover aborted", "move", mv.ID, "attempt", attempt, "err", err)
		if attempt < cfg.CutoverAttempts {
			if perr := pause(ctx, time.Second); perr != nil {
				return errors.Join(err, perr)
			}
		}
	}
	return err
}

// rollout is the guide's read migration: each share of cfg.ReadShares in
// turn, in the map (so every instance follows it), held for ReadDwell
// while the target's lag stays under MaxReadLag; over it, the share falls
// to 0 (reads go back to the owner) until the lag is back under, and the
// step's dwell starts again. A resumed rollout continues from the share
// in the map.
func rollout(ctx context.Context, db, src, dst *sql.DB, mv *Move, cfg MoveConfig) error {
	m, err := Load(ctx, db)
	if err != nil {
		return err
	}
	to := shardIndex(m, mv.Target)
	cur := 0
	if i := moveIndex(m, mv); i >= 0 {
		cur = m.Moves[i].ReadShare
	}
	set := func(share int) error {
		_, err := UpdateMap(ctx, db, func(m *Map) error {
			i := moveIndex(m, mv)
			if i < 0 {
				m.Moves = append(m.Moves, MapMove{VShards: mv.VShards, To: to})
				i = len(m.Moves) - 1
			}
			m.Moves[i].ReadShare = share
			return nil
		})
		if err != nil {
			return fmt.Errorf("read share %d%%: %w", share, err)
		}
		cur = share
		return nil
	}
	fwd, _ := streams(mv, src, dst)
	meter := lagMeter{s: fwd}
	start, lastKnown := time.Now(), time.Now()
	for _, step := range cfg.ReadShares {
		if step <= cur {
			continue
		}
		var until time.Time
		for {
			lag, known, err := meter.measure(ctx)
			if err != nil {
				return err
			}
			if known {
				lastKnown = time.Now()
			} else if time.Since(lastKnown) > maxUnknownLag {
				return fmt.Errorf("%w: the target has not shown the stream's marker for %v", ErrReplication, maxUnknownLag)
			}
			over := !known || lag > cfg.MaxReadLag
			want := step
			if over {
				want, until = 0, time.Time{}
				if known && cur != 0 {
					cfg.Logger.Warn("shard: move target lags; its reads go back to the owner", "move", mv.ID, "lag", lag, "bound", cfg.MaxReadLag)
				}
			}
			if want != cur {
				if err := set(want); err != nil {
					return err
				}
				cfg.Logger.Info("shard: move read share", "move", mv.ID, "percent", cur)
			}
			if cfg.OnProgress != nil {
				cfg.OnProgress(Progress{Phase: PhaseReading, Tables: len(mv.Tables), TablesDone: len(mv.Tables), LagBytes: -1, ReadShare: cur, Lag: lag, Elapsed: time.Since(start)})
			}
			now := time.Now()
			if !over && until.IsZero() {
				until = now.Add(cfg.ReadDwell)
			}
			if !over && !now.Before(until) {
				break
			}
			if err := pause(ctx, min(cfg.Poll, max(time.Millisecond, until.Sub(now)))); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxUnknownLag bounds how long the read migration waits for a first
// measure of the target's lag.
const maxUnknownLag = time.Minute

// moveIndex is the index of mv's MapMove in m, or -1.
func moveIndex(m *Map, mv *Move) int {
	return slices.IndexFunc(m.Moves, func(x MapMove) bool { return x.VShards == mv.VShards })
}

// lagMeter measures a stream's lag in time by its marker row: each
// measure reads the marker's value on the receiving side, then changes it
// on the sending side, keeping the times of its changes. The lag is the
// age of the oldest change the receiver has not shown yet (0 when it
// shows the last one): how long a write has been waiting to arrive.
type lagMeter struct {
	s       stream
	pending []time.Time // changes made and not yet seen, oldest first
}

// measure returns the lag; known is false until the meter has made a
// change and read the marker once after it.
func (l *lagMeter) measure(ctx context.Context) (lag time.Duration, known bool, err error) {
	var seen time.Time
	err = l.s.to.db.QueryRowContext(ctx, `SELECT at FROM `+markerTable+` WHERE move = $1`, l.s.name).Scan(&seen)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil // not there yet: the lag stays unknown
	}
	if err != nil {
		return 0, false, &Error{Shard: l.s.to.name, Err: fmt.Errorf("read the marker of %s: %w", l.s.name, err)}
	}
	had := len(l.pending) > 0
	if i := slices.IndexFunc(l.pending, seen.Equal); i >= 0 {
		l.pending = l.pending[i+1:]
	}
	at, err := l.s.touch(ctx)
	if err != nil {
		return 0, false, err
	}
	if len(l.pending) > 0 {
		lag = at.Sub(l.pending[0])
	}
	if len(l.pending) >= 1000 { // a receiver that never shows them: keep the oldest
		l.pending = append(l.pending[:1], l.pending[len(l.pending)-998:]...)
	}
	l.pending = append(l.pending, at)
	return lag, had && !seen.IsZero(), nil
}
