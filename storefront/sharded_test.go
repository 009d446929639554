package storefront_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// TestShardedPlacement: a seeded sharded store has every user, and every
// action, on exactly the shard the map names (read from each shard
// directly), no shard empty, nothing lost, and ids that stay unique
// across shards after the seed.
func TestShardedPlacement(t *testing.T) {
	s := openSharded(t)
	ctx := context.Background()
	seed(t, s, 500, 40, 4000)
	r := s.Shards()
	m := r.Map()
	var users, actions int
	actionIDs := map[int64]string{}
	for i, target := range r.Shards() {
		db := target.DB.Primary()
		rows, err := db.QueryContext(ctx, `SELECT id FROM users`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			if o := m.Owner(id); o != i {
				t.Fatalf("user %d is on %s, the map names %s", id, target.Name, m.Shards[o].Name)
			}
			n++
		}
		rows.Close()
		if n == 0 {
			t.Fatalf("shard %s holds no user", target.Name)
		}
		users += n
		var orphans int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_actions a WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.user_id)`).Scan(&orphans); err != nil || orphans != 0 {
			t.Fatalf("%s: %d actions of users on another shard (%v)", target.Name, orphans, err)
		}
		rows, err = db.QueryContext(ctx, `SELECT id FROM user_actions`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			if other, dup := actionIDs[id]; dup {
				t.Fatalf("action id %d is on %s and %s", id, other, target.Name)
			}
			actionIDs[id] = target.Name
			actions++
		}
		rows.Close()
		t.Logf("%s: %d users", target.Name, n)
	}
	if users != 500 || actions != 4000 {
		t.Fatalf("%d users and %d actions over the shards, want 500 and 4000", users, actions)
	}
	// New rows take ids after the seeded ones, from the global allocators.
	u := mustCreate(t, s, "after.seed@example.com")
	if u.ID != 501 {
		t.Fatalf("first user after seeding has id %d, want 501", u.ID)
	}
	a, err := s.RecordAction(ctx, u.ID, 1, storefront.View)
	if err != nil {
		t.Fatal(err)
	}
	if _, taken := actionIDs[a.ID]; taken || a.ID <= 4000 {
		t.Fatalf("new action has id %d, which a seeded action has or precedes", a.ID)
	}
	// Seeding again is refused unless reset, on a sharded store too.
	if _, err := storefront.Seed(ctx, s, storefront.SeedConfig{Users: 1, Products: 1}); !errors.Is(err, storefront.ErrNotEmpty) {
		t.Fatalf("second seed: err = %v, want ErrNotEmpty", err)
	}
}

// TestShardedMainNotEmpty: a main database that already holds an
// unsharded store's users is refused, not silently hidden behind shards
// that would hand their ids out again.
func TestShardedMainNotEmpty(t *testing.T) {
	main := testdb.PostgresDatabase(t)
	one := open(t, main)
	mustCreate(t, one, "early@example.com")
	one.Close()
	_, err := storefront.Open(context.Background(), main, storefront.Config{Shards: testdb.ShardDatabases(t)})
	if !errors.Is(err, storefront.ErrBadShards) || !strings.Contains(err.Error(), "unsharded store") {
		t.Fatalf("Open sharded over a main database with users: err = %v, want ErrBadShards", err)
	}
}

// TestShardedSeedWhileServed: a seed is refused while another instance
// serves the same sharded store (it holds action ids and a view of the
// catalogue the seed would pull from under it), and allowed once it stops.
func TestShardedSeedWhileServed(t *testing.T) {
	main, shards := testdb.PostgresDatabase(t), testdb.ShardDatabases(t)
	ctx := context.Background()
	open := func() *storefront.Store {
		s, err := storefront.Open(ctx, main, storefront.Config{Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	seeder, server := open(), open()
	cfg := storefront.SeedConfig{Users: 10, Products: 5, Actions: 20, Reset: true}
	if _, err := storefront.Seed(ctx, seeder, cfg); !errors.Is(err, storefront.ErrInUse) {
		t.Fatalf("seed while another instance serves: err = %v, want ErrInUse", err)
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := storefront.Seed(ctx, seeder, cfg); err != nil {
		t.Fatalf("seed after the other instance stopped: %v", err)
	}
}

// usersOn returns, for each shard name, the first seeded user (ids 1 to
// max) that owns at least one action and lives there.
func usersOn(t *testing.T, s *storefront.Store, max int64) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for id := int64(1); id <= max; id++ {
		target := s.Shards().For(id)
		if _, ok := out[target.Name]; ok {
			continue
		}
		var n int
		if err := target.DB.Primary().QueryRow(`SELECT COUNT(*) FROM user_actions WHERE user_id = $1 AND kind = 'purchase'`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[target.Name] = id
		}
	}
	if len(out) < 2 {
		t.Fatalf("seeded users with purchases on %d shards, want 2", len(out))
	}
	return out
}

// TestShardedEmails: an email stays unique across shards, through the
// main database's directory; a claim left by a write that died between
// the two databases goes stale and is taken over.
func TestShardedEmails(t *testing.T) {
	s := openSharded(t)
	ctx := context.Background()
	// One user on each shard.
	byShard := map[string]storefront.User{}
	for i := 0; len(byShard) < 2 && i < 50; i++ {
		u := mustCreate(t, s, fmt.Sprintf("user%d@example.com", i))
		if _, ok := byShard[s.Shards().For(u.ID).Name]; !ok {
			byShard[s.Shards().For(u.ID).Name] = u
		}
	}
	a, b := byShard[storefront.ShardName(0)], byShard[storefront.ShardName(1)]
	if a.ID == 0 || b.ID == 0 {
		t.Fatalf("no user on each shard after 50 creates: %v", byShard)
	}
	if _, err := s.CreateUser(ctx, storefront.NewUser{Email: strings.ToUpper(a.Email), Name: "Copy", Region: "eu"}); !errors.Is(err, storefront.ErrConflict) {
		t.Fatalf("create with %s's email: err = %v, want ErrConflict", a.Email, err)
	}
	if _, err := s.UpdateUser(ctx, b.ID, storefront.UserPatch{Email: ptr(a.Email)}); !errors.Is(err, storefront.ErrConflict) {
		t.Fatalf("update %d to %s (on the other shard): err = %v, want ErrConflict", b.ID, a.Email, err)
	}
	// A user's email change frees the old address.
	if _, err := s.UpdateUser(ctx, b.ID, storefront.UserPatch{Email: ptr("renamed@example.com")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, storefront.NewUser{Email: b.Email, Name: "Reuse", Region: "eu"}); err != nil {
		t.Fatalf("create with the released %s: %v", b.Email, err)
	}
	// Updating to the user's own email is no conflict.
	if _, err := s.UpdateUser(ctx, a.ID, storefront.UserPatch{Email: ptr(a.Email), Name: ptr("Same")}); err != nil {
		t.Fatalf("update to own email: %v", err)
	}
	// An unknown user is reported before a taken email, as on one database.
	if _, err := s.UpdateUser(ctx, 1<<40, storefront.UserPatch{Email: ptr(a.Email)}); !errors.Is(err, storefront.ErrNotFound) {
		t.Fatalf("update of an unknown user to a taken email: err = %v, want ErrNotFound", err)
	}
	// Two changes of one user's email racing: the email that wins stays
	// claimed, the other is released.
	for round := range 20 {
		x, y := fmt.Sprintf("x%d@example.com", round), fmt.Sprintf("y%d@example.com", round)
		var wg sync.WaitGroup
		for _, e := range []string{x, y} {
			wg.Go(func() {
				if _, err := s.UpdateUser(ctx, a.ID, storefront.UserPatch{Email: ptr(e)}); err != nil {
					t.Errorf("update to %s: %v", e, err)
				}
			})
		}
		wg.Wait()
		got, err := s.GetUser(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		var claims []string
		rows, err := s.DB().QueryContext(ctx, `SELECT email FROM user_emails WHERE user_id = $1 ORDER BY email`, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var e string
			rows.Scan(&e)
			claims = append(claims, e)
		}
		rows.Close()
		if len(claims) != 1 || claims[0] != got.Email {
			t.Fatalf("round %d: user has %s, the directory holds %v for them", round, got.Email, claims)
		}
	}
	// A claim whose user never got written: fresh, it holds; stale, it is taken over.
	main := s.DB()
	if _, err := main.ExecContext(ctx, `INSERT INTO user_emails (email, user_id, claimed_at) VALUES
		('fresh@example.com', 999998, now()), ('ghost@example.com', 999999, now() - interval '2 minutes')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, storefront.NewUser{Email: "fresh@example.com", Name: "F", Region: "eu"}); !errors.Is(err, storefront.ErrConflict) {
		t.Fatalf("email claimed a moment ago: err = %v, want ErrConflict", err)
	}
	g, err := s.CreateUser(ctx, storefront.NewUser{Email: "ghost@example.com", Name: "G", Region: "eu"})
	if err != nil {
		t.Fatalf("email with a stale claim: %v", err)
	}
	if got, err := s.GetUser(ctx, g.ID); err != nil || got.Email != "ghost@example.com" {
		t.Fatalf("GetUser(%d) = %+v, %v", g.ID, got, err)
	}
}

// TestShardKilled: with one shard's postmaster killed, requests for its
// users fail fast with a 503 naming the shard, and everything else goes
// on: the other shard's users are read and written, and recommendations
// fall back for the dead shard's co-purchases, saying so.
func TestShardKilled(t *testing.T) {
	c := testdb.StartPostgresShards(t)
	ctx := context.Background()
	s, err := storefront.Open(ctx, testdb.PostgresDatabase(t), storefront.Config{Shards: c.ShardURLs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	seed(t, s, 200, 30, 3000)
	srv := httptest.NewServer(storefront.NewHandler(s, storefront.HandlerConfig{}))
	t.Cleanup(srv.Close)
	on := usersOn(t, s, 200)
	alive, dead := on["shard1"], on["shard2"]
	if r := call(t, "GET", fmt.Sprintf("%s/users/%d/recommendations", srv.URL, alive), ""); r.status != 200 || r.header.Get(storefront.FallbackHeader) != "" {
		t.Fatalf("recommendations before the kill = %d %q %s", r.status, r.header.Get(storefront.FallbackHeader), r.raw)
	}

	c.Kill("shard2")
	for _, p := range []string{fmt.Sprintf("/users/%d", dead), fmt.Sprintf("/users/%d/recommendations", dead)} {
		start := time.Now()
		r := call(t, "GET", srv.URL+p, "")
		took := time.Since(start)
		msg, _ := r.body["error"].(string)
		if r.status != 503 || !strings.Contains(msg, "shard2") || r.header.Get("Retry-After") == "" {
			t.Fatalf("GET %s with its shard down = %d (Retry-After %q) %s; want 503 naming shard2", p, r.status, r.header.Get("Retry-After"), r.raw)
		}
		if took > time.Second {
			t.Fatalf("GET %s with its shard down took %v, want under 1 s", p, took)
		}
	}
	if r := call(t, "POST", fmt.Sprintf("%s/users/%d/actions", srv.URL, dead), `{"product_id": 1, "kind": "view"}`); r.status != 503 || !strings.Contains(r.raw, "shard2") {
		t.Fatalf("POST an action of a user of the dead shard = %d %s", r.status, r.raw)
	}
	if r := call(t, "GET", fmt.Sprintf("%s/users/%d", srv.URL, alive), ""); r.status != 200 {
		t.Fatalf("GET a user of the live shard = %d %s", r.status, r.raw)
	}
	if r := call(t, "POST", fmt.Sprintf("%s/users/%d/actions", srv.URL, alive), `{"product_id": 2, "kind": "cart"}`); r.status != 201 {
		t.Fatalf("POST an action of a user of the live shard = %d %s", r.status, r.raw)
	}
	r := call(t, "GET", fmt.Sprintf("%s/users/%d/recommendations?limit=5", srv.URL, alive), "")
	if recs, _ := r.body["recommendations"].([]any); r.status != 200 || len(recs) != 5 {
		t.Fatalf("recommendations of a live-shard user with the other shard down = %d %s", r.status, r.raw)
	}
	if fb := r.header.Get(storefront.FallbackHeader); !strings.Contains(fb, "shard2") {
		t.Fatalf("%s = %q, want it to name shard2", storefront.FallbackHeader, fb)
	}
	if r := call(t, "GET", srv.URL+"/readyz", ""); r.status != 200 || !strings.Contains(r.raw, "shard2") {
		t.Fatalf("/readyz with a shard down = %d %s; want 200 listing shard2 as degraded", r.status, r.raw)
	}

	// With every shard down the service is not ready.
	c.Kill("shard1")
	for deadline := time.Now().Add(10 * time.Second); ; {
		r := call(t, "GET", srv.URL+"/readyz", "")
		if r.status == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz with both shards down = %d %s, want 503", r.status, r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Start("shard1")

	c.Start("shard2")
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := call(t, "GET", fmt.Sprintf("%s/users/%d", srv.URL, dead), "")
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("user %d still unavailable 15 s after shard2 restarted: %d %s", dead, r.status, r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShardStalled: a shard that holds a lock the co-purchase query waits
// for does not hold up recommendations: the fan-out gives up at its
// deadline, the answer says which shard fell back, and a cached stage
// does not keep the partial answer.
func TestShardStalled(t *testing.T) {
	for _, stage := range stages {
		t.Run("stage"+stage, func(t *testing.T) {
			s := openSharded(t)
			ctx := context.Background()
			seed(t, s, 200, 30, 3000)
			var svc storefront.Service = s
			if stage == "2" {
				svc = cached(t, s, testdb.Redis(t))
			}
			srv := httptest.NewServer(storefront.NewHandler(svc, storefront.HandlerConfig{}))
			t.Cleanup(srv.Close)
			user := usersOn(t, s, 200)["shard1"]
			url := fmt.Sprintf("%s/users/%d/recommendations?limit=5", srv.URL, user)
			if r := call(t, "GET", url, "", "Cache-Control", "no-cache"); r.status != 200 {
				t.Fatalf("warm-up = %d %s", r.status, r.raw)
			}
			if stage == "2" { // a fresh entry would hide the stall
				r := call(t, "POST", fmt.Sprintf("%s/users/%d/actions", srv.URL, user), `{"product_id": 3, "kind": "view"}`)
				if r.status != 201 {
					t.Fatalf("POST action = %d %s", r.status, r.raw)
				}
				// Shards without replicas: no read-your-writes token to hand out.
				if tok := r.header.Get(storefront.TokenHeader); tok != "" {
					t.Fatalf("a write on a shard without replicas returned %s %q", storefront.TokenHeader, tok)
				}
			}

			tx, err := s.Shards().Shards()[1].DB.Primary().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `LOCK TABLE user_actions IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := call(t, "GET", url, "")
			took := time.Since(start)
			tx.Rollback()
			fb := r.header.Get(storefront.FallbackHeader)
			if recs, _ := r.body["recommendations"].([]any); r.status != 200 || len(recs) != 5 {
				t.Fatalf("recommendations with shard2 stalled = %d %s", r.status, r.raw)
			}
			if !strings.Contains(fb, "shard2") || !strings.Contains(fb, "no answer within 500ms") {
				t.Fatalf("%s = %q, want shard2 named as without an answer within 500ms", storefront.FallbackHeader, fb)
			}
			// The budget is 500 ms; the bound leaves room for a loaded machine.
			if took > 3*time.Second {
				t.Fatalf("recommendations with shard2 stalled took %v", took)
			}
			// The lock is gone: the next answer is whole (and was not cached partial).
			if r := call(t, "GET", url, ""); r.status != 200 || r.header.Get(storefront.FallbackHeader) != "" {
				t.Fatalf("after the stall = %d, %s %q", r.status, storefront.FallbackHeader, r.header.Get(storefront.FallbackHeader))
			}
		})
	}
}

// TestShardSchemaMovable: a shard's tables can be published with a row
// filter on the shard key (as moving virtual shards between primaries
// does) and still take updates and deletes: their replica identity covers
// the key.
func TestShardSchemaMovable(t *testing.T) {
	s := openSharded(t)
	ctx := context.Background()
	seed(t, s, 50, 10, 300)
	db := s.Shards().Shards()[0].DB.Primary()
	for _, table := range []struct{ name, key string }{{"users", "id"}, {"user_actions", "user_id"}} {
		pub := "movable_" + table.name
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s WHERE (%s < 500)`,
			pub, table.name, shard.VirtualShardSQL(table.key, shard.VirtualShards))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Exec(`DROP PUBLICATION ` + pub) })
	}
	if _, err := db.ExecContext(ctx, `UPDATE users SET name = name || '!' WHERE id IN (SELECT id FROM users LIMIT 3)`); err != nil {
		t.Fatalf("update of a published users table: %v", err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM user_actions WHERE id IN (SELECT id FROM user_actions LIMIT 3)`); err != nil {
		t.Fatalf("delete from a published user_actions table: %v", err)
	}
}

// TestShardStalledCold: with no popularity ranking yet (just seeded) and
// one shard stalled, a recommendation still comes back, well inside the
// request's deadline: the ranking's wait on the shards is bounded too, and
// a partial ranking serves meanwhile.
func TestShardStalledCold(t *testing.T) {
	s := openSharded(t)
	ctx := context.Background()
	seed(t, s, 200, 30, 3000)
	srv := httptest.NewServer(storefront.NewHandler(s, storefront.HandlerConfig{}))
	t.Cleanup(srv.Close)
	user := usersOn(t, s, 200)["shard1"]
	tx, err := s.Shards().Shards()[1].DB.Primary().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `LOCK TABLE user_actions IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := call(t, "GET", fmt.Sprintf("%s/users/%d/recommendations?limit=5", srv.URL, user), "")
	took := time.Since(start)
	if recs, _ := r.body["recommendations"].([]any); r.status != 200 || len(recs) != 5 || !strings.Contains(r.header.Get(storefront.FallbackHeader), "shard2") {
		t.Fatalf("cold recommendations with shard2 stalled = %d after %v, %s %q; %s", r.status, took, storefront.FallbackHeader, r.header.Get(storefront.FallbackHeader), r.raw)
	}
	t.Logf("answered in %v", took)
}

// TestShardedFanoutOwnedOnly: rows a shard holds for virtual shards it
// does not own (a move's copy, or a moved user's rows before cleanup) are
// not counted by the fan-outs: popularity and co-purchases read each user
// once, on the owner.
func TestShardedFanoutOwnedOnly(t *testing.T) {
	main, shards := testdb.PostgresDatabase(t), testdb.ShardDatabases(t)
	ctx := context.Background()
	open := func() *storefront.Store {
		s, err := storefront.Open(ctx, main, storefront.Config{Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open()
	seed(t, s, 200, 30, 3000)
	popular := func(s *storefront.Store) []int64 {
		u := mustCreate(t, s, fmt.Sprintf("fresh%d@example.com", time.Now().UnixNano()))
		recs, err := s.Recommend(ctx, u.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, r := range recs {
			ids = append(ids, r.Product.ID)
		}
		return ids
	}
	before := popular(s)
	// Copy shard1's users and a flood of purchases of the least popular
	// product onto shard2, as a move's copy would leave them.
	var least int64 // a product outside the top
	for p := int64(1); p <= 30 && least == 0; p++ {
		if !slices.Contains(before, p) {
			least = p
		}
	}
	a, b := s.Shards().Shards()[0].DB.Primary(), s.Shards().Shards()[1].DB.Primary()
	rows, err := a.QueryContext(ctx, `SELECT id, email, name, region, created_at, updated_at, version FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	var moved []int64
	for rows.Next() {
		var id, version int64
		var email, name, region string
		var created, updated time.Time
		if err := rows.Scan(&id, &email, &name, &region, &created, &updated, &version); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ExecContext(ctx, `INSERT INTO users VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, email, name, region, created, updated, version); err != nil {
			t.Fatal(err)
		}
		moved = append(moved, id)
	}
	rows.Close()
	for i, id := range moved {
		if _, err := b.ExecContext(ctx, `INSERT INTO user_actions (user_id, id, product_id, kind, created_at) SELECT $1, 900000000 + $2 * 100 + g, $3, 'purchase', now() FROM generate_series(1, 20) g`, id, i, least); err != nil {
			t.Fatal(err)
		}
	}
	after := popular(open()) // a fresh store: a ranking computed now
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("popular products changed with rows a shard does not own: %v, then %v (product %d flooded)", before, after, least)
	}
}
