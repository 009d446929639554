package shard

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Indexes built after the copy. PostgreSQL's initial copy of a table
// inserts its rows one COPY at a time into every index of the target's
// table; secondary indexes in random key order (a user id, an email)
// outgrow shared_buffers and make the copy several times slower than a
// build from the finished table (docs/benchmarks.md, "copy plus verify").
// So, like PgDog's RESHARD, a move to a fresh target leaves them out and
// builds them once the rows are in, before anything reads the target:
//
//   - prepare records every secondary index of the moving tables (not the
//     primary key nor the replica identity, which the change stream
//     needs, nor one a foreign key depends on) on the move's row, then
//     drops it from the target, only where that is safe: the target owns
//     no virtual shard yet, no other active move goes to it, and the
//     table on it is empty, so no query of the service can need them;
//   - the copy's step builds every index recorded by an active move to
//     the target once the copy is done (before the verify, the read
//     migration and the cutover); an undo (Rollback) builds them too.
//
// Each step checks what exists first, so a mover killed midway builds
// what is missing when it resumes. The decision and the drop run under
// an advisory lock per target, as does each build, so a later move to
// the same target cannot run past a drop: it builds what another
// recorded before it goes on.

// DeferredIndex is an index of a moving table a move left out of its
// target while PostgreSQL copied the rows, and builds after the copy.
type DeferredIndex struct {
	// Table is the table's name, as PostgreSQL prints it (regclass).
	Table string `json:"table"`
	// Name is the index's name, or its constraint's when Constraint.
	Name string `json:"name"`
	// Constraint: the index belongs to a unique or exclusion constraint
	// (dropped and added as the constraint).
	Constraint bool `json:"constraint,omitempty"`
	// Def is the statement that builds it again.
	Def string `json:"def"`
}

// indexLockSpace is the first key of the advisory locks (in the main
// database) that order index deferrals and builds per target
// ("STRAIDX" folded to 32 bits).
const indexLockSpace = 0x53494458

// sqlDeferrable lists the indexes of table $1 that a move may build
// after its copy, with the statements that drop and make them.
const sqlDeferrable = `SELECT i.indrelid::regclass::text,
		COALESCE(c.conname, i.indexrelid::regclass::text),
		c.oid IS NOT NULL,
		CASE WHEN c.oid IS NULL THEN format('DROP INDEX IF EXISTS %s', i.indexrelid::regclass)
			ELSE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', i.indrelid::regclass, c.conname) END,
		CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
			ELSE format('ALTER TABLE %s ADD CONSTRAINT %I %s', i.indrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) END
	FROM pg_index i
	LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('u', 'x')
	WHERE i.indrelid = to_regclass($1) AND NOT i.indisprimary AND NOT i.indisreplident AND i.indisvalid
		AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
	ORDER BY i.indexrelid`

// lockIndexes takes the advisory lock on target's indexes on a connection
// of db's own, held until the returned function runs.
func lockIndexes(ctx context.Context, db *sql.DB, target string) (*sql.Conn, func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("lock the target's indexes: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, int32(indexLockSpace), target); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("lock the target's indexes: %w", err)
	}
	return conn, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, int32(indexLockSpace), target)
		conn.Close()
	}, nil
}

// deferIndexes leaves the secondary indexes of mv's tables out of the
// target (dst) where that is safe (see above): recorded on the move's row
// first, then dropped. A resumed prepare keeps what the first recorded.
func deferIndexes(ctx context.Context, db, dst *sql.DB, m *Map, mv *Move) error {
	conn, unlock, err := lockIndexes(ctx, db, mv.Target)
	if err != nil {
		return err
	}
	defer unlock()
	ti := shardIndex(m, mv.Target)
	if ti < 0 {
		return fmt.Errorf("%w: shard %s of move %d is not in the map", ErrBadMove, mv.Target, mv.ID)
	}
	for _, o := range m.Owners {
		if o == ti {
			return nil // the target serves queries: keep its indexes
		}
	}
	var others int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM strata_shard.moves WHERE active AND target = $1 AND id <> $2`,
		mv.Target, mv.ID).Scan(&others); err != nil {
		return fmt.Errorf("moves to %s: %w", mv.Target, err)
	}
	if others > 0 {
		return nil
	}
	found, drops, err := deferrable(ctx, dst, mv)
	if err != nil {
		return &Error{Shard: mv.Target, Err: err}
	}
	if len(found) == 0 {
		return nil
	}
	all := mergeIndexes(mv.DeferredIndexes, found)
	body, err := json.Marshal(all)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `UPDATE strata_shard.moves SET indexes = $2 WHERE id = $1`, mv.ID, body); err != nil {
		return fmt.Errorf("record the deferred indexes: %w", err)
	}
	mv.DeferredIndexes = all
	for _, q := range drops {
		if _, err := dst.ExecContext(ctx, q); err != nil {
			return &Error{Shard: mv.Target, Err: fmt.Errorf("%s: %w", q, err)}
		}
	}
	return nil
}

// deferrable lists the indexes of mv's tables on dst that are empty
// there, with the statements that drop them.
func deferrable(ctx context.Context, dst *sql.DB, mv *Move) ([]DeferredIndex, []string, error) {
	var found []DeferredIndex
	var drops []string
	for _, t := range mv.Tables {
		name := pgx.Identifier{t.Name}.Sanitize()
		var rows bool
		if err := dst.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+name+`)`).Scan(&rows); err != nil {
			return nil, nil, fmt.Errorf("is %s empty: %w", t.Name, err)
		}
		if rows {
			continue
		}
		if err := func() error {
			rs, err := dst.QueryContext(ctx, sqlDeferrable, name)
			if err != nil {
				return err
			}
			defer rs.Close()
			for rs.Next() {
				var d DeferredIndex
				var drop string
				if err := rs.Scan(&d.Table, &d.Name, &d.Constraint, &drop, &d.Def); err != nil {
					return err
				}
				found, drops = append(found, d), append(drops, drop)
			}
			return rs.Err()
		}(); err != nil {
			return nil, nil, fmt.Errorf("indexes of %s: %w", t.Name, err)
		}
	}
	return found, drops, nil
}

// mergeIndexes is recorded followed by those of found it lacks (by table
// and name).
func mergeIndexes(recorded, found []DeferredIndex) []DeferredIndex {
	out := append([]DeferredIndex(nil), recorded...)
	for _, f := range found {
		dup := false
		for _, r := range recorded {
			if r.Table == f.Table && r.Name == f.Name {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, f)
		}
	}
	return out
}

// buildIndexes builds, on the target (dst), every index that mv or
// another active move to the same target left out and that is missing,
// calling hook("index") after each; it returns how many it built.
func buildIndexes(ctx context.Context, db, dst *sql.DB, mv *Move, hook func(string)) (int, error) {
	conn, unlock, err := lockIndexes(ctx, db, mv.Target)
	if err != nil {
		return 0, err
	}
	defer unlock()
	rows, err := conn.QueryContext(ctx, `SELECT indexes FROM strata_shard.moves WHERE (active AND target = $1 OR id = $2) AND indexes IS NOT NULL ORDER BY id`,
		mv.Target, mv.ID)
	if err != nil {
		return 0, fmt.Errorf("deferred indexes: %w", err)
	}
	var want []DeferredIndex
	for rows.Next() {
		var body []byte
		var l []DeferredIndex
		if err := rows.Scan(&body); err != nil {
			rows.Close()
			return 0, fmt.Errorf("deferred indexes: %w", err)
		}
		if err := json.Unmarshal(body, &l); err != nil {
			rows.Close()
			return 0, fmt.Errorf("deferred indexes: %w", err)
		}
		want = mergeIndexes(want, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("deferred indexes: %w", err)
	}
	built := 0
	for _, d := range want {
		var exists bool
		q := `SELECT CASE WHEN $3 THEN EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)
			ELSE to_regclass($2) IS NOT NULL END`
		if err := dst.QueryRowContext(ctx, q, d.Table, d.Name, d.Constraint).Scan(&exists); err != nil {
			return built, &Error{Shard: mv.Target, Err: fmt.Errorf("does index %s exist: %w", d.Name, err)}
		}
		if exists {
			continue
		}
		if _, err := dst.ExecContext(ctx, d.Def); err != nil {
			return built, &Error{Shard: mv.Target, Err: fmt.Errorf("build the index left out during the copy (%s): %w", d.Def, err)}
		}
		built++
		if hook != nil {
			hook("index")
		}
	}
	return built, nil
}
