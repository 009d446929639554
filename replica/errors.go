package replica

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Errors a caller may need to tell apart.
var (
	// ErrPrimaryUnavailable: a write, Position, or a read with nowhere else
	// to go could not be served by the primary: it is known to be down,
	// gave no connection within its acquire timeout, or its connection
	// failed during the call. A service answers it with 503 and
	// Retry-After.
	ErrPrimaryUnavailable = errors.New("replica: primary unavailable")
	// ErrFallbackCapped: no replica could serve a read, and the primary,
	// under pressure, already carries its share of such reads (or
	// FallbackShare is negative); the message names the cause. A service
	// answers it with 503 and Retry-After.
	ErrFallbackCapped = errors.New("replica: no replica could serve the read and the primary fallback is at its cap")
	// ErrNoToken: a write committed, but its WAL position could not be
	// read, so no read-your-writes token could be made. The write stands.
	ErrNoToken = errors.New("replica: write committed, but its WAL position is unknown")
	// ErrNoMark: a write committed and returned its token, but the marks
	// of its keys (WithKeys) could not all be recorded. The write stands;
	// reads of those keys through other routers may not see it at once.
	ErrNoMark = errors.New("replica: write committed, but its keys could not be marked")
	// ErrNotStandby is returned (wrapped) by Open for a replica URL that
	// names a server that is not a streaming standby of the primary: the
	// primary itself, an independent primary, or a standby of another
	// cluster. The message names the URL (without its password).
	ErrNotStandby = errors.New("replica: not a standby of the primary")
	// ErrNotPrimary is returned (wrapped) by Open when the primary URL
	// names a standby (a server in recovery), which cannot take writes.
	ErrNotPrimary = errors.New("replica: the primary is a standby")
)

// Error kinds (the "kind" label of strata_replica_errors_total) and
// fallback reasons (the "reason" label of strata_replica_fallbacks_total).
const (
	kindConnection     = "connection"      // the server or the link failed: eject
	kindAcquireTimeout = "acquire_timeout" // no free connection in time: the pool is busy
	kindRetryable      = "retryable"       // the server refused this statement only (recovery conflict, too many connections)
	kindStale          = "stale"           // did not replay a read's token in time
	kindDown           = "down"            // the primary is known to be down: refused without trying
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
		errors.Is(err, sql.ErrConnDone), errors.Is(err, pgconn.ErrConnClosed),
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

// primaryError turns a failure of a call on the primary into what the
// caller sees: ErrPrimaryUnavailable for a failed connection (refused,
// reset, closed, the server shutting down) or a full server (too many
// connections), the error as it is otherwise. what describes the call
// ("the write", "the read").
func primaryError(err error, what string) error {
	var pe *pgconn.PgError
	switch {
	case classify(err) == kindConnection:
		return fmt.Errorf("%w: the connection failed during %s: %w", ErrPrimaryUnavailable, what, err)
	case errors.As(err, &pe) && pe.Code == "53300":
		return fmt.Errorf("%w: too many connections: %w", ErrPrimaryUnavailable, err)
	}
	return err
}
