package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

func TestNormalizeSQL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      string // a substring of the error, if one is expected
	}{
		{in: "SELECT  id\n\tFROM users WHERE id = $1;", want: "select id from users where id = $1"},
		{in: "select id from users where id = $1", want: "select id from users where id = $1"},
		{in: "  select 1 -- trailing comment\n", want: "select 1"},
		{in: "select /* a /* nested */ comment */ 1", want: "select 1"},
		{in: "select 1/**/+2", want: "select 1 +2"},
		{in: "SELECT 'It''s  Mixed' FROM T", want: "select 'It''s  Mixed' from t"},
		{in: `SELECT "CamelCase"  FROM "My  Table"`, want: `select "CamelCase" from "My  Table"`},
		{in: `select E'a\'  B' , e'x'`, want: `select e'a\'  B' , e'x'`},
		{in: "select $$ Keep  THIS $$, $tag$ a $$ b $tag$", want: "select $$ Keep  THIS $$, $tag$ a $$ b $tag$"},
		{in: "select a$b$c from t where x = $2", want: "select a$b$c from t where x = $2"},
		{in: "select 'Ünïcödé' AS Ünï", want: "select 'Ünïcödé' as Ünï"},
		{in: "select 1;;  ", want: "select 1"},
		{in: "   ", err: "empty SQL"},
		{in: "-- only a comment", err: "empty SQL"},
		{in: "select 'open", err: "unterminated string literal"},
		{in: `select "open`, err: "unterminated quoted identifier"},
		{in: "select /* open", err: "unterminated block comment"},
		{in: "select $q$ open", err: "unterminated dollar-quoted"},
	} {
		got, err := cache.NormalizeSQL(tc.in)
		if tc.err != "" {
			if !errors.Is(err, cache.ErrBadQuery) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizeSQL(%q) error = %v, want ErrBadQuery mentioning %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeSQL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestQueryKey(t *testing.T) {
	key := func(sql string, args ...any) string {
		t.Helper()
		k, err := cache.Query{SQL: sql, Args: args}.Key()
		if err != nil {
			t.Fatalf("Key(%q, %v): %v", sql, args, err)
		}
		return k
	}
	base := key("SELECT * FROM users WHERE id = $1", 42)
	for _, tc := range []struct {
		name string
		k    string
		same bool
	}{
		{"other spelling", key("select *\n  from USERS where id = $1;", int64(42)), true},
		{"pointer argument", key("select * from users where id = $1", func() *int { v := 42; return &v }()), true},
		{"other argument", key("select * from users where id = $1", 43), false},
		{"argument as text", key("select * from users where id = $1", "42"), false},
		{"other literal", key("select * from users where id = $1 and name = 'A'", 42), false},
		{"two arguments", key("select * from users where id = $1", 4, 2), false},
		{"split differently", key("select * from users where id = $1", "4", "2"), false},
	} {
		if (tc.k == base) != tc.same {
			t.Errorf("%s: key equal to base = %v, want %v", tc.name, tc.k == base, tc.same)
		}
	}
	if _, err := (cache.Query{SQL: "select $1", Args: []any{struct{ A int }{1}}}).Key(); !errors.Is(err, cache.ErrBadQuery) ||
		!strings.Contains(err.Error(), "argument 1") {
		t.Errorf("struct argument: err = %v, want ErrBadQuery naming argument 1", err)
	}
}

func TestQueryNeedsWhatItReads(t *testing.T) {
	c := newCache(t, cache.Config[string]{})
	ctx := context.Background()
	load := func(context.Context) (string, error) { return "x", nil }
	for _, q := range []cache.Query{
		{SQL: "select 1"},
		{SQL: "select 1", Tables: []string{""}},
		{SQL: "select 1", Rows: []cache.Row{{Table: "a:b", Key: "1"}}},
		{SQL: "select 'x", Tables: []string{"t"}},
	} {
		if _, _, err := c.Query(ctx, q, load); !errors.Is(err, cache.ErrBadQuery) {
			t.Errorf("Query(%+v) err = %v, want ErrBadQuery", q, err)
		}
	}
	if _, err := c.Wrote(ctx, ""); !errors.Is(err, cache.ErrBadQuery) {
		t.Errorf("Wrote with no table: err = %v, want ErrBadQuery", err)
	}
}

// TestQueryInvalidation: a write invalidates exactly the cached queries
// that read what it changed, on this instance and (with Redis) on another.
func TestQueryInvalidation(t *testing.T) {
	t.Run("L1 only", func(t *testing.T) {
		c := newCache(t, cache.Config[string]{})
		testQueryInvalidation(t, c, c)
	})
	t.Run("two instances over Redis", func(t *testing.T) {
		rc, ns := testdb.Redis(t), testdb.Namespace(t)
		e := newEnv(t) // the clock stands still: no watchdog flush can reload a query
		a := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous})
		b := e.cache(cache.Config[string]{Redis: rc, Namespace: ns, L2Timeout: generous})
		e.waitBus(a, b)
		testQueryInvalidation(t, a, b)
	})
}

// testQueryInvalidation writes through w and reads through r.
func testQueryInvalidation(t *testing.T, w, r *cache.Cache[string]) {
	ctx := context.Background()
	queries := map[string]cache.Query{
		"user 42": {SQL: "select * from users where id = $1", Args: []any{42}, Rows: []cache.Row{{Table: "users", Key: "42"}}},
		"user 7":  {SQL: "select * from users where id = $1", Args: []any{7}, Rows: []cache.Row{{Table: "users", Key: "7"}}},
		"count":   {SQL: "select count(*) from users", Tables: []string{"users"}},
		"product": {SQL: "select * from products where id = $1", Args: []any{1}, Rows: []cache.Row{{Table: "products", Key: "1"}}},
		"join": {SQL: "select * from orders join products using (product_id) where user_id = $1", Args: []any{42},
			Tables: []string{"products"}, Rows: []cache.Row{{Table: "orders", Key: "user:42"}}},
	}
	loads := map[string]*atomic.Int64{}
	read := func(name string) {
		t.Helper()
		if loads[name] == nil {
			loads[name] = new(atomic.Int64)
		}
		n := loads[name]
		if _, _, err := r.Query(ctx, queries[name], func(context.Context) (string, error) { n.Add(1); return name, nil }); err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
	}
	readAll := func() map[string]int64 {
		t.Helper()
		before := map[string]int64{}
		for name := range queries {
			if loads[name] != nil {
				before[name] = loads[name].Load()
			}
		}
		for name := range queries {
			read(name)
		}
		reloaded := map[string]int64{}
		for name := range queries {
			reloaded[name] = loads[name].Load() - before[name]
		}
		return reloaded
	}
	readAll()
	if got := readAll(); got["user 42"]+got["count"]+got["user 7"]+got["product"]+got["join"] != 0 {
		t.Fatalf("second read reloaded %v; everything should be cached", got)
	}
	for _, step := range []struct {
		table    string
		keys     []string
		reloaded []string
	}{
		{"users", []string{"42"}, []string{"user 42", "count"}},
		{"users", nil, []string{"user 42", "user 7", "count"}},
		{"products", []string{"2"}, []string{"join"}},
		{"products", []string{"1"}, []string{"product", "join"}},
		{"orders", []string{"user:7"}, nil},
		{"orders", []string{"user:42"}, []string{"join"}},
	} {
		if _, err := w.Wrote(ctx, step.table, step.keys...); err != nil {
			t.Fatal(err)
		}
		// The other instance learns of the write through the bus. Reloads
		// are summed over the polls: a poll may read one query before the
		// message arrives and another after it.
		got := map[string]int64{}
		all := func() bool {
			for name, n := range readAll() {
				got[name] += n
			}
			for _, name := range step.reloaded {
				if got[name] == 0 {
					return false
				}
			}
			return true
		}
		if !within(30*time.Second, all) {
			t.Errorf("after a write to %s %v: not every query reloaded after 30 s (%v)", step.table, step.keys, got)
		}
		for name := range queries {
			want := int64(0)
			for _, s := range step.reloaded {
				if s == name {
					want = 1
				}
			}
			if got[name] != want {
				t.Errorf("after a write to %s %v: %q reloaded %d times, want %d (all: %v)", step.table, step.keys, name, got[name], want, got)
			}
		}
	}
}

func ExampleCache_Query() {
	results, err := cache.New(cache.Config[int]{Namespace: "queries", TTL: cache.DefaultQueryTTL})
	if err != nil {
		panic(err)
	}
	defer results.Close()
	ctx := context.Background()
	count := cache.Query{SQL: "SELECT count(*) FROM users WHERE country = $1", Args: []any{"NZ"}, Tables: []string{"users"}}
	load := func(ctx context.Context) (int, error) {
		fmt.Println("querying the database")
		return 3, nil
	}

	n, _, _ := results.Query(ctx, count, load)
	fmt.Println(n)
	n, info, _ := results.Query(ctx, count, load)
	fmt.Println(n, info.Source)

	// A write to any user makes the count stale.
	results.Wrote(ctx, "users", "42")
	n, _, _ = results.Query(ctx, count, load)
	fmt.Println(n)
	// Output:
	// querying the database
	// 3
	// 3 l1
	// querying the database
	// 3
}
