package shard

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-dev/strata/internal/testdb"
)

// applyBound is the bound: a map change made in another process is
// applied by a running instance within 2 s.
const applyBound = 2 * time.Second

// waitLimit is how long a test waits for something before giving up (far
// above any bound it then asserts, so a failure reports the measured time).
const waitLimit = 10 * time.Second

// controlDB returns a fresh database with the control schema installed, a
// handle on it and its URL.
func controlDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	url := testdb.PostgresDatabase(t)
	db := openDB(t, url)
	if err := Install(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	return db, url
}

// openDB opens url, closed when t ends. Each handle has its own
// connections: to PostgreSQL, another client as much as another process.
func openDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// twoShardMap is a valid hash map over two shards; flip swaps its owners,
// so successive maps differ.
func twoShardMap(t testing.TB, flip bool) *Map {
	t.Helper()
	m, err := NewHashMap([]Shard{
		{Name: "s1", URL: "postgres://strata@127.0.0.1:1/s1"},
		{Name: "s2", URL: "postgres://strata@127.0.0.1:2/s2"},
	}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if flip {
		for i := range m.Owners {
			m.Owners[i] = 1 - m.Owners[i]
		}
	}
	return m
}

// applied is one OnChange call, with the time it happened.
type applied struct {
	m  *Map
	at time.Time
}

// recorder returns an OnChange that sends each map on the returned channel.
func recorder() (func(context.Context, *Map) error, chan applied) {
	ch := make(chan applied, 64)
	return func(_ context.Context, m *Map) error {
		ch <- applied{m, time.Now()}
		return nil
	}, ch
}

// waitEpoch waits for the OnChange call that applies epoch (skipping older
// ones) and returns when it happened: when the consumer (a router) had the
// new map.
func waitEpoch(t *testing.T, ch <-chan applied, epoch int64) time.Time {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case a := <-ch:
			if a.m.Epoch > epoch {
				t.Fatalf("applied epoch %d while waiting for %d", a.m.Epoch, epoch)
			}
			if a.m.Epoch == epoch {
				return a.at
			}
		case <-timeout:
			t.Fatalf("epoch %d not applied within %v", epoch, waitLimit)
		}
	}
}

// waitFor waits until cond holds, checking every 10 ms, for at most
// waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v: %s", waitLimit, what)
		}
	}
}

// follow starts a Follower closed when t ends.
func follow(t *testing.T, db *sql.DB, url string, cfg FollowConfig) *Follower {
	t.Helper()
	f, err := Follow(t.Context(), db, url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestInstallConcurrent(t *testing.T) {
	url := testdb.PostgresDatabase(t)
	const n = 4
	dbs := make([]*sql.DB, n)
	for i := range dbs {
		dbs[i] = openDB(t, url)
	}
	errs := make(chan error, n)
	var start sync.WaitGroup
	start.Add(1)
	for _, db := range dbs {
		go func() {
			start.Wait()
			errs <- Install(t.Context(), db)
		}()
	}
	start.Done()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Install: %v", err)
		}
	}
	// Once more, on an installed schema.
	if err := Install(t.Context(), dbs[0]); err != nil {
		t.Fatalf("Install again: %v", err)
	}
	var rows int
	if err := dbs[0].QueryRowContext(t.Context(), `SELECT count(*) FROM strata_shard.map`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("map table has %d rows, want 1", rows)
	}
	if _, err := Load(t.Context(), dbs[0]); !errors.Is(err, ErrNoMap) {
		t.Errorf("Load after Install: %v, want ErrNoMap", err)
	}
}

func TestPublishEpochs(t *testing.T) {
	db, url := controlDB(t)
	ctx := t.Context()

	// A listener sees each epoch once it is committed.
	lc, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(context.Background())
	if _, err := lc.Exec(ctx, "LISTEN "+MapChannel); err != nil {
		t.Fatal(err)
	}

	in := twoShardMap(t, false)
	in.Epoch = 42 // ignored
	got, err := Publish(ctx, db, in)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 1 || in.Epoch != 42 {
		t.Fatalf("first Publish: epoch %d (input left at %d), want 1 (42)", got.Epoch, in.Epoch)
	}
	nctx, cancel := context.WithTimeout(ctx, waitLimit)
	n, err := lc.WaitForNotification(nctx)
	cancel()
	if err != nil || n.Payload != "1" {
		t.Fatalf("notification after Publish: %v, %v; want payload 1", n, err)
	}
	loaded, err := Load(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Epoch != 1 || !slices.Equal(loaded.Owners, in.Owners) || !slices.EqualFunc(loaded.Shards, in.Shards, func(a, b Shard) bool { return a.Name == b.Name && a.URL == b.URL }) {
		t.Fatalf("Load = %+v, want the published map at epoch 1", loaded)
	}
	if got, err := Publish(ctx, db, twoShardMap(t, true)); err != nil || got.Epoch != 2 {
		t.Fatalf("second Publish: %v, %v; want epoch 2", got, err)
	}

	// Concurrent publishers serialise on the row lock: distinct epochs.
	const n2 = 8
	epochs := make(chan int64, n2)
	var wg sync.WaitGroup
	for i := range n2 {
		// Each publisher on its own handle, as other processes would be.
		other, in := openDB(t, url), twoShardMap(t, i%2 == 0)
		wg.Go(func() {
			m, err := Publish(ctx, other, in)
			if err != nil {
				t.Error(err)
				return
			}
			epochs <- m.Epoch
		})
	}
	wg.Wait()
	close(epochs)
	var seen []int64
	for e := range epochs {
		seen = append(seen, e)
	}
	slices.Sort(seen)
	want := []int64{3, 4, 5, 6, 7, 8, 9, 10}
	if !slices.Equal(seen, want) {
		t.Errorf("concurrent Publish epochs %v, want %v", seen, want)
	}
	if m, err := Load(ctx, db); err != nil || m.Epoch != 10 {
		t.Errorf("Load after concurrent Publish: %v, %v; want epoch 10", m, err)
	}
	var bodyEpoch int64
	if err := db.QueryRowContext(ctx, `SELECT (body->>'epoch')::bigint FROM strata_shard.map`).Scan(&bodyEpoch); err != nil || bodyEpoch != 10 {
		t.Errorf("stored body's epoch %d, %v; want 10 as in the column", bodyEpoch, err)
	}
}

// TestControlHelperProcess is not a test: TestFollowAppliesChangeFromAnotherProcess
// runs the test binary again with STRATA_SHARD_PUBLISH_URL set, and this
// publishes a new map from that other process and prints its commit time.
func TestControlHelperProcess(t *testing.T) {
	url := os.Getenv("STRATA_SHARD_PUBLISH_URL")
	if url == "" {
		t.Skip("helper process of TestFollowAppliesChangeFromAnotherProcess")
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	cur, err := Load(context.Background(), db)
	var start time.Time
	if err == nil {
		start = time.Now()
		cur, err = Publish(context.Background(), db, twoShardMap(t, cur.Epoch%2 == 1))
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("published %d %d\n", cur.Epoch, start.UnixNano())
	os.Exit(0)
}

// publishElsewhere publishes a new map from another OS process and returns
// its epoch and the time Publish was called there (its connection already
// open): from then to the apply is an upper bound on the apply latency.
func publishElsewhere(t *testing.T, url string) (int64, time.Time) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestControlHelperProcess$")
	cmd.Env = append(os.Environ(), "STRATA_SHARD_PUBLISH_URL="+url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var epoch, nanos int64
		if _, err := fmt.Sscanf(sc.Text(), "published %d %d", &epoch, &nanos); err == nil {
			return epoch, time.Unix(0, nanos)
		}
	}
	t.Fatalf("helper process said %q", out)
	return 0, time.Time{}
}

func TestFollowAppliesChangeFromAnotherProcess(t *testing.T) {
	db, url := controlDB(t)
	if _, err := Publish(t.Context(), db, twoShardMap(t, false)); err != nil {
		t.Fatal(err)
	}
	onChange, ch := recorder()
	f := follow(t, db, url, FollowConfig{OnChange: onChange})
	waitEpoch(t, ch, 1) // called before Follow returned
	if f.Current().Epoch != 1 {
		t.Fatalf("Current().Epoch = %d, want 1", f.Current().Epoch)
	}

	// Right after start (LISTEN may not be open yet), then with LISTEN open.
	for _, when := range []string{"at start", "listening"} {
		if when == "listening" {
			waitFor(t, "LISTEN connection open", func() bool { return f.Stats().Listening })
		}
		epoch, published := publishElsewhere(t, url)
		latency := waitEpoch(t, ch, epoch).Sub(published)
		t.Logf("%s: epoch %d applied %v after the other process called Publish", when, epoch, latency)
		if latency > applyBound {
			t.Errorf("%s: epoch %d applied %v after Publish, want within %v", when, epoch, latency, applyBound)
		}
		waitFor(t, "Current has the applied epoch", func() bool { return f.Current().Epoch == epoch })
	}
	if s := f.Stats(); s.Notifications == 0 || s.Applied != 3 || s.ReloadErrors != 0 {
		t.Errorf("Stats = %+v, want notifications, 3 maps applied, no reload errors", s)
	}
}

func TestFollowPollingFallback(t *testing.T) {
	const poll = 200 * time.Millisecond
	// bound is one poll period, plus margin for one query on a loaded
	// machine.
	const bound = poll + time.Second
	for _, tc := range []struct {
		name string
		// kill, when set, terminates the follower's LISTEN connection;
		// otherwise the follower has none (URL "").
		kill bool
	}{
		// Without a LISTEN connection, polling alone applies a change.
		{name: "no LISTEN"},
		// With its LISTEN connection killed (and no reconnect for a
		// minute), the follower still applies a change by polling.
		{name: "LISTEN killed", kill: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, url := controlDB(t)
			if _, err := Publish(t.Context(), db, twoShardMap(t, false)); err != nil {
				t.Fatal(err)
			}
			onChange, ch := recorder()
			listenURL := ""
			if tc.kill {
				listenURL = url
			}
			f := follow(t, db, listenURL, FollowConfig{OnChange: onChange, Poll: poll, Reconnect: time.Minute})
			if tc.kill {
				// A new LISTEN connection asks for a reload (a change may have
				// come while nobody listened): let it run first, so that the
				// change below can only arrive by polling.
				waitFor(t, "LISTEN connection open and its reload done", func() bool { s := f.Stats(); return s.Listening && s.Reloads >= 1 })
				terminateListen(t, db, f)
				waitFor(t, "LISTEN connection lost", func() bool { s := f.Stats(); return !s.Listening && s.ListenErrors == 1 })
			}
			other := openDB(t, url)
			m, err := Publish(t.Context(), other, twoShardMap(t, true))
			if err != nil {
				t.Fatal(err)
			}
			committed := time.Now()
			latency := waitEpoch(t, ch, m.Epoch).Sub(committed)
			t.Logf("epoch %d applied by polling %v after commit (poll %v)", m.Epoch, latency, poll)
			if latency > bound {
				t.Errorf("applied %v after commit, want within %v", latency, bound)
			}
			// Not by a notification nor a new LISTEN connection. (With one
			// killed, the reload its start asked for may still have been on
			// its way under load, and found the change before a poll did.)
			if s := f.Stats(); s.Notifications != 0 || s.ListenConnects > 1 || !tc.kill && s.Polls == 0 {
				t.Errorf("Stats = %+v, want polls, no notifications, no reconnect", s)
			}
		})
	}
}

// terminateListen kills f's LISTEN connection on the server.
func terminateListen(t *testing.T, db *sql.DB, f *Follower) {
	t.Helper()
	var pid int
	err := db.QueryRowContext(t.Context(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`,
		listenAppName(f.ID())).Scan(&pid)
	if err != nil {
		t.Fatalf("find the LISTEN connection: %v", err)
	}
	var ok bool
	if err := db.QueryRowContext(t.Context(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate the LISTEN connection (pid %d): %v, %v", pid, ok, err)
	}
}

func TestFollowReconnectsListen(t *testing.T) {
	db, url := controlDB(t)
	if _, err := Publish(t.Context(), db, twoShardMap(t, false)); err != nil {
		t.Fatal(err)
	}
	onChange, ch := recorder()
	// Polling an hour apart: only LISTEN can apply the change in time.
	f := follow(t, db, url, FollowConfig{OnChange: onChange, Poll: time.Hour, Reconnect: 50 * time.Millisecond})
	waitFor(t, "LISTEN connection open", func() bool { return f.Stats().Listening })
	terminateListen(t, db, f)
	waitFor(t, "LISTEN connection reopened", func() bool { s := f.Stats(); return s.Listening && s.ListenConnects == 2 })
	m, err := Publish(t.Context(), openDB(t, url), twoShardMap(t, true))
	if err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	latency := waitEpoch(t, ch, m.Epoch).Sub(committed)
	t.Logf("epoch %d applied %v after commit, on a reopened LISTEN connection", m.Epoch, latency)
	if latency > applyBound {
		t.Errorf("applied %v after commit, want within %v", latency, applyBound)
	}
	if s := f.Stats(); s.ListenErrors != 1 || s.Notifications == 0 || s.Polls != 0 {
		t.Errorf("Stats = %+v, want one LISTEN error, a notification, no polls", s)
	}
}

func TestInstancesLiveness(t *testing.T) {
	db, url := controlDB(t)
	if _, err := Publish(t.Context(), db, twoShardMap(t, false)); err != nil {
		t.Fatal(err)
	}
	const (
		beat = 100 * time.Millisecond
		// live is ten heartbeats: a loaded machine does not miss them all.
		live = time.Second
	)
	a := follow(t, db, url, FollowConfig{ID: "a", Heartbeat: beat})
	b := follow(t, db, url, FollowConfig{ID: "b", Heartbeat: beat})
	host, _ := os.Hostname()
	list := func(within time.Duration) map[string]Instance {
		t.Helper()
		ins, err := Instances(t.Context(), db, within)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Instance{}
		for _, in := range ins {
			out[in.ID] = in
		}
		return out
	}
	if got := list(live); len(got) != 2 || got["a"].AppliedEpoch != 1 || got["b"].Host != host || got["a"].StartedAt.After(got["a"].HeartbeatAt) {
		t.Fatalf("Instances = %+v, want a and b on %s at epoch 1", got, host)
	}

	m, err := Publish(t.Context(), db, twoShardMap(t, true))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both instances record epoch 2", func() bool {
		got := list(live)
		return got["a"].AppliedEpoch == m.Epoch && got["b"].AppliedEpoch == m.Epoch
	})

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Close() // idempotent
	if _, ok := list(0)["a"]; ok {
		t.Errorf("a closed instance is still listed: it must leave the table")
	}
	if _, ok := list(live)["b"]; !ok {
		t.Errorf("b, still running, is not listed as live")
	}
	// A crashed instance keeps its row, which ages out of the live list.
	if _, err := db.ExecContext(t.Context(), `INSERT INTO strata_shard.instances VALUES ('crashed', 'h', 1, now() - interval '1 hour', now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if _, ok := list(live)["crashed"]; ok {
		t.Errorf("an instance silent for an hour is listed as live")
	}
	if got := list(0)["crashed"]; got.AppliedEpoch != 1 {
		t.Errorf("Instances(0) lists the crashed instance as %+v, want its row kept", got)
	}
	if s := b.Stats(); s.Heartbeats < 2 || s.HeartbeatErrors != 0 {
		t.Errorf("b Stats = %+v, want heartbeats and no errors", s)
	}
}

func TestLoadNoMapAndBadInput(t *testing.T) {
	url := testdb.PostgresDatabase(t)
	db := openDB(t, url)
	ctx := t.Context()
	if _, err := Load(ctx, db); !errors.Is(err, ErrNoMap) {
		t.Errorf("Load before Install: %v, want ErrNoMap", err)
	}
	if _, err := Publish(ctx, db, twoShardMap(t, false)); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("Publish before Install: %v, want a not-installed error", err)
	}
	if err := Install(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, db); !errors.Is(err, ErrNoMap) {
		t.Errorf("Load with no map: %v, want ErrNoMap", err)
	}
	if _, err := Follow(ctx, db, url, FollowConfig{}); !errors.Is(err, ErrNoMap) {
		t.Errorf("Follow with no map: %v, want ErrNoMap", err)
	}

	for _, tc := range []struct {
		name string
		m    *Map
	}{
		// A nil map is refused, not dereferenced.
		{"nil", nil},
		// A map must name at least one shard.
		{"no shards", &Map{Kind: KindHash, Owners: []int{0}}},
		// Every owner must be one of the map's shards.
		{"owner out of range", &Map{Kind: KindHash, Shards: []Shard{{Name: "s1"}}, Owners: []int{0, 1}}},
		// The kind must be hash or range.
		{"unknown kind", &Map{Kind: "list", Shards: []Shard{{Name: "s1"}}}},
		// Ranges must cover every key.
		{"range gap", &Map{Kind: KindRange, Shards: []Shard{{Name: "s1"}}, Ranges: []Range{{Lo: 0, Hi: 0}}}},
	} {
		if _, err := Publish(ctx, db, tc.m); !errors.Is(err, ErrBadMap) {
			t.Errorf("Publish(%s): %v, want ErrBadMap", tc.name, err)
		}
	}
	var epoch int64
	var hasBody bool
	if err := db.QueryRowContext(ctx, `SELECT epoch, body IS NOT NULL FROM strata_shard.map`).Scan(&epoch, &hasBody); err != nil {
		t.Fatal(err)
	}
	if epoch != 0 || hasBody {
		t.Errorf("after refused Publishes the map row has epoch %d, body %v; want 0, none", epoch, hasBody)
	}
	if _, err := Load(ctx, db); !errors.Is(err, ErrNoMap) {
		t.Errorf("Load after refused Publishes: %v, want ErrNoMap", err)
	}

	if _, err := Publish(ctx, db, twoShardMap(t, false)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		url  string
		cfg  FollowConfig
		want string
	}{
		// A negative interval is a mistake, named in the error.
		{"negative poll", url, FollowConfig{Poll: -time.Second}, "FollowConfig.Poll"},
		{"negative heartbeat", url, FollowConfig{Heartbeat: -1}, "FollowConfig.Heartbeat"},
		// A LISTEN URL that does not parse is refused at start.
		{"bad URL", "postgres://[::1", FollowConfig{}, "LISTEN URL"},
	} {
		if f, err := Follow(ctx, db, tc.url, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "shard: ") {
			if f != nil {
				f.Close()
			}
			t.Errorf("Follow(%s): %v, want a shard: error naming %s", tc.name, err, tc.want)
		}
	}
}

func TestFollowBadStoredMap(t *testing.T) {
	db, url := controlDB(t)
	if _, err := Publish(t.Context(), db, twoShardMap(t, false)); err != nil {
		t.Fatal(err)
	}
	onChange, ch := recorder()
	f := follow(t, db, url, FollowConfig{OnChange: onChange, Poll: 100 * time.Millisecond})
	waitEpoch(t, ch, 1)

	// Someone writes a map that does not validate, by hand.
	if _, err := db.ExecContext(t.Context(), `UPDATE strata_shard.map SET epoch = 2, body = '{"kind":"list"}'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reload error", func() bool { return f.Stats().ReloadErrors > 0 })
	if _, err := Load(t.Context(), db); !errors.Is(err, ErrBadMap) {
		t.Errorf("Load of a bad stored map: %v, want ErrBadMap", err)
	}
	if got := f.Current().Epoch; got != 1 {
		t.Errorf("after a bad stored map Current().Epoch = %d, want 1 kept", got)
	}

	// The next good map is applied.
	m, err := Publish(t.Context(), db, twoShardMap(t, true))
	if err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, ch, m.Epoch)
	waitFor(t, "Current has epoch 3", func() bool { return f.Current().Epoch == 3 })

	// A stored epoch older than the applied one is an error too: the
	// follower never goes back.
	if _, err := db.ExecContext(t.Context(), `UPDATE strata_shard.map SET epoch = 1`); err != nil {
		t.Fatal(err)
	}
	before := f.Stats().ReloadErrors
	waitFor(t, "a reload error for an older epoch", func() bool { return f.Stats().ReloadErrors > before })
	if got := f.Current().Epoch; got != 3 {
		t.Errorf("after an older stored epoch Current().Epoch = %d, want 3 kept", got)
	}
}

// ExampleFollow shows an instance following the shard map: Install once per
// database (idempotent), a map published by whoever changes it, and a
// Follower in every instance handing each new map to the router.
func ExampleFollow() {
	ctx := context.Background()
	url := os.Getenv("STRATA_PG_URL")
	db, err := sql.Open("pgx", url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if err := Install(ctx, db); err != nil {
		fmt.Println(err)
		return
	}
	f, err := Follow(ctx, db, url, FollowConfig{
		OnChange: func(_ context.Context, m *Map) error {
			fmt.Println("routing with epoch", strconv.FormatInt(m.Epoch, 10))
			return nil
		},
	})
	if errors.Is(err, ErrNoMap) {
		fmt.Println("publish a map first: shard.Publish(ctx, db, m)")
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	// A cutover waits until every live instance has applied an epoch.
	live, err := Instances(ctx, db, 3*DefaultHeartbeat)
	fmt.Println(len(live), err)
}

func TestFollowRetriesRefusedMap(t *testing.T) {
	db, url := controlDB(t)
	if _, err := Publish(t.Context(), db, twoShardMap(t, false)); err != nil {
		t.Fatal(err)
	}
	refused := make(chan int64, 1)
	var once sync.Once
	onChange, ch := recorder()
	f := follow(t, db, url, FollowConfig{Poll: 100 * time.Millisecond, OnChange: func(ctx context.Context, m *Map) error {
		var err error
		if m.Epoch == 2 {
			once.Do(func() { err = errors.New("cannot open shard s3"); refused <- m.Epoch })
		}
		if err != nil {
			return err
		}
		return onChange(ctx, m)
	}})
	m, err := Publish(t.Context(), db, twoShardMap(t, true))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-refused:
	case <-time.After(waitLimit):
		t.Fatal("epoch 2 never offered")
	}
	// Refused once, the map is offered again and applied.
	waitEpoch(t, ch, m.Epoch)
	waitFor(t, "Current has epoch 2", func() bool { return f.Current().Epoch == 2 })
	if s := f.Stats(); s.ApplyErrors != 1 || s.Applied != 2 {
		t.Errorf("Stats = %+v, want one apply error and 2 maps applied", s)
	}
	// A refused first map fails Follow.
	_, err = Follow(t.Context(), db, url, FollowConfig{OnChange: func(context.Context, *Map) error { return errors.New("no") }})
	if err == nil || !strings.HasPrefix(err.Error(), "shard: follow: apply epoch 2") {
		t.Errorf("Follow with a refused first map: %v", err)
	}
}

// TestLoadOrPublishOnce: processes starting at once agree on the first
// map: exactly one publishes it, the others load it, and a later call
// never overwrites it.
func TestLoadOrPublishOnce(t *testing.T) {
	db, url := controlDB(t)
	const n = 4
	got := make([]*Map, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// A handle each, as separate processes would have.
			got[i], errs[i] = LoadOrPublish(t.Context(), openDB(t, url), twoShardMap(t, i%2 == 1))
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got[i].Epoch != 1 || !slices.Equal(got[i].Owners, got[0].Owners) {
			t.Fatalf("caller %d got epoch %d owners[0]=%d; caller 0 epoch %d owners[0]=%d", i, got[i].Epoch, got[i].Owners[0], got[0].Epoch, got[0].Owners[0])
		}
	}
	if _, err := Publish(t.Context(), db, twoShardMap(t, got[0].Owners[0] == 0)); err != nil {
		t.Fatal(err)
	}
	m, err := LoadOrPublish(t.Context(), db, twoShardMap(t, false))
	if err != nil || m.Epoch != 2 {
		t.Fatalf("after a publish: epoch %v, %v; want the stored epoch 2", m, err)
	}
	if _, err := LoadOrPublish(t.Context(), db, &Map{Kind: "zigzag"}); !errors.Is(err, ErrBadMap) {
		t.Fatalf("bad map: err = %v, want ErrBadMap", err)
	}
}

// TestFollowRegistersFirst: a starting instance is in the instances table,
// as having applied no epoch, before it reads the map (so a cutover that
// fences meanwhile waits for it), shows the epoch it applied once Follow
// returns, and leaves the table when its first map fails to apply.
func TestFollowRegistersFirst(t *testing.T) {
	db, url := controlDB(t)
	if _, err := Publish(t.Context(), db, twoShardMap(t, false)); err != nil {
		t.Fatal(err)
	}
	applied := func(id string) (epoch int64, ok bool) {
		ins, err := Instances(t.Context(), db, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			if in.ID == id {
				return in.AppliedEpoch, true
			}
		}
		return 0, false
	}
	var during int64 = -1
	f := follow(t, db, url, FollowConfig{ID: "starting", OnChange: func(ctx context.Context, m *Map) error {
		if during < 0 {
			e, ok := applied("starting")
			if !ok {
				t.Error("the instance is not registered while it applies its first map")
			}
			during = e
		}
		return nil
	}})
	if during != 0 {
		t.Errorf("applied epoch while the first map applies: %d, want 0", during)
	}
	if e, ok := applied(f.ID()); !ok || e != 1 {
		t.Errorf("after Follow: registered %v, applied epoch %d; want epoch 1", ok, e)
	}
	refused := errors.New("refused")
	if _, err := Follow(t.Context(), db, url, FollowConfig{ID: "failing", OnChange: func(context.Context, *Map) error { return refused }}); !errors.Is(err, refused) {
		t.Fatalf("Follow with a failing OnChange: %v, want %v", err, refused)
	}
	if _, ok := applied("failing"); ok {
		t.Error("an instance whose first map failed to apply is still registered")
	}
}
