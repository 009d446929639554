package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// replayable reports whether req may be sent again after a failure: its
// method is idempotent (GET, HEAD, OPTIONS, TRACE), or it carries an
// Idempotency-Key (or X-Idempotency-Key) header, the explicit mark
// net/http's Transport also honours; and its body, if any, can be read
// again (GetBody).
func replayable(req *http.Request) bool {
	idempotent := false
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		idempotent = true
	default:
		_, key := req.Header["Idempotency-Key"]
		_, xkey := req.Header["X-Idempotency-Key"]
		idempotent = key || xkey
	}
	return idempotent && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
}

// retryable reports whether a failed attempt is worth another: a 502, 503
// or 504 answer, or a transport error other than a certificate the
// upstream will present again.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var te *TransportError
	if !errors.As(err, &te) {
		return false
	}
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	return !errors.As(err, &verr) && !errors.As(err, &uerr) && !errors.As(err, &herr) && !errors.As(err, &cerr)
}

// backoff returns the wait before retry n (1 for the first): "full
// jitter", a uniform draw from [0, min(max, base·2^(n-1))], so that the
// retries of many callers spread out instead of arriving together.
func backoff(n int, base, max time.Duration, draw func(int64) int64) time.Duration {
	ceiling := max
	if n-1 < 62 && base <= max>>(n-1) {
		ceiling = base << (n - 1)
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(draw(int64(ceiling) + 1))
}

// defaultDraw is backoff's random source: math/rand/v2's, safe for
// concurrent use.
func defaultDraw(n int64) int64 { return rand.Int64N(n) }

// maxRetryAfter bounds a Retry-After the client reads: a longer one is
// ignored as nonsense (no budget of a service-to-service call is a day).
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (RFC 9110, section 10.2.3), as a wait from now. A missing,
// malformed, past or absurd value is zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		s, err := strconv.ParseUint(v, 10, 32)
		if err != nil || time.Duration(s) > maxRetryAfter/time.Second {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 || d > maxRetryAfter {
		return 0
	}
	return d
}
