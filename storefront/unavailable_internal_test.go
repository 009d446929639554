package storefront

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strata-dev/strata/replica"
	"github.com/strata-dev/strata/shard"
)

// TestUnavailable: conditions that are "cannot serve now" become 503s with
// a cause; a query's own errors and bugs stay 500s.
func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		// the router's sentinels, wrapped as the store wraps them
		{"primary down", fmt.Errorf("storefront: update user 1: %w", replica.ErrPrimaryUnavailable), true},
		{"fallback capped", fmt.Errorf("x: %w", replica.ErrFallbackCapped), true},
		// a shard's failure, named; a write held past a move's fence
		{"shard down", fmt.Errorf("x: %w", &shard.Error{Shard: "shard2", Err: replica.ErrPrimaryUnavailable}), true},
		{"fenced", &shard.Error{Shard: "shard1", Err: fmt.Errorf("%w: still fenced", shard.ErrFenced)}, true},
		{"shard's own bug", &shard.Error{Shard: "shard1", Err: errors.New("boom")}, false},
		// the request's own budget
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		// a PostgreSQL without replicas going away mid-query
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"EOF", fmt.Errorf("read: %w", io.EOF), true},
		{"conn done", fmt.Errorf("x: %w", sql.ErrConnDone), true},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, true},
		{"recovery in progress", &pgconn.PgError{Code: "55000"}, true},
		// the query's own errors are bugs, not outages
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"plain error", errors.New("boom"), false},
	} {
		cause, ok := unavailable(c.err)
		if ok != c.want || (ok && cause == "") {
			t.Errorf("%s: unavailable(%v) = %q, %v; want %v with a cause", c.name, c.err, cause, ok, c.want)
		}
	}
	// A refused fallback says why the primary refused it.
	capped := fmt.Errorf("storefront: get user 1: %w: the primary is under pressure (6 of its 8 connections in use)", replica.ErrFallbackCapped)
	if cause, _ := unavailable(capped); !strings.Contains(cause, "6 of its 8 connections in use") {
		t.Errorf("capped read: cause %q does not name the router's reason", cause)
	}
}

// TestThrottle: a lasting condition logs once, then once per interval with
// the count it left out; another message is not held back by the first.
func TestThrottle(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Unix(1000, 0)
	th := throttle{now: func() time.Time { return now }}
	for range 500 {
		th.warn(log, "redis down")
	}
	th.warn(log, "primary down")
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("500 warnings in one instant: %d lines, want 2:\n%s", n, buf.String())
	}
	now = now.Add(logEvery)
	th.warn(log, "redis down")
	if !strings.Contains(buf.String(), "suppressed=499") {
		t.Fatalf("the line after the interval does not count the 499 left out:\n%s", buf.String())
	}
}
