package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The pre-flight of a move (issue 14, phase 1): everything a move needs
// from the two servers and the moving tables, read before anything is
// changed, every problem reported at once with its fix. Reading
// (readServer, readTable) is kept apart from deciding (serverProblems,
// tableProblems), so the decisions are tested on settings no test server
// has. The pre-flight changes nothing; the mover (another file) checks
// that no other move covers the same virtual shards.

// Checks, the Check of a Problem.
const (
	// CheckVersion: both servers run PostgreSQL 15 or newer (row filters).
	CheckVersion = "version"
	// CheckPrimary: neither server is a standby.
	CheckPrimary = "primary"
	// CheckWALLevel: wal_level is logical on the source (and on the
	// target, for the reverse replication after the cutover).
	CheckWALLevel = "wal_level"
	// CheckSlots: free replication slots on the source and the target.
	CheckSlots = "replication slots"
	// CheckWALSenders: free WAL senders on the source and the target.
	CheckWALSenders = "wal senders"
	// CheckWorkers: free logical replication workers on the subscribing
	// side of each direction.
	CheckWorkers = "logical replication workers"
	// CheckPrivileges: the roles may publish, replicate and subscribe.
	CheckPrivileges = "privileges"
	// CheckDistinct: the source and the target are different servers.
	CheckDistinct = "distinct servers"
	// CheckTable: the table exists on the source and can be published.
	CheckTable = "table"
	// CheckKey: the shard-key column exists and is an integer.
	CheckKey = "shard key"
	// CheckReplicaIdentity: the table's replica identity covers the key.
	CheckReplicaIdentity = "replica identity"
	// CheckTargetTable: the target's table, if it exists, has the
	// source's columns and types.
	CheckTargetTable = "target table"
	// CheckTargetSchema: missing tables can be created on the target.
	CheckTargetSchema = "target schema"
)

// minVersion is the oldest PostgreSQL a move runs on: 15 brought
// publication row filters, and with them a subscriber that applies the
// filter to the initial copy.
const minVersion = 150000

// ErrPreflight is wrapped by [PreflightReport.Err] when the pre-flight
// found problems.
var ErrPreflight = errors.New("shard: pre-flight failed")

// Problem is one reason a move cannot start: which check failed, what
// is wrong (naming the side, source or target, and the table), and how
// to fix it (a command or a setting).
type Problem struct {
	// Check is one of the Check constants, such as CheckWALLevel.
	Check string `json:"check"`
	// Detail says what is wrong and why the move needs it otherwise.
	Detail string `json:"detail"`
	// Fix is a command or setting that removes the problem.
	Fix string `json:"fix"`
}

// String is "check: detail; fix: fix".
func (p Problem) String() string { return p.Check + ": " + p.Detail + "; fix: " + p.Fix }

// PreflightReport is what [Preflight] found: every problem at once, and
// information (estimates, notes) that blocks nothing.
type PreflightReport struct {
	// Problems block the move; each names its fix.
	Problems []Problem `json:"problems"`
	// Info holds estimates and notes, such as the size of the moving
	// rows and how it was estimated.
	Info []string `json:"info"`
}

// OK reports whether the pre-flight found no problem.
func (r *PreflightReport) OK() bool { return len(r.Problems) == 0 }

// Err returns nil when the report is OK, and otherwise an error wrapping
// ErrPreflight that lists every problem with its fix.
func (r *PreflightReport) Err() error {
	if r.OK() {
		return nil
	}
	lines := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		lines[i] = "\n  - " + p.String()
	}
	return fmt.Errorf("%w: %d problems:%s", ErrPreflight, len(r.Problems), strings.Join(lines, ""))
}

func (r *PreflightReport) add(f findings) {
	r.Problems = append(r.Problems, f.problems...)
	r.Info = append(r.Info, f.info...)
}

// findings are the problems and notes of one decision.
type findings struct {
	problems []Problem
	info     []string
}

func (f *findings) problem(check, fix, detail string, args ...any) {
	f.problems = append(f.problems, Problem{Check: check, Detail: fmt.Sprintf(detail, args...), Fix: fix})
}

func (f *findings) note(format string, args ...any) {
	f.info = append(f.info, fmt.Sprintf(format, args...))
}

// Preflight checks, before anything is changed, that the virtual shards
// r (of a keyspace of n) of tables can move from source to target with
// logical replication, and reports every problem it finds at once, each
// with its fix:
//
//   - both servers run PostgreSQL 15 or newer and are primaries;
//   - wal_level is logical on the source, and on the target for the
//     reverse replication that keeps the move undoable after the cutover;
//   - the source has 2 free replication slots and WAL senders (the move's
//     subscription, and one table being copied), the target 1 of each (the
//     reverse replication), and both have free logical replication
//     workers for their subscriptions;
//   - the source's role may publish the tables and replicate, the
//     target's may create subscriptions;
//   - source and target are databases of different servers;
//   - every table exists on the source with an integer key column and a
//     replica identity that covers the key (the publication's row filter
//     uses it; PostgreSQL refuses UPDATE and DELETE on the source
//     otherwise);
//   - every table either is missing on the target and the target's role
//     may create it in its current schema, or has the source's columns
//     and types and a replica identity that covers the key.
//
// Preflight changes nothing, and it reads no rows: the size of the moving
// rows is estimated (see the report's Info). It returns an error only
// when the checks cannot run (a database does not answer, a catalog query
// fails), naming the side; and one wrapping ErrBadMove for an invalid
// range or table list.
func Preflight(ctx context.Context, source, target *sql.DB, tables []Table, r VRange, n int) (*PreflightReport, error) {
	if source == nil || target == nil {
		return nil, fmt.Errorf("%w: pre-flight: the source and the target database are both required", ErrBadMove)
	}
	if err := r.Check(n); err != nil {
		return nil, err
	}
	if err := checkTableList(tables); err != nil {
		return nil, err
	}
	src, err := readServer(ctx, source)
	if err != nil {
		return nil, fmt.Errorf("shard: pre-flight: source: %w", err)
	}
	dst, err := readServer(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("shard: pre-flight: target: %w", err)
	}
	rep := &PreflightReport{}
	rep.add(serverProblems(src, dst, len(tables)))
	var missing []string // tables to create on the target
	var total int64      // bytes moving, all tables
	for _, t := range tables {
		st, err := readTable(ctx, source, t)
		if err != nil {
			return nil, fmt.Errorf("shard: pre-flight: source: table %s: %w", t.Name, err)
		}
		dt, err := readTable(ctx, target, t)
		if err != nil {
			return nil, fmt.Errorf("shard: pre-flight: target: table %s: %w", t.Name, err)
		}
		rep.add(tableProblems(t, st, dt, src.superuser))
		if st.exists && !dt.exists {
			missing = append(missing, st.ident)
		}
		if st.exists {
			moving := movingBytes(st.bytes, r, n)
			total += moving
			rep.Info = append(rep.Info, fmt.Sprintf("table %s: about %s of its %s on the source move (%d of %d virtual shards of pg_total_relation_size: rows, indexes and TOAST)",
				st.ident, formatBytes(moving), formatBytes(st.bytes), r.Len(), n))
		}
	}
	if len(missing) > 0 && !dst.canCreate() {
		rep.Problems = append(rep.Problems, schemaProblem(dst, missing))
	}
	where := "the file system of the target's data directory"
	if dst.dataDir != "" {
		where += " (" + dst.dataDir + ")"
	}
	rep.Info = append(rep.Info, fmt.Sprintf("about %s move to the target in all, estimated as the moving share of each table's size on the source "+
		"(virtual shards hold equal shares of the keys, not always of the bytes); the target's free space is not checked, since PostgreSQL has no SQL function for it: "+
		"make sure %s has room for it, and for the WAL the copy writes", formatBytes(total), where))
	return rep, nil
}

// checkTableList returns an error wrapping ErrBadMove for an empty list,
// a table without a name or key, or a table listed twice.
func checkTableList(tables []Table) error {
	if len(tables) == 0 {
		return fmt.Errorf("%w: no tables to move", ErrBadMove)
	}
	seen := make(map[string]bool, len(tables))
	for _, t := range tables {
		if t.Name == "" || t.Key == "" {
			return fmt.Errorf("%w: a table needs a name and a key column, got %+v", ErrBadMove, t)
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: table %s listed twice", ErrBadMove, clipText(t.Name))
		}
		seen[t.Name] = true
	}
	return nil
}

// movingBytes is the share of size that r (of n virtual shards) holds.
func movingBytes(size int64, r VRange, n int) int64 {
	return int64(float64(size) * float64(r.Len()) / float64(n))
}

// serverFacts is what the pre-flight reads of one server.
type serverFacts struct {
	version     int    // server_version_num, 150004 for 15.4
	versionText string // server_version
	walLevel    string
	maxSlots    int // max_replication_slots
	usedSlots   int // rows of pg_replication_slots
	maxSenders  int // max_wal_senders
	usedSenders int // rows of pg_stat_replication
	maxWorkers  int // max_logical_replication_workers
	usedWorkers int // running logical replication workers (pg_stat_subscription)
	syncWorkers int // max_sync_workers_per_subscription
	inRecovery  bool
	systemID    string // pg_control_system().system_identifier
	database    string // current_database()
	user        string // current_user, quoted as an identifier
	superuser   bool
	replication bool   // the role has REPLICATION
	dbCreate    bool   // may CREATE in the database (publications)
	subscribe   bool   // may CREATE SUBSCRIPTION
	schema      string // current_schema(), quoted; "" when none
	schemaOK    bool   // may CREATE in it
	dataDir     string // data_directory, "" when the role may not read it
}

// canCreate reports whether the role may create tables in its current
// schema.
func (s serverFacts) canCreate() bool { return s.schema != "" && s.schemaOK }

// sqlServerFacts reads serverFacts in one round trip. data_directory is
// read through pg_settings, which hides it (NULL) from roles that may not
// read it, where current_setting would fail. pg_create_subscription is
// looked up by name, so the query also runs on 15, which lacks it.
const sqlServerFacts = `SELECT current_setting('server_version_num')::int,
	current_setting('server_version'),
	current_setting('wal_level'),
	current_setting('max_replication_slots')::int,
	(SELECT count(*) FROM pg_replication_slots)::int,
	current_setting('max_wal_senders')::int,
	(SELECT count(*) FROM pg_stat_replication)::int,
	current_setting('max_logical_replication_workers')::int,
	(SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL)::int,
	current_setting('max_sync_workers_per_subscription')::int,
	pg_is_in_recovery(),
	(SELECT system_identifier::text FROM pg_control_system()),
	current_database(),
	quote_ident(current_user),
	r.rolsuper,
	r.rolreplication,
	has_database_privilege(current_database(), 'CREATE'),
	r.rolsuper OR (has_database_privilege(current_database(), 'CREATE') AND EXISTS (
		SELECT 1 FROM pg_roles s WHERE s.rolname = 'pg_create_subscription'
		AND pg_has_role(current_user, s.oid, 'USAGE'))),
	COALESCE(quote_ident(current_schema()), ''),
	COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false),
	COALESCE((SELECT setting FROM pg_settings WHERE name = 'data_directory'), '')
FROM pg_roles r WHERE r.rolname = current_user`

func readServer(ctx context.Context, db *sql.DB) (serverFacts, error) {
	var s serverFacts
	if err := db.PingContext(ctx); err != nil {
		return s, fmt.Errorf("does not answer: %w", err)
	}
	err := db.QueryRowContext(ctx, sqlServerFacts).Scan(&s.version, &s.versionText, &s.walLevel,
		&s.maxSlots, &s.usedSlots, &s.maxSenders, &s.usedSenders, &s.maxWorkers, &s.usedWorkers, &s.syncWorkers,
		&s.inRecovery, &s.systemID, &s.database, &s.user, &s.superuser, &s.replication, &s.dbCreate,
		&s.subscribe, &s.schema, &s.schemaOK, &s.dataDir)
	if err != nil {
		return s, fmt.Errorf("read the settings: %w", err)
	}
	return s, nil
}

// Replication resources a move needs.
const (
	// needSourceSlots: the subscription's slot, and the slot of one table
	// being copied (the initial copy copies each table over a slot and a
	// WAL sender of its own, up to max_sync_workers_per_subscription at
	// once; with fewer it copies fewer at once).
	needSourceSlots = 2
	// needTargetSlots: the reverse replication's slot after the cutover.
	needTargetSlots = 1
	// needTargetWorkers: the subscription's apply worker and one table
	// copy worker; without a free worker for the copy it never starts.
	needTargetWorkers = 2
	// needSourceWorkers: the reverse subscription's apply worker.
	needSourceWorkers = 1
)

// serverProblems decides the server checks of a move of tables tables
// from src to dst. It is pure: the facts are read by readServer.
func serverProblems(src, dst serverFacts, tables int) findings {
	var f findings
	if src.version < minVersion {
		f.problem(CheckVersion, "upgrade the source to PostgreSQL 15 or newer",
			"the source runs PostgreSQL %s; a move needs 15 or newer, whose publications filter rows (the moving virtual shards)", src.versionText)
	}
	if dst.version < minVersion {
		f.problem(CheckVersion, "upgrade the target to PostgreSQL 15 or newer",
			"the target runs PostgreSQL %s; a move needs 15 or newer: an older subscriber copies every row of a table, not only the filtered ones, "+
				"and the reverse replication after the cutover publishes from the target with a row filter", dst.versionText)
	}
	if src.inRecovery {
		f.problem(CheckPrimary, "give the URL of the source shard's primary",
			"the source is a standby (in recovery); the move publishes from the primary, which takes the writes")
	}
	if dst.inRecovery {
		f.problem(CheckPrimary, "give the URL of the target shard's primary",
			"the target is a standby (in recovery); the move creates tables and a subscription there")
	}
	if src.walLevel != "logical" {
		f.problem(CheckWALLevel, "run ALTER SYSTEM SET wal_level = logical on the source, then restart its server (wal_level takes effect only at start)",
			"the source has wal_level = %s; the move's publication needs logical decoding, wal_level = logical", src.walLevel)
	}
	if dst.walLevel != "logical" {
		f.problem(CheckWALLevel, "run ALTER SYSTEM SET wal_level = logical on the target, then restart its server (wal_level takes effect only at start)",
			"the target has wal_level = %s; the reverse replication that keeps the move undoable after the cutover publishes from the target and needs wal_level = logical", dst.walLevel)
	}
	slots(&f, "source", src, needSourceSlots,
		"the move needs %d there: 1 for its subscription and 1 for the table being copied (the reverse replication after the cutover needs 1 more on the target)")
	slots(&f, "target", dst, needTargetSlots,
		"the reverse replication from the target back to the source after the cutover needs %d there")
	if free := src.maxSenders - src.usedSenders; free < needSourceSlots {
		f.problem(CheckWALSenders, fmt.Sprintf("run ALTER SYSTEM SET max_wal_senders = %d on the source, then restart its server", src.usedSenders+needSourceSlots),
			"the source has %d free WAL senders (max_wal_senders = %d, %d in use); the move needs %d there: 1 streams the changes and 1 the table being copied",
			max(free, 0), src.maxSenders, src.usedSenders, needSourceSlots)
	}
	if free := dst.maxSenders - dst.usedSenders; free < needTargetSlots {
		f.problem(CheckWALSenders, fmt.Sprintf("run ALTER SYSTEM SET max_wal_senders = %d on the target, then restart its server", dst.usedSenders+needTargetSlots),
			"the target has %d free WAL senders (max_wal_senders = %d, %d in use); the reverse replication after the cutover needs %d there",
			max(free, 0), dst.maxSenders, dst.usedSenders, needTargetSlots)
	}
	if free := dst.maxWorkers - dst.usedWorkers; free < needTargetWorkers {
		f.problem(CheckWorkers, fmt.Sprintf("run ALTER SYSTEM SET max_logical_replication_workers = %d on the target (max_worker_processes must allow them), then restart its server", dst.usedWorkers+needTargetWorkers),
			"the target has %d free logical replication workers (max_logical_replication_workers = %d, %d running); its subscription needs %d: 1 applies the changes and 1 copies a table",
			max(free, 0), dst.maxWorkers, dst.usedWorkers, needTargetWorkers)
	}
	if dst.syncWorkers < 1 {
		f.problem(CheckWorkers, "run ALTER SYSTEM SET max_sync_workers_per_subscription = 2 on the target, then SELECT pg_reload_conf()",
			"the target has max_sync_workers_per_subscription = %d: its subscription would never copy a table", dst.syncWorkers)
	}
	if free := src.maxWorkers - src.usedWorkers; free < needSourceWorkers {
		f.problem(CheckWorkers, fmt.Sprintf("run ALTER SYSTEM SET max_logical_replication_workers = %d on the source (max_worker_processes must allow them), then restart its server", src.usedWorkers+needSourceWorkers),
			"the source has %d free logical replication workers (max_logical_replication_workers = %d, %d running); the reverse replication after the cutover subscribes there and needs %d",
			max(free, 0), src.maxWorkers, src.usedWorkers, needSourceWorkers)
	}
	if copies := min(tables, dst.syncWorkers); copies > 1 {
		if free := min(src.maxSlots-src.usedSlots, src.maxSenders-src.usedSenders) - 1; free < copies {
			f.note("the initial copy can copy up to %d tables at once (max_sync_workers_per_subscription on the target), each over a replication slot and WAL sender of its own on the source; with the source's free ones it copies %d at once",
				copies, max(free, 1))
		}
	}
	if !src.superuser && !src.replication {
		f.problem(CheckPrivileges, fmt.Sprintf("run ALTER ROLE %s REPLICATION on the source", src.user),
			"the source's role %s has neither REPLICATION nor SUPERUSER; the target's subscription connects to the source as it (the source shard's URL)", src.user)
	}
	if !src.superuser && !src.dbCreate {
		f.problem(CheckPrivileges, fmt.Sprintf("run GRANT CREATE ON DATABASE %s TO %s on the source", pgx.Identifier{src.database}.Sanitize(), src.user),
			"the source's role %s may not CREATE in database %s, which CREATE PUBLICATION needs", src.user, src.database)
	}
	if !dst.subscribe {
		fix := fmt.Sprintf("run ALTER ROLE %s SUPERUSER on the target", dst.user)
		why := "only superusers may on PostgreSQL " + dst.versionText
		if dst.version >= 160000 {
			fix = fmt.Sprintf("run GRANT pg_create_subscription TO %s and GRANT CREATE ON DATABASE %s TO %s on the target",
				dst.user, pgx.Identifier{dst.database}.Sanitize(), dst.user)
			why = "it needs SUPERUSER, or pg_create_subscription and CREATE on the database"
		}
		f.problem(CheckPrivileges, fix, "the target's role %s may not create the move's subscription: %s", dst.user, why)
	}
	if src.systemID == dst.systemID {
		if src.database == dst.database {
			f.problem(CheckDistinct, "choose a target on another PostgreSQL server",
				"the source and the target are the same database, %s of the server with system identifier %s", src.database, src.systemID)
		} else {
			f.problem(CheckDistinct, "choose a target on another PostgreSQL server",
				"the source (database %s) and the target (database %s) are on the same server (system identifier %s): a move between them gains no capacity, "+
					"and CREATE SUBSCRIPTION hangs when the slot it creates is on its own server", src.database, dst.database, src.systemID)
		}
	}
	return f
}

// slots adds a problem when s has fewer than need free replication slots;
// why has a %d for need.
func slots(f *findings, side string, s serverFacts, need int, why string) {
	free := s.maxSlots - s.usedSlots
	if free >= need {
		return
	}
	f.problem(CheckSlots,
		fmt.Sprintf("run ALTER SYSTEM SET max_replication_slots = %d on the %s, then restart its server; or drop the slots no longer used (SELECT slot_name, active FROM pg_replication_slots)",
			s.usedSlots+need, side),
		"the %s has %d free replication slots (max_replication_slots = %d, %d in use); "+why,
		side, max(free, 0), s.maxSlots, s.usedSlots, need)
}

// column is a table's column: its name, the name quoted as an identifier
// when it needs to be (for fixes), and its type as format_type spells it
// (with its modifier: "character varying(20)").
type column struct {
	name, ident, typ string
}

// tableFacts is what the pre-flight reads of a table on one server.
type tableFacts struct {
	ident    string // the table's name, quoted as an identifier when needed
	keyIdent string // the key column's, likewise
	exists   bool
	name     string // schema-qualified, as the search_path resolved it
	kind     string // pg_class.relkind
	owned    bool   // the role has its owner's privileges
	// identity is pg_class.relreplident: d (default: the primary key),
	// n (nothing), f (full), i (an index).
	identity string
	// identityIndex is the primary key (identity d) or the identity index
	// (identity i), quoted, "" when there is none; identityCols are its
	// key columns, in order.
	identityIndex string
	identityCols  []column
	cols          []column
	bytes         int64 // pg_total_relation_size, over all partitions
}

const (
	sqlTable = `SELECT quote_ident($1), quote_ident($2), c.oid IS NOT NULL,
		COALESCE(quote_ident(n.nspname) || '.' || quote_ident(c.relname), ''),
		COALESCE(c.relkind::text, ''),
		COALESCE(pg_has_role(c.relowner, 'USAGE'), false),
		COALESCE(c.relreplident::text, ''),
		COALESCE(CASE WHEN c.relkind = 'p'
			THEN (SELECT sum(pg_total_relation_size(p.relid)) FROM pg_partition_tree(c.oid) p)
			ELSE pg_total_relation_size(c.oid) END, 0)::bigint
	FROM (SELECT to_regclass($3) AS oid) x
	LEFT JOIN pg_class c ON c.oid = x.oid
	LEFT JOIN pg_namespace n ON n.oid = c.relnamespace`
	sqlTableColumns = `SELECT a.attname, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
	WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`
	// The index that identifies rows: the primary key for identity d,
	// the chosen index for identity i; its key columns in order.
	sqlTableIdentity = `SELECT quote_ident(ic.relname), a.attname, quote_ident(a.attname)
	FROM pg_class t
	JOIN pg_index i ON i.indrelid = t.oid
	JOIN pg_class ic ON ic.oid = i.indexrelid
	CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
	JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
	WHERE t.oid = to_regclass($1) AND k.ord <= i.indnkeyatts
	AND ((t.relreplident = 'd' AND i.indisprimary) OR (t.relreplident = 'i' AND i.indisreplident))
	ORDER BY k.ord`
)

func readTable(ctx context.Context, db *sql.DB, t Table) (tableFacts, error) {
	var f tableFacts
	// Quoted as the mover quotes it, so both find the same table.
	reg := pgx.Identifier{t.Name}.Sanitize()
	err := db.QueryRowContext(ctx, sqlTable, t.Name, t.Key, reg).Scan(&f.ident, &f.keyIdent, &f.exists,
		&f.name, &f.kind, &f.owned, &f.identity, &f.bytes)
	if err != nil {
		return f, fmt.Errorf("read the catalog: %w", err)
	}
	if !f.exists {
		return f, nil
	}
	rows, err := db.QueryContext(ctx, sqlTableColumns, reg)
	if err != nil {
		return f, fmt.Errorf("read the columns: %w", err)
	}
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.ident, &c.typ); err != nil {
			rows.Close()
			return f, fmt.Errorf("read the columns: %w", err)
		}
		f.cols = append(f.cols, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return f, fmt.Errorf("read the columns: %w", err)
	}
	rows, err = db.QueryContext(ctx, sqlTableIdentity, reg)
	if err != nil {
		return f, fmt.Errorf("read the replica identity: %w", err)
	}
	for rows.Next() {
		var col column
		if err := rows.Scan(&f.identityIndex, &col.name, &col.ident); err != nil {
			rows.Close()
			return f, fmt.Errorf("read the replica identity: %w", err)
		}
		f.identityCols = append(f.identityCols, col)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return f, fmt.Errorf("read the replica identity: %w", err)
	}
	return f, nil
}

// findColumn returns the column of cols named name, and whether there
// is one.
func findColumn(cols []column, name string) (column, bool) {
	i := slices.IndexFunc(cols, func(c column) bool { return c.name == name })
	if i < 0 {
		return column{}, false
	}
	return cols[i], true
}

// keyType reports whether a shard key may have type typ: the keyspace
// hashes the key as a bigint (hashint8), which these cast to without
// loss.
func keyType(typ string) bool {
	return typ == "bigint" || typ == "integer" || typ == "smallint"
}

// tableProblems decides the checks of table t, read as src on the source
// and dst on the target; srcSuper says the source's role is a superuser
// (who may publish any table). It is pure: the facts are read by
// readTable.
func tableProblems(t Table, src, dst tableFacts, srcSuper bool) findings {
	var f findings
	name, key := src.ident, src.keyIdent
	if !src.exists {
		f.problem(CheckTable, "check the table's name and the source's search_path, or leave the table out of the move",
			"table %s does not exist on the source (looked up in its search_path)", name)
		return f
	}
	if !kindOK(&f, "the source", src) {
		return f
	}
	if !srcSuper && !src.owned {
		f.problem(CheckPrivileges, fmt.Sprintf("run the move as the owner of %s (or a superuser), or ALTER TABLE %s OWNER TO the source's role", src.name, src.name),
			"the source's role does not own table %s; CREATE PUBLICATION ... FOR TABLE needs its owner", src.name)
	}
	kc, ok := findColumn(src.cols, t.Key)
	if !ok {
		f.problem(CheckKey, "name the table's shard-key column in the move",
			"table %s has no column %s on the source, its shard key", src.name, key)
		return f
	}
	if !keyType(kc.typ) {
		f.problem(CheckKey, "use a bigint (or integer, smallint) shard-key column",
			"the shard key %s of table %s is %s; the keyspace hashes a bigint (hashint8), so the key must be bigint, integer or smallint", key, src.name, kc.typ)
	}
	identityProblem(&f, "the source", t, src,
		"the publication's row filter uses %s, and PostgreSQL refuses UPDATE and DELETE on a published table whose row filter uses a column outside its replica identity")
	if src.identity == "f" {
		f.note("table %s has REPLICA IDENTITY FULL on the source: while it is published, every UPDATE and DELETE logs the whole old row, "+
			"and the target finds each changed row by its own primary key, or by scanning the table without one", src.name)
	}
	if !dst.exists {
		return f
	}
	if !kindOK(&f, "the target", dst) {
		return f
	}
	if diffs, fixes := diffColumns(src.cols, dst.cols, dst.name); len(diffs) > 0 {
		f.problems = append(f.problems, Problem{
			Check:  CheckTargetTable,
			Detail: fmt.Sprintf("table %s on the target differs from the source's: %s", dst.name, strings.Join(diffs, "; ")),
			Fix:    "make the target's table match the source's: " + strings.Join(fixes, "; ") + "; or, if the target's table holds no rows, drop it and let the move create it",
		})
	}
	if _, ok := findColumn(dst.cols, t.Key); ok {
		identityProblem(&f, "the target", t, dst,
			"the target finds the rows the source updates and deletes by it, and the reverse replication after the cutover publishes the table with a row filter on %s")
	}
	return f
}

// kindOK adds a problem unless f is an ordinary table, which a
// publication can filter.
func kindOK(f *findings, side string, t tableFacts) bool {
	switch t.kind {
	case "r":
		return true
	case "p":
		f.problem(CheckTable, "move its partitions instead, each as a table",
			"%s is a partitioned table on %s; a publication filters a partitioned table's rows only with publish_via_partition_root, which the move does not set", t.name, side)
	default:
		f.problem(CheckTable, "move the table it stands for instead",
			"%s on %s is not a table (relkind %s: a view, materialized view, foreign table or sequence); only tables can be published", t.name, side, t.kind)
	}
	return false
}

// identityProblem adds a problem unless table t's replica identity on
// side covers its key; why has a %s for the key.
func identityProblem(f *findings, side string, t Table, tf tableFacts, why string) {
	key := tf.keyIdent
	why = fmt.Sprintf(why, key)
	_, covered := findColumn(tf.identityCols, t.Key)
	cols := []string{key} // the key, then the identity's other columns
	for _, c := range tf.identityCols {
		if c.name != t.Key {
			cols = append(cols, c.ident)
		}
	}
	var has string // what the table has now
	switch {
	case tf.identity == "f":
		return
	case tf.identityIndex != "" && covered:
		return
	case tf.identityIndex != "" && tf.identity == "d":
		has = fmt.Sprintf("its replica identity is its primary key %s (%s), which does not contain the shard key %s", tf.identityIndex, strings.Join(cols[1:], ", "), key)
	case tf.identityIndex != "":
		has = fmt.Sprintf("its replica identity is the index %s (%s), which does not contain the shard key %s", tf.identityIndex, strings.Join(cols[1:], ", "), key)
	case tf.identity == "n":
		has = "its replica identity is NOTHING"
	default:
		// d without a primary key, or i whose index was dropped.
		has = "it has no replica identity (no primary key)"
	}
	if len(cols) == 1 {
		cols = append(cols, "<a column that makes it unique with "+key+">")
	}
	pk := fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (%s)", tf.name, strings.Join(cols, ", "))
	if tf.identityIndex != "" && tf.identity == "d" {
		pk = fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD PRIMARY KEY (%s)", tf.name, tf.identityIndex, strings.Join(cols, ", "))
	}
	f.problem(CheckReplicaIdentity,
		fmt.Sprintf("on %s, make the primary key contain the shard key: %s (with REPLICA IDENTITY DEFAULT); "+
			"or CREATE UNIQUE INDEX ON %s (%s) and ALTER TABLE %s REPLICA IDENTITY USING INDEX that index; "+
			"or ALTER TABLE %s REPLICA IDENTITY FULL (every UPDATE and DELETE then logs the whole old row)",
			side, pk, tf.name, strings.Join(cols, ", "), tf.name, tf.name),
		"table %s on %s: %s; %s", tf.name, side, has, why)
}

// diffColumns lists how the target's columns differ from the source's,
// by name (logical replication matches columns by name, not position),
// and the statements that would make table (the target's) match.
func diffColumns(src, dst []column, table string) (diffs, fixes []string) {
	for _, s := range src {
		id := s.ident
		d, ok := findColumn(dst, s.name)
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("column %s (%s) is missing", id, s.typ))
			fixes = append(fixes, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", table, id, s.typ))
		case d.typ != s.typ:
			diffs = append(diffs, fmt.Sprintf("column %s is %s on the source, %s on the target", id, s.typ, d.typ))
			fixes = append(fixes, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", table, id, s.typ))
		}
	}
	for _, d := range dst {
		if _, ok := findColumn(src, d.name); !ok {
			id := d.ident
			diffs = append(diffs, fmt.Sprintf("column %s (%s) is only on the target", id, d.typ))
			fixes = append(fixes, fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s (if nothing uses it)", table, id))
		}
	}
	return diffs, fixes
}

// schemaProblem reports that the target's role cannot create the tables
// missing there.
func schemaProblem(dst serverFacts, missing []string) Problem {
	p := Problem{Check: CheckTargetSchema}
	if dst.schema == "" {
		p.Detail = fmt.Sprintf("tables %s are missing on the target, and its search_path names no existing schema to create them in", strings.Join(missing, ", "))
		p.Fix = "create the schema on the target (CREATE SCHEMA ...), or set the target role's search_path to an existing one"
		return p
	}
	p.Detail = fmt.Sprintf("tables %s are missing on the target, and its role %s may not CREATE in schema %s, where the move would create them",
		strings.Join(missing, ", "), dst.user, dst.schema)
	p.Fix = fmt.Sprintf("run GRANT CREATE ON SCHEMA %s TO %s on the target, or create the tables there first", dst.schema, dst.user)
	return p
}

// formatBytes writes n bytes for people: "12.3 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
