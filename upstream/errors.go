package upstream

import (
	"errors"
	"fmt"
	"time"
)

// Errors a caller may need to tell apart. Each is returned wrapped, with
// the upstream's name.
var (
	// ErrBreakerOpen: the upstream's circuit breaker is open (or
	// half-open with its probe out), so the call failed at once without
	// reaching the upstream. A service answers it with 503 and
	// Retry-After, or falls back.
	ErrBreakerOpen = errors.New("upstream: circuit breaker open")
	// ErrBudgetExhausted: the caller's deadline passed before the
	// upstream answered (or before the first attempt could start). The
	// error matches context.DeadlineExceeded too. A service answers it
	// with 504, or falls back.
	ErrBudgetExhausted = errors.New("upstream: budget exhausted")
	// ErrBadConfig is returned (wrapped) by [New] for a bad name, URL or
	// [Config] field; the message names it.
	ErrBadConfig = errors.New("upstream: bad config")
	// ErrAlreadyRegistered is returned (wrapped) by [New] when the
	// Registerer already holds the metrics of a client of the same name
	// that was not closed.
	ErrAlreadyRegistered = errors.New("upstream: a client of this name is already registered")
)

// maxErrorBody bounds how much of a failed answer's body a [StatusError]
// keeps: enough for an error message, never a whole page.
const maxErrorBody = 256

// StatusError is an answer of 500 or above: the upstream failed.
type StatusError struct {
	Upstream string
	Code     int
	// RetryAfter is the answer's Retry-After, zero without one (or with
	// one that does not parse).
	RetryAfter time.Duration
	// Body is the start of the answer's body (at most 256 bytes), for the
	// message.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("upstream %s: answered %d", e.Upstream, e.Code)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// TransportError is a failed attempt that got no answer: the connection
// was refused or reset, the TLS handshake or certificate check failed, the
// name did not resolve. Err is the transport's error.
type TransportError struct {
	Upstream string
	Err      error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("upstream %s: no answer: %v", e.Upstream, e.Err)
}

// Unwrap returns the transport's error.
func (e *TransportError) Unwrap() error { return e.Err }
