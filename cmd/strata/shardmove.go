package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// Online resharding from the command line (issue 14): strata shard add,
// move, resume and status, on the shard package's mover. A move runs in
// the foreground of move --wait or resume --wait; every phase is recorded
// in the main database's control schema, so an interrupted run resumes
// where it stopped.

// Bounds of the move commands.
const (
	// shardMoveTimeout bounds each command's work but a move's run:
	// reading the map, registering a shard, recording a move, status.
	shardMoveTimeout = 30 * time.Second
	// moveProgressTimeout bounds reading one move's progress for status
	// (it opens the move's source and target).
	moveProgressTimeout = 10 * time.Second
	// meterEvery is how often a move's progress is printed as a plain
	// line when standard error is not a terminal and nothing changed.
	meterEvery = 10 * time.Second
	// meterBar is the width of the progress bar, in characters.
	meterBar = 20
	// undefinedTableCode is PostgreSQL's SQLSTATE for a missing relation.
	undefinedTableCode = "42P01"
)

// shardNamePattern is what --name accepts: a name that reads well in
// messages, metric labels and map listings.
var shardNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// shardMoveFlags are the flags of strata shard add, move, resume and
// status (each command uses its own).
type shardMoveFlags struct {
	db   string // the main database
	json bool

	shardURL, name string // add
	vshards, to    string // move
	wait           bool   // move, resume, rollback
	id             int64  // resume, rollback, cleanup
	all            bool   // status

	// move and resume: the read migration and the cutover.
	until      string
	readSteps  string
	readDwell  time.Duration
	maxReadLag time.Duration
	pause      time.Duration
	// cleanup
	soak  time.Duration
	batch int
}

// newShardMoveCommands returns strata shard add, move, resume and status.
func newShardMoveCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newShardAdd(g), newShardMove(g), newShardResume(g), newShardStatus(g), newShardRollback(g), newShardCleanup(g)}
}

// runFlags registers the flags of a move's run: the read migration's
// steps, dwell and lag bound, and the cutover's pause.
func (f *shardMoveFlags) runFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.until, "until", shard.PhaseCutOver, "stop once the move reaches this phase: catching-up, verified, reading or cut-over")
	cmd.Flags().StringVar(&f.readSteps, "read-steps", "1,10,50,100", "the read migration's steps: percentages of the moving virtual shards' reads sent to the target, increasing")
	cmd.Flags().DurationVar(&f.readDwell, "read-dwell", shard.DefaultReadDwell, "how long each read step holds before the next")
	cmd.Flags().DurationVar(&f.maxReadLag, "max-read-lag", shard.DefaultMaxReadLag, "reads go to the target only while its replication lag is under this")
	cmd.Flags().DurationVar(&f.pause, "pause", shard.DefaultPause, "the cutover's bound on the write pause; past it the cutover aborts and is tried again")
}

// faultEnv names a step at which a move command kills itself with
// SIGKILL: fault tests use it to stop a mover exactly where kill -9 might
// (a phase's name, or a cutover step: fenced, slot-made, flipped; or
// delete). Unset, nothing happens.
const faultEnv = "STRATA_FAULT_KILL_AT"

// faultHook is the hook that honours faultEnv, or nil when it is unset.
func faultHook() func(string) {
	at := os.Getenv(faultEnv)
	if at == "" {
		return nil
	}
	return func(step string) {
		if step == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}

// runConfig is the move's configuration from the run flags.
func (f *shardMoveFlags) runConfig() (shard.MoveConfig, error) {
	cfg := shard.MoveConfig{Until: f.until}
	switch f.until {
	case shard.PhaseCatchingUp, shard.PhaseVerified, shard.PhaseReading, shard.PhaseCutOver:
	default:
		return cfg, usageError{fmt.Errorf("--until %s: want one of catching-up, verified, reading, cut-over", quote(f.until))}
	}
	for _, part := range strings.Split(f.readSteps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(part), "%")))
		if err != nil || n < 1 || n > shard.MaxReadShare || (len(cfg.ReadShares) > 0 && n <= cfg.ReadShares[len(cfg.ReadShares)-1]) {
			return cfg, usageError{fmt.Errorf("--read-steps %s: want increasing percentages from 1 to %d, separated by commas (like 1,10,50,100)", quote(f.readSteps), shard.MaxReadShare)}
		}
		cfg.ReadShares = append(cfg.ReadShares, n)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--read-dwell", f.readDwell}, {"--max-read-lag", f.maxReadLag}, {"--pause", f.pause}} {
		if d.v <= 0 {
			return cfg, usageError{fmt.Errorf("%s %v: want a positive duration (like 500ms or 30s)", d.name, d.v)}
		}
	}
	cfg.ReadDwell, cfg.MaxReadLag, cfg.Cutover.Pause = f.readDwell, f.maxReadLag, f.pause
	cfg.Hook = faultHook()
	return cfg, nil
}

// mainFlags registers --db and --json.
func (f *shardMoveFlags) mainFlags(cmd *cobra.Command, jsonHelp string) {
	cmd.Flags().StringVar(&f.db, "db", "", mainDBHelp+" (required)")
	cmd.Flags().BoolVar(&f.json, "json", false, jsonHelp)
}

func newShardAdd(g *globals) *cobra.Command {
	f := &shardMoveFlags{}
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Register an empty PostgreSQL primary as a new shard",
		Long: `Register --shard, an empty PostgreSQL database, as a new shard in the shard
map of --db: the storefront's shard schema is created on it first, then a
new map epoch names it. It owns no virtual shards until a move gives it
some (strata shard move). --name defaults to the next free shardN.`,
		Example: `  strata shard add --db "$M" --shard postgres://strata@127.0.0.1:55436/strata`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.add(cmd.Context(), g.stdout)
		},
	}
	f.mainFlags(cmd, "print the new epoch and shard as JSON")
	cmd.Flags().StringVar(&f.shardURL, "shard", "", "the new shard's PostgreSQL database, empty: postgres://USER@HOST:PORT/DB (required)")
	cmd.Flags().StringVar(&f.name, "name", "", "the new shard's name in the map (default: the next free shardN)")
	return cmd
}

func newShardMove(g *globals) *cobra.Command {
	f := &shardMoveFlags{}
	cmd := &cobra.Command{
		Use:   "move",
		Short: "Move a range of virtual shards to another shard",
		Long: `Record a move of the virtual shards --vshards (LO-HI, one owner's) to the
shard --to. With --wait it runs at once, in the foreground, with a
progress bar on a terminal: pre-flight checks (every problem reported
before anything changes), the schema on the target; PostgreSQL's logical
replication copies the moving rows and streams the source's changes
(catching-up); every table is verified row by row; reads move to the
target by --read-steps, each held --read-dwell while the target's lag is
under --max-read-lag; then the cutover fences writes (every running
strata serve must apply it), waits for the target, hands it the virtual
shards and starts replication back to the source, within --pause. It
exits 0 in phase cut-over, the map consistent again. The source keeps its
copies (kept current by the replication back) until strata shard cleanup;
strata shard rollback undoes the move until then. Without --wait the move
is only recorded; strata shard resume runs it. An interrupted move
resumes where it stopped.`,
		Example: `  strata shard move --db "$M" --vshards 0-499 --to shard2 --wait`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.move(cmd.Context(), g)
		},
	}
	f.mainFlags(cmd, "print the move as JSON")
	cmd.Flags().StringVar(&f.vshards, "vshards", "", "the virtual shards to move, LO-HI inclusive (or one N) (required)")
	cmd.Flags().StringVar(&f.to, "to", "", "the shard to move them to, by name in the map (required)")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "run the move now, in the foreground, to the cutover")
	f.runFlags(cmd)
	return cmd
}

func newShardResume(g *globals) *cobra.Command {
	f := &shardMoveFlags{}
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Run a recorded move from its last recorded phase",
		Long: `Run move --id (or the only active move) from its last recorded phase, in
the foreground: a move to its cutover (as strata shard move --wait), a
rollback or a cleanup that was interrupted to its end. A cutover that a
crash interrupted is finished if the map had flipped, undone otherwise.
--wait is required: the move runs in this command's foreground.`,
		Example: `  strata shard resume --db "$M" --id 1 --wait`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.resume(cmd.Context(), g, cmd.Flags().Changed("id"))
		},
	}
	f.mainFlags(cmd, "print the move as JSON when it stops")
	cmd.Flags().Int64Var(&f.id, "id", 0, "the move to run (default: the only active move)")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "run the move in the foreground to its end (required)")
	f.runFlags(cmd)
	return cmd
}

func newShardRollback(g *globals) *cobra.Command {
	f := &shardMoveFlags{}
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Undo a move, before or after its cutover",
		Long: `Undo move --id (or the only active move), at any phase before its cleanup.
Before the cutover: reads go back to the owner, the replication and the
target's copies are dropped. After it: writes are fenced again and the
virtual shards handed back to the source over the replication that ran
back to it since the cutover (within --pause, as a cutover), the copies are
verified row by row, then the replication and the target's copies are
dropped. --wait is required: it runs in this command's foreground, and
exits 0 once the move is rolled back and the map consistent. Interrupted,
strata shard resume (or rollback again) finishes it.`,
		Example: `  strata shard rollback --db "$M" --id 1 --wait`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.rollback(cmd.Context(), g, cmd.Flags().Changed("id"))
		},
	}
	f.mainFlags(cmd, "print the move as JSON when it stops")
	cmd.Flags().Int64Var(&f.id, "id", 0, "the move to roll back (default: the only active move)")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "run the rollback in the foreground to its end (required)")
	cmd.Flags().DurationVar(&f.pause, "pause", shard.DefaultPause, "the bound on the write pause of the switch back; past it the rollback aborts, and can be run again")
	return cmd
}

func newShardCleanup(g *globals) *cobra.Command {
	f := &shardMoveFlags{}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Finish a cut-over move: drop its replication and the source's copies",
		Long: `Finish move --id (or the only active move), cut over at least --soak ago:
drop the replication back to the source (after this the move can no longer
be rolled back), then delete the moved rows from the source in small
batches (--batch shard keys per DELETE) that do not hold up the service.
Interrupted, it resumes where it stopped when run again.`,
		Example: `  strata shard cleanup --db "$M" --id 1 --soak 1h`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.cleanup(cmd.Context(), g, cmd.Flags().Changed("id"))
		},
	}
	f.mainFlags(cmd, "print the move as JSON when it stops")
	cmd.Flags().Int64Var(&f.id, "id", 0, "the move to clean up (default: the only active move)")
	cmd.Flags().DurationVar(&f.soak, "soak", 0, "refuse a move cut over less than this long ago")
	cmd.Flags().IntVar(&f.batch, "batch", shard.DefaultDeleteBatch, "shard keys deleted per statement")
	return cmd
}

func newShardStatus(g *globals) *cobra.Command {
	f := &shardMoveFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the moves of virtual shards and their progress",
		Long: `Show the active moves recorded in --db (with --all, finished ones too):
their virtual shards, source, target, phase and last error, and for a move
between its copy and its cutover the rows copied, the tables whose initial
copy is done, the replication lag and the share of reads on the target.
--json prints {"moves": [...]}, with each table's verify and the rows it
found different.`,
		Example: `  strata shard status --db "$M"`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.status(cmd.Context(), g.stdout)
		},
	}
	f.mainFlags(cmd, `print {"moves": [...]} as JSON`)
	cmd.Flags().BoolVar(&f.all, "all", false, "show finished moves too")
	return cmd
}

// requireDB refuses a missing --db before the other flags are looked at.
func (f *shardMoveFlags) requireDB() error {
	if f.db == "" {
		return usageError{errors.New("--db is required: " + mainDBHelp)}
	}
	return nil
}

// openMain reads the shard map from --db with strata shard map's loader
// (and its messages for a bad, unreachable or mapless database), then
// opens the main database for the command's own statements.
func (f *shardMoveFlags) openMain(ctx context.Context) (*sql.DB, *shard.Map, error) {
	return (&shardMapFlags{db: f.db}).open(ctx)
}

// resumeHint is the command that runs move id again.
func (f *shardMoveFlags) resumeHint(id int64) string {
	return fmt.Sprintf("strata shard resume --db %s --id %d --wait", hidePasswords(f.db), id)
}

// cleanError words err for a message: one line, passwords masked, cut
// short.
func cleanError(err error) string { return clipError(maskSettings(joinLines(err.Error()))) }

// add is strata shard add.
func (f *shardMoveFlags) add(parent context.Context, stdout io.Writer) error {
	if err := f.checkAdd(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(parent, shardMoveTimeout)
	defer cancel()
	db, m, err := f.openMain(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if f.name == "" {
		f.name = nextShardName(m)
	}
	if err := f.checkNewShard(m); err != nil {
		return err
	}
	if err := f.prepareNewShard(ctx); err != nil {
		return err
	}
	nm, err := shard.AddShard(ctx, db, shard.Shard{Name: f.name, URL: f.shardURL})
	if errors.Is(err, shard.ErrBadMap) { // added by someone else meanwhile
		return usageError{fmt.Errorf("--shard %s: %s", quote(hidePasswords(f.shardURL)), cleanError(err))}
	}
	if err != nil {
		return fmt.Errorf("register shard %s: %s", f.name, cleanError(err))
	}
	added := shardJSON{Name: f.name, URL: hidePasswords(f.shardURL)}
	if f.json {
		return writeJSON(stdout, struct {
			Epoch int64     `json:"epoch"`
			Shard shardJSON `json:"shard"`
		}{nm.Epoch, added})
	}
	_, err = fmt.Fprintf(stdout, "added shard %s (%s) at map epoch %d; it owns no virtual shards yet: strata shard move --db %s --vshards LO-HI --to %s\n",
		added.Name, added.URL, nm.Epoch, hidePasswords(f.db), added.Name)
	return err
}

// checkAdd checks add's flags before anything connects.
func (f *shardMoveFlags) checkAdd() error {
	if err := f.requireDB(); err != nil {
		return err
	}
	if f.shardURL == "" {
		return usageError{errors.New("--shard is required: the new shard's empty PostgreSQL database (postgres://USER@HOST:PORT/DB)")}
	}
	if !strings.Contains(f.shardURL, "://") {
		// net/url finds no user information in user:password@host/db.
		return usageError{fmt.Errorf("--shard %s: not a URL: a shard is a PostgreSQL database (want postgres://USER@HOST:PORT/DB)", quote(hidePasswords(f.shardURL)))}
	}
	if _, err := postgresURL("--shard", f.shardURL, "a shard is a PostgreSQL database"); err != nil {
		return usageError{err}
	}
	if f.name != "" && !shardNamePattern.MatchString(f.name) {
		return usageError{fmt.Errorf("--name %s: want 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit", quote(f.name))}
	}
	return nil
}

// nextShardName is the first shardN (storefront.ShardName) the map does
// not use.
func nextShardName(m *shard.Map) string {
	for i := 0; ; i++ {
		n := storefront.ShardName(i)
		if !slices.ContainsFunc(m.Shards, func(s shard.Shard) bool { return s.Name == n }) {
			return n
		}
	}
}

// checkNewShard refuses a name the map has, and a database the map or
// --db already is (same host, port and database, however spelled).
func (f *shardMoveFlags) checkNewShard(m *shard.Map) error {
	id := pgIdentity(f.shardURL)
	if id == pgIdentity(f.db) {
		return usageError{fmt.Errorf("--shard %s: the same database as the main database (--db); a shard needs a database of its own", quote(hidePasswords(f.shardURL)))}
	}
	for _, s := range m.Shards {
		if s.Name == f.name {
			return usageError{fmt.Errorf("--name %s: the map (epoch %d) has a shard of that name already", quote(f.name), m.Epoch)}
		}
		if pgIdentity(s.URL) == id {
			return usageError{fmt.Errorf("--shard %s: the same database as shard %s, in the map (epoch %d) already", quote(hidePasswords(f.shardURL)), s.Name, m.Epoch)}
		}
	}
	return nil
}

// prepareNewShard reaches the new shard, creates the storefront's shard
// schema on it and checks that its sharded tables are empty (a move's
// copy would collide with rows already there).
func (f *shardMoveFlags) prepareNewShard(ctx context.Context) error {
	u, err := postgresURL("--shard", f.shardURL, "a shard is a PostgreSQL database")
	if err != nil {
		return usageError{err}
	}
	sdb, err := sql.Open("pgx", withConnectTimeout(u))
	if err != nil {
		return usageError{fmt.Errorf("--shard %s: %s", quote(hidePasswords(f.shardURL)), bounded(maskSettings(err.Error())))}
	}
	defer sdb.Close()
	if err := sdb.PingContext(ctx); err != nil {
		return fmt.Errorf("cannot reach the new shard at %s: %s", display(u), bounded(maskSettings(joinLines(err.Error()))))
	}
	if err := storefront.PrepareShard(ctx, sdb); err != nil {
		return fmt.Errorf("create the shard schema on %s (a new shard needs an empty database): %s", display(u), cleanError(err))
	}
	for _, t := range storefront.ShardTables {
		var has bool
		if err := sdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{t.Name}.Sanitize()+`)`).Scan(&has); err != nil {
			return fmt.Errorf("read table %s on %s: %s", t.Name, display(u), cleanError(err))
		}
		if has {
			return usageError{fmt.Errorf("--shard %s: its table %s has rows already; a new shard must be an empty database", quote(hidePasswords(f.shardURL)), t.Name)}
		}
	}
	return nil
}

// move is strata shard move.
func (f *shardMoveFlags) move(parent context.Context, g *globals) error {
	if err := f.requireDB(); err != nil {
		return err
	}
	switch {
	case f.vshards == "":
		return usageError{errors.New("--vshards is required: the virtual shards to move, LO-HI (strata shard map shows who owns which)")}
	case f.to == "":
		return usageError{errors.New("--to is required: the name of the shard to move them to (strata shard map lists them)")}
	}
	if _, err := f.runConfig(); err != nil { // before anything is recorded
		return err
	}
	mv, db, err := f.plan(parent)
	if err != nil {
		return err
	}
	defer db.Close()
	if !f.wait {
		if f.json {
			return writeJSON(g.stdout, moveView(mv, nil, ""))
		}
		_, err := fmt.Fprintf(g.stdout, "move %d: virtual shards %s from %s to %s, %s; to run it: %s\n",
			mv.ID, mv.VShards, mv.Source, mv.Target, mv.Phase, f.resumeHint(mv.ID))
		return err
	}
	return f.runMove(parent, g, db, mv.ID)
}

// plan checks --vshards and --to against the map and records the move.
// It returns the main database, open, with the move.
func (f *shardMoveFlags) plan(parent context.Context) (*shard.Move, *sql.DB, error) {
	ctx, cancel := context.WithTimeout(parent, shardMoveTimeout)
	defer cancel()
	db, m, err := f.openMain(ctx)
	if err != nil {
		return nil, nil, err
	}
	mv, err := f.planIn(ctx, db, m)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return mv, db, nil
}

// planIn is plan on an open main database and its map.
func (f *shardMoveFlags) planIn(ctx context.Context, db *sql.DB, m *shard.Map) (*shard.Move, error) {
	if m.Kind != shard.KindHash {
		return nil, usageError{fmt.Errorf("--vshards: the map (epoch %d) is a %s map; only a hash map's virtual shards move", m.Epoch, m.Kind)}
	}
	r, err := shard.ParseVRange(f.vshards, len(m.Owners))
	if err != nil {
		return nil, usageError{fmt.Errorf("--vshards: %s", badMoveText(err))}
	}
	if !slices.ContainsFunc(m.Shards, func(s shard.Shard) bool { return s.Name == f.to }) {
		var names []string
		for _, s := range m.Shards {
			names = append(names, s.Name)
		}
		return nil, usageError{fmt.Errorf("--to %s: no shard of that name in the map (epoch %d: %s); register one first with strata shard add",
			quote(f.to), m.Epoch, strings.Join(names, ", "))}
	}
	if err := shard.Install(ctx, db); err != nil { // an older control schema has no moves table
		return nil, errors.New(cleanError(err))
	}
	mv, err := shard.PlanMove(ctx, db, r, f.to, storefront.ShardTables)
	switch {
	case errors.Is(err, shard.ErrBadMove):
		return nil, usageError{fmt.Errorf("--vshards %s --to %s: %s", r, f.to, badMoveText(err))}
	case errors.Is(err, shard.ErrMoveConflict):
		return nil, fmt.Errorf("%s; strata shard status --db %s shows it, and strata shard resume runs it", cleanError(err), hidePasswords(f.db))
	case errors.Is(err, shard.ErrNoMap):
		return nil, errors.New(cleanError(err))
	case err != nil:
		return nil, fmt.Errorf("record the move: %s", cleanError(err))
	}
	return mv, nil
}

// badMoveText is an error wrapping shard.ErrBadMove without the
// package's prefix, for a message that names the flag.
func badMoveText(err error) string {
	return strings.TrimPrefix(cleanError(err), shard.ErrBadMove.Error()+": ")
}

// resume is strata shard resume.
func (f *shardMoveFlags) resume(parent context.Context, g *globals, idGiven bool) error {
	if err := f.requireDB(); err != nil {
		return err
	}
	if idGiven && f.id <= 0 {
		return usageError{fmt.Errorf("--id %d: want a move's id, a positive number (strata shard status lists them)", f.id)}
	}
	if !f.wait {
		return usageError{errors.New("--wait is required: the move runs in the foreground of this command")}
	}
	if _, err := f.runConfig(); err != nil {
		return err
	}
	db, mv, err := f.openMove(parent, idGiven)
	if err != nil {
		return err
	}
	defer db.Close()
	switch mv.Phase {
	case shard.PhaseRollingBack, shard.PhaseSwitchingBack, shard.PhaseSwitchedBack, shard.PhaseUndoing:
		return f.runRollback(parent, g, db, mv.ID)
	case shard.PhaseCleaning:
		return f.runCleanup(parent, g, db, mv.ID)
	}
	return f.runMove(parent, g, db, mv.ID)
}

// openMove opens the main database and picks the move of --id (or the
// only active one).
func (f *shardMoveFlags) openMove(parent context.Context, idGiven bool) (*sql.DB, *shard.Move, error) {
	if idGiven && f.id <= 0 {
		return nil, nil, usageError{fmt.Errorf("--id %d: want a move's id, a positive number (strata shard status lists them)", f.id)}
	}
	ctx, cancel := context.WithTimeout(parent, shardMoveTimeout)
	defer cancel()
	db, _, err := f.openMain(ctx)
	if err != nil {
		return nil, nil, err
	}
	id, err := f.pickMove(ctx, db, idGiven)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	moves, err := listMoves(ctx, db, false)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	i := slices.IndexFunc(moves, func(m shard.Move) bool { return m.ID == id })
	if i < 0 { // gone meanwhile
		db.Close()
		return nil, nil, usageError{fmt.Errorf("--id %d: no such move (strata shard status --all lists them)", id)}
	}
	return db, &moves[i], nil
}

// rollback is strata shard rollback.
func (f *shardMoveFlags) rollback(parent context.Context, g *globals, idGiven bool) error {
	if err := f.requireDB(); err != nil {
		return err
	}
	if !f.wait {
		return usageError{errors.New("--wait is required: the rollback runs in the foreground of this command")}
	}
	if f.pause <= 0 {
		return usageError{fmt.Errorf("--pause %v: want a positive duration (like 500ms)", f.pause)}
	}
	db, mv, err := f.openMove(parent, idGiven)
	if err != nil {
		return err
	}
	defer db.Close()
	return f.runRollback(parent, g, db, mv.ID)
}

// cleanup is strata shard cleanup.
func (f *shardMoveFlags) cleanup(parent context.Context, g *globals, idGiven bool) error {
	if err := f.requireDB(); err != nil {
		return err
	}
	switch {
	case f.soak < 0:
		return usageError{fmt.Errorf("--soak %v: want zero or a positive duration (like 1h)", f.soak)}
	case f.batch < 1:
		return usageError{fmt.Errorf("--batch %d: want at least 1", f.batch)}
	}
	db, mv, err := f.openMove(parent, idGiven)
	if err != nil {
		return err
	}
	defer db.Close()
	return f.runCleanup(parent, g, db, mv.ID)
}

// runRollback rolls move id back in the foreground, then prints where it
// stopped.
func (f *shardMoveFlags) runRollback(ctx context.Context, g *globals, db *sql.DB, id int64) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	pause := f.pause
	if pause <= 0 {
		pause = shard.DefaultPause
	}
	cfg := shard.RollbackConfig{Cutover: shard.CutoverConfig{Pause: pause}, Cleanup: shard.CleanupConfig{Logger: log, Hook: faultHook()}}
	mv, err := shard.Rollback(ctx, db, id, cfg)
	if err != nil {
		return f.runError(ctx, mv, id, err, nil, "rollback")
	}
	return f.printDone(g, mv, nil)
}

// runCleanup cleans move id up in the foreground, then prints where it
// stopped.
func (f *shardMoveFlags) runCleanup(ctx context.Context, g *globals, db *sql.DB, id int64) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	cfg := shard.CleanupConfig{Soak: f.soak, Batch: f.batch, Logger: log, Hook: faultHook()}
	mv, err := shard.Cleanup(ctx, db, id, cfg)
	if err != nil {
		return f.runError(ctx, mv, id, err, nil, "cleanup")
	}
	return f.printDone(g, mv, nil)
}

// printDone prints where a run left the move.
func (f *shardMoveFlags) printDone(g *globals, mv *shard.Move, prog *shard.Progress) error {
	if f.json {
		return writeJSON(g.stdout, moveView(mv, prog, ""))
	}
	return writeMoveDone(g.stdout, mv, prog, hidePasswords(f.db))
}

// pickMove returns --id if it is an active move, or else the only active
// move.
func (f *shardMoveFlags) pickMove(ctx context.Context, db *sql.DB, idGiven bool) (int64, error) {
	moves, err := listMoves(ctx, db, !idGiven)
	if err != nil {
		return 0, err
	}
	if idGiven {
		i := slices.IndexFunc(moves, func(m shard.Move) bool { return m.ID == f.id })
		switch {
		case i < 0:
			return 0, usageError{fmt.Errorf("--id %d: no such move (strata shard status --all lists them)", f.id)}
		case !moves[i].Active:
			return 0, usageError{fmt.Errorf("--id %d: the move is no longer active (phase %s)", f.id, moves[i].Phase)}
		}
		return f.id, nil
	}
	switch len(moves) {
	case 0:
		return 0, usageError{errors.New("no active move to resume (strata shard status --all lists finished ones; strata shard move records one)")}
	case 1:
		return moves[0].ID, nil
	}
	var list []string
	for _, m := range moves {
		list = append(list, fmt.Sprintf("move %d (%s %s to %s, %s)", m.ID, m.VShards, m.Source, m.Target, m.Phase))
	}
	return 0, usageError{fmt.Errorf("%d active moves: choose one with --id: %s", len(moves), bounded(strings.Join(list, "; ")))}
}

// listMoves lists the recorded moves; a control schema from before moves
// existed has none.
func listMoves(ctx context.Context, db *sql.DB, activeOnly bool) ([]shard.Move, error) {
	moves, err := shard.Moves(ctx, db, activeOnly)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == undefinedTableCode {
		return nil, nil
	}
	if err != nil {
		return nil, errors.New(cleanError(err))
	}
	return moves, nil
}

// runMove runs move id in the foreground with the storefront's hooks,
// showing progress on standard error, then prints where it stopped.
func (f *shardMoveFlags) runMove(ctx context.Context, g *globals, db *sql.DB, id int64) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	cfg, err := f.runConfig()
	if err != nil {
		return err
	}
	meter := newMoveMeter(g.stderr, id)
	pf := &preflight{w: g.stderr}
	cfg.Prepare, cfg.Check, cfg.OnProgress, cfg.Logger = storefront.PrepareShard, pf.check, meter.update, log
	cfg.OnCutover = func(rep *shard.CutoverReport, err error) {
		meter.finish()
		if err == nil {
			fmt.Fprintf(g.stderr, "move %d cut over: writes paused %v, %d instance(s) fenced, map epoch %d\n", id, rep.Pause.Round(time.Millisecond), len(rep.Instances), rep.FlipEpoch)
		}
	}
	mv, err := shard.RunMove(ctx, db, id, cfg)
	meter.finish()
	if err != nil {
		return f.runError(ctx, mv, id, err, pf, "move")
	}
	pctx, cancel := context.WithTimeout(ctx, moveProgressTimeout)
	defer cancel()
	var prog *shard.Progress
	if _, p, err := shard.MoveProgress(pctx, db, id); err == nil && hasProgress(mv.Phase) {
		prog = &p
	}
	return f.printDone(g, mv, prog)
}

// preflight is a move's Check hook: shard.Preflight, its notes printed
// on w; a report with problems fails the move in phase planned and is
// kept for the message.
type preflight struct {
	w      io.Writer
	failed *shard.PreflightReport // the last report with problems
}

// check is the hook (shard.MoveConfig.Check).
func (pf *preflight) check(ctx context.Context, src, dst *sql.DB, mv *shard.Move, n int) error {
	rep, err := shard.Preflight(ctx, src, dst, mv.Tables, mv.VShards, n)
	if err != nil {
		return err
	}
	for _, line := range rep.Info {
		fmt.Fprintf(pf.w, "pre-flight: %s\n", maskSettings(line))
	}
	if !rep.OK() {
		pf.failed = rep
	}
	return rep.Err()
}

// problems lists a failed pre-flight's problems, one a line with its
// fix, cut at 4,000 bytes.
func (pf *preflight) problems() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the pre-flight found %d problem(s):", len(pf.failed.Problems))
	for _, p := range pf.failed.Problems {
		b.WriteString("\n  - " + p.String())
	}
	msg := maskSettings(b.String())
	if len(msg) > 4000 {
		msg = clipError(msg[:4000])
	}
	return msg
}

// runError words a failed or interrupted run, with the command that
// resumes it.
func (f *shardMoveFlags) runError(ctx context.Context, mv *shard.Move, id int64, err error, pf *preflight, what string) error {
	phase := "?"
	if mv != nil {
		phase = mv.Phase
	}
	switch {
	case mv == nil && errors.Is(err, shard.ErrBadMove):
		return usageError{errors.New(badMoveText(err))}
	case mv != nil && !mv.Active:
		return usageError{fmt.Errorf("move %d is no longer active (phase %s)", id, phase)}
	case ctx.Err() != nil:
		return fmt.Errorf("%s of move %d interrupted in phase %s; it resumes where it stopped: %s", what, id, phase, f.resumeHint(id))
	case errors.Is(err, shard.ErrBadMove):
		return usageError{fmt.Errorf("move %d (phase %s): %s", id, phase, badMoveText(err))}
	case errors.Is(err, shard.ErrPreflight) && pf != nil && pf.failed != nil:
		return fmt.Errorf("move %d stopped before changing anything: %s\nfix them, then: %s", id, pf.problems(), f.resumeHint(id))
	}
	// RunMove's errors start with the move and its phase, said here already.
	msg := strings.TrimPrefix(cleanError(err), fmt.Sprintf("shard: move %d (%s): ", id, phase))
	return fmt.Errorf("%s of move %d stopped in phase %s: %s; after fixing it: %s", what, id, phase, msg, f.resumeHint(id))
}

// hasProgress reports whether a move in phase has copy progress to show.
func hasProgress(phase string) bool {
	switch phase {
	case shard.PhaseCopying, shard.PhaseCatchingUp, shard.PhaseVerified, shard.PhaseReading, shard.PhaseCuttingOver:
		return true
	}
	return false
}

// writeMoveDone prints where a run left the move, and what comes next.
func writeMoveDone(w io.Writer, mv *shard.Move, p *shard.Progress, db string) error {
	line := fmt.Sprintf("move %d: virtual shards %s from %s to %s: %s", mv.ID, mv.VShards, mv.Source, mv.Target, mv.Phase)
	if p != nil {
		line += ", " + progressText(*p)
	}
	fmt.Fprintln(w, line)
	var next string
	switch mv.Phase {
	case shard.PhaseCutOver:
		next = fmt.Sprintf("%s owns virtual shards %s; its changes replicate back to %s until the cleanup.\n"+
			"Undo: strata shard rollback --db %s --id %d --wait    Finish: strata shard cleanup --db %s --id %d --soak DURATION",
			mv.Target, mv.VShards, mv.Source, db, mv.ID, db, mv.ID)
	case shard.PhaseRolledBack:
		next = fmt.Sprintf("%s owns virtual shards %s again; the replication and %s's copies are gone.", mv.Source, mv.VShards, mv.Target)
	case shard.PhaseDone:
		next = fmt.Sprintf("%s owns virtual shards %s; the replication and %s's copies are gone.", mv.Target, mv.VShards, mv.Source)
	}
	if next == "" {
		return nil
	}
	_, err := fmt.Fprintln(w, next)
	return err
}

// progressText is a copy's progress in words: tables done, rows, lag.
func progressText(p shard.Progress) string {
	s := fmt.Sprintf("tables %d/%d, %d rows copied, lag %s", p.TablesDone, p.Tables, p.RowsCopied, lagText(p.LagBytes))
	if p.Phase == shard.PhaseReading {
		s += fmt.Sprintf(", %d%% of reads on the target", p.ReadShare)
		if p.Lag > 0 {
			s += fmt.Sprintf(" (lag %v)", p.Lag.Round(time.Millisecond))
		}
	}
	return s
}

// lagText is a replication lag in KiB, rounded up ("-" before the slot
// exists).
func lagText(b int64) string {
	if b < 0 {
		return "-"
	}
	return fmt.Sprintf("%d KiB", (b+1023)/1024)
}

// status is strata shard status.
func (f *shardMoveFlags) status(parent context.Context, stdout io.Writer) error {
	if err := f.requireDB(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(parent, shardMoveTimeout)
	defer cancel()
	db, _, err := f.openMain(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	moves, err := listMoves(ctx, db, !f.all)
	if err != nil {
		return err
	}
	views := make([]moveJSON, 0, len(moves))
	for i := range moves {
		views = append(views, readMoveView(ctx, db, &moves[i]))
	}
	if f.json {
		return writeJSON(stdout, struct {
			Moves []moveJSON `json:"moves"`
		}{views})
	}
	return writeStatusText(stdout, views, f.all, isTerminal(stdout))
}

// readMoveView is mv with its progress for an active copying or
// catching-up move; a failure to read it is shown, not returned.
func readMoveView(ctx context.Context, db *sql.DB, mv *shard.Move) moveJSON {
	if !mv.Active || !hasProgress(mv.Phase) {
		return moveView(mv, nil, "")
	}
	pctx, cancel := context.WithTimeout(ctx, moveProgressTimeout)
	defer cancel()
	_, p, err := shard.MoveProgress(pctx, db, mv.ID)
	if err != nil {
		return moveView(mv, nil, cleanError(err))
	}
	return moveView(mv, &p, "")
}

// moveJSON is a move as the move commands print it with --json.
type moveJSON struct {
	ID int64 `json:"id"`
	// VShards is "LO-HI"; Lo and Hi are its ends, inclusive.
	VShards string        `json:"vshards"`
	Lo      int           `json:"lo"`
	Hi      int           `json:"hi"`
	Source  string        `json:"source"`
	Target  string        `json:"target"`
	Tables  []shard.Table `json:"tables"`
	Phase   string        `json:"phase"`
	Active  bool          `json:"active"`
	// Error is the last failure of a phase ("" when none).
	Error     string    `json:"error"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Progress is a copying or catching-up move's, when it could be read;
	// ProgressError says why it could not.
	Progress      *progressJSON `json:"progress,omitempty"`
	ProgressError string        `json:"progress_error,omitempty"`
	// Verify is the move's last verify of each table, with every
	// differing row it found (by key).
	Verify []verifyJSON `json:"verify,omitempty"`
}

// verifyJSON is a move's verify of one table (shard.VerifyReport).
type verifyJSON struct {
	Table string `json:"table"`
	// Done: the whole range was compared; Clean: and nothing differs.
	Done  bool  `json:"done"`
	Clean bool  `json:"clean"`
	Rows  int64 `json:"rows"`
	// Diffs are the differing rows, at most shard.MaxVerifyDiffs
	// (Truncated says there were more).
	Diffs         []shard.RowDiff `json:"diffs"`
	Truncated     bool            `json:"truncated"`
	RowsPerSecond float64         `json:"rows_per_second"`
}

// progressJSON is a copy's progress (shard.Progress).
type progressJSON struct {
	RowsCopied int64 `json:"rows_copied"`
	TablesDone int   `json:"tables_done"`
	Tables     int   `json:"tables"`
	// LagBytes is the WAL the target has not confirmed, -1 until the
	// replication slot exists.
	LagBytes int64 `json:"lag_bytes"`
	// ReadShare is the percentage of the moving virtual shards' reads
	// that go to the target (the read migration).
	ReadShare int `json:"read_share"`
}

// moveView is mv, with its progress if p is not nil.
func moveView(mv *shard.Move, p *shard.Progress, progressErr string) moveJSON {
	v := moveJSON{
		ID: mv.ID, VShards: mv.VShards.String(), Lo: mv.VShards.Lo, Hi: mv.VShards.Hi,
		Source: mv.Source, Target: mv.Target, Tables: mv.Tables, Phase: mv.Phase, Active: mv.Active,
		Error: maskSettings(mv.Error), CreatedAt: mv.CreatedAt, UpdatedAt: mv.UpdatedAt, ProgressError: progressErr,
	}
	if v.Tables == nil {
		v.Tables = []shard.Table{}
	}
	if p != nil {
		v.Progress = &progressJSON{RowsCopied: p.RowsCopied, TablesDone: p.TablesDone, Tables: p.Tables, LagBytes: p.LagBytes, ReadShare: p.ReadShare}
	}
	for _, t := range mv.Tables {
		if rep := mv.Verify[t.Name]; rep != nil {
			v.Verify = append(v.Verify, verifyJSON{Table: t.Name, Done: rep.Done, Clean: rep.Clean(), Rows: rep.Rows,
				Diffs: rep.Diffs, Truncated: rep.Truncated, RowsPerSecond: rep.RowsPerSecond})
		}
	}
	return v
}

// writeStatusText prints the moves as a table; bars adds a progress bar
// to each copy's progress (standard output is a terminal).
func writeStatusText(w io.Writer, moves []moveJSON, all, bars bool) error {
	if len(moves) == 0 {
		msg := "no active moves (--all lists finished ones too)"
		if all {
			msg = "no moves recorded"
		}
		_, err := fmt.Fprintln(w, msg)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVSHARDS\tSOURCE\tTARGET\tPHASE\tPROGRESS\tERROR")
	for _, m := range moves {
		phase := m.Phase
		if !m.Active {
			phase += " (finished)"
		}
		prog := "-"
		switch {
		case m.Progress != nil:
			p := shard.Progress{Phase: m.Phase, RowsCopied: m.Progress.RowsCopied, TablesDone: m.Progress.TablesDone, Tables: m.Progress.Tables, LagBytes: m.Progress.LagBytes, ReadShare: m.Progress.ReadShare}
			prog = progressText(p)
			if bars {
				prog = bar(p.TablesDone, p.Tables) + " " + prog
			}
		case m.ProgressError != "":
			prog = "unknown: " + bounded(m.ProgressError)
		}
		errText := "-"
		if m.Error != "" {
			errText = bounded(m.Error)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.VShards, m.Source, m.Target, phase, prog, errText)
	}
	return tw.Flush()
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bar is a progress bar of done out of total, meterBar characters wide.
func bar(done, total int) string {
	n := 0
	if total > 0 {
		n = min(meterBar, done*meterBar/total)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", meterBar-n) + "]"
}

// moveMeter shows a running move's progress (shard.MoveConfig.OnProgress)
// on w: on a terminal a one-line bar redrawn in place; otherwise a plain
// line when the phase or the tables done change, and at least every
// meterEvery. It is used from RunMove's goroutine only.
type moveMeter struct {
	w     io.Writer
	tty   bool
	id    int64
	now   func() time.Time // time seam for tests
	drawn bool             // a bar is on the terminal's last line
	last  shard.Progress
	at    time.Time // when the last plain line was printed
}

func newMoveMeter(w io.Writer, id int64) *moveMeter {
	return &moveMeter{w: w, tty: isTerminal(w), id: id, now: time.Now}
}

// update shows p.
func (m *moveMeter) update(p shard.Progress) {
	line := meterLine(m.id, p)
	if m.tty {
		fmt.Fprintf(m.w, "\r\033[K%s", line)
		m.drawn = true
		return
	}
	now := m.now()
	if m.at.IsZero() || p.Phase != m.last.Phase || p.TablesDone != m.last.TablesDone || p.ReadShare != m.last.ReadShare || now.Sub(m.at) >= meterEvery {
		fmt.Fprintln(m.w, line)
		m.at = now
	}
	m.last = p
}

// finish ends the bar's line, if one was drawn.
func (m *moveMeter) finish() {
	if m.drawn {
		fmt.Fprintln(m.w)
		m.drawn = false
	}
}

// meterLine is one line of a move's progress: phase, a bar of the
// tables done, rows, lag, time in the phase and, after a second, the
// copy rate.
func meterLine(id int64, p shard.Progress) string {
	if p.Phase == shard.PhaseReading {
		line := fmt.Sprintf("move %d reading: %d%% of reads on the target %s, %s", id, p.ReadShare, bar(p.ReadShare, shard.MaxReadShare), p.Elapsed.Round(time.Second))
		if p.Lag > 0 {
			line += fmt.Sprintf(", lag %v", p.Lag.Round(time.Millisecond))
		}
		return line
	}
	line := fmt.Sprintf("move %d %s %s %s, %s", id, p.Phase, bar(p.TablesDone, p.Tables), progressText(p), p.Elapsed.Round(time.Second))
	if p.Elapsed >= time.Second {
		line += fmt.Sprintf(", %.0f rows/s", float64(p.RowsCopied)/p.Elapsed.Seconds())
	}
	return line
}
