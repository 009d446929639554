package storefront_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// backend opens a fresh, empty store of one kind for a test.
type backend struct {
	name string
	open func(t testing.TB) *storefront.Store
}

// backends lists SQLite, PostgreSQL, and PostgreSQL sharded over the two
// shard primaries of scripts/dev (stage 5).
func backends() []backend {
	var out []backend
	for _, b := range testdb.Backends() {
		out = append(out, backend{b.Name, func(t testing.TB) *storefront.Store { return open(t, b.URL(t)) }})
	}
	return append(out, backend{"sharded", openSharded})
}

// openSharded opens a store over a main database and a database on each
// shard primary, all of the test's own.
func openSharded(t testing.TB) *storefront.Store {
	t.Helper()
	s, err := storefront.Open(context.Background(), testdb.PostgresDatabase(t), storefront.Config{Shards: testdb.ShardDatabases(t)})
	if err != nil {
		t.Fatalf("Open sharded: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// each runs fn once per backend on a fresh store.
func each(t *testing.T, fn func(t *testing.T, s *storefront.Store)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

// eachUnsharded runs fn on SQLite and PostgreSQL (a test that reads the
// tables of the one database directly).
func eachUnsharded(t *testing.T, fn func(t *testing.T, s *storefront.Store)) {
	t.Helper()
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, open(t, b.URL(t))) })
	}
}

// userDB returns the pool that holds user id's rows: the store's one
// database, or the primary of the shard that owns the user.
func userDB(s *storefront.Store, id int64) *sql.DB {
	if r := s.Shards(); r != nil {
		return r.For(id).DB.Primary()
	}
	return s.DB()
}

func open(t testing.TB, url string) *storefront.Store {
	t.Helper()
	s, err := storefront.Open(context.Background(), url, storefront.Config{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func seed(t testing.TB, s *storefront.Store, users, products, actions int) {
	t.Helper()
	if _, err := storefront.Seed(context.Background(), s, storefront.SeedConfig{
		Users: users, Products: products, Actions: actions, RandSeed: 7,
	}); err != nil {
		t.Fatalf("Seed: %v", err)
	}
}

func mustCreate(t *testing.T, s *storefront.Store, email string) storefront.User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), storefront.NewUser{Email: email, Name: "Test User", Region: "eu-west"})
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func ptr(s string) *string { return &s }

func fieldOf(err error) string {
	var fe *storefront.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestUsers(t *testing.T) {
	each(t, func(t *testing.T, s *storefront.Store) {
		ctx := context.Background()
		u := mustCreate(t, s, "  Ada.Lovelace@Example.COM ")
		if u.ID <= 0 || u.Email != "ada.lovelace@example.com" || u.Version != 1 || u.CreatedAt.IsZero() {
			t.Fatalf("created user = %+v", u)
		}
		got, err := s.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != u {
			t.Fatalf("GetUser = %+v, want %+v", got, u)
		}

		// The same address in another case is the same address.
		_, err = s.CreateUser(ctx, storefront.NewUser{Email: "ADA.lovelace@example.com", Name: "Other", Region: "us-east"})
		if !errors.Is(err, storefront.ErrConflict) || fieldOf(err) != "email" {
			t.Fatalf("duplicate email: err = %v, want ErrConflict on email", err)
		}

		up, err := s.UpdateUser(ctx, u.ID, storefront.UserPatch{Name: ptr("Countess of Lovelace")})
		if err != nil {
			t.Fatal(err)
		}
		if up.Name != "Countess of Lovelace" || up.Email != u.Email || up.Region != u.Region || up.Version != 2 {
			t.Fatalf("patched user = %+v", up)
		}
		if up.UpdatedAt.Before(u.UpdatedAt) || !up.CreatedAt.Equal(u.CreatedAt) {
			t.Fatalf("timestamps after patch: created %v updated %v (before: %v)", up.CreatedAt, up.UpdatedAt, u.UpdatedAt)
		}

		other := mustCreate(t, s, "grace@example.com")
		_, err = s.UpdateUser(ctx, other.ID, storefront.UserPatch{Email: ptr("ada.lovelace@example.com")})
		if !errors.Is(err, storefront.ErrConflict) {
			t.Fatalf("update to a taken email: err = %v, want ErrConflict", err)
		}
		if g, _ := s.GetUser(ctx, other.ID); g.Version != 1 {
			t.Fatalf("failed update changed the row: %+v", g)
		}

		if _, err := s.GetUser(ctx, 1<<40); !errors.Is(err, storefront.ErrNotFound) {
			t.Fatalf("unknown id: err = %v, want ErrNotFound", err)
		}
		if _, err := s.UpdateUser(ctx, 1<<40, storefront.UserPatch{Name: ptr("x")}); !errors.Is(err, storefront.ErrNotFound) {
			t.Fatalf("update unknown id: err = %v, want ErrNotFound", err)
		}
	})
}

func TestUserValidation(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	long := strings.Repeat("a", 201)
	cases := []struct {
		name  string
		in    storefront.NewUser
		field string
	}{
		// Each case proves one rule of NewUser validation.
		{"empty email", storefront.NewUser{Email: "", Name: "A", Region: "eu"}, "email"},
		{"no at sign", storefront.NewUser{Email: "ada.example.com", Name: "A", Region: "eu"}, "email"},
		{"display name form", storefront.NewUser{Email: "Ada <ada@example.com>", Name: "A", Region: "eu"}, "email"},
		{"no domain dot", storefront.NewUser{Email: "ada@localhost", Name: "A", Region: "eu"}, "email"},
		{"over-long email", storefront.NewUser{Email: strings.Repeat("a", 250) + "@example.com", Name: "A", Region: "eu"}, "email"},
		{"blank name", storefront.NewUser{Email: "a@example.com", Name: "   ", Region: "eu"}, "name"},
		{"over-long name", storefront.NewUser{Email: "a@example.com", Name: long, Region: "eu"}, "name"},
		{"control char in name", storefront.NewUser{Email: "a@example.com", Name: "A\x00B", Region: "eu"}, "name"},
		{"missing region", storefront.NewUser{Email: "a@example.com", Name: "A"}, "region"},
		{"region with space", storefront.NewUser{Email: "a@example.com", Name: "A", Region: "eu west"}, "region"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.CreateUser(context.Background(), c.in)
			if got := fieldOf(err); got != c.field {
				t.Fatalf("err = %v (field %q), want a FieldError on %q", err, got, c.field)
			}
		})
	}
	// An empty patch names nothing to change.
	if _, err := s.UpdateUser(context.Background(), 1, storefront.UserPatch{}); fieldOf(err) != "body" {
		t.Fatalf("empty patch: err = %v, want FieldError on body", err)
	}
	// Ids must be positive.
	if _, err := s.GetUser(context.Background(), 0); fieldOf(err) != "id" {
		t.Fatalf("id 0: err = %v, want FieldError on id", err)
	}
}

func TestActions(t *testing.T) {
	each(t, func(t *testing.T, s *storefront.Store) {
		ctx := context.Background()
		seed(t, s, 5, 5, 0)
		a, err := s.RecordAction(ctx, 2, 3, storefront.Cart)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID <= 0 || a.UserID != 2 || a.ProductID != 3 || a.Kind != storefront.Cart {
			t.Fatalf("action = %+v", a)
		}
		_, err = s.RecordAction(ctx, 999, 3, storefront.View)
		if !errors.Is(err, storefront.ErrNotFound) || fieldOf(err) == "product_id" {
			t.Fatalf("unknown user: err = %v, want ErrNotFound for the user", err)
		}
		_, err = s.RecordAction(ctx, 2, 999, storefront.View)
		if !errors.Is(err, storefront.ErrNotFound) || fieldOf(err) != "product_id" {
			t.Fatalf("unknown product: err = %v, want ErrNotFound on product_id", err)
		}
		if _, err = s.RecordAction(ctx, 2, 3, "like"); fieldOf(err) != "kind" {
			t.Fatalf("bad kind: err = %v, want FieldError on kind", err)
		}
	})
}

func TestSearch(t *testing.T) {
	each(t, func(t *testing.T, s *storefront.Store) {
		ctx := context.Background()
		seed(t, s, 10, 300, 0)
		p, err := s.GetProduct(ctx, 17)
		if err != nil {
			t.Fatal(err)
		}
		// The last word of a seeded title is a model number unique enough to find it.
		words := strings.Fields(p.Title)
		res, err := s.Search(ctx, words[0]+" "+words[len(words)-1], 100)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range res {
			found = found || r.ID == p.ID
			if !strings.Contains(strings.ToLower(r.Title+" "+r.Description), strings.ToLower(words[len(words)-1])) {
				t.Errorf("result %q does not contain %q", r.Title, words[len(words)-1])
			}
		}
		if !found {
			t.Fatalf("search for %q did not find product %d %q among %d results", p.Title, p.ID, p.Title, len(res))
		}
		// Titles weigh more than descriptions: a title match ranks first.
		res, err = s.Search(ctx, p.Title, 1)
		if err != nil || len(res) != 1 || res[0].ID != p.ID {
			t.Fatalf("search for the exact title: %v, %+v", err, res)
		}
		// Query syntax of either engine is data, never an operator.
		for _, q := range []string{`"unbalanced`, `title:kettle`, `NEAR(a b)`, `kettle*`, `a & b | !c`, `'; DROP TABLE products; --`, `(((kettle`, `^kettle`, `-kettle`, `kettle OR tent`, `kettle:*`} {
			if _, err := s.Search(ctx, q, 10); err != nil {
				t.Errorf("Search(%q): %v", q, err)
			}
		}
		if _, err := s.Search(ctx, "?!", 10); fieldOf(err) != "q" {
			t.Errorf("punctuation-only query: err = %v, want FieldError on q", err)
		}
		if _, err := s.Search(ctx, "kettle", 0); fieldOf(err) != "limit" {
			t.Errorf("limit 0: err = %v, want FieldError on limit", err)
		}
	})
}

func TestSearchTerms(t *testing.T) {
	cases := []struct {
		q     string
		terms string // space-joined; "" means an error is expected
	}{
		{"Wireless Headphones", "wireless headphones"}, // lower-cased words
		{"tea, tea & TEA", "tea"},                      // duplicates dropped
		{`"quoted" (grouped) col:umn`, "quoted grouped col umn"},
		{"café crème 42", "café crème 42"},                        // letters beyond ASCII are words
		{"   ", ""},                                               // blank is an error
		{"!!!", ""},                                               // no word is an error
		{strings.Repeat("a", 201), ""},                            // over 200 characters
		{strings.Repeat("é", 200), "" + strings.Repeat("é", 200)}, // 200 characters, not bytes
		{"\xff\xfe", ""},                                          // invalid UTF-8
	}
	for _, c := range cases {
		got, err := storefront.SearchTerms(c.q)
		if c.terms == "" {
			if err == nil {
				t.Errorf("SearchTerms(%q) = %q, want an error", c.q, got)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != c.terms {
			t.Errorf("SearchTerms(%q) = %q, %v; want %q", c.q, got, err, c.terms)
		}
	}
	many := ""
	for i := range 30 {
		many += fmt.Sprintf("w%d ", i)
	}
	if got, _ := storefront.SearchTerms(many); len(got) != storefront.MaxSearchTerms {
		t.Errorf("30 words gave %d terms, want %d", len(got), storefront.MaxSearchTerms)
	}
}

func TestRecommend(t *testing.T) {
	each(t, func(t *testing.T, s *storefront.Store) {
		ctx := context.Background()
		seed(t, s, 200, 100, 4000)

		for _, id := range []int64{1, 50, 200} {
			recs, err := s.Recommend(ctx, id, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 10 {
				t.Fatalf("user %d: %d recommendations, want 10", id, len(recs))
			}
			seen := map[int64]bool{}
			for i, r := range recs {
				if seen[r.Product.ID] {
					t.Fatalf("user %d: product %d recommended twice", id, r.Product.ID)
				}
				seen[r.Product.ID] = true
				if i > 0 && r.Score > recs[i-1].Score {
					t.Fatalf("user %d: scores not descending at %d", id, i)
				}
				if r.Product.Title == "" || r.Reason == "" {
					t.Fatalf("user %d: incomplete recommendation %+v", id, r)
				}
			}
		}

		// A user who bought something is not offered it again.
		u := mustCreate(t, s, "buyer@example.com")
		for _, p := range []int64{3, 4, 5} {
			if _, err := s.RecordAction(ctx, u.ID, p, storefront.Purchase); err != nil {
				t.Fatal(err)
			}
		}
		recs, err := s.Recommend(ctx, u.ID, 20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Product.ID >= 3 && r.Product.ID <= 5 {
				t.Fatalf("recommended already purchased product %d", r.Product.ID)
			}
		}
		if len(recs) == 0 || recs[0].Reason == "popular" {
			t.Fatalf("a buyer's first recommendation should come from history, got %+v", recs)
		}

		// A new user with no history gets the popular products.
		fresh := mustCreate(t, s, "fresh@example.com")
		recs, err = s.Recommend(ctx, fresh.ID, 5)
		if err != nil || len(recs) != 5 {
			t.Fatalf("fresh user: %d recs, %v", len(recs), err)
		}
		for _, r := range recs {
			if r.Reason != "popular" {
				t.Fatalf("fresh user got reason %q, want popular", r.Reason)
			}
		}

		if _, err := s.Recommend(ctx, 1<<40, 5); !errors.Is(err, storefront.ErrNotFound) {
			t.Fatalf("unknown user: err = %v, want ErrNotFound", err)
		}
		if _, err := s.Recommend(ctx, 1, 101); fieldOf(err) != "limit" {
			t.Fatalf("limit 101: err = %v, want FieldError on limit", err)
		}
	})
}

// TestRecommendNeverEmpty: a user who bought the whole catalogue still
// gets recommendations, and so does one whose ranking was computed before
// any product existed.
func TestRecommendNeverEmpty(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	ctx := context.Background()
	seed(t, s, 1, 3, 0)
	for p := int64(1); p <= 3; p++ {
		if _, err := s.RecordAction(ctx, 1, p, storefront.Purchase); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.Recommend(ctx, 1, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("bought everything: %d recs, %v; want 3", len(recs), err)
	}
}

func TestSeed(t *testing.T) {
	eachUnsharded(t, func(t *testing.T, s *storefront.Store) {
		ctx := context.Background()
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		cfg := storefront.SeedConfig{Users: 300, Products: 40, Actions: 3000, RandSeed: 42, Now: now}
		st, err := storefront.Seed(ctx, s, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if st.Users != 300 || st.Products != 40 || st.Actions != 3000 {
			t.Fatalf("stats = %+v", st)
		}
		var users, products, actions int
		var minAt, maxAt any
		db := s.DB()
		db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&users)
		db.QueryRowContext(ctx, `SELECT COUNT(*) FROM products`).Scan(&products)
		db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM user_actions`).Scan(&actions, &minAt, &maxAt)
		if users != 300 || products != 40 || actions != 3000 {
			t.Fatalf("counts: %d users, %d products, %d actions", users, products, actions)
		}
		// Every action points at a real user and product (the PostgreSQL
		// seeder skips the per-row foreign-key checks, trusting this).
		var orphans int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_actions a
			WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.user_id)
			   OR NOT EXISTS (SELECT 1 FROM products p WHERE p.id = a.product_id)`).Scan(&orphans); err != nil || orphans != 0 {
			t.Fatalf("%d actions reference missing rows (%v)", orphans, err)
		}
		// Popularity is skewed: the top product draws far more than the median one.
		var top, median int
		rows, err := db.QueryContext(ctx, `SELECT COUNT(*) FROM user_actions GROUP BY product_id ORDER BY COUNT(*) DESC`)
		if err != nil {
			t.Fatal(err)
		}
		var counts []int
		for rows.Next() {
			var n int
			rows.Scan(&n)
			counts = append(counts, n)
		}
		rows.Close()
		top, median = counts[0], counts[len(counts)/2]
		if top < 5*median {
			t.Fatalf("top product has %d actions, median %d: not skewed", top, median)
		}
		// New rows continue after the seeded ids.
		u := mustCreate(t, s, "after.seed@example.com")
		if u.ID != 301 {
			t.Fatalf("first user after seeding has id %d, want 301", u.ID)
		}
		// Seeding twice is refused.
		if _, err := storefront.Seed(ctx, s, cfg); !errors.Is(err, storefront.ErrNotEmpty) {
			t.Fatalf("second seed: err = %v, want ErrNotEmpty", err)
		}
		// Seeding again with Reset and the same seed gives the same rows.
		before := fingerprint(t, s)
		again := cfg
		again.Reset = true
		if _, err := storefront.Seed(ctx, s, again); err != nil {
			t.Fatal(err)
		}
		if after := fingerprint(t, s); after != before {
			t.Fatalf("same seed, different data:\n%s\n%s", before, after)
		}
	})
}

// fingerprint summarises seeded rows (ids up to 300 only, so rows added by
// the test itself do not count).
func fingerprint(t *testing.T, s *storefront.Store) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT email || '|' || name || '|' || region FROM users WHERE id IN (1, 150, 300)`,
		`SELECT title || '|' || category || '|' || price_cents FROM products WHERE id IN (1, 20, 40)`,
		`SELECT user_id || '|' || product_id || '|' || kind FROM user_actions WHERE id IN (1, 1500, 3000)`,
	} {
		rows, err := s.DB().Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			rows.Scan(&v)
			b.WriteString(v + "\n")
		}
		rows.Close()
	}
	return b.String()
}

func TestMigrations(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name+"/concurrent and repeated", func(t *testing.T) {
			url := b.URL(t)
			// Several processes starting at once migrate once.
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := storefront.Open(context.Background(), url, storefront.Config{})
					if err == nil {
						s.Close()
					}
					errs[i] = err
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("concurrent Open: %v", err)
				}
			}
			s := open(t, url)
			var n int
			if err := s.DB().QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != storefront.SchemaVersion() {
				t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, storefront.SchemaVersion())
			}
			// A database from a newer build is refused.
			if _, err := s.DB().Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'now')`); err != nil {
				t.Fatal(err)
			}
			if _, err := storefront.Open(context.Background(), url, storefront.Config{}); err == nil || !strings.Contains(err.Error(), "newer") {
				t.Fatalf("Open on a newer schema: err = %v, want a 'newer' error", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	cases := []struct {
		url  string
		want string
	}{
		// Each proves a bad URL is a clear error, not a hang or a panic.
		{"", "empty"},
		{"mysql://localhost/db", "unsupported scheme"},
		{"strata.db", "no scheme"},
		{"sqlite://", "names no file"},
		{"sqlite://:memory:", "in-memory"},
		{"postgres://strata@127.0.0.1:1/strata?sslmode=disable&connect_timeout=2", "cannot reach"},
		{"sqlite:///nonexistent-dir/x/y.db", "cannot reach"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, err := storefront.Open(ctx, c.url, storefront.Config{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open(%q) err = %v, want it to mention %q", c.url, err, c.want)
			}
		})
	}
}

// TestRecommendExcludesHistory: nothing the user viewed, carted or bought
// is recommended while the catalogue has other candidates.
func TestRecommendExcludesHistory(t *testing.T) {
	each(t, func(t *testing.T, s *storefront.Store) {
		ctx := context.Background()
		seed(t, s, 300, 200, 6000)
		for _, id := range []int64{1, 2, 3, 4, 5} {
			rows, err := userDB(s, id).QueryContext(ctx, `SELECT product_id FROM user_actions WHERE user_id = $1 ORDER BY created_at DESC LIMIT 100`, id)
			if err != nil {
				t.Fatal(err)
			}
			history := map[int64]bool{}
			for rows.Next() {
				var p int64
				rows.Scan(&p)
				history[p] = true
			}
			rows.Close()
			recs, err := s.Recommend(ctx, id, 20)
			if err != nil || len(recs) != 20 {
				t.Fatalf("user %d: %d recs, %v", id, len(recs), err)
			}
			for _, r := range recs {
				if history[r.Product.ID] {
					t.Fatalf("user %d: recommended product %d from their own history (%s)", id, r.Product.ID, r.Reason)
				}
			}
		}
	})
}

// TestRecommendRankingBeforeCatalogue: a popularity ranking computed while
// the catalogue was empty is recomputed rather than served as "nothing".
func TestRecommendRankingBeforeCatalogue(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	ctx := context.Background()
	u := mustCreate(t, s, "early@example.com")
	recs, err := s.Recommend(ctx, u.ID, 5) // ranks an empty catalogue
	if err != nil || len(recs) != 0 {
		t.Fatalf("empty catalogue: %d recs, %v", len(recs), err)
	}
	// Products arrive behind the store's back (another process, a migration).
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO products (title, description, category, price_cents, stock, updated_at) VALUES ('Acme kettle', 'A kettle', 'kitchen', 100, 1, 0)`); err != nil {
		t.Fatal(err)
	}
	recs, err = s.Recommend(ctx, u.ID, 5)
	if err != nil || len(recs) != 1 || recs[0].Product.Title != "Acme kettle" {
		t.Fatalf("after the first product: %+v, %v", recs, err)
	}
}

// TestPopularityRefresh: a stale ranking is served while one background
// refresh replaces it; concurrent cold readers share one computation; Close
// waits for background work.
func TestPopularityRefresh(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := storefront.Open(context.Background(), testdb.SQLite(t), storefront.Config{Now: clock, PopularityRefresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seed(t, s, 50, 20, 0)
	fresh := mustCreate(t, s, "fresh@example.com")

	// Many cold readers at once all succeed.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if recs, err := s.Recommend(ctx, fresh.ID, 3); err != nil || len(recs) != 3 {
				t.Errorf("cold reader: %d recs, %v", len(recs), err)
			}
		}()
	}
	wg.Wait()
	before, _ := s.Recommend(ctx, fresh.ID, 1)

	// Product 20 becomes by far the most popular.
	for range 30 {
		if _, err := s.RecordAction(ctx, 1, 20, storefront.Purchase); err != nil {
			t.Fatal(err)
		}
	}
	if recs, _ := s.Recommend(ctx, fresh.ID, 1); recs[0].Product.ID != before[0].Product.ID {
		t.Fatalf("ranking changed before it was stale")
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	// The first stale read starts the refresh; within a few reads the new
	// ranking is served.
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := s.Recommend(ctx, fresh.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Product.ID == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale ranking still served: top is %d", recs[0].Product.ID)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
