package replica

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Error kinds (the "kind" label of strata_replica_errors_total) and
// fallback reasons (the "reason" label of strata_replica_fallbacks_total).
const (
	kindConnection     = "connection"      // the server or the link failed: eject
	kindAcquireTimeout = "acquire_timeout" // no free connection in time: the pool is busy
	kindRetryable      = "retryable"       // the server refused this statement only (recovery conflict, too many connections)
	kindStale          = "stale"           // did not replay a read's token in time
	kindQuery          = "query"           // the query's own error, returned as it is
	reasonNoReplica    = "no_replica"      // no replica was healthy
	reasonCapped       = "capped"          // refused: the fallback share is at its cap
)

// serverError is a failure of one server that another may not have.
type serverError struct {
	node, kind string
	err        error
}

func (e *serverError) Error() string {
	return fmt.Sprintf("replica: %s: %s: %v", e.node, e.kind, e.err)
}
func (e *serverError) Unwrap() error { return e.err }

func reasonOf(err error) string {
	var se *serverError
	if errors.As(err, &se) {
		return se.kind
	}
	return kindConnection
}

// classify says whether another server could succeed where this one
// failed: "" for the query's own errors (bad SQL, constraint violations,
// the caller's cancellation), which are the same on every server.
func classify(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "" // the caller's deadline or cancellation, not the server's fault
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // admin or crash shutdown, cannot connect now
			return kindConnection
		case pe.Code == "40001", // on a standby: canceled by a conflict with recovery (reads are safe to retry)
			pe.Code == "53300": // too many connections
			return kindRetryable
		}
		return ""
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.Is(err, driver.ErrBadConn), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err):
		return kindConnection
	}
	var se *serverError
	if errors.As(err, &se) {
		return se.kind
	}
	return ""
}
