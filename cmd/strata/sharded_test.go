package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// TestShardedBadInput: each way serve and seed cannot use the --shard
// flags (or a config file's shards) is refused with a message naming the
// flag or the config line and the value, its password hidden; the checks
// that need no database run before any opens (exit 2, no SQLite file
// left behind).
func TestShardedBadInput(t *testing.T) {
	dir := t.TempDir()
	lite := "sqlite://" + filepath.Join(dir, "never.db")
	const main = "postgres://strata:s3cret@127.0.0.1:1/m"
	config := func(body string) func(*testing.T) []string {
		return func(t *testing.T) []string {
			path := filepath.Join(t.TempDir(), "cfg.yaml")
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"serve", "--config", path}
		}
	}
	// notInMap seeds a main database with a map over one shard, then
	// names the other shard (with a password) to cmd.
	notInMap := func(cmd string) func(*testing.T) []string {
		return func(t *testing.T) []string {
			mainDB, shards := testdb.PostgresDatabase(t), testdb.ShardDatabases(t)
			if code, out, errOut := runCLI(t, "seed", "--db", mainDB, "--shard", shards[0], "--users", "5", "--products", "5", "--actions", "5"); code != 0 {
				t.Fatalf("seed: exit %d\n%s%s", code, out, errOut)
			}
			args := []string{cmd, "--db", mainDB, "--shard", withPassword(t, shards[1], "s3cret")}
			if cmd == "serve" {
				args = append(args, "--addr", "127.0.0.1:0")
			}
			return args
		}
	}
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
		code int
		want []string // in stdout+stderr
	}{
		// the shard map lives in the main database, which must be PostgreSQL
		{"serve sqlite main", fixed("serve", "--addr", "127.0.0.1:0", "--db", lite, "--shard", "postgres://a:s3cret@127.0.0.1:1/s"), 2,
			[]string{"--db: sqlite://", "shards (--shard) need a PostgreSQL main database"}},
		// seed refuses it the same way
		{"seed sqlite main", fixed("seed", "--db", lite, "--shard", "postgres://a:s3cret@127.0.0.1:1/s", "--users", "1", "--products", "1"), 2,
			[]string{"--db: sqlite://", "shards (--shard) need a PostgreSQL main database"}},
		// a shard that is not PostgreSQL is blamed on --shard, its password hidden
		{"mysql shard", fixed("serve", "--addr", "127.0.0.1:0", "--db", main, "--shard", "mysql://u:s3cret@h/x"), 2,
			[]string{`--shard (shard 1) "mysql://u:xxxxx@h/x": not a PostgreSQL URL`}},
		// the second of two is named by its position
		{"sqlite shard", fixed("serve", "--addr", "127.0.0.1:0", "--db", main, "--shard", "postgres://a@127.0.0.1:1/s", "--shard", lite), 2,
			[]string{`--shard (shard 2) "` + lite + `": not a PostgreSQL URL`}},
		// a URL without a scheme: net/url finds no password in it, the check still hides it
		{"no scheme", fixed("serve", "--addr", "127.0.0.1:0", "--db", main, "--shard", "strata:s3cret@127.0.0.1:1/s"), 2,
			[]string{`--shard (shard 1) "…@127.0.0.1:1/s": not a URL`}},
		// a URL pgx cannot parse, its password masked
		{"bad port", fixed("serve", "--addr", "127.0.0.1:0", "--db", main, "--shard", "postgres://a:s3cret@127.0.0.1:99999/s"), 2,
			[]string{"--shard (shard 1): cannot parse", "invalid port"}},
		// the main database as a shard, spelled differently (another user, a setting)
		{"shard is main", fixed("serve", "--addr", "127.0.0.1:0", "--db", main, "--shard", "postgres://other:s3cret@127.0.0.1:1/m?sslmode=disable"), 2,
			[]string{`--shard (shard 1) "postgres://other:xxxxx@127.0.0.1:1/m?sslmode=disable": the same database as the main database (--db)`}},
		// a shard given twice
		{"duplicate shard", fixed("seed", "--db", main, "--shard", "postgres://a:s3cret@127.0.0.1:1/s", "--shard", "postgres://a:s3cret@127.0.0.1:1/t", "--shard", "postgres://b@127.0.0.1:1/s"), 2,
			[]string{`--shard (shard 3) "postgres://b@127.0.0.1:1/s": the same database as shard 1; give each shard once`}},
		// replicas of the main database do not go with shards
		{"shard and replica", fixed("serve", "--addr", "127.0.0.1:0", "--db", main, "--replica", "postgres://a:s3cret@127.0.0.1:1/r", "--shard", "postgres://a:s3cret@127.0.0.1:1/s"), 2,
			[]string{"--replica and --shard: choose one"}},
		// from a config file, the file's line is blamed, not a flag
		{"config duplicate", config("db: " + main + "\naddr: 127.0.0.1:0\nshards:\n  - postgres://a@127.0.0.1:1/s\n  - postgres://a:s3cret@127.0.0.1:1/s\n"), 2,
			[]string{"cfg.yaml:4 (key shards) (shard 2)", "postgres://a:xxxxx@127.0.0.1:1/s", "the same database as shard 1"}},
		// the main database from the file, the shards from the file
		{"config sqlite main", config("db: " + lite + "\nshards: [postgres://a@127.0.0.1:1/s]\n"), 2,
			[]string{"cfg.yaml:1 (key db): sqlite://", "shards (config", "(key shards)) need a PostgreSQL main database"}},
		// replicas and shards both in the file
		{"config replicas and shards", config("db: " + main + "\nreplicas: [postgres://a@127.0.0.1:1/r]\nshards: [postgres://a@127.0.0.1:1/s]\n"), 2,
			[]string{"(key replicas) and config", "(key shards): choose one"}},
		// a shard the stored map does not name: storefront's message, blamed on --shard
		{"serve shard not in map", notInMap("serve"), 2,
			[]string{"--shard: storefront: bad shard configuration: shard postgres://strata:xxxxx@", "is not in the shard map of the main database (epoch 1: shard1=", "the map, not the flags, says where users live"}},
		// seed refuses it too, rather than seeding shards the map does not use
		{"seed shard not in map", notInMap("seed"), 2,
			[]string{"--shard: storefront: bad shard configuration", "is not in the shard map"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runBadInput(t, tc.args(t), tc.code, tc.want)
			if _, err := os.Stat(filepath.Join(dir, "never.db")); err == nil {
				t.Fatal("a refused command left an SQLite file behind")
			}
		})
	}
}

// withPassword returns url with password set on its user.
func withPassword(t *testing.T, url, password string) string {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.UserPassword(u.User.Username(), password)
	return u.String()
}

// openPG opens the PostgreSQL database at url for the test's own queries.
func openPG(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// shardUsers returns the ids of the users stored in db, a shard.
func shardUsers(t *testing.T, db *sql.DB) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT id FROM users ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestShardedSeed: strata seed with two shards puts every user, and every
// action, on the shard the published map names for the user's id, leaves
// no shard empty, and prints each shard's counts as the shard holds them.
func TestShardedSeed(t *testing.T) {
	mainURL, shards := testdb.PostgresDatabase(t), testdb.ShardDatabases(t)
	const users = 200
	code, out, errOut := runCLI(t, "seed", "--db", mainURL, "--shard", shards[0], "--shard", shards[1],
		"--users", strconv.Itoa(users), "--products", "20", "--actions", "1000")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("seeded %d users, 20 products, 1000 actions", users)) {
		t.Fatalf("seed: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("seed:\n%s", out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := shard.Load(ctx, openPG(t, mainURL))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards) != len(shards) {
		t.Fatalf("the map has %d shards, want %d: %+v", len(m.Shards), len(shards), m.Shards)
	}
	printed := map[string][2]int{} // shard name: users, actions as printed
	for _, g := range regexp.MustCompile(`(?m)^  shard (\S+) \(.*\): (\d+) users, (\d+) actions$`).FindAllStringSubmatch(out, -1) {
		u, _ := strconv.Atoi(g[2])
		a, _ := strconv.Atoi(g[3])
		printed[g[1]] = [2]int{u, a}
	}
	total := 0
	for i, url := range shards {
		idx := slices.IndexFunc(m.Shards, func(s shard.Shard) bool { return s.URL == url })
		if idx < 0 || m.Shards[idx].Name != storefront.ShardName(i) {
			t.Fatalf("--shard %d is not in the map as %s: %+v", i+1, storefront.ShardName(i), m.Shards)
		}
		db := openPG(t, url)
		ids := shardUsers(t, db)
		if len(ids) == 0 {
			t.Errorf("shard %s holds no users", m.Shards[idx].Name)
		}
		for _, id := range ids {
			if o := m.Owner(id); o != idx {
				t.Errorf("user %d is on shard %s, but the map names %s", id, m.Shards[idx].Name, m.Shards[o].Name)
			}
		}
		var actions, stray int
		if err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE user_id <> ALL($1)) FROM user_actions`, ids).Scan(&actions, &stray); err != nil {
			t.Fatal(err)
		}
		if stray != 0 {
			t.Errorf("shard %s holds %d actions of users it does not hold", m.Shards[idx].Name, stray)
		}
		if got, want := printed[m.Shards[idx].Name], [2]int{len(ids), actions}; got != want {
			t.Errorf("seed printed %v (users, actions) for shard %s, which holds %v", got, m.Shards[idx].Name, want)
		}
		total += len(ids)
	}
	if total != users {
		t.Errorf("the shards hold %d users, want %d", total, users)
	}
}

// TestShardedServeConfig: serve takes its main database and shards from
// a config file, logs stage 5 with the cache level, serves users of both
// shards, and exports the pool metrics of the main database and of each
// shard under the same label names.
func TestShardedServeConfig(t *testing.T) {
	mainURL, shards := testdb.PostgresDatabase(t), testdb.ShardDatabases(t)
	if code, out, errOut := runCLI(t, "seed", "--db", mainURL, "--shard", shards[0], "--shard", shards[1], "--users", "40", "--products", "10", "--actions", "100"); code != 0 {
		t.Fatalf("seed: exit %d\n%s%s", code, out, errOut)
	}
	cfg := filepath.Join(t.TempDir(), "strata.yaml")
	body := fmt.Sprintf("db: %s\nshards:\n  - %s\n  - %s\ncache:\n  enabled: true\n", mainURL, shards[0], shards[1])
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--config", cfg)
	if want := `stage="5 (sharded over 2 shards, L1 cache)"`; !strings.Contains(s.logs.String(), want) {
		t.Errorf("the log lacks %s:\n%s", want, s.logs.String())
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, id := range oneUserPerShard(t, mainURL) {
		if code, _ := getUser(t, client, s.base, id); code != 200 {
			t.Errorf("GET /users/%d: %d", id, code)
		}
	}
	metrics := scrape(t, client, s.base)
	for _, want := range []string{`strata_db_open_connections{pool="primary",shard="main"}`,
		`strata_db_open_connections{pool="primary",shard="shard1"}`, `strata_db_open_connections{pool="primary",shard="shard2"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, s.logs.String())
	}
}

// oneUserPerShard returns, for each shard of the stored map, the smallest
// user id 1..1000 it owns.
func oneUserPerShard(t *testing.T, mainURL string) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := shard.Load(ctx, openPG(t, mainURL))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(m.Shards))
	for id := int64(1000); id >= 1; id-- {
		ids[m.Owner(id)] = id
	}
	return ids
}

// getUser fetches /users/id and returns the status and the id answered.
func getUser(t *testing.T, client *http.Client, base string, id int64) (int, int64) {
	t.Helper()
	resp, err := client.Get(fmt.Sprintf("%s/users/%d", base, id))
	if err != nil {
		t.Fatalf("GET /users/%d: %v", id, err)
	}
	defer resp.Body.Close()
	var u storefront.User
	_ = json.NewDecoder(resp.Body).Decode(&u)
	return resp.StatusCode, u.ID
}

// scrape returns the text of base's /metrics.
func scrape(t *testing.T, client *http.Client, base string) string {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

var epochRE = regexp.MustCompile(`(?m)^strata_shard_map_epoch (\S+)$`)

// TestShardedServeFollowsMap starts `strata serve` with two shards as a
// process of its own, publishes a new map from the test (another owner
// for a virtual shard that holds no user), and requires the running
// server to route by it within 2 s, as strata_shard_map_epoch shows,
// without a restart; users of both shards are served before and after.
func TestShardedServeFollowsMap(t *testing.T) {
	mainURL, shards := testdb.PostgresDatabase(t), testdb.ShardDatabases(t)
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if code, out, errOut := runCLI(t, "seed", "--db", mainURL, "--shard", shards[0], "--shard", shards[1], "--users", "60", "--products", "10", "--actions", "200"); code != 0 {
		t.Fatalf("seed: exit %d\n%s%s", code, out, errOut)
	}
	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "serve", "--db", mainURL, "--shard", shards[0], "--shard", shards[1], "--addr", "127.0.0.1:0")
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { // before the databases are dropped (cleanups run last first)
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addrRE := regexp.MustCompile(`addr=http://(127\.0\.0\.1:\d+)`)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited (%v) before serving:\n%s", err, logs.String())
		default:
		}
		if base == "" && time.Now().After(deadline) {
			t.Fatalf("serve did not log its address within 30 s:\n%s", logs.String())
		}
	}
	if want := `stage="5 (sharded over 2 shards, no cache)"`; !strings.Contains(logs.String(), want) {
		t.Errorf("the log lacks %s:\n%s", want, logs.String())
	}
	client := &http.Client{Timeout: 5 * time.Second}
	users := oneUserPerShard(t, mainURL)
	served := func(when string) {
		t.Helper()
		for _, id := range users {
			if code, got := getUser(t, client, base, id); code != 200 || got != id {
				t.Errorf("%s: GET /users/%d: %d, user %d", when, id, code, got)
			}
		}
	}
	served("before the new map")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mainDB := openPG(t, mainURL)
	cur, err := shard.Load(ctx, mainDB)
	if err != nil {
		t.Fatal(err)
	}
	if got := epochRE.FindStringSubmatch(scrape(t, client, base)); got == nil || got[1] != strconv.FormatInt(cur.Epoch, 10) {
		t.Fatalf("strata_shard_map_epoch before the change: %v, want %d", got, cur.Epoch)
	}
	// Move a virtual shard that holds none of the seeded users to the other
	// shard: a real change of owners, with no rows to move.
	held := map[int]bool{}
	for _, url := range shards {
		for _, id := range shardUsers(t, openPG(t, url)) {
			held[shard.VirtualShard(id, len(cur.Owners))] = true
		}
	}
	v := -1
	for i := range cur.Owners {
		if !held[i] {
			v = i
			break
		}
	}
	if v < 0 {
		t.Fatal("every virtual shard holds a user")
	}
	next := *cur
	next.Owners = slices.Clone(cur.Owners)
	next.Owners[v] = (cur.Owners[v] + 1) % len(cur.Shards)
	pub, err := shard.Publish(ctx, mainDB, &next)
	if err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	want := strconv.FormatInt(pub.Epoch, 10)
	for deadline := published.Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := epochRE.FindStringSubmatch(scrape(t, client, base))
		if got != nil && got[1] == want {
			t.Logf("epoch %d applied by the running server within %v", pub.Epoch, time.Since(published).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("strata_shard_map_epoch is %v 2 s after epoch %d was published:\n%s", got, pub.Epoch, logs.String())
		}
	}
	select {
	case err := <-exited:
		t.Fatalf("serve exited (%v) while following the map:\n%s", err, logs.String())
	default:
	}
	served("after the new map")
}
