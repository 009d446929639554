package shard_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/replica"
	"github.com/strata-dev/strata/shard"
)

// twoShards returns a map over the two independent primaries scripts/dev
// starts, each URL pointing at a schema of the test's own.
func twoShards(t *testing.T) *shard.Map {
	t.Helper()
	var shards []shard.Shard
	for i, u := range testdb.ShardURLs(t) {
		shards = append(shards, shard.Shard{Name: []string{"s1", "s2"}[i], URL: schemaOn(t, u)})
	}
	m, err := shard.NewHashMap(shards, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// schemaOn creates a schema for the test on the server at url and returns
// url with search_path set to it; the schema is dropped at the end.
func schemaOn(t *testing.T, url string) string {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	if _, err := db.Exec(`CREATE SCHEMA "` + name + `"`); err != nil {
		t.Fatalf("create schema on %s: %v", url, err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DROP SCHEMA "` + name + `" CASCADE`)
		db.Close()
	})
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + name
}

// keyOn returns a key the map puts on shard index i.
func keyOn(m *shard.Map, i int) int64 {
	for k := int64(1); ; k++ {
		if m.Owner(k) == i {
			return k
		}
	}
}

func newRouter(t *testing.T, m *shard.Map, cfg shard.Config) *shard.Router {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := shard.New(ctx, m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRouterRoutes: each key's reads and writes run on the shard the map
// names, For does not allocate, and the metrics are well formed.
func TestRouterRoutes(t *testing.T) {
	m := twoShards(t)
	reg := prometheus.NewRegistry()
	r := newRouter(t, m, shard.Config{Registerer: reg})
	ctx := context.Background()
	for _, tg := range r.Shards() {
		if _, err := tg.DB.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, `CREATE TABLE kv (k bigint PRIMARY KEY, shard text NOT NULL)`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for k := int64(-50); k < 50; k++ {
		if _, err := r.Write(ctx, k, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, `INSERT INTO kv VALUES ($1, $2)`, k, r.For(k).Name)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Each shard holds exactly the keys the map gives it.
	for i, tg := range r.Shards() {
		var n, wrong int
		err := tg.DB.Read(ctx, func(ctx context.Context, q replica.Querier) error {
			return q.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE shard <> $1) FROM kv`, tg.Name).Scan(&n, &wrong)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for k := int64(-50); k < 50; k++ {
			if m.Owner(k) == i {
				want++
			}
		}
		if n != want || wrong != 0 || n == 0 {
			t.Errorf("shard %s holds %d keys (%d of another shard), want %d", tg.Name, n, wrong, want)
		}
	}
	if a := testing.AllocsPerRun(1000, func() { _ = r.For(12345) }); a != 0 {
		t.Errorf("For allocates %v times a call", a)
	}
	if problems, err := testutil.CollectAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", err, problems)
	}
	if got := metricValue(t, reg, "strata_shard_map_epoch"); got != 1 {
		t.Errorf("strata_shard_map_epoch = %v, want 1", got)
	}
}

// TestRouterTxOneShard: a transaction over keys of one shard runs; over
// keys of two it is refused before anything runs.
func TestRouterTxOneShard(t *testing.T) {
	m := twoShards(t)
	r := newRouter(t, m, shard.Config{})
	ctx := context.Background()
	a, b := keyOn(m, 0), keyOn(m, 1)
	ran := false
	_, err := r.Tx(ctx, []int64{a, b}, func(ctx context.Context, tx *sql.Tx) error { ran = true; return nil })
	if !errors.Is(err, shard.ErrCrossShard) || ran {
		t.Fatalf("Tx over two shards: %v (ran %v), want ErrCrossShard and nothing run", err, ran)
	}
	if !strings.Contains(err.Error(), "s1") || !strings.Contains(err.Error(), "s2") {
		t.Errorf("the error does not name both shards: %v", err)
	}
	if _, err := r.Tx(ctx, []int64{a, a}, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `SELECT 1`)
		return err
	}); err != nil {
		t.Errorf("Tx on one shard: %v", err)
	}
}

// TestRouterEachStalledShard: a fan-out with one shard stalled on a lock
// returns within its deadline and names the missing shard; the others'
// answers are kept.
func TestRouterEachStalledShard(t *testing.T) {
	m := twoShards(t)
	const deadline = 300 * time.Millisecond
	r := newRouter(t, m, shard.Config{EachTimeout: deadline})
	ctx := context.Background()
	for _, tg := range r.Shards() {
		if _, err := tg.DB.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, `CREATE TABLE lockme (id int PRIMARY KEY); INSERT INTO lockme VALUES (1)`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the row on s2 in a transaction of another connection.
	holder, err := sql.Open("pgx", m.Shards[1].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // releases the lock
	if _, err := tx.ExecContext(ctx, `SELECT * FROM lockme FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := r.Each(ctx, func(ctx context.Context, tg *shard.Target) error {
		_, err := tg.DB.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, `UPDATE lockme SET id = id WHERE id = 1`)
			return err
		})
		return err
	})
	took := time.Since(start)
	if !errors.Is(err, shard.ErrPartial) || !strings.Contains(err.Error(), "s2") {
		t.Fatalf("Each with s2 stalled: %v, want ErrPartial naming s2", err)
	}
	if len(res.Answered) != 1 || res.Answered[0] != "s1" || res.Failed["s2"] == nil || res.Complete() {
		t.Errorf("result %+v, want s1 answered and s2 failed", res)
	}
	// The deadline, with room for a loaded machine; far below the lock's
	// indefinite wait.
	if took > deadline+2*time.Second {
		t.Errorf("Each took %v with a %v deadline", took, deadline)
	}
	if why := res.Failed["s2"]; why == nil || !strings.Contains(why.Error(), "no answer within 300ms") {
		t.Errorf("s2 failed with %v, want it to say it gave no answer within the deadline", why)
	}
	// A deadline of the caller's own, for work longer than a request's.
	res, err = r.EachWithin(ctx, 100*time.Millisecond, func(ctx context.Context, tg *shard.Target) error {
		_, err := tg.DB.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, `UPDATE lockme SET id = id WHERE id = 1`)
			return err
		})
		return err
	})
	if !errors.Is(err, shard.ErrPartial) || res.Failed["s2"] == nil || !strings.Contains(res.Failed["s2"].Error(), "100ms") {
		t.Errorf("EachWithin 100ms with s2 stalled: %+v, %v", res, err)
	}
	if _, err := r.EachWithin(ctx, 0, func(context.Context, *shard.Target) error { return nil }); err == nil {
		t.Error("EachWithin with no timeout: want an error")
	}
}

// TestRouterShardDown: with one shard's postmaster killed, its keys fail
// fast with an error naming it, and the other shard's keys are served.
func TestRouterShardDown(t *testing.T) {
	c := testdb.StartPostgresCluster(t)
	m, err := shard.NewHashMap([]shard.Shard{
		{Name: "doomed", URL: c.PrimaryURL()},
		{Name: "healthy", URL: schemaOn(t, testdb.ShardURLs(t)[0])},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := newRouter(t, m, shard.Config{})
	ctx := context.Background()
	read := func(key int64) error {
		return r.Read(ctx, key, func(ctx context.Context, q replica.Querier) error {
			var one int
			return q.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
		})
	}
	down, up := keyOn(m, 0), keyOn(m, 1)
	if err := read(down); err != nil {
		t.Fatalf("before the kill: %v", err)
	}
	c.Kill("primary")
	start := time.Now()
	err = read(down)
	took := time.Since(start)
	var se *shard.Error
	if !errors.As(err, &se) || se.Shard != "doomed" {
		t.Fatalf("a key of the killed shard: %v, want a shard.Error naming doomed", err)
	}
	if took > time.Second {
		t.Errorf("the failure took %v, want under 1 s", took)
	}
	if err := read(up); err != nil {
		t.Errorf("a key of the healthy shard: %v", err)
	}
}

// TestRouterApply: a newer map changes the routes at once; an older or
// equal one is refused and changes nothing.
func TestRouterApply(t *testing.T) {
	m := twoShards(t)
	r := newRouter(t, m, shard.Config{})
	ctx := context.Background()
	moved := *m
	moved.Epoch = 2
	moved.Owners = make([]int, len(m.Owners))
	for v := range moved.Owners {
		moved.Owners[v] = 1 - m.Owners[v] // every virtual shard changes hands
	}
	k := keyOn(m, 0)
	if err := r.Apply(ctx, &moved); err != nil {
		t.Fatal(err)
	}
	if got := r.For(k).Name; got != "s2" || r.Map().Epoch != 2 {
		t.Errorf("after epoch 2, key %d is on %s (epoch %d), want s2", k, got, r.Map().Epoch)
	}
	if err := r.Apply(ctx, m); !errors.Is(err, shard.ErrStaleMap) {
		t.Errorf("Apply of epoch 1 after 2: %v, want ErrStaleMap", err)
	}
	if err := r.Apply(ctx, &moved); err != nil {
		t.Errorf("Apply of the epoch in use: %v, want a no-op", err)
	}
	if got := r.For(k).Name; got != "s2" {
		t.Errorf("a refused map changed the routes: key %d on %s", k, got)
	}
}

// BenchmarkRouterFor: the routing decision alone, on a 1,000-virtual-shard
// map over two shards.
func BenchmarkRouterFor(b *testing.B) {
	var shards []shard.Shard
	for i, u := range testdb.ShardURLs(b) {
		shards = append(shards, shard.Shard{Name: []string{"s1", "s2"}[i], URL: u})
	}
	m, err := shard.NewHashMap(shards, 0)
	if err != nil {
		b.Fatal(err)
	}
	r, err := shard.New(context.Background(), m, shard.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	var k int64
	for b.Loop() {
		k++
		_ = r.For(k)
	}
}

// TestRouterApplyFailures: a map the router cannot apply leaves the one in
// use routing as before: a shard that cannot be opened, a shard in use
// given other URLs; after Close, calls fail with ErrClosed.
func TestRouterApplyFailures(t *testing.T) {
	m := twoShards(t)
	r := newRouter(t, m, shard.Config{Registerer: prometheus.NewRegistry()})
	ctx := context.Background()
	k := keyOn(m, 0)
	for _, c := range []struct {
		name   string
		change func(*shard.Map)
		want   error
	}{
		// a third shard whose URL no driver accepts
		{"unopenable shard", func(n *shard.Map) {
			n.Shards = append(n.Shards, shard.Shard{Name: "s3", URL: "postgres://a@127.0.0.1:5432/x?sslmode=bogus"})
		}, nil},
		// s1 given another server under the same name
		{"s1 moved", func(n *shard.Map) { n.Shards[0].URL += "&application_name=other" }, shard.ErrBadMap},
	} {
		n := *m
		n.Epoch = m.Epoch + 1
		n.Shards = append([]shard.Shard(nil), m.Shards...)
		c.change(&n)
		err := r.Apply(ctx, &n)
		if err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Apply = %v, want an error (%v)", c.name, err, c.want)
		}
		if r.Map().Epoch != m.Epoch || r.For(k).Name != "s1" {
			t.Errorf("%s: the failed Apply changed the routes: epoch %d, key on %s", c.name, r.Map().Epoch, r.For(k).Name)
		}
	}
	r.Close()
	if err := r.Read(ctx, k, func(context.Context, replica.Querier) error { return nil }); !errors.Is(err, shard.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if _, err := r.Each(ctx, func(context.Context, *shard.Target) error { return nil }); !errors.Is(err, shard.ErrClosed) {
		t.Errorf("Each after Close: %v, want ErrClosed", err)
	}
}

// whoami creates on every shard a table naming the shard, and returns a
// function that reads which shard served a read of key.
func whoami(t *testing.T, r *shard.Router) func(key int64) string {
	t.Helper()
	ctx := context.Background()
	for _, tg := range r.Shards() {
		if _, err := tg.DB.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, `CREATE TABLE whoami (name text); INSERT INTO whoami VALUES ('`+tg.Name+`')`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return func(key int64) string {
		var name string
		if err := r.Read(ctx, key, func(ctx context.Context, q replica.Querier) error {
			return q.QueryRowContext(ctx, `SELECT name FROM whoami`).Scan(&name)
		}); err != nil {
			t.Fatal(err)
		}
		return name
	}
}

// moving returns a copy of m at epoch e whose key's virtual shard is
// moving to the other shard.
func moving(m *shard.Map, e int64, key int64, share int, fenced bool) *shard.Map {
	c := *m
	c.Epoch = e
	v := shard.VirtualShard(key, len(m.Owners))
	c.Moves = []shard.MapMove{{VShards: shard.VRange{Lo: v, Hi: v}, To: 1 - m.Owner(key), ReadShare: share, Fenced: fenced}}
	return &c
}

// TestRouterReadShare: reads of a moving virtual shard go to the target
// for the move's share of calls (none, some, all); For still names the
// owner.
func TestRouterReadShare(t *testing.T) {
	m := twoShards(t)
	r := newRouter(t, m, shard.Config{})
	who := whoami(t, r)
	key := keyOn(m, 0)
	for i, c := range []struct {
		share      int
		minT, maxT int // reads of 200 served by the target
	}{{0, 0, 0}, {50, 40, 160}, {100, 200, 200}} {
		if err := r.Apply(context.Background(), moving(m, int64(2+i), key, c.share, false)); err != nil {
			t.Fatal(err)
		}
		onTarget := 0
		for range 200 {
			if who(key) == "s2" {
				onTarget++
			}
		}
		if onTarget < c.minT || onTarget > c.maxT || r.For(key).Name != "s1" {
			t.Errorf("read share %d%%: %d of 200 reads on the target (want %d to %d), For = %s", c.share, onTarget, c.minT, c.maxT, r.For(key).Name)
		}
	}
	if who(keyOn(m, 1)) != "s2" {
		t.Error("a key that is not moving read elsewhere than its owner")
	}
}

// TestRouterApplyDrainsWrites: Apply returns only once the writes routed
// by the map it replaced have finished (a fence relies on it); while one
// runs, Apply fails when its context ends, and a later Apply of the same
// map waits for it again.
func TestRouterApplyDrainsWrites(t *testing.T) {
	m := twoShards(t)
	r := newRouter(t, m, shard.Config{})
	whoami(t, r)
	key := keyOn(m, 0)
	started, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := r.Write(context.Background(), key, func(context.Context, replica.Querier) error {
			close(started)
			<-release
			return nil
		})
		done <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	next := moving(m, 2, key, 0, true)
	if err := r.Apply(ctx, next); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("Apply while a write of the old map runs: %v, want an error saying so", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(context.Background(), next); err != nil {
		t.Fatalf("Apply again once the write finished: %v", err)
	}
}

// TestRouterReadShareFallsBack: a read that the move's target fails
// (here its table is gone; as well it could be down, or lag behind a
// write) is answered by the owner.
func TestRouterReadShareFallsBack(t *testing.T) {
	m := twoShards(t)
	r := newRouter(t, m, shard.Config{})
	who := whoami(t, r)
	key := keyOn(m, 0)
	if err := r.Apply(context.Background(), moving(m, 2, key, 100, false)); err != nil {
		t.Fatal(err)
	}
	if got := who(key); got != "s2" {
		t.Fatalf("with a full read share the read went to %s, want the target s2", got)
	}
	if _, err := r.Write(context.Background(), keyOn(m, 1), func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, `DROP TABLE whoami`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := who(key); got != "s1" {
		t.Fatalf("a read the target failed was answered by %s, want the owner s1", got)
	}
}

// TestRouterFence: a write to a fenced virtual shard waits for the map
// that lifts the fence and then goes to the owner it names; a fence that
// stays fails the write with ErrFenced after FenceWait, naming the shard.
func TestRouterFence(t *testing.T) {
	m := twoShards(t)
	reg := prometheus.NewRegistry()
	r := newRouter(t, m, shard.Config{FenceWait: 10 * time.Second, Registerer: reg})
	whoami(t, r)
	key, other := keyOn(m, 0), keyOn(m, 1)
	ctx := context.Background()
	if err := r.Apply(ctx, moving(m, 2, key, 100, true)); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan string, 1)
	go func() {
		var name string
		_, err := r.Write(ctx, key, func(ctx context.Context, q replica.Querier) error {
			return q.QueryRowContext(ctx, `SELECT name FROM whoami`).Scan(&name)
		})
		if err != nil {
			name = err.Error()
		}
		wrote <- name
	}()
	// An unfenced key writes at once meanwhile.
	if _, err := r.Write(ctx, other, func(context.Context, replica.Querier) error { return nil }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, reg, "strata_shard_fenced_writes_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the write to the fenced virtual shard was not held")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case got := <-wrote:
		t.Fatalf("a fenced write went through before the fence lifted: %s", got)
	default:
	}
	// The cutover: the virtual shard now belongs to s2, and no move is left.
	flipped := *m
	flipped.Epoch = 3
	flipped.Owners = append([]int(nil), m.Owners...)
	flipped.Owners[shard.VirtualShard(key, len(m.Owners))] = 1
	if err := r.Apply(ctx, &flipped); err != nil {
		t.Fatal(err)
	}
	if got := <-wrote; got != "s2" {
		t.Fatalf("the held write ran on %q, want the new owner s2", got)
	}

	// A fence that does not lift.
	r2 := newRouter(t, moving(m, 5, key, 0, true), shard.Config{FenceWait: 100 * time.Millisecond})
	start := time.Now()
	_, err := r2.Write(ctx, key, func(context.Context, replica.Querier) error { return nil })
	var se *shard.Error
	if !errors.Is(err, shard.ErrFenced) || !errors.As(err, &se) || se.Shard != "s1" || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("write under a fence that stays: %v after %v, want ErrFenced naming s1 after 100ms", err, time.Since(start))
	}
	if _, err := r2.Tx(ctx, []int64{key}, func(context.Context, *sql.Tx) error { return nil }); !errors.Is(err, shard.ErrFenced) {
		t.Fatalf("Tx under a fence that stays: %v, want ErrFenced", err)
	}
}

// metricValue returns the value of the first series of a gauge or counter
// gathered from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
