package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A move replicates in one direction at a time, by a stream: a
// publication and a logical replication slot on the side that owns the
// rows (from), and a subscription on the other (to), all three named
// alike. The forward stream (source to target, named for the move) copies
// the rows and carries the source's changes until the cutover; the back
// stream (target to source, the name with "_back") carries the target's
// changes after it, so that a rollback loses nothing. At each switch of
// ownership the new stream's slot is moved, while writes are fenced,
// past everything the old stream applied: once every live instance has
// applied the fence (its writes routed by older maps finished:
// Router.Apply), the old stream has delivered everything and been
// stopped. The new one starts where the old one stopped, and carries
// nothing back to where it came from.

// markerTable holds one row per stream of a move, published with its
// rows; sqlCreateMarker makes it.
const (
	markerTable     = "strata_move_marker"
	sqlCreateMarker = `CREATE TABLE IF NOT EXISTS ` + markerTable + ` (move text PRIMARY KEY, at timestamptz NOT NULL)`
)

// end is one side of a stream: a primary and its shard's name.
type end struct {
	db   *sql.DB
	name string
}

// stream is one direction of a move's replication (see above).
type stream struct {
	name     string
	from, to end
}

// streams returns mv's forward and back streams between src (its
// source's primary) and dst (its target's).
func streams(mv *Move, src, dst *sql.DB) (fwd, back stream) {
	s, d := end{src, mv.Source}, end{dst, mv.Target}
	return stream{mv.name(), s, d}, stream{mv.name() + "_back", d, s}
}

// publish makes the stream's marker row and its publication (mv's tables,
// filtered on its virtual shards, and the marker row) unless they exist.
// The marker row is made on both sides unless the subscription will copy
// it.
func (s stream) publish(ctx context.Context, mv *Move, n int, copyData bool) error {
	// The marker row travels with the moving rows, in commit order: when
	// a change of it made on from is seen on to, everything committed on
	// from before it has been applied on to (see awaitFence).
	ends := []end{s.from}
	if !copyData {
		ends = append(ends, s.to)
	}
	for _, e := range []end{s.from, s.to} {
		// Two moves making the table at once: one of them loses the race
		// on the catalog (unique_violation or duplicate_table), and the
		// table is there all the same.
		if _, err := e.db.ExecContext(ctx, sqlCreateMarker); err != nil && !isCreateRace(err) {
			return &Error{Shard: e.name, Err: fmt.Errorf("create %s: %w", markerTable, err)}
		}
	}
	for _, e := range ends {
		if _, err := e.db.ExecContext(ctx, `INSERT INTO `+markerTable+` (move, at) VALUES ($1, now()) ON CONFLICT DO NOTHING`, s.name); err != nil {
			return &Error{Shard: e.name, Err: fmt.Errorf("mark %s: %w", s.name, err)}
		}
	}
	var exists bool
	if err := s.from.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.name).Scan(&exists); err != nil {
		return &Error{Shard: s.from.name, Err: err}
	}
	if exists {
		return nil
	}
	parts := []string{fmt.Sprintf("TABLE %s WHERE (move = %s)", markerTable, quoteLiteral(s.name))}
	for _, t := range mv.Tables {
		parts = append(parts, fmt.Sprintf("TABLE %s WHERE %s", pgx.Identifier{t.Name}.Sanitize(),
			mv.VShards.SQL(pgx.Identifier{t.Key}.Sanitize(), n)))
	}
	// No TRUNCATE: row filters do not apply to it, and a TRUNCATE of one
	// shard's table would empty the other's (rows it owns included).
	if _, err := s.from.db.ExecContext(ctx, `CREATE PUBLICATION `+s.ident()+` FOR `+strings.Join(parts, ", ")+
		` WITH (publish = 'insert, update, delete')`); err != nil {
		return &Error{Shard: s.from.name, Err: fmt.Errorf("create publication %s: %w", s.name, err)}
	}
	return nil
}

// ident is the stream's name as an SQL identifier.
func (s stream) ident() string { return pgx.Identifier{s.name}.Sanitize() }

// subscribed reports whether the stream's subscription exists.
func (s stream) subscribed(ctx context.Context) (bool, error) {
	var ok bool
	if err := s.to.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)`, s.name).Scan(&ok); err != nil {
		return false, &Error{Shard: s.to.name, Err: err}
	}
	return ok, nil
}

// subscribe makes the stream's subscription unless it exists: with a new
// slot (and the rows copied first when copyData), or on the slot made
// already by makeSlot when slotMade.
func (s stream) subscribe(ctx context.Context, m *Map, copyData, slotMade bool) error {
	if ok, err := s.subscribed(ctx); err != nil || ok {
		return err
	}
	if !slotMade {
		// A slot without its subscription is left by a crash inside
		// CREATE SUBSCRIPTION (the slot is made on from before the
		// subscription commits on to): it would make the new one fail.
		if err := s.dropSlot(ctx); err != nil {
			return err
		}
	}
	var conninfo string
	for _, sh := range m.Shards {
		if sh.Name == s.from.name {
			conninfo = sh.URL
		}
	}
	// CREATE SUBSCRIPTION cannot run in a transaction block, and takes
	// no parameters: the connection string is quoted as a literal.
	q := `CREATE SUBSCRIPTION ` + s.ident() + ` CONNECTION ` + quoteLiteral(conninfo) +
		` PUBLICATION ` + s.ident() + ` WITH (copy_data = ` + strconv.FormatBool(copyData) +
		`, create_slot = ` + strconv.FormatBool(!slotMade) + `, slot_name = ` + quoteLiteral(s.name) + `)`
	if _, err := s.to.db.ExecContext(ctx, q); err != nil {
		return &Error{Shard: s.to.name, Err: fmt.Errorf("create subscription %s: %w", s.name, err)}
	}
	return nil
}

// makeSlot makes the stream's slot on from; one there already (which
// the caller dropped first) is an error.
func (s stream) makeSlot(ctx context.Context) error {
	if _, err := s.from.db.ExecContext(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, s.name); err != nil {
		return &Error{Shard: s.from.name, Err: fmt.Errorf("create replication slot %s: %w", s.name, err)}
	}
	return nil
}

// advanceSlot moves the stream's slot past every change committed on
// from so far: nothing written there before now will be sent. The marker
// is touched first in a synchronously committed transaction, which
// flushes the WAL of every commit before it (a subscription's apply
// worker commits without waiting for the flush), and the slot goes to
// the flushed position, as far as a slot can be advanced.
func (s stream) advanceSlot(ctx context.Context) error {
	tx, err := s.from.db.BeginTx(ctx, nil)
	if err != nil {
		return &Error{Shard: s.from.name, Err: err}
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, q := range []string{`SET LOCAL synchronous_commit = on`, `UPDATE ` + markerTable + ` SET at = clock_timestamp() WHERE move = $1`} {
		args := []any{}
		if strings.Contains(q, "$1") {
			args = append(args, s.name)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return &Error{Shard: s.from.name, Err: fmt.Errorf("flush before advancing slot %s: %w", s.name, err)}
		}
	}
	if err := tx.Commit(); err != nil {
		return &Error{Shard: s.from.name, Err: fmt.Errorf("flush before advancing slot %s: %w", s.name, err)}
	}
	var ok bool
	if err := s.from.db.QueryRowContext(ctx, `SELECT (SELECT end_lsn FROM pg_replication_slot_advance($1, f)) >= f
		FROM pg_current_wal_flush_lsn() f`, s.name).Scan(&ok); err != nil {
		return &Error{Shard: s.from.name, Err: fmt.Errorf("advance replication slot %s: %w", s.name, err)}
	}
	if !ok {
		return &Error{Shard: s.from.name, Err: fmt.Errorf("replication slot %s did not advance to the flushed WAL position", s.name)}
	}
	return nil
}

// dropSlot drops the stream's slot on from if it exists. A slot in use
// (its creation still running after a cancel, or a walsender still
// attached) is waited for, up to 10 s, then an error.
func (s stream) dropSlot(ctx context.Context) error {
	for deadline := time.Now().Add(10 * time.Second); ; {
		var pid sql.NullInt64
		err := s.from.db.QueryRowContext(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, s.name).Scan(&pid)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return &Error{Shard: s.from.name, Err: fmt.Errorf("read replication slot %s: %w", s.name, err)}
		case !pid.Valid:
			_, err := s.from.db.ExecContext(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, s.name)
			if err != nil {
				return &Error{Shard: s.from.name, Err: fmt.Errorf("drop replication slot %s: %w", s.name, err)}
			}
			continue // gone, or taken meanwhile: look again
		case time.Now().After(deadline):
			return &Error{Shard: s.from.name, Err: fmt.Errorf("replication slot %s is still in use by process %d", s.name, pid.Int64)}
		}
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// setEnabled enables or disables the stream's subscription, if it exists.
func (s stream) setEnabled(ctx context.Context, on bool) error {
	if ok, err := s.subscribed(ctx); err != nil || !ok {
		return err
	}
	verb := "DISABLE"
	if on {
		verb = "ENABLE"
	}
	if _, err := s.to.db.ExecContext(ctx, `ALTER SUBSCRIPTION `+s.ident()+` `+verb); err != nil {
		return &Error{Shard: s.to.name, Err: fmt.Errorf("%s subscription %s: %w", strings.ToLower(verb), s.name, err)}
	}
	return nil
}

// unsubscribe drops the stream's subscription (which drops its slot on
// from) and any slot left without it.
func (s stream) unsubscribe(ctx context.Context) error {
	if _, err := s.to.db.ExecContext(ctx, `DROP SUBSCRIPTION IF EXISTS `+s.ident()); err != nil {
		return &Error{Shard: s.to.name, Err: fmt.Errorf("drop subscription %s: %w", s.name, err)}
	}
	return s.dropSlot(ctx)
}

// remove drops everything of the stream: subscription, slot, publication
// and marker rows.
func (s stream) remove(ctx context.Context) error {
	if err := s.unsubscribe(ctx); err != nil {
		return err
	}
	if _, err := s.from.db.ExecContext(ctx, `DROP PUBLICATION IF EXISTS `+s.ident()); err != nil {
		return &Error{Shard: s.from.name, Err: fmt.Errorf("drop publication %s: %w", s.name, err)}
	}
	for _, e := range []end{s.from, s.to} {
		_, err := e.db.ExecContext(ctx, `DELETE FROM `+markerTable+` WHERE move = $1`, s.name)
		if err != nil && !isUndefinedTable(err) {
			return &Error{Shard: e.name, Err: fmt.Errorf("delete the marker of %s: %w", s.name, err)}
		}
	}
	return nil
}

// touch changes the stream's marker row on from and returns its new value.
func (s stream) touch(ctx context.Context) (at time.Time, err error) {
	err = s.from.db.QueryRowContext(ctx, `UPDATE `+markerTable+` SET at = clock_timestamp() WHERE move = $1 RETURNING at`, s.name).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("no marker row %s", s.name)
	}
	if err != nil {
		return at, &Error{Shard: s.from.name, Err: fmt.Errorf("touch the marker of %s: %w", s.name, err)}
	}
	return at, nil
}

// seen reports whether to has applied the marker value at.
func (s stream) seen(ctx context.Context, at time.Time) (bool, error) {
	var ok bool
	err := s.to.db.QueryRowContext(ctx, `SELECT COALESCE((SELECT at = $2 FROM `+markerTable+` WHERE move = $1), false)`, s.name, at).Scan(&ok)
	if err != nil {
		return false, &Error{Shard: s.to.name, Err: fmt.Errorf("read the marker of %s: %w", s.name, err)}
	}
	return ok, nil
}

// isCreateRace reports whether err is a CREATE ... IF NOT EXISTS that
// lost a race with another session making the same object.
func isCreateRace(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P07")
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
