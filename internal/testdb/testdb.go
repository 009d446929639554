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
	"net/url"
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
	base := env(t, EnvPostgres, "PostgreSQL")
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

// env returns the value of the variable name, which scripts/dev sets. When
// it is unset, t is skipped on a developer's machine and fails when CI is
// set; what names the servers in the message.
func env(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if Required() {
			t.Fatalf("%s is not set and CI is: %s tests must run here (eval \"$(scripts/dev up)\")", name, what)
		}
		t.Skipf("%s not set; run eval \"$(scripts/dev up)\" to run %s tests", name, what)
	}
	return v
}

// PostgresDatabase returns the URL of a new, empty database on the
// STRATA_PG_URL server (created from template0, so without extensions),
// dropped when t ends. Tests that read server-wide statistics filtered by
// database, such as pg_stat_statements, need a database of their own rather
// than a schema.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	return database(t, env(t, EnvPostgres, "PostgreSQL"), EnvPostgres)
}

// database creates a new, empty database on the server of base (whose
// variable is from, for messages), dropped when t ends, and returns its URL.
func database(t testing.TB, base, from string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("testdb: open %s: %v", from, err)
	}
	name := "t_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		admin.Close()
		t.Fatalf("testdb: create database: %v (is the server at %s up? scripts/dev up)", err, from)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testdb: %s: %v", from, err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
