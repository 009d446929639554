package storefront_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// TestHomeInput: GET /users/{id}/home answers bad input exactly as GET
// /users/{id} does, 404 for a user that does not exist, and the page with
// no fallbacks when everything answers in time.
func TestHomeInput(t *testing.T) {
	h := badInputHandler(t) // users 1 to 3
	for _, tc := range []struct {
		id, query string
		status    int
		field     string
	}{
		{"0", "", 400, "id"},                    // not a positive id, as on /users/0
		{"-1", "", 400, "id"},                   // negative
		{"abc", "", 400, "id"},                  // not a number
		{"99999999999999999999", "", 400, "id"}, // out of range
		{"4", "", 404, "id"},                    // no such user
		{"1", "?limit=0", 400, "limit"},         // limit below 1, as on /recommendations
		{"1", "?limit=101", 400, "limit"},       // limit above MaxLimit
		{"1", "?fields=all", 400, "fields"},     // unknown parameter
		{"1", "?limit=1&limit=2", 400, "limit"}, // repeated parameter
	} {
		got := send(t, h, "GET", "/users/"+tc.id+"/home"+tc.query, "")
		if got.status != tc.status || got.body.Field != tc.field {
			t.Errorf("/users/%s/home%s: %d field %q (%s), want %d field %q", tc.id, tc.query, got.status, got.body.Field, got.raw, tc.status, tc.field)
		}
		if tc.query != "" {
			continue
		}
		// The same answer as the user's own endpoint.
		if user := send(t, h, "GET", "/users/"+tc.id, ""); user.status != got.status || user.body != got.body {
			t.Errorf("/users/%s/home answers %d %+v, /users/%s answers %d %+v", tc.id, got.status, got.body, tc.id, user.status, user.body)
		}
	}
	got := send(t, h, "GET", "/users/2/home?limit=3", "")
	page := decodeHome(t, got.status, got.raw)
	if got.status != 200 || page.User.ID != 2 || len(page.Recommendations) == 0 || len(page.Recommendations) > 3 || len(page.Fallbacks) != 0 ||
		!strings.Contains(got.raw, `"fallbacks":[]`) {
		t.Errorf("/users/2/home?limit=3: %d %s", got.status, got.raw)
	}
}

func decodeHome(t *testing.T, status int, raw string) storefront.Home {
	t.Helper()
	var page storefront.Home
	if status == 200 {
		if err := json.Unmarshal([]byte(raw), &page); err != nil {
			t.Fatalf("page is not a Home: %v: %s", err, raw)
		}
	}
	return page
}

// lockTable takes table's ACCESS EXCLUSIVE lock in a transaction on a
// connection of its own, and returns what releases it.
func lockTable(t *testing.T, db *sql.DB, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			if err := tx.Rollback(); err != nil {
				t.Errorf("release the lock on %s: %v", table, err)
			}
		}
	}
	t.Cleanup(release)
	return release
}

// lockWaiters counts the backends other than the caller's waiting on a
// lock in a query that mentions table.
func lockWaiters(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()
		AND wait_event_type = 'Lock' AND query ILIKE '%' || $1 || '%'`, table).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitWaiters polls until lockWaiters(table) satisfies ok, failing after within.
func waitWaiters(t *testing.T, db *sql.DB, table string, within time.Duration, ok func(int) bool, what string) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		n := lockWaiters(t, db, table)
		if ok(n) {
			return time.Since(t0)
		}
		if time.Since(t0) > within {
			var q string
			_ = db.QueryRowContext(context.Background(), `SELECT COALESCE(string_agg(left(query, 200), ' | '), '') FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query ILIKE '%' || $1 || '%'`, table).Scan(&q)
			t.Fatalf("%s: still %d backends waiting on a lock in a query on %s after %v: %s", what, n, table, within, q)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type homeAnswer struct {
	status  int
	header  http.Header
	raw     string
	elapsed time.Duration
}

// getHome requests base+path on its own goroutine; the answer arrives on
// the returned channel.
func getHome(t *testing.T, url string) <-chan homeAnswer {
	out := make(chan homeAnswer, 1)
	go func() {
		t0 := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("GET %s: %v", url, err)
			out <- homeAnswer{}
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		out <- homeAnswer{status: resp.StatusCode, header: resp.Header, raw: string(raw), elapsed: time.Since(t0)}
	}()
	return out
}

// Generous bounds on the budgets for a loaded two-core CI machine: the
// page must answer near its budget, not after a query's natural end
// (never, while the lock is held).
const (
	nonCriticalBound = 2 * time.Second
	criticalBound    = time.Second
	cancelBound      = 2 * time.Second // for the canceled queries to leave pg_stat_activity
)

// TestHomeBudgets: issue 16's composite page on PostgreSQL, with tables
// locked by another transaction. The budgets are deadlines that reach the
// SQL: a locked table costs the page its budget, not its answer, and the
// queries the budget gave up on are canceled on the database.
func TestHomeBudgets(t *testing.T) {
	url := testdb.Postgres(t)
	s := open(t, url)
	seed(t, s, 20, 30, 300)
	c, err := storefront.NewCached(s, storefront.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	direct := httptest.NewServer(storefront.NewHandler(s, storefront.HandlerConfig{}))
	t.Cleanup(direct.Close)
	viaCache := httptest.NewServer(storefront.NewHandler(c, storefront.HandlerConfig{}))
	t.Cleanup(viaCache.Close)
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })

	// Unlocked, the page is whole; this also computes the popularity
	// ranking the fallback reads.
	a := <-getHome(t, direct.URL+"/users/1/home")
	if page := decodeHome(t, a.status, a.raw); a.status != 200 || page.User.ID != 1 || len(page.Recommendations) == 0 || len(page.Fallbacks) != 0 {
		t.Fatalf("unlocked: %d %s", a.status, a.raw)
	}

	// user_actions locked: the recommendations wait on the lock until
	// their 500 ms budget ends, then the popular products stand in and
	// the page says so; the waiting query is canceled on the database.
	t.Run("user_actions locked", func(t *testing.T) {
		release := lockTable(t, admin, "user_actions")
		defer release()
		answer := getHome(t, direct.URL+"/users/1/home")
		waitWaiters(t, admin, "user_actions", nonCriticalBound, func(n int) bool { return n > 0 }, "the recommendations never reached the lock")
		a := <-answer
		page := decodeHome(t, a.status, a.raw)
		if a.status != 200 || page.User.ID != 1 || len(page.Recommendations) != storefront.DefaultLimit ||
			len(page.Fallbacks) != 1 || page.Fallbacks[0] != "recommendations" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		for _, r := range page.Recommendations {
			if r.Reason != "popular" {
				t.Errorf("fallback recommendation %d has reason %q, want popular", r.Product.ID, r.Reason)
			}
		}
		if fb := a.header.Get(storefront.FallbackHeader); !strings.Contains(fb, "popular products instead") {
			t.Errorf("%s: %q", storefront.FallbackHeader, fb)
		}
		if a.elapsed < storefront.DefaultNonCriticalBudget || a.elapsed > nonCriticalBound {
			t.Errorf("answered in %v, want between the budget %v and %v", a.elapsed, storefront.DefaultNonCriticalBudget, nonCriticalBound)
		}
		gone := waitWaiters(t, admin, "user_actions", cancelBound, func(n int) bool { return n == 0 }, "the canceled query")
		t.Logf("answered 200 with fallback in %v; the locked query left pg_stat_activity %v after the answer", a.elapsed, gone)
	})

	// users locked: the user is critical, so the page fails with 503 and
	// Retry-After once its 100 ms budget ends, and neither the user's
	// query nor the recommendations' (canceled with the page) waits on.
	t.Run("users locked", func(t *testing.T) {
		release := lockTable(t, admin, "users")
		defer release()
		a := <-getHome(t, direct.URL+"/users/2/home")
		var body struct{ Error string }
		_ = json.Unmarshal([]byte(a.raw), &body)
		if a.status != 503 || a.header.Get("Retry-After") != "1" || !strings.Contains(body.Error, "within its 100ms budget") {
			t.Fatalf("%d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.raw)
		}
		if a.elapsed < storefront.DefaultCriticalBudget || a.elapsed > criticalBound {
			t.Errorf("answered in %v, want between the budget %v and %v", a.elapsed, storefront.DefaultCriticalBudget, criticalBound)
		}
		gone := waitWaiters(t, admin, "users", cancelBound, func(n int) bool { return n == 0 }, "the canceled query")
		t.Logf("answered 503 in %v; no query on users waiting %v after the answer", a.elapsed, gone)
	})

	// user_actions locked, through the cache: the recommendations of a
	// limit nothing cached yet wait on the lock, the page answers with the
	// fallback as without the cache, and the cache's load, which only
	// this request waited for, is canceled with it, its query too. The
	// user is cached first (and the recommendations the guide's
	// personalisation warming computes for a new session, of the default
	// limit, are in before the lock), so no warming joins the load.
	t.Run("user_actions locked, through the cache", func(t *testing.T) { homeLockedThroughCache(t, viaCache.URL, admin) })

	// users locked, through the cache: a user the cache holds is served
	// from it, and the page is whole.
	t.Run("users locked, user cached", func(t *testing.T) {
		if r := <-getHome(t, viaCache.URL+"/users/3/home"); r.status != 200 { // fills the cache
			t.Fatalf("priming: %d %s", r.status, r.raw)
		}
		release := lockTable(t, admin, "users")
		defer release()
		a := <-getHome(t, viaCache.URL+"/users/3/home")
		page := decodeHome(t, a.status, a.raw)
		if a.status != 200 || page.User.ID != 3 || len(page.Recommendations) == 0 || len(page.Fallbacks) != 0 {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		if info := a.header.Get(storefront.CacheHeader); !strings.Contains(info, "user: l1") {
			t.Errorf("%s: %q, want the user from L1", storefront.CacheHeader, info)
		}
		t.Logf("answered 200 from the cache in %v", a.elapsed)
	})
}

// homeLockedThroughCache is TestHomeBudgets's case of user_actions
// locked with the page served through the cache at viaCache.
func homeLockedThroughCache(t *testing.T, viaCache string, admin *sql.DB) {
	for deadline := time.Now().Add(30 * time.Second); ; {
		r := <-getHome(t, viaCache+"/users/4/home")
		if r.status != 200 {
			t.Fatalf("priming: %d %s", r.status, r.raw)
		}
		if info := r.header.Get(storefront.CacheHeader); strings.Contains(info, "user: l1") && strings.Contains(info, "recommendations: l1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("user 4's page not from the cache after 30 s: %s", r.header.Get(storefront.CacheHeader))
		}
	}
	release := lockTable(t, admin, "user_actions")
	defer release()
	answer := getHome(t, viaCache+"/users/4/home?limit=5")
	waitWaiters(t, admin, "user_actions", nonCriticalBound, func(n int) bool { return n > 0 }, "the recommendations never reached the lock")
	a := <-answer
	page := decodeHome(t, a.status, a.raw)
	if a.status != 200 || page.User.ID != 4 || len(page.Fallbacks) != 1 || page.Fallbacks[0] != "recommendations" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	gone := waitWaiters(t, admin, "user_actions", cancelBound, func(n int) bool { return n == 0 }, "the cache's canceled load")
	t.Logf("answered 200 with fallback in %v; the cache's locked query left pg_stat_activity %v after the answer", a.elapsed, gone)
}

// TestHomeColdRanking: with no popularity ranking computed yet and
// user_actions locked, the page answers with the fallback noted (and no
// recommendations: the popular products need the ranking too), and the
// ranking's computation, which only the page's calls waited for, is
// canceled with them rather than waiting on the lock in the background;
// once the lock is gone, the next page computes it afresh and is whole.
func TestHomeColdRanking(t *testing.T) {
	url := testdb.Postgres(t)
	s := open(t, url)
	seed(t, s, 20, 30, 300)
	srv := httptest.NewServer(storefront.NewHandler(s, storefront.HandlerConfig{}))
	t.Cleanup(srv.Close)
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })

	release := lockTable(t, admin, "user_actions")
	answer := getHome(t, srv.URL+"/users/1/home")
	waitWaiters(t, admin, "user_actions", nonCriticalBound, func(n int) bool { return n > 0 }, "the recommendations never reached the lock")
	a := <-answer
	page := decodeHome(t, a.status, a.raw)
	if a.status != 200 || page.User.ID != 1 || len(page.Fallbacks) != 1 || page.Fallbacks[0] != "recommendations" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if fb := a.header.Get(storefront.FallbackHeader); !strings.Contains(fb, "popular products failed too") {
		t.Errorf("%s: %q", storefront.FallbackHeader, fb)
	}
	gone := waitWaiters(t, admin, "user_actions", cancelBound, func(n int) bool { return n == 0 }, "the ranking's canceled computation")
	t.Logf("answered 200 with fallback in %v; no query on user_actions waiting %v after the answer", a.elapsed, gone)
	release()

	a = <-getHome(t, srv.URL+"/users/1/home")
	if page := decodeHome(t, a.status, a.raw); a.status != 200 || len(page.Recommendations) == 0 || len(page.Fallbacks) != 0 {
		t.Fatalf("unlocked: %d %s", a.status, a.raw)
	}
}
