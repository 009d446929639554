package shard

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// The guide's implement_sharding_migration: a move is recorded in the
// control schema (table moves) and goes through phases, each recorded
// before the next starts, so that a mover killed anywhere resumes from the
// last recorded phase (RunMove, Rollback or Cleanup again):
//
//	planned          the move is recorded; nothing else has changed
//	prepared         pre-flight passed; the schema exists on the target
//	                 (on a fresh one, without its secondary indexes:
//	                 see DeferredIndex)
//	copying          the forward stream exists (a publication on the
//	                 source filtered on the moving virtual shards, a
//	                 subscription on the target): PostgreSQL copies the
//	                 rows, then streams the changes
//	catching-up      the guide's "dual write" phase: the copy is done, the
//	                 indexes left out of it are built, and the target
//	                 applies the source's changes as they come
//	verified         every moving table compared clean (Verify)
//	reading          the guide's read migration: a growing share of the
//	                 moving virtual shards' reads go to the target
//	cut-over-started the write migration runs (see Cutover)
//	cut-over         the target owns the virtual shards; the back stream
//	                 carries its changes to the source
//	cleaning, done   Cleanup: replication dropped, the moved rows deleted
//	                 from the source
//	rolling-back, switched-back, undoing, rolled-back
//	                 Rollback (see there)
//
// The guide writes twice from the application during "dual write".
// Strata lets PostgreSQL's logical replication do it instead: a second
// write from the service can fail after the first committed (the copies
// then differ and nobody knows), and two writers race (the target can
// apply them in another order than the source did). The change stream
// carries every committed change of the moving rows, in commit order,
// whoever made it, and restarts where it stopped.

// Phases of a move (those of the cutover, the cleanup and the rollback
// are beside them).
const (
	PhasePlanned    = "planned"
	PhasePrepared   = "prepared"
	PhaseCopying    = "copying"
	PhaseCatchingUp = "catching-up"
	PhaseVerified   = "verified"
	PhaseReading    = "reading"
)

// ErrReplication: PostgreSQL reports that a move's subscription failed
// (its copy or its apply of changes); it retries for ever, so the move
// stops and says so.
var ErrReplication = errors.New("shard: replication failed")

// ErrMoveConflict: another active move already covers some of the
// virtual shards.
var ErrMoveConflict = errors.New("shard: another move covers these virtual shards")

// DefaultCatchUpLag is the replication lag (bytes of WAL the target has
// not confirmed) under which a copying move counts as caught up.
const DefaultCatchUpLag = 1 << 20

const sqlCreateMoves = `CREATE TABLE IF NOT EXISTS strata_shard.moves (
	id bigserial PRIMARY KEY,
	lo int NOT NULL,
	hi int NOT NULL,
	source text NOT NULL,
	target text NOT NULL,
	tables jsonb NOT NULL,
	phase text NOT NULL,
	active boolean NOT NULL DEFAULT true,
	error text,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	token text NOT NULL DEFAULT substr(md5(random()::text), 1, 8),
	verify jsonb,
	indexes jsonb)`

// sqlMoveColumns adds the columns a moves table made by an earlier
// version lacks.
const sqlMoveColumns = `ALTER TABLE strata_shard.moves ADD COLUMN IF NOT EXISTS token text NOT NULL DEFAULT substr(md5(random()::text), 1, 8),
	ADD COLUMN IF NOT EXISTS verify jsonb,
	ADD COLUMN IF NOT EXISTS indexes jsonb`

// Move is a recorded move of virtual shards VShards from shard Source to
// shard Target (names in the map).
type Move struct {
	ID      int64
	VShards VRange
	Source  string
	Target  string
	Tables  []Table
	Phase   string
	// Active is false once the move has finished or been abandoned.
	Active bool
	// Error is the last failure of a phase, cleared when one succeeds.
	Error     string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Token tells this move's replication objects from those of moves
	// recorded in other main databases: slot names are per server, and
	// move ids only per main database.
	Token string
	// Verify holds the reports of the move's verify, by table: the last
	// one, or the progress of one interrupted (it resumes from there).
	Verify map[string]*VerifyReport
	// DeferredIndexes are the indexes the move left out of the target
	// while PostgreSQL copied the rows; they are built once the copy is
	// done, before anything reads the target (see DeferredIndex).
	DeferredIndexes []DeferredIndex `json:",omitempty"`
}

// name is the publication's, the subscription's and the slot's name.
func (m *Move) name() string { return "strata_move_" + strconv.FormatInt(m.ID, 10) + "_" + m.Token }

// PlanMove records a move of the virtual shards r of the current map (a
// hash map) to shard target, in phase planned, and returns it. Every
// virtual shard of r must have the same owner, other than target, and no
// active move may cover any of them (ErrMoveConflict); both are checked
// under the map row's lock, so two planners cannot both succeed.
func PlanMove(ctx context.Context, db *sql.DB, r VRange, target string, tables []Table) (*Move, error) {
	if len(tables) == 0 {
		return nil, fmt.Errorf("%w: no tables to move", ErrBadMove)
	}
	for _, t := range tables {
		if t.Name == "" || t.Key == "" {
			return nil, fmt.Errorf("%w: a table needs a name and a key column, got %+v", ErrBadMove, t)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("shard: plan move: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var epoch int64
	var body []byte
	if err := tx.QueryRowContext(ctx, sqlLockMap).Scan(&epoch, &body); err != nil {
		return nil, fmt.Errorf("shard: plan move: lock the map: %w", err)
	}
	if body == nil {
		return nil, ErrNoMap
	}
	m, err := decodeMap(epoch, body)
	if err != nil {
		return nil, err
	}
	if m.Kind != KindHash {
		return nil, fmt.Errorf("%w: only a hash map's virtual shards move (this map is %s)", ErrBadMove, m.Kind)
	}
	if err := r.Check(len(m.Owners)); err != nil {
		return nil, err
	}
	ti := slices.IndexFunc(m.Shards, func(s Shard) bool { return s.Name == target })
	if ti < 0 {
		return nil, fmt.Errorf("%w: no shard %q in the map (add it first)", ErrBadMove, target)
	}
	src := m.Owners[r.Lo]
	for v := r.Lo; v <= r.Hi; v++ {
		if m.Owners[v] != src {
			return nil, fmt.Errorf("%w: virtual shards %s have more than one owner (%s owns %d, %s owns %d); move one owner's at a time",
				ErrBadMove, r, m.Shards[src].Name, r.Lo, m.Shards[m.Owners[v]].Name, v)
		}
	}
	if src == ti {
		return nil, fmt.Errorf("%w: virtual shards %s already belong to %s", ErrBadMove, r, target)
	}
	var other int64
	switch err := tx.QueryRowContext(ctx, `SELECT id FROM strata_shard.moves WHERE active AND lo <= $2 AND hi >= $1 LIMIT 1`, r.Lo, r.Hi).Scan(&other); {
	case err == nil:
		return nil, fmt.Errorf("%w: move %d", ErrMoveConflict, other)
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("shard: plan move: %w", err)
	}
	tj, err := json.Marshal(tables)
	if err != nil {
		return nil, fmt.Errorf("shard: plan move: %w", err)
	}
	mv := &Move{VShards: r, Source: m.Shards[src].Name, Target: target, Tables: tables, Phase: PhasePlanned, Active: true}
	if err := tx.QueryRowContext(ctx, `INSERT INTO strata_shard.moves (lo, hi, source, target, tables, phase)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at, updated_at, token`,
		r.Lo, r.Hi, mv.Source, target, tj, PhasePlanned).Scan(&mv.ID, &mv.CreatedAt, &mv.UpdatedAt, &mv.Token); err != nil {
		return nil, fmt.Errorf("shard: plan move: record it: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("shard: plan move: commit: %w", err)
	}
	return mv, nil
}

// Moves lists the recorded moves, newest first; active only when
// activeOnly.
func Moves(ctx context.Context, db *sql.DB, activeOnly bool) ([]Move, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, lo, hi, source, target, tables, phase, active, COALESCE(error, ''), created_at, updated_at, token, verify, indexes
		FROM strata_shard.moves WHERE active OR NOT $1 ORDER BY id DESC`, activeOnly)
	if err != nil {
		return nil, fmt.Errorf("shard: moves: %w", err)
	}
	defer rows.Close()
	var out []Move
	for rows.Next() {
		var m Move
		var tj, vj, ij []byte
		if err := rows.Scan(&m.ID, &m.VShards.Lo, &m.VShards.Hi, &m.Source, &m.Target, &tj, &m.Phase, &m.Active, &m.Error, &m.CreatedAt, &m.UpdatedAt, &m.Token, &vj, &ij); err != nil {
			return nil, fmt.Errorf("shard: moves: %w", err)
		}
		if err := json.Unmarshal(tj, &m.Tables); err != nil {
			return nil, fmt.Errorf("shard: move %d: tables: %w", m.ID, err)
		}
		if vj != nil {
			if err := json.Unmarshal(vj, &m.Verify); err != nil {
				return nil, fmt.Errorf("shard: move %d: verify: %w", m.ID, err)
			}
		}
		if ij != nil {
			if err := json.Unmarshal(ij, &m.DeferredIndexes); err != nil {
				return nil, fmt.Errorf("shard: move %d: deferred indexes: %w", m.ID, err)
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("shard: moves: %w", err)
	}
	return out, nil
}

// loadMove reads move id.
func loadMove(ctx context.Context, db *sql.DB, id int64) (*Move, error) {
	all, err := Moves(ctx, db, false)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].ID == id {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("%w: no move %d", ErrBadMove, id)
}

// MoveConfig tunes RunMove. The zero value means the defaults.
type MoveConfig struct {
	// Prepare creates the moving tables on the target (with their
	// indexes: on a fresh target the mover takes the secondary ones out
	// for the copy and builds them after it, see DeferredIndex); nil
	// means they must exist already. It must be idempotent: a resumed
	// move runs it again.
	Prepare func(ctx context.Context, target *sql.DB) error
	// Check, if set, runs before anything changes (the pre-flight) and
	// returns every problem at once; a non-nil error stops the move in
	// phase planned.
	Check func(ctx context.Context, source, target *sql.DB, m *Move, n int) error
	// Until is the phase RunMove stops at; "" means PhaseCutOver (the
	// whole move but the cleanup, which waits for the user's soak).
	Until string
	// CatchUpLag is the lag under which the move counts as caught up;
	// 0 means DefaultCatchUpLag.
	CatchUpLag int64
	// Verify tunes the comparison of each moving table after the catch-up;
	// a zero Retries means DefaultMoveVerifyRetries (writes go on while it
	// runs, so a row may differ for as long as the stream's lag).
	Verify VerifyConfig
	// ReadShares are the read migration's steps, in percent of the moving
	// virtual shards' reads sent to the target, increasing, each in
	// 1..MaxReadShare; nil means DefaultReadShares.
	ReadShares []int
	// ReadDwell is how long each read share holds before the next; 0
	// means DefaultReadDwell.
	ReadDwell time.Duration
	// MaxReadLag bounds the target's lag while it takes reads: over it,
	// the share falls to 0 until the lag is back under; 0 means
	// DefaultMaxReadLag.
	MaxReadLag time.Duration
	// Cutover tunes the cutover; CutoverAttempts is how many times an
	// aborted cutover is tried (0 means DefaultCutoverAttempts), a second
	// apart.
	Cutover         CutoverConfig
	CutoverAttempts int
	// Poll is how often progress and lag are read; 0 means 500 ms.
	Poll time.Duration
	// OnProgress, if set, receives progress while the move copies and
	// while reads migrate.
	OnProgress func(Progress)
	// OnCutover, if set, receives the report of each cutover attempt.
	OnCutover func(*CutoverReport, error)
	// Logger receives the phases; nil means slog.Default().
	Logger *slog.Logger
	// Hook, if set, is called before each phase's work with the phase's
	// name, and passed on to the cutover (Cutover.Hook) unless that has
	// its own: for observers, and for fault tests that kill the process
	// there.
	Hook func(step string)
}

// Defaults of MoveConfig.
const (
	// DefaultMoveVerifyRetries: rows that differ are read again this many
	// times, DefaultVerifyRetryWait apart, before they count.
	DefaultMoveVerifyRetries = 12
	// DefaultReadDwell is how long each read share holds.
	DefaultReadDwell = 30 * time.Second
	// DefaultMaxReadLag bounds the target's lag while it takes reads.
	DefaultMaxReadLag = time.Second
	// DefaultCutoverAttempts is how many times RunMove tries the cutover.
	DefaultCutoverAttempts = 3
)

// DefaultReadShares returns the guide's percentage rollout of reads (seed:
// Sharding, read migration: 1, 10, 50, 100 %).
func DefaultReadShares() []int { return []int{1, 10, 50, 100} }

// check validates c and fills in the defaults.
func (c *MoveConfig) check() error {
	if c.CatchUpLag <= 0 {
		c.CatchUpLag = DefaultCatchUpLag
	}
	if c.Poll <= 0 {
		c.Poll = 500 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Until == "" {
		c.Until = PhaseCutOver
	}
	if !slices.Contains(forwardPhases, c.Until) {
		return fmt.Errorf("%w: Until %q is not a phase RunMove reaches (%s)", ErrBadMove, clipText(c.Until), strings.Join(forwardPhases, ", "))
	}
	if c.Verify.Retries == 0 {
		c.Verify.Retries = DefaultMoveVerifyRetries
	}
	if c.ReadShares == nil {
		c.ReadShares = DefaultReadShares()
	}
	for i, s := range c.ReadShares {
		if s < 1 || s > MaxReadShare || (i > 0 && s <= c.ReadShares[i-1]) {
			return fmt.Errorf("%w: read shares %v: want increasing percentages in 1..%d", ErrBadMove, c.ReadShares, MaxReadShare)
		}
	}
	if c.ReadDwell <= 0 {
		c.ReadDwell = DefaultReadDwell
	}
	if c.MaxReadLag <= 0 {
		c.MaxReadLag = DefaultMaxReadLag
	}
	if c.CutoverAttempts <= 0 {
		c.CutoverAttempts = DefaultCutoverAttempts
	}
	c.Cutover.setDefaults()
	if c.Cutover.Hook == nil {
		c.Cutover.Hook = c.Hook
	}
	return nil
}

// forwardPhases are the phases RunMove goes through, in order.
var forwardPhases = []string{PhasePlanned, PhasePrepared, PhaseCopying, PhaseCatchingUp, PhaseVerified, PhaseReading, PhaseCutOver}

// Progress is a running move's state: the rows written on the target so
// far (from its statistics), the tables whose initial copy is done, the
// lag in bytes of WAL (-1 until the replication slot exists) and, while
// reads migrate, the share of reads on the target and its lag in time.
type Progress struct {
	Phase      string
	RowsCopied int64
	TablesDone int
	Tables     int
	LagBytes   int64
	ReadShare  int
	Lag        time.Duration
	Elapsed    time.Duration
}

// RunMove takes move id from its recorded phase as far as cfg.Until (by
// default cut-over: copied, caught up, verified, reads migrated, and
// ownership handed to the target), recording each phase as it completes.
// It is safe to run again after a crash or an error anywhere: every step
// checks what exists first, and a cutover interrupted midway is finished
// or undone.
func RunMove(ctx context.Context, db *sql.DB, id int64, cfg MoveConfig) (*Move, error) {
	if err := cfg.check(); err != nil {
		return nil, err
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
	if !mv.Active {
		return mv, fmt.Errorf("%w: move %d is no longer active (%s)", ErrBadMove, id, mv.Phase)
	}
	if mv.Phase != PhaseCuttingOver && !slices.Contains(forwardPhases, mv.Phase) {
		return mv, fmt.Errorf("%w: move %d is %s: run its rollback or cleanup again instead", ErrBadMove, id, mv.Phase)
	}
	m, err := Load(ctx, db)
	if err != nil {
		return nil, err
	}
	src, dst, closeDBs, err := openEnds(ctx, m, mv)
	if err != nil {
		return mv, recordError(ctx, db, mv, err)
	}
	defer closeDBs()
	if mv.Phase == PhaseCuttingOver {
		if err := recoverCutover(ctx, db, m, mv, src, dst); err != nil {
			return mv, recordError(ctx, db, mv, err)
		}
	}
	n := len(m.Owners)
	steps := []struct {
		from, to string
		run      func() error
	}{
		{PhasePlanned, PhasePrepared, func() error { return prepare(ctx, db, src, dst, m, mv, cfg) }},
		{PhasePrepared, PhaseCopying, func() error { return startCopy(ctx, src, dst, m, mv) }},
		{PhaseCopying, PhaseCatchingUp, func() error { return copyAndIndex(ctx, db, src, dst, mv, cfg) }},
		{PhaseCatchingUp, PhaseVerified, func() error { return verifyMove(ctx, db, src, dst, mv, n, cfg) }},
		{PhaseVerified, PhaseReading, func() error { return nil }},
		{PhaseReading, PhaseCutOver, func() error { return migrate(ctx, db, src, dst, mv, cfg) }},
	}
	until := slices.Index(forwardPhases, cfg.Until)
	for _, st := range steps {
		if i := slices.Index(forwardPhases, mv.Phase); i >= until || i < 0 {
			break // there already (or past it)
		}
		if mv.Phase != st.from {
			continue
		}
		cfg.Logger.Info("shard: move phase", "move", mv.ID, "phase", st.from, "next", st.to)
		if cfg.Hook != nil {
			cfg.Hook(st.from)
		}
		if err := st.run(); err != nil {
			return mv, recordError(ctx, db, mv, err)
		}
		if mv.Phase == st.to {
			continue // the step recorded it (the cutover)
		}
		if err := setPhase(ctx, db, mv, st.to); err != nil {
			return mv, err
		}
	}
	return mv, nil
}

// recoverCutover finishes or undoes the cutover a crash interrupted (see
// recoverSwitch): cut-over if the map had flipped, else catching-up (the
// verify runs again for any table not verified clean before, and the
// cutover after it).
func recoverCutover(ctx context.Context, db *sql.DB, m *Map, mv *Move, src, dst *sql.DB) error {
	fwd, back := streams(mv, src, dst)
	flipped, err := recoverSwitch(ctx, db, m, mv, fwd, back, shardIndex(m, mv.Target))
	if err != nil {
		return fmt.Errorf("recover the interrupted cutover: %w", err)
	}
	if flipped {
		return setPhase(ctx, db, mv, PhaseCutOver)
	}
	return setPhase(ctx, db, mv, PhaseCatchingUp)
}

// ErrMoveBusy: another process is running the same move.
var ErrMoveBusy = errors.New("shard: the move is being run by another process")

// moveLockSpace is the first key of the advisory locks that keep one
// process at a time on a move ("STRAMOVE" folded to 32 bits).
const moveLockSpace = 0x53544d56

// lockMove takes move id's advisory lock on a connection of its own, held
// until unlock; a move another process runs is ErrMoveBusy.
func lockMove(ctx context.Context, db *sql.DB, id int64) (unlock func(), err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("shard: move %d: %w", id, err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, int32(moveLockSpace), int32(id)).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("shard: move %d: lock: %w", id, err)
	}
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("%w: move %d", ErrMoveBusy, id)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1, $2)`, int32(moveLockSpace), int32(id))
		conn.Close()
	}, nil
}

// openEnds opens the source's and the target's primaries.
func openEnds(ctx context.Context, m *Map, mv *Move) (src, dst *sql.DB, closeBoth func(), err error) {
	url := func(name string) (string, error) {
		for _, s := range m.Shards {
			if s.Name == name {
				return s.URL, nil
			}
		}
		return "", fmt.Errorf("%w: shard %s of move %d is not in the map", ErrBadMove, name, mv.ID)
	}
	su, err := url(mv.Source)
	if err != nil {
		return nil, nil, nil, err
	}
	du, err := url(mv.Target)
	if err != nil {
		return nil, nil, nil, err
	}
	if src, err = sql.Open("pgx", su); err != nil {
		return nil, nil, nil, &Error{Shard: mv.Source, Err: err}
	}
	if dst, err = sql.Open("pgx", du); err != nil {
		src.Close()
		return nil, nil, nil, &Error{Shard: mv.Target, Err: err}
	}
	for _, e := range []struct {
		db   *sql.DB
		name string
	}{{src, mv.Source}, {dst, mv.Target}} {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a host that drops packets
		err := e.db.PingContext(pctx)
		cancel()
		if err != nil {
			src.Close()
			dst.Close()
			return nil, nil, nil, &Error{Shard: e.name, Err: err}
		}
	}
	return src, dst, func() { src.Close(); dst.Close() }, nil
}

// setPhase records mv's new phase (and clears its error).
func setPhase(ctx context.Context, db *sql.DB, mv *Move, phase string) error {
	if err := db.QueryRowContext(ctx, `UPDATE strata_shard.moves SET phase = $2, error = NULL, updated_at = now() WHERE id = $1 RETURNING updated_at`,
		mv.ID, phase).Scan(&mv.UpdatedAt); err != nil {
		return fmt.Errorf("shard: move %d: record phase %s: %w", mv.ID, phase, err)
	}
	mv.Phase, mv.Error = phase, ""
	return nil
}

// recordError keeps a phase's failure on the move's row, and returns it.
func recordError(ctx context.Context, db *sql.DB, mv *Move, err error) error {
	msg := err.Error()
	if len(msg) > 1000 {
		cut := 1000
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	mv.Error = msg
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, rerr := db.ExecContext(ctx, `UPDATE strata_shard.moves SET error = $2, updated_at = now() WHERE id = $1`, mv.ID, msg); rerr != nil {
		return errors.Join(err, fmt.Errorf("shard: move %d: record the error: %w", mv.ID, rerr))
	}
	return fmt.Errorf("shard: move %d (%s): %w", mv.ID, mv.Phase, err)
}

// prepare runs the pre-flight, then creates the schema on the target and
// leaves out the indexes the copy would be slower with (deferIndexes).
func prepare(ctx context.Context, db, src, dst *sql.DB, m *Map, mv *Move, cfg MoveConfig) error {
	if cfg.Check != nil {
		if err := cfg.Check(ctx, src, dst, mv, len(m.Owners)); err != nil {
			return err
		}
	}
	if cfg.Prepare != nil {
		if err := cfg.Prepare(ctx, dst); err != nil {
			return &Error{Shard: mv.Target, Err: fmt.Errorf("create the schema: %w", err)}
		}
	}
	if err := deferIndexes(ctx, db, dst, m, mv); err != nil {
		return fmt.Errorf("leave the indexes out of the copy: %w", err)
	}
	return nil
}

// copyAndIndex waits for the copy and the catch-up (awaitCopy), then
// builds the indexes left out of the copy and waits for the catch-up
// again (the builds hold the stream's writes).
func copyAndIndex(ctx context.Context, db, src, dst *sql.DB, mv *Move, cfg MoveConfig) error {
	if err := awaitCopy(ctx, src, dst, mv, cfg); err != nil {
		return err
	}
	start := time.Now()
	built, err := buildIndexes(ctx, db, dst, mv, cfg.Hook)
	if err != nil {
		return err
	}
	if built == 0 {
		return nil
	}
	cfg.Logger.Info("shard: move built the indexes left out of the copy", "move", mv.ID, "indexes", built, "elapsed", time.Since(start).Round(time.Millisecond))
	return awaitCopy(ctx, src, dst, mv, cfg)
}

// startCopy creates the forward stream (the publication on the source,
// the subscription with its slot on the target, copying the rows first),
// unless it exists (a resumed move).
func startCopy(ctx context.Context, src, dst *sql.DB, m *Map, mv *Move) error {
	fwd, _ := streams(mv, src, dst)
	if err := fwd.publish(ctx, mv, len(m.Owners), true); err != nil {
		return err
	}
	return fwd.subscribe(ctx, m, true, false)
}

// awaitCopy waits until every table's initial copy is done and the lag is
// under the bound, reporting progress.
func awaitCopy(ctx context.Context, src, dst *sql.DB, mv *Move, cfg MoveConfig) error {
	start := time.Now()
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	for {
		p, err := copyProgress(ctx, src, dst, mv)
		if err != nil {
			return err
		}
		p.Elapsed = time.Since(start)
		if cfg.OnProgress != nil {
			cfg.OnProgress(p)
		}
		if p.TablesDone == p.Tables && p.LagBytes >= 0 && p.LagBytes <= cfg.CatchUpLag {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// MoveProgress reads move id's progress: for a move whose forward stream
// runs (copying to cut-over-started), from its subscription on the target
// and its slot on the source, with its read share from the map; for
// another, only its phase.
func MoveProgress(ctx context.Context, db *sql.DB, id int64) (*Move, Progress, error) {
	mv, err := loadMove(ctx, db, id)
	if err != nil {
		return nil, Progress{}, err
	}
	p := Progress{Phase: mv.Phase, Tables: len(mv.Tables), LagBytes: -1}
	switch mv.Phase {
	case PhaseCopying, PhaseCatchingUp, PhaseVerified, PhaseReading, PhaseCuttingOver:
	default:
		return mv, p, nil
	}
	m, err := Load(ctx, db)
	if err != nil {
		return mv, p, err
	}
	src, dst, closeBoth, err := openEnds(ctx, m, mv)
	if err != nil {
		return mv, p, err
	}
	defer closeBoth()
	p, err = copyProgress(ctx, src, dst, mv)
	p.Elapsed = time.Since(mv.UpdatedAt)
	if i := moveIndex(m, mv); i >= 0 {
		p.ReadShare = m.Moves[i].ReadShare
	}
	return mv, p, err
}

// copyProgress reads a copying move's progress: tables in state ready on
// the target's subscription, rows so far, and the slot's lag on the
// source (-1 while the slot is not there yet).
func copyProgress(ctx context.Context, src, dst *sql.DB, mv *Move) (Progress, error) {
	p := Progress{Phase: mv.Phase, Tables: len(mv.Tables), LagBytes: -1}
	// The moving tables only: the marker table is replicated too.
	if err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE r.srsubstate = 'r') FROM pg_subscription_rel r
		JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1 AND r.srrelid <> to_regclass($2)`, mv.name(), markerTable).Scan(&p.TablesDone); err != nil {
		return p, &Error{Shard: mv.Target, Err: fmt.Errorf("read the subscription's state: %w", err)}
	}
	for _, t := range mv.Tables {
		// Rows written into the table on the target, from its statistics
		// (counting the rows would scan them on every poll; the
		// statistics lag by up to a second and count all writes).
		var n int64
		if err := dst.QueryRowContext(ctx, `SELECT COALESCE(SUM(n_tup_ins), 0)::bigint FROM pg_stat_user_tables
			WHERE relid = to_regclass($1)`, pgx.Identifier{t.Name}.Sanitize()).Scan(&n); err != nil {
			return p, &Error{Shard: mv.Target, Err: fmt.Errorf("rows of %s: %w", t.Name, err)}
		}
		p.RowsCopied += n
	}
	// PostgreSQL keeps a subscription's failures in its server log and
	// counts them here; a copy or apply that fails retries for ever.
	var syncErrs, applyErrs int64
	if err := dst.QueryRowContext(ctx, `SELECT COALESCE(sum(sync_error_count), 0)::bigint, COALESCE(sum(apply_error_count), 0)::bigint
		FROM pg_stat_subscription_stats WHERE subname = $1`, mv.name()).Scan(&syncErrs, &applyErrs); err != nil {
		return p, &Error{Shard: mv.Target, Err: fmt.Errorf("read the subscription's errors: %w", err)}
	}
	if syncErrs+applyErrs > 0 {
		return p, &Error{Shard: mv.Target, Err: fmt.Errorf("%w: subscription %s failed %d times copying and %d times applying changes; the reason is in the target's server log (rows of the moving virtual shards already on the target, say)",
			ErrReplication, mv.name(), syncErrs, applyErrs)}
	}
	err := src.QueryRowContext(ctx, `SELECT COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), -1)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, mv.name()).Scan(&p.LagBytes)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return p, &Error{Shard: mv.Source, Err: fmt.Errorf("read the slot's lag: %w", err)}
	}
	return p, nil
}
