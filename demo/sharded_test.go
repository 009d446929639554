package demo

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
)

// shardedDatabases returns a name of t's own for the sharded stage's
// databases (in place of strata_demo) and drops them, on the Postgres
// server and on each shard server, when t ends.
func shardedDatabases(t *testing.T) string {
	t.Helper()
	name := "t_demo_" + strings.ToLower(rand.Text()[:10])
	servers := map[string][]string{os.Getenv(testdb.EnvPostgres): {name}}
	for i, u := range testdb.ShardURLs(t) {
		servers[u] = append(servers[u], fmt.Sprintf("%s_shard%d", name, i+1))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for u, names := range servers {
			admin, err := sql.Open("pgx", u)
			if err != nil {
				t.Errorf("drop the demo's databases: %v", err)
				continue
			}
			for _, n := range names {
				if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
					t.Errorf("drop database %s on %s: %v", n, redacted(u), err)
				}
			}
			admin.Close()
		}
	})
	return name
}

// checkPlacement checks the sharded stage's figures against the databases:
// its shards are the stored map's, in its order; each shard's users are
// the ones the map gives it, as many as the stage reported; together they
// are at least the seeded users; and every shard was called at the fixed
// rate.
func checkPlacement(t *testing.T, cfg Config, st StageResult) {
	t.Helper()
	ctx := context.Background()
	mainURL, err := inDatabase(cfg.Postgres, cfg.dbName)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", mainURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := shard.Load(ctx, db)
	if err != nil {
		t.Fatalf("the stored shard map: %v", err)
	}
	if len(st.Shards) != len(m.Shards) {
		t.Fatalf("%s reports shards %v, the map has %d", st.Short, st.Shards, len(m.Shards))
	}
	var total int64
	for i, sh := range m.Shards {
		got := st.Shards[i]
		if got.Name != sh.Name {
			t.Errorf("%s: shard %d is %q, the map's is %q", st.Short, i, got.Name, sh.Name)
		}
		if !(got.Calls > 0) {
			t.Errorf("%s: shard %s had %v calls per request", st.Short, sh.Name, got.Calls)
		}
		sdb, err := sql.Open("pgx", sh.URL)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		rows, err := sdb.QueryContext(ctx, `SELECT id FROM users`)
		if err == nil {
			for rows.Next() {
				var id int64
				if err = rows.Scan(&id); err != nil {
					break
				}
				ids = append(ids, id)
			}
			if err == nil {
				err = rows.Err()
			}
			rows.Close()
		}
		sdb.Close()
		if err != nil {
			t.Fatalf("users on %s: %v", sh.Name, err)
		}
		if int64(len(ids)) != got.Users {
			t.Errorf("%s: reported %d users on %s, it holds %d", st.Short, got.Users, sh.Name, len(ids))
		}
		for _, id := range ids {
			if o := m.Owner(id); o != i {
				t.Errorf("user %d is on %s, the map gives it to %s", id, sh.Name, m.Shards[o].Name)
				break
			}
		}
		total += int64(len(ids))
	}
	if total < int64(cfg.Users) {
		t.Errorf("%s: %d users over the shards, %d seeded", st.Short, total, cfg.Users)
	}
}

// TestShardedStageRepeatable: the sharded stage creates its databases
// once and reseeds them on every run, and a second run over the same
// shards keeps the stored map. A map over other shards (left by a run
// given other servers) is dropped, with a word, so that Open publishes one
// over these instead of refusing them; the same shards in another order
// keep it.
func TestShardedStageRepeatable(t *testing.T) {
	testdb.Postgres(t) // skipped without the server, or failed when CI is set
	urls := testdb.ShardURLs(t)
	name := shardedDatabases(t)
	ctx := context.Background()
	var want []string // the shards' databases
	for k, u := range urls {
		su, err := inDatabase(u, fmt.Sprintf("%s_shard%d", name, k+1))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, su)
	}
	newJourney := func(out *strings.Builder) *journey {
		cfg := Config{Users: 40, Products: 10, Actions: 200, Postgres: os.Getenv(testdb.EnvPostgres), Shards: urls, dbName: name, Out: out}
		j := &journey{cfg: cfg, out: out, book: &logBook{}}
		j.log = j.book.logger(slog.LevelWarn)
		return j
	}
	for run := 1; run <= 2; run++ { // the first creates the databases and publishes the map
		var out strings.Builder
		st, closeStage, err := newJourney(&out).shardedStage(ctx)
		if err != nil {
			closeStage()
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
		m := st.store.Shards().Map()
		var got []string
		for _, sh := range m.Shards {
			got = append(got, sh.URL)
		}
		shards := shardsOf(st.store)
		err = countUsers(ctx, st.store, shards)
		closeStage()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) || m.Epoch != 1 {
			t.Errorf("run %d: the map (epoch %d) routes to %v, want %v at epoch 1", run, m.Epoch, got, want)
		}
		var users int64
		for _, sh := range shards {
			users += sh.Users
		}
		if users != 40 {
			t.Errorf("run %d: %d users over the shards %v, want the 40 seeded", run, users, shards)
		}
		if strings.Contains(out.String(), "dropped") {
			t.Errorf("run %d dropped the map:\n%s", run, out.String())
		}
	}

	mainURL, err := inDatabase(os.Getenv(testdb.EnvPostgres), name)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", mainURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	swapped := slices.Clone(want)
	slices.Reverse(swapped)
	other := []string{want[0], want[0] + "&application_name=other"}
	for _, c := range []struct {
		shards  []string
		dropped bool
	}{
		{swapped, false}, // the same shards in another order: kept
		{other, true},    // other shards: dropped
	} {
		var out strings.Builder
		if err := newJourney(&out).resetOtherMap(ctx, mainURL, c.shards); err != nil {
			t.Fatal(err)
		}
		_, err := shard.Load(ctx, db)
		if dropped := errors.Is(err, shard.ErrNoMap); dropped != c.dropped || err != nil && !dropped {
			t.Errorf("over %v: map dropped %v (%v), want %v", c.shards, dropped, err, c.dropped)
		}
		if said := strings.Contains(out.String(), "dropped"); said != c.dropped {
			t.Errorf("over %v: said %q", c.shards, out.String())
		}
	}
}

// TestInDatabase: the sharded stage's URLs name the demo's database on
// the server given.
func TestInDatabase(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		// The database is replaced; the other parameters stay.
		{"postgres://strata@127.0.0.1:55435/strata?sslmode=disable", "postgres://strata@127.0.0.1:55435/d?sslmode=disable"},
		// A search_path is dropped: a sharded store's tables are in the default schema.
		{"postgres://u:pw@h:5432/x?search_path=s&sslmode=disable", "postgres://u:pw@h:5432/d?sslmode=disable"},
		// A URL without a database gets one.
		{"postgresql://u@h", "postgresql://u@h/d"},
	}
	for _, c := range cases {
		got, err := inDatabase(c.in, "d")
		if err != nil || got != c.want {
			t.Errorf("inDatabase(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// SQLite cannot hold the sharded stage.
	if _, err := inDatabase("sqlite://x.db", "d"); !errors.Is(err, ErrBadConfig) {
		t.Errorf("inDatabase of an SQLite URL: %v, want ErrBadConfig", err)
	}
}

// TestShardReading: at a sharded stage the shard router's calls are read
// by shard, and its shards' replica routers (labelled shard) count neither
// as database queries nor as reads on replicas.
func TestShardReading(t *testing.T) {
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_shard_calls_total", Help: "h"}, []string{"shard"})
	q := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_replica_query_duration_seconds", Help: "h"}, []string{"shard", "pool"})
	reg.MustRegister(calls, q)
	calls.WithLabelValues("shard1").Add(5)
	before, err := read(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls.WithLabelValues("shard1").Add(30)
	calls.WithLabelValues("shard2").Add(10)
	for range 40 {
		q.WithLabelValues("shard1", "primary").Observe(0.001)
	}
	after, err := read(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := StageResult{Queries: math.NaN(), OnReplicas: math.NaN(), Shards: []Shard{{Name: "shard1"}, {Name: "shard2"}}}
	after.since(before, 100, &res)
	if !math.IsNaN(res.Queries) || !math.IsNaN(res.OnReplicas) {
		t.Errorf("queries %v, on replicas %v: want NaN, NaN", res.Queries, res.OnReplicas)
	}
	if want := []Shard{{Name: "shard1", Calls: 0.3}, {Name: "shard2", Calls: 0.1}}; !slices.Equal(res.Shards, want) {
		t.Errorf("shards %v, want %v", res.Shards, want)
	}
	cell := shardCell(func(sh Shard) string { return fmt.Sprintf("%.2f", sh.Calls) })
	if got, want := cell(res), "shard1 0.30, shard2 0.10"; got != want {
		t.Errorf("cell %q, want %q", got, want)
	}
	if got := cell(StageResult{}); got != "-" {
		t.Errorf("cell of an unsharded stage %q, want -", got)
	}
}
