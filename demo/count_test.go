package demo

import (
	"context"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// TestCountingConnector: every way database/sql runs a statement is
// counted once, preparing, beginning, committing and pinging are not, and
// values go through the wrapper unchanged, on both engines.
func TestCountingConnector(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			kind := storefront.SQLite
			if b.Name == "postgres" {
				kind = storefront.Postgres
			}
			j := &journey{cfg: Config{}, out: discard{}, book: &logBook{}}
			j.log = j.book.logger(0)
			store, n, closeStore, err := j.openCounted(ctx, b.URL(t), kind)
			if err != nil {
				t.Fatal(err)
			}
			defer closeStore()
			db := store.DB()
			if _, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, at TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 30, 10, 0, 0, 123000, time.UTC)
			cases := []struct {
				name string
				want int64 // statements counted
				run  func() error
			}{
				// The storefront's background work is not a request's cost.
				{"background", 0, func() error {
					var n int
					return db.QueryRowContext(storefront.WithBackground(ctx), `SELECT count(*) FROM t`).Scan(&n)
				}},
				// A direct Exec is one statement.
				{"exec", 1, func() error {
					_, err := db.ExecContext(ctx, `INSERT INTO t VALUES (1, 'a', $1)`, at)
					return err
				}},
				// A query and the scan of its row: one.
				{"query row", 1, func() error {
					var v string
					var got time.Time
					if err := db.QueryRowContext(ctx, `SELECT v, at FROM t WHERE k = $1`, 1).Scan(&v, &got); err != nil {
						return err
					}
					if v != "a" || !got.Equal(at) {
						t.Errorf("read back %q %v, want a %v", v, got, at)
					}
					return nil
				}},
				// Preparing is not a statement; each execution is.
				{"prepared twice", 2, func() error {
					st, err := db.PrepareContext(ctx, `INSERT INTO t (k, v) VALUES ($1, $2)`)
					if err != nil {
						return err
					}
					defer st.Close()
					for k := 2; k <= 3; k++ {
						if _, err := st.ExecContext(ctx, k, "b"); err != nil {
							return err
						}
					}
					return nil
				}},
				// In a transaction: its statements, not BEGIN or COMMIT.
				{"transaction", 2, func() error {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					defer tx.Rollback()
					if _, err := tx.ExecContext(ctx, `UPDATE t SET v = 'c' WHERE k = 2`); err != nil {
						return err
					}
					rows, err := tx.QueryContext(ctx, `SELECT k FROM t ORDER BY k`)
					if err != nil {
						return err
					}
					rows.Close()
					return tx.Commit()
				}},
				// A ping is no statement.
				{"ping", 0, func() error { return db.PingContext(ctx) }},
			}
			for _, c := range cases {
				before := n.Load()
				if err := c.run(); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if got := n.Load() - before; got != c.want {
					t.Errorf("%s: counted %d statements, want %d", c.name, got, c.want)
				}
			}
		})
	}
}

// TestCountingConnectorStore: the storefront's own reads through a counted
// pool cost what its code says: one statement for a user by id.
func TestCountingConnectorStore(t *testing.T) {
	ctx := context.Background()
	url := testdb.SQLite(t)
	seeded, err := storefront.Open(ctx, url, storefront.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storefront.Seed(ctx, seeded, storefront.SeedConfig{Users: 5, Products: 5, Actions: 5, RandSeed: 1}); err != nil {
		t.Fatal(err)
	}
	seeded.Close()
	j := &journey{out: discard{}, book: &logBook{}}
	j.log = j.book.logger(0)
	store, n, closeStore, err := j.openCounted(ctx, url, storefront.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	before := n.Load()
	if _, err := store.GetUser(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := n.Load() - before; got != 1 {
		t.Errorf("GetUser counted %d statements, want 1", got)
	}
	if st := store.DB().Stats(); st.MaxOpenConnections != sqliteConns {
		t.Errorf("the counted SQLite pool allows %d connections, want %d as `strata serve`", st.MaxOpenConnections, sqliteConns)
	}
}

// discard is an io.Writer that drops everything.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
