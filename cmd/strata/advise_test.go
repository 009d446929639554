package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/advisor"
	"github.com/strata-dev/strata/internal/testdb"
)

// adviseDB returns a fresh database on the STRATA_PG_URL server (skipped
// without it, failing under CI) after running setup in it as superuser.
func adviseDB(t *testing.T, setup ...string) string {
	t.Helper()
	url := testdb.PostgresDatabase(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, stmt := range setup {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return url
}

// asNewRole returns url with its user replaced by role.
func asNewRole(t *testing.T, url, role string) string {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.User(role)
	return u.String()
}

// dropRoleAtEnd drops role once t's other cleanups (registered later, so
// run earlier: the database) are done.
func dropRoleAtEnd(t *testing.T, role string) {
	t.Helper()
	base := os.Getenv(testdb.EnvPostgres)
	t.Cleanup(func() {
		if base == "" {
			return
		}
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP ROLE IF EXISTS "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
}

// TestAdviseBadInput: each way strata advise cannot run says what is
// wrong, with exit code 2 for a bad command line and 1 for a database
// that is unreachable or not ready, and never prints a password or a
// huge input back.
func TestAdviseBadInput(t *testing.T) {
	role := fmt.Sprintf("advise_nostats_%d", time.Now().UnixNano()%1_000_000_000)
	huge := "sqlite://" + strings.Repeat("x", 100_000)
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
		code int
		want []string // in stdout+stderr
	}{
		// port 1 refuses connections: a runtime error, said in one line, without the password
		{"unreachable", fixed("advise", "--db", "postgres://strata:s3cret@127.0.0.1:1/x"), 1,
			[]string{"strata: cannot reach the database at 127.0.0.1:1/x: ", "connection refused"}},
		// a fresh database has neither extension: both are named, with how to create them
		{"no pg_stat_statements", func(t *testing.T) []string {
			return []string{"advise", "--db", adviseDB(t)}
		}, 1, []string{"not ready for advice", "pg_stat_statements", "CREATE EXTENSION pg_stat_statements", "CREATE EXTENSION hypopg"}},
		// pg_stat_statements alone: hypopg is named, with how to create it
		{"no hypopg", func(t *testing.T) []string {
			return []string{"advise", "--db", adviseDB(t, "CREATE EXTENSION pg_stat_statements")}
		}, 1, []string{"the hypopg extension is not created", "CREATE EXTENSION hypopg"}},
		// a role that cannot read other roles' statistics is told what to grant
		{"no pg_read_all_stats", func(t *testing.T) []string {
			dropRoleAtEnd(t, role) // before adviseDB: runs after the database is dropped
			url := adviseDB(t, "CREATE EXTENSION pg_stat_statements", "CREATE EXTENSION hypopg", "CREATE ROLE "+role+" LOGIN")
			return []string{"advise", "--db", asNewRole(t, url, role)}
		}, 1, []string{"role \"" + role + "\" cannot read other roles' statistics: GRANT pg_read_all_stats TO"}},
		// a URL pgx cannot parse is a usage error, its password masked
		{"bad port", fixed("advise", "--db", "postgres://strata:s3cret@127.0.0.1:99999/x"), 2, []string{"--db: cannot parse", "invalid port"}},
		// a bad setting, the password given in the query
		{"bad setting", fixed("advise", "--db", "postgres://strata@127.0.0.1:1/x?password=s3cret&sslmode=bogus"), 2, []string{"--db: cannot parse", "sslmode is invalid"}},
		// a keyword/value string is not a URL; its password is not shown either
		{"keyword string", fixed("advise", "--db", "host=127.0.0.1 password=s3cret"), 2, []string{"not a PostgreSQL URL", "password=xxxxx"}},
		// SQLite has no pg_stat_statements
		{"sqlite", fixed("advise", "--db", "sqlite://strata.db"), 2,
			[]string{`--db "sqlite://strata.db": not a PostgreSQL URL: the advisor needs PostgreSQL with pg_stat_statements and HypoPG`}},
		// a huge value is not echoed whole
		{"huge db", fixed("advise", "--db", huge), 2, []string{"bytes)", "the advisor needs PostgreSQL"}},
		// a negative count
		{"negative top", fixed("advise", "--db", "postgres://a@127.0.0.1:1/x", "--top", "-1"), 2, []string{"--top -1: want 1 to 100000"}},
		// --db has no default: the advisor must not guess a database
		{"missing db", fixed("advise"), 2, []string{"--db is required"}},
		// a negative threshold
		{"negative slow", fixed("advise", "--db", "postgres://a@127.0.0.1:1/x", "--slow-ms", "-5"), 2, []string{"--slow-ms -5"}},
		// a percentage over 100
		{"improvement over 100", fixed("advise", "--db", "postgres://a@127.0.0.1:1/x", "--min-improvement", "150"), 2, []string{"--min-improvement 150"}},
		// a negative rate
		{"negative qps", fixed("advise", "--db", "postgres://a@127.0.0.1:1/x", "--expected-qps", "-1"), 2, []string{"--expected-qps -1"}},
		// a timeout of zero would give up at once
		{"zero timeout", fixed("advise", "--db", "postgres://a@127.0.0.1:1/x", "--timeout", "0s"), 2, []string{"--timeout 0s"}},
		// --keep means nothing without --verify
		{"keep without verify", fixed("advise", "--db", "postgres://a@127.0.0.1:1/x", "--keep"), 2, []string{"--keep needs --verify"}},
		// --verify-db must be PostgreSQL too, and its password stays hidden
		{"sqlite verify db", fixed("advise", "--db", "postgres://a@127.0.0.1:1/x", "--verify", "--verify-db", "sqlite://u:s3cret@x"), 2,
			[]string{"--verify-db", "not a PostgreSQL URL"}},
		// two outputs cannot share standard output
		{"both to stdout", fixed("advise", "--db", "postgres://a@127.0.0.1:1/x", "--json", "-", "--sql", "-"), 2, []string{"only one of them"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runBadInput(t, tc.args(t), tc.code, tc.want)
		})
	}
}

func fixed(args ...string) func(*testing.T) []string {
	return func(*testing.T) []string { return args }
}

// runBadInput runs strata with args and checks what every bad-input answer
// must be: exit code, each of want in the output, no password, a short
// message, in bounded time. It returns standard error.
func runBadInput(t *testing.T, args []string, wantCode int, want []string) string {
	t.Helper()
	start := time.Now()
	code, out, errOut := runCLI(t, args...)
	all := out + errOut
	if code != wantCode {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("output lacks %q:\n%s", w, all)
		}
	}
	if strings.Contains(all, "s3cret") {
		t.Errorf("output shows the password:\n%s", all)
	}
	if len(all) > 2000 {
		t.Errorf("output is %d bytes", len(all))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s", d)
	}
	t.Logf("strata %s\n%s", clipArgs(args), all)
	return errOut
}

// clipArgs shows a command line in a log, huge values cut.
func clipArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = bounded(a)
	}
	return strings.Join(out, " ")
}

// TestAdviseHappyPath: on a database with both extensions and a small
// workload, strata advise exits 0, prints the text report, and writes a
// JSON report that decodes and a migration.
func TestAdviseHappyPath(t *testing.T) {
	url := adviseDB(t,
		"CREATE EXTENSION pg_stat_statements",
		"CREATE EXTENSION hypopg",
		"CREATE TABLE items (id bigint PRIMARY KEY, owner int NOT NULL, name text NOT NULL)",
		"INSERT INTO items SELECT g, g % 100, 'item ' || g FROM generate_series(1, 5000) g",
		"ANALYZE items",
	)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for i := range 20 {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE owner = $1", i).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE name = $1", fmt.Sprint("item ", i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	jsonPath, sqlPath := filepath.Join(dir, "advice.json"), filepath.Join(dir, "migration.sql")
	code, out, errOut := runCLI(t, "advise", "--db", url, "--json", jsonPath, "--sql", sqlPath, "--timeout", "2m")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("text report:\n%s", out)
	for _, w := range []string{"Query advice for database", "Top queries by total time", "FROM items WHERE owner", "Indexes to create", "Notes"} {
		if !strings.Contains(out, w) {
			t.Errorf("text report lacks %q", w)
		}
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep advisor.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, data)
	}
	if !strings.HasPrefix(rep.Database, "t_") || len(rep.Queries) == 0 {
		t.Errorf("report: database %q, %d queries", rep.Database, len(rep.Queries))
	}
	migration, err := os.ReadFile(sqlPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(migration), "cannot run inside a\n-- transaction block") {
		t.Errorf("migration:\n%s", migration)
	}

	// --json - puts the JSON on standard output, instead of the text.
	code, out, errOut = runCLI(t, "advise", "--db", url, "--json", "-")
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Errorf("--json -: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// TestHidePasswords: a password never survives, whatever form the URL has.
func TestHidePasswords(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://u:secret@h:5432/db", "postgres://u:xxxxx@h:5432/db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"u:secret@h:5432/db", "…@h:5432/db"}, // no scheme: parses as opaque
		{"postgres://u:secret@h:bad/db", "…@h:bad/db"},
		{"host=h password=secret", "host=h password=xxxxx"},
	} {
		if got := hidePasswords(c.in); got != c.want || strings.Contains(got, "secret") {
			t.Errorf("hidePasswords(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
