package storefront

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/strata-dev/strata/replica"
	"github.com/strata-dev/strata/shard"
)

// retryAfterSeconds is the Retry-After of a 503: long enough for a pool to
// drain or a health check (every 0.5 s) to see a server come back, short
// enough that a client retrying it is not kept waiting for nothing.
const retryAfterSeconds = "1"

// unavailable says whether err means that the service cannot answer now
// although the request was good (a server down, a pool or a cap shedding
// load, a budget run out), and names the cause for the client. Such a
// failure is a 503 with Retry-After, never a 500: a 500 means a bug.
func unavailable(err error) (cause string, ok bool) {
	if se := (*shard.Error)(nil); errors.As(err, &se) {
		if cause, ok := unavailable(se.Err); ok {
			return "shard " + se.Shard + ": " + cause, true
		}
		return "", false
	}
	switch {
	case errors.Is(err, shard.ErrFenced):
		return "this user's data is moving to another shard and its writes are paused for the cutover; retry in a moment", true
	case errors.Is(err, replica.ErrPrimaryUnavailable):
		return "the primary database is unavailable; writes (and reads that need the primary) cannot be served now", true
	case errors.Is(err, replica.ErrFallbackCapped):
		cause := "no replica could serve the read and the primary is shedding fallback reads to protect itself"
		// The router names why (the primary's pool use or latency).
		msg := err.Error()
		if i := strings.Index(msg, replica.ErrFallbackCapped.Error()); i >= 0 {
			if why := strings.TrimPrefix(msg[i+len(replica.ErrFallbackCapped.Error()):], ": "); why != "" {
				cause += ": " + clipReport(why)
			}
		}
		return cause, true
	case errors.Is(err, context.DeadlineExceeded):
		return "the request ran out of its time budget", true
	case errors.Is(err, context.Canceled):
		return "the request was canceled", true
	}
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) {
		return pgUnavailable(pe)
	}
	if c := sqliteCode(err); c&0xff == sqlite3.SQLITE_BUSY || c&0xff == sqlite3.SQLITE_LOCKED {
		return "the database is busy", true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return "the database is unavailable", true
	}
	return "", false
}

// pgUnavailable classifies a PostgreSQL error as unavailable() does.
func pgUnavailable(pe *pgconn.PgError) (cause string, ok bool) {
	switch {
	case strings.HasPrefix(pe.Code, "08"), // connection exception
		pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // admin or crash shutdown, cannot connect now
		return "the database is unavailable", true
	case pe.Code == "53300": // too many connections
		return "the database has no free connection", true
	case pe.Code == "53000", pe.Code == "53100", pe.Code == "53200": // insufficient resources, disk full, out of memory
		return "the database is out of resources", true
	case pe.Code == "25006": // read-only transaction: a primary demoted under us
		return "the database is read-only (a failover may be in progress)", true
	case pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock: retry
		return "the database asked for the request to be retried", true
	case pe.Code == "57014": // query_canceled: a statement timeout set on the server
		return "the database canceled the query (a statement timeout)", true
	case pe.Code == "55000", pe.Code == "55P03": // object not in prerequisite state (e.g. recovery in progress), lock not available
		return "the database cannot serve the request in its present state", true
	}
	return "", false
}

// maxReported bounds a reported error's text (a driver error may quote a
// query or a server's message at length).
const maxReported = 300

// clipReport cuts msg to maxReported bytes on a rune boundary.
func clipReport(msg string) string {
	if len(msg) <= maxReported {
		return msg
	}
	cut := maxReported
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}
