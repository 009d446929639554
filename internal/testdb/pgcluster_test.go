package testdb_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
)

func TestPGCluster(t *testing.T) {
	var c *testdb.PGCluster
	// Registered first, so it runs after the cluster's own cleanup.
	t.Cleanup(func() {
		if c == nil {
			return
		}
		for _, u := range append([]string{c.PrimaryURL()}, c.ReplicaURLs()...) {
			if portOpen(t, u) {
				t.Errorf("%s still accepts connections after the cleanup", u)
			}
		}
	})
	start := time.Now()
	c = testdb.StartPostgresCluster(t)
	t.Logf("StartPostgresCluster took %v", time.Since(start).Round(time.Millisecond))

	replicas := c.ReplicaURLs()
	if len(replicas) != 2 {
		t.Fatalf("ReplicaURLs() = %v, want two", replicas)
	}
	primary, r1, r2 := open(t, c.PrimaryURL()), open(t, replicas[0]), open(t, replicas[1])
	mustExec(t, primary, "CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL)")
	mustExec(t, primary, "INSERT INTO kv VALUES (1, 'one')")
	waitRow(t, r1, 1)
	waitRow(t, r2, 1)

	c.Kill("replica1")
	if portOpen(t, replicas[0]) {
		t.Fatal("replica1 still accepts connections after Kill")
	}
	mustExec(t, primary, "INSERT INTO kv VALUES (2, 'two')")
	start = time.Now()
	c.Start("replica1")
	t.Logf("Start(replica1) after Kill took %v", time.Since(start).Round(time.Millisecond))
	waitRow(t, r1, 2) // r1's old connections died with the server: waitRow retries

	c.PauseReplay("replica2")
	mustExec(t, primary, "INSERT INTO kv VALUES (3, 'three')")
	var lsn string
	if err := primary.QueryRow("SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	waitRow(t, r1, 3)
	// replica2 receives the WAL holding row 3, but must not apply it.
	waitTrue(t, r2, "SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn", lsn)
	if hasRow(t, r2, 3) {
		t.Fatal("replica2 applied WAL while its replay was paused")
	}
	c.ResumeReplay("replica2")
	waitRow(t, r2, 3)

	// A frozen primary keeps its port open and answers nothing, on a
	// pooled connection or a new one; thawed, it answers again.
	c.Freeze("primary")
	if !portOpen(t, c.PrimaryURL()) {
		t.Fatal("the frozen primary refuses connections; want them accepted and left unanswered")
	}
	fresh := open(t, c.PrimaryURL())
	for _, db := range []*sql.DB{primary, fresh} {
		const budget = 300 * time.Millisecond
		t0 := time.Now() // before the deadline is set: took is then at least budget
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		took := time.Since(t0)
		cancel()
		if err == nil || took < budget {
			t.Fatalf("a query of the frozen primary: %v after %v; want no answer within %v", err, took, budget)
		}
	}
	c.Thaw("primary")
	mustExec(t, primary, "INSERT INTO kv VALUES (4, 'four')")
	waitRow(t, r1, 4)
	// Left frozen: the cleanup thaws it before stopping the cluster (the
	// first cleanup checks that every port is closed).
	c.Freeze("replica2")
}

func open(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, query string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func hasRow(t *testing.T, db *sql.DB, k int) bool {
	t.Helper()
	var v string
	err := db.QueryRow("SELECT v FROM kv WHERE k = $1", k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// waitRow waits until row k is visible on db, retrying on errors (a
// restarted server, or the table not replayed yet).
func waitRow(t *testing.T, db *sql.DB, k int) {
	t.Helper()
	waitTrue(t, db, "SELECT EXISTS (SELECT 1 FROM kv WHERE k = $1)", k)
}

// waitTrue waits until query returns true, retrying on errors.
func waitTrue(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var ok bool
		err = db.QueryRowContext(ctx, query, args...).Scan(&ok)
		cancel()
		if err == nil && ok {
			return
		}
	}
	t.Fatalf("%s %v: not true after 15s (last error: %v)", query, args, err)
}

func portOpen(t *testing.T, pgURL string) bool {
	t.Helper()
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
