// Package testdb hands tests real databases: an SQLite file in a temporary
// folder, or a fresh schema on the PostgreSQL server named by STRATA_PG_URL
// (set by `eval "$(scripts/dev up)"`, which `make test` does).
//
// Without STRATA_PG_URL a PostgreSQL test is skipped on a developer's
// machine and fails when CI is set: CI must never pass by skipping.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// EnvPostgres names the variable holding the PostgreSQL primary's URL.
const EnvPostgres = "STRATA_PG_URL"

// Backend is a database engine tests run against.
type Backend struct {
	Name string
	// URL returns the URL of a fresh, empty database for t, removed when t ends.
	URL func(t testing.TB) string
}

// Backends returns SQLite and PostgreSQL, for one suite run on both.
func Backends() []Backend {
	return []Backend{{Name: "sqlite", URL: SQLite}, {Name: "postgres", URL: Postgres}}
}

// SQLite returns the URL of a new SQLite file in t's temporary folder.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "test.db")
}

// Required reports whether tests must not skip for want of a server: true
// when the CI variable is set to anything but "", "false" or "0".
func Required() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Postgres returns the URL of a new schema on the STRATA_PG_URL server,
// dropped when t ends. The URL sets search_path, so unqualified tables land
// in the schema and tests cannot see each other's rows.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		if Required() {
			t.Fatalf("%s is not set and CI is: PostgreSQL tests must run here (eval \"$(scripts/dev up)\")", EnvPostgres)
		}
		t.Skipf("%s not set; run eval \"$(scripts/dev up)\" to run PostgreSQL tests", EnvPostgres)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("testdb: open %s: %v", EnvPostgres, err)
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		t.Fatalf("testdb: PostgreSQL at %s does not answer: %v (start it with scripts/dev up)", EnvPostgres, err)
	}
	schema := "t_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("testdb: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testdb: drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
