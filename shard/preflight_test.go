package shard

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
)

// pfTables returns the moving tables of the pre-flight tests.
func pfTables() []Table {
	return []Table{{Name: "users", Key: "id"}, {Name: "user_actions", Key: "user_id"}}
}

const (
	pfUsers   = `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL)`
	pfActions = `CREATE TABLE user_actions (user_id bigint NOT NULL, id bigint NOT NULL, kind text, at timestamptz,
		PRIMARY KEY (user_id, id))`
)

// pfShards returns a database of t's own on each of the two dev shard
// primaries: the source on the first, the target on the second.
func pfShards(t *testing.T) (source, target *sql.DB) {
	t.Helper()
	urls := testdb.ShardDatabases(t)
	if len(urls) < 2 {
		t.Fatalf("%s names %d shard primaries, want 2", testdb.EnvShards, len(urls))
	}
	return openDB(t, urls[0]), openDB(t, urls[1])
}

func pfExec(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func pfRun(t *testing.T, source, target *sql.DB, tables []Table) *PreflightReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Preflight(ctx, source, target, tables, VRange{Lo: 0, Hi: 499}, VirtualShards)
	if err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	return rep
}

// pfChecks lists the problems' checks, in order.
func pfChecks(rep *PreflightReport) []string {
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.Check)
	}
	return out
}

// pfFind returns the problems of check whose detail contains every one
// of words.
func pfFind(rep *PreflightReport, check string, words ...string) []Problem {
	var out []Problem
	for _, p := range rep.Problems {
		if p.Check != check {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(p.Detail, w)
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}

func pfLog(t *testing.T, rep *PreflightReport) {
	t.Helper()
	for _, p := range rep.Problems {
		t.Logf("problem: %s", p)
	}
	for _, s := range rep.Info {
		t.Logf("info: %s", s)
	}
}

func TestPreflightClean(t *testing.T) {
	source, target := pfShards(t)
	pfExec(t, source, pfUsers, pfActions,
		`INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 2000) g`,
		`INSERT INTO user_actions SELECT g % 2000 + 1, g, 'view', now() FROM generate_series(1, 20000) g`)

	// The target lacks both tables: the move creates them.
	rep := pfRun(t, source, target, pfTables())
	pfLog(t, rep)
	if !rep.OK() || rep.Err() != nil {
		t.Fatalf("clean setup: problems %v, Err %v", pfChecks(rep), rep.Err())
	}
	// The dev shards run wal_level = logical (scripts/dev), so the live
	// check passes on both sides.
	if p := pfFind(rep, CheckWALLevel); len(p) > 0 {
		t.Errorf("wal_level problems on the dev shards: %v", p)
	}
	// user_actions holds about 2 MiB (rows and primary key): half moves.
	var estimate bool
	for _, s := range rep.Info {
		estimate = estimate || strings.Contains(s, "table user_actions: about ") && !strings.Contains(s, "about 0 B") &&
			strings.Contains(s, "500 of 1000 virtual shards of pg_total_relation_size")
	}
	if !estimate || !strings.Contains(rep.Info[len(rep.Info)-1], "free space is not checked") {
		t.Errorf("Info lacks the size estimate and how it was made: %q", rep.Info)
	}

	// Nothing changed: no publication, subscription or table appeared.
	var pubs, subs, tables int
	if err := source.QueryRow(`SELECT count(*) FROM pg_publication`).Scan(&pubs); err != nil {
		t.Fatal(err)
	}
	if err := target.QueryRow(`SELECT count(*) FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&subs); err != nil {
		t.Fatal(err)
	}
	if err := target.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if pubs+subs+tables != 0 {
		t.Errorf("Preflight changed something: %d publications on the source, %d subscriptions and %d tables on the target", pubs, subs, tables)
	}

	// The same tables on the target (a shard that already holds users of
	// its own) pass as well.
	pfExec(t, target, pfUsers, pfActions)
	if rep := pfRun(t, source, target, pfTables()); !rep.OK() {
		t.Fatalf("target with the same tables: %v", rep.Problems)
	}
}

func TestPreflightReplicaIdentity(t *testing.T) {
	source, target := pfShards(t)
	pfExec(t, source, pfUsers, `CREATE TABLE user_actions (user_id bigint NOT NULL, id bigint PRIMARY KEY, kind text)`)

	rep := pfRun(t, source, target, pfTables())
	pfLog(t, rep)
	ps := pfFind(rep, CheckReplicaIdentity, "user_actions", "user_actions_pkey (id)", "does not contain the shard key user_id")
	if len(ps) != 1 || len(rep.Problems) != 1 {
		t.Fatalf("problems %v; want one replica identity problem for user_actions", rep.Problems)
	}
	fix := "ALTER TABLE public.user_actions DROP CONSTRAINT user_actions_pkey, ADD PRIMARY KEY (user_id, id)"
	if !strings.Contains(ps[0].Fix, fix) || !strings.Contains(ps[0].Fix, "REPLICA IDENTITY FULL") {
		t.Fatalf("fix %q; want %q and the REPLICA IDENTITY FULL alternative", ps[0].Fix, fix)
	}
	if !errors.Is(rep.Err(), ErrPreflight) || !strings.Contains(rep.Err().Error(), fix) {
		t.Errorf("Err() = %v", rep.Err())
	}

	// The problem is real: once the table is published with the move's
	// row filter, the source refuses its updates.
	pfExec(t, source, `INSERT INTO user_actions VALUES (1, 1, 'view')`,
		`CREATE PUBLICATION pf_probe FOR TABLE user_actions WHERE `+VRange{0, 999}.SQL("user_id", VirtualShards))
	if _, err := source.Exec(`UPDATE user_actions SET kind = 'buy'`); err == nil || !strings.Contains(err.Error(), `cannot update table "user_actions"`) {
		t.Errorf("UPDATE of a published table whose identity lacks the key: err %v, want: cannot update table (the row filter's column is not in the replica identity)", err)
	}
	pfExec(t, source, `DROP PUBLICATION pf_probe`)

	// Each fix the problem offers clears it.
	for _, c := range []struct {
		name string
		fix  []string
	}{
		// The primary key made to contain the key.
		{"primary key", []string{fix}},
		// A unique index with the key as the replica identity.
		{"using index", []string{
			`CREATE UNIQUE INDEX user_actions_ident ON user_actions (user_id, id)`,
			`ALTER TABLE user_actions REPLICA IDENTITY USING INDEX user_actions_ident`}},
		// The whole row as the identity, with a note on its cost.
		{"full", []string{`ALTER TABLE user_actions REPLICA IDENTITY FULL`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pfExec(t, source, `DROP TABLE user_actions`,
				`CREATE TABLE user_actions (user_id bigint NOT NULL, id bigint PRIMARY KEY, kind text)`)
			pfExec(t, source, c.fix...)
			rep := pfRun(t, source, target, pfTables())
			if !rep.OK() {
				t.Fatalf("after %q: %v", c.fix, rep.Problems)
			}
			full := strings.Contains(strings.Join(rep.Info, "\n"), "user_actions has REPLICA IDENTITY FULL")
			if full != (c.name == "full") {
				t.Errorf("note on REPLICA IDENTITY FULL: %v, want %v", full, c.name == "full")
			}
		})
	}

	// No replica identity at all (no primary key), and NOTHING.
	pfExec(t, source, `DROP TABLE user_actions`, `CREATE TABLE user_actions (user_id bigint, id bigint, kind text)`)
	rep = pfRun(t, source, target, pfTables())
	if ps := pfFind(rep, CheckReplicaIdentity, "user_actions", "no replica identity"); len(ps) != 1 ||
		!strings.Contains(ps[0].Fix, "ALTER TABLE public.user_actions ADD PRIMARY KEY (user_id, ") {
		t.Errorf("no primary key: %v", rep.Problems)
	}
	pfExec(t, source, `ALTER TABLE users REPLICA IDENTITY NOTHING`)
	rep = pfRun(t, source, target, pfTables())
	if ps := pfFind(rep, CheckReplicaIdentity, "users", "NOTHING"); len(ps) != 1 {
		t.Errorf("REPLICA IDENTITY NOTHING: %v", rep.Problems)
	}
}

func TestPreflightMissingSourceTable(t *testing.T) {
	source, target := pfShards(t)
	pfExec(t, source, pfUsers)

	rep := pfRun(t, source, target, pfTables())
	pfLog(t, rep)
	ps := pfFind(rep, CheckTable, "user_actions does not exist on the source")
	if len(ps) != 1 || len(rep.Problems) != 1 || ps[0].Fix == "" {
		t.Fatalf("problems %v; want one: user_actions missing on the source, with a fix", rep.Problems)
	}
}

func TestPreflightTargetColumns(t *testing.T) {
	source, target := pfShards(t)
	pfExec(t, source, pfUsers, pfActions)
	pfExec(t, target, pfUsers, `CREATE TABLE user_actions (user_id bigint NOT NULL, id bigint NOT NULL, kind integer, extra text,
		PRIMARY KEY (user_id, id))`)

	rep := pfRun(t, source, target, pfTables())
	pfLog(t, rep)
	ps := pfFind(rep, CheckTargetTable, "user_actions",
		"column kind is text on the source, integer on the target",
		"column at (timestamp with time zone) is missing",
		"column extra (text) is only on the target")
	if len(ps) != 1 || len(rep.Problems) != 1 {
		t.Fatalf("problems %v; want one target-table problem listing the three differences", rep.Problems)
	}
	for _, want := range []string{
		"ALTER TABLE public.user_actions ALTER COLUMN kind TYPE text",
		"ALTER TABLE public.user_actions ADD COLUMN at timestamp with time zone",
		"ALTER TABLE public.user_actions DROP COLUMN extra",
	} {
		if !strings.Contains(ps[0].Fix, want) {
			t.Errorf("fix %q lacks %q", ps[0].Fix, want)
		}
	}
	// The fixes as given make the tables match.
	pfExec(t, target, `ALTER TABLE public.user_actions ALTER COLUMN kind TYPE text`,
		`ALTER TABLE public.user_actions ADD COLUMN at timestamp with time zone`,
		`ALTER TABLE public.user_actions DROP COLUMN extra`)
	if rep := pfRun(t, source, target, pfTables()); !rep.OK() {
		t.Fatalf("after the fixes: %v", rep.Problems)
	}
}

func TestPreflightEveryProblemAtOnce(t *testing.T) {
	source, target := pfShards(t)
	// On the source: users' key is not an integer; user_actions' primary
	// key lacks its key; orders is missing. On the target: users has
	// another column type, and its primary key lacks the key column.
	pfExec(t, source, `CREATE TABLE users (id text PRIMARY KEY, email text)`,
		`CREATE TABLE user_actions (user_id bigint NOT NULL, id bigint PRIMARY KEY)`)
	pfExec(t, target, `CREATE TABLE users (id text, email varchar(100), n serial PRIMARY KEY)`)
	tables := append(pfTables(), Table{Name: "orders", Key: "user_id"})

	rep := pfRun(t, source, target, tables)
	pfLog(t, rep)
	for _, c := range []struct {
		check string
		words []string
	}{
		{CheckKey, []string{"users", "is text"}},
		{CheckReplicaIdentity, []string{"user_actions", "on the source"}},
		{CheckTable, []string{"orders does not exist"}},
		{CheckTargetTable, []string{"users", "email is text on the source, character varying(100) on the target", "column n (integer) is only on the target"}},
		{CheckReplicaIdentity, []string{"users", "on the target", "users_pkey (n)"}},
	} {
		if len(pfFind(rep, c.check, c.words...)) != 1 {
			t.Errorf("no %s problem with %q", c.check, c.words)
		}
	}
	if len(rep.Problems) != 5 {
		t.Errorf("%d problems %v; want the 5 above", len(rep.Problems), pfChecks(rep))
	}
}

func TestPreflightSameDatabase(t *testing.T) {
	urls := testdb.ShardDatabases(t)
	source := openDB(t, urls[0])
	pfExec(t, source, pfUsers, pfActions)

	// The same database through a second pool, as two shards with one URL.
	rep := pfRun(t, source, openDB(t, urls[0]), pfTables())
	pfLog(t, rep)
	if len(pfFind(rep, CheckDistinct, "same database")) != 1 || len(rep.Problems) != 1 {
		t.Fatalf("problems %v; want one: the same database", rep.Problems)
	}
}

func TestPreflightErrors(t *testing.T) {
	source, target := pfShards(t)
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		tables []Table
		r      VRange
	}{
		// No tables.
		{"no tables", nil, VRange{0, 9}},
		// A table without a key.
		{"no key", []Table{{Name: "users"}}, VRange{0, 9}},
		// A table twice.
		{"twice", []Table{{"users", "id"}, {"users", "id"}}, VRange{0, 9}},
		// A range outside the keyspace.
		{"range", pfTables(), VRange{0, VirtualShards}},
	} {
		if _, err := Preflight(ctx, source, target, c.tables, c.r, VirtualShards); !errors.Is(err, ErrBadMove) {
			t.Errorf("%s: err %v; want ErrBadMove", c.name, err)
		}
	}

	// A target that does not answer is an error naming the target, not a
	// problem.
	down, err := sql.Open("pgx", "postgres://strata@127.0.0.1:1/strata?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	rep, err := Preflight(ctx, source, down, pfTables(), VRange{0, 9}, VirtualShards)
	if err == nil || rep != nil || !strings.Contains(err.Error(), "shard: pre-flight: target: does not answer") {
		t.Fatalf("unanswering target: %v, %v", rep, err)
	}
	if _, err := Preflight(ctx, down, target, pfTables(), VRange{0, 9}, VirtualShards); err == nil ||
		!strings.Contains(err.Error(), "shard: pre-flight: source: does not answer") {
		t.Fatalf("unanswering source: %v", err)
	}
}

// pfServer is a server that passes every server check: PostgreSQL 15,
// logical, a superuser, room to spare.
func pfServer(id string) serverFacts {
	return serverFacts{
		version: 150004, versionText: "15.4", walLevel: "logical",
		maxSlots: 10, usedSlots: 2, maxSenders: 10, usedSenders: 2,
		maxWorkers: 4, usedWorkers: 0, syncWorkers: 2,
		systemID: id, database: "app", user: "strata", superuser: true, replication: true,
		dbCreate: true, subscribe: true, schema: "public", schemaOK: true,
	}
}

func TestServerProblems(t *testing.T) {
	type want = []string // a check, then words of its problem's detail and fix
	for _, c := range []struct {
		name     string
		src, dst func(*serverFacts)
		want     []want
	}{
		// Two good servers: nothing to report.
		{"ok", nil, nil, nil},
		// The source at replica: the publication needs logical.
		{"source replica", func(s *serverFacts) { s.walLevel = "replica" }, nil, []want{
			{CheckWALLevel, "source has wal_level = replica", "ALTER SYSTEM SET wal_level = logical on the source", "restart"}}},
		// The target at replica: the reverse replication needs logical.
		{"target replica", nil, func(s *serverFacts) { s.walLevel = "replica" }, []want{
			{CheckWALLevel, "target has wal_level = replica", "reverse replication", "wal_level = logical on the target"}}},
		// One free slot on the source: the move needs 2, and says why.
		{"source slots", func(s *serverFacts) { s.usedSlots = 9 }, nil, []want{
			{CheckSlots, "source has 1 free replication slots (max_replication_slots = 10, 9 in use)", "1 for its subscription", "max_replication_slots = 11 on the source"}}},
		// No free slot on the target: the reverse replication needs 1.
		{"target slots", nil, func(s *serverFacts) { s.maxSlots, s.usedSlots = 2, 2 }, []want{
			{CheckSlots, "target has 0 free replication slots", "reverse replication", "max_replication_slots = 3 on the target"}}},
		// More slots in use than allowed (the setting lowered since): 0 free.
		{"overfull", func(s *serverFacts) { s.maxSlots = 1 }, nil, []want{
			{CheckSlots, "source has 0 free", "max_replication_slots = 4 on the source"}}},
		// WAL senders, source and target.
		{"senders", func(s *serverFacts) { s.maxSenders = 3 }, func(s *serverFacts) { s.usedSenders = 10 }, []want{
			{CheckWALSenders, "source has 1 free WAL senders", "max_wal_senders = 4 on the source"},
			{CheckWALSenders, "target has 0 free WAL senders", "max_wal_senders = 11 on the target"}}},
		// Workers: the target's subscription needs 2, the source's reverse 1.
		{"workers", func(s *serverFacts) { s.usedWorkers = 4 }, func(s *serverFacts) { s.usedWorkers = 3 }, []want{
			{CheckWorkers, "target has 1 free logical replication workers", "max_logical_replication_workers = 5 on the target"},
			{CheckWorkers, "source has 0 free logical replication workers", "max_logical_replication_workers = 5 on the source"}}},
		// No table copy workers: the copy would never run.
		{"no sync workers", nil, func(s *serverFacts) { s.syncWorkers = 0 }, []want{
			{CheckWorkers, "max_sync_workers_per_subscription = 0", "never copy"}}},
		// PostgreSQL 14 on either side.
		{"version", func(s *serverFacts) { s.version, s.versionText = 140009, "14.9" },
			func(s *serverFacts) { s.version, s.versionText = 140009, "14.9" }, []want{
				{CheckVersion, "source runs PostgreSQL 14.9", "upgrade the source"},
				{CheckVersion, "target runs PostgreSQL 14.9", "upgrade the target"}}},
		// A standby given as the source.
		{"standby", func(s *serverFacts) { s.inRecovery = true }, nil, []want{
			{CheckPrimary, "source is a standby", "primary"}}},
		// Roles without the rights: no REPLICATION or CREATE on the
		// source, no CREATE SUBSCRIPTION on a 15 target.
		{"roles 15", func(s *serverFacts) { s.superuser, s.replication, s.dbCreate = false, false, false },
			func(s *serverFacts) { s.superuser, s.subscribe = false, false }, []want{
				{CheckPrivileges, "neither REPLICATION nor SUPERUSER", "ALTER ROLE strata REPLICATION"},
				{CheckPrivileges, "may not CREATE in database app", `GRANT CREATE ON DATABASE "app" TO strata`},
				{CheckPrivileges, "only superusers may on PostgreSQL 15.4", "ALTER ROLE strata SUPERUSER"}}},
		// On 16, pg_create_subscription is the fix.
		{"roles 16", nil, func(s *serverFacts) {
			s.superuser, s.subscribe, s.version, s.versionText = false, false, 160002, "16.2"
		}, []want{
			{CheckPrivileges, "may not create the move's subscription", "GRANT pg_create_subscription TO strata"}}},
		// The same database twice.
		{"same database", nil, func(s *serverFacts) { s.systemID = "A" }, []want{
			{CheckDistinct, "same database, app", "another PostgreSQL server"}}},
		// Two databases of one server.
		{"same server", nil, func(s *serverFacts) { s.systemID, s.database = "A", "other" }, []want{
			{CheckDistinct, "same server", "CREATE SUBSCRIPTION hangs"}}},
		// Everything wrong at once: every problem is reported.
		{"all at once", func(s *serverFacts) { s.walLevel, s.usedSlots, s.usedSenders = "minimal", 10, 10 },
			func(s *serverFacts) { s.walLevel, s.inRecovery = "replica", true }, []want{
				{CheckPrimary, "target is a standby"},
				{CheckWALLevel, "source has wal_level = minimal"},
				{CheckWALLevel, "target has wal_level = replica"},
				{CheckSlots, "source has 0 free"},
				{CheckWALSenders, "source has 0 free"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, dst := pfServer("A"), pfServer("B")
			if c.src != nil {
				c.src(&src)
			}
			if c.dst != nil {
				c.dst(&dst)
			}
			f := serverProblems(src, dst, 2)
			if len(f.problems) != len(c.want) {
				t.Errorf("%d problems, want %d:", len(f.problems), len(c.want))
				for _, p := range f.problems {
					t.Logf("  %s", p)
				}
			}
			for _, w := range c.want {
				found := false
				for _, p := range f.problems {
					text := p.Detail + " | " + p.Fix
					ok := p.Check == w[0]
					for _, word := range w[1:] {
						ok = ok && strings.Contains(text, word)
					}
					found = found || ok
				}
				if !found {
					t.Errorf("no %s problem with %q in %v", w[0], w[1:], f.problems)
				}
			}
		})
	}
}

func TestTableProblems(t *testing.T) {
	cols := []column{{"user_id", "user_id", "bigint"}, {"id", "id", "bigint"}, {"Kind", `"Kind"`, "text"}}
	table := func(mod func(*tableFacts)) tableFacts {
		f := tableFacts{ident: "user_actions", keyIdent: "user_id", exists: true, name: "public.user_actions", kind: "r",
			owned: true, identity: "d", identityIndex: "user_actions_pkey", identityCols: cols[:2], cols: cols}
		if mod != nil {
			mod(&f)
		}
		return f
	}
	key := Table{Name: "user_actions", Key: "user_id"}
	for _, c := range []struct {
		name     string
		src, dst tableFacts
		super    bool
		want     []string // check, then words of detail and fix; nil: no problem
	}{
		// The primary key contains the key; the target lacks the table.
		{"ok", table(nil), tableFacts{}, false, nil},
		// An identity index that contains the key.
		{"index", table(func(f *tableFacts) { f.identity, f.identityIndex = "i", "ua_ident" }), table(nil), false, nil},
		// An identity index without the key: named, with the fix.
		{"index without key", table(func(f *tableFacts) {
			f.identity, f.identityIndex, f.identityCols = "i", "ua_ident", []column{{"Kind", `"Kind"`, ""}}
		}), tableFacts{}, false,
			[]string{CheckReplicaIdentity, `the index ua_ident ("Kind")`, `CREATE UNIQUE INDEX ON public.user_actions (user_id, "Kind")`}},
		// Identity i whose index was dropped: no identity.
		{"index dropped", table(func(f *tableFacts) { f.identity, f.identityIndex, f.identityCols = "i", "", nil }), tableFacts{}, false,
			[]string{CheckReplicaIdentity, "no replica identity", "ADD PRIMARY KEY (user_id, <a column"}},
		// A partitioned table is refused, with the way round.
		{"partitioned", table(func(f *tableFacts) { f.kind = "p" }), tableFacts{}, false,
			[]string{CheckTable, "partitioned", "partitions"}},
		// A view is not a table.
		{"view", table(func(f *tableFacts) { f.kind = "v" }), tableFacts{}, false,
			[]string{CheckTable, "not a table (relkind v"}},
		// The key column is missing.
		{"no key column", table(func(f *tableFacts) { f.cols = cols[1:] }), tableFacts{}, false,
			[]string{CheckKey, "has no column user_id"}},
		// Another role owns the table, and the role is no superuser.
		{"not owner", table(func(f *tableFacts) { f.owned = false }), tableFacts{}, false,
			[]string{CheckPrivileges, "does not own table public.user_actions", "OWNER TO"}},
		// A superuser may publish tables it does not own.
		{"superuser", table(func(f *tableFacts) { f.owned = false }), tableFacts{}, true, nil},
		// The target's table has no identity: the reverse replication needs it.
		{"target identity", table(nil), table(func(f *tableFacts) { f.identityIndex, f.identityCols = "", nil }), false,
			[]string{CheckReplicaIdentity, "on the target", "reverse replication"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := tableProblems(key, c.src, c.dst, c.super)
			if c.want == nil {
				if len(f.problems) > 0 {
					t.Fatalf("problems %v; want none", f.problems)
				}
				return
			}
			if len(f.problems) != 1 {
				t.Fatalf("problems %v; want one", f.problems)
			}
			p := f.problems[0]
			text := p.Detail + " | " + p.Fix
			if p.Check != c.want[0] {
				t.Errorf("check %q, want %q", p.Check, c.want[0])
			}
			for _, w := range c.want[1:] {
				if !strings.Contains(text, w) {
					t.Errorf("%q lacks %q", text, w)
				}
			}
		})
	}
}
