package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	top := func(n int64) int64 { return n - 1 } // the largest draw: the ceiling itself
	for _, tc := range []struct {
		n               int
		base, max, want time.Duration
	}{
		{1, 10 * time.Millisecond, time.Second, 10 * time.Millisecond}, // the first retry's ceiling is the base
		{2, 10 * time.Millisecond, time.Second, 20 * time.Millisecond}, // doubled
		{4, 10 * time.Millisecond, time.Second, 80 * time.Millisecond}, // doubled twice more
		{8, 10 * time.Millisecond, time.Second, time.Second},           // capped at max
		{200, 10 * time.Millisecond, time.Second, time.Second},         // no overflow however many retries
		{3, 0, time.Second, 0},                                                      // a zero base never waits
		{63, time.Nanosecond, 1<<62 - 1, 1<<62 - 1},                                 // the shift stays in range
		{5, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}, // base equal to max
	} {
		if got := backoff(tc.n, tc.base, tc.max, top); got != tc.want {
			t.Errorf("backoff(%d, %v, %v) at the top draw = %v, want %v", tc.n, tc.base, tc.max, got, tc.want)
		}
		if got := backoff(tc.n, tc.base, tc.max, func(int64) int64 { return 0 }); got != 0 {
			t.Errorf("backoff(%d, %v, %v) at the lowest draw = %v, want 0 (full jitter)", tc.n, tc.base, tc.max, got)
		}
	}
}

// TestBackoffJitter: with the real random source, the waits of one retry
// spread over [0, ceiling] rather than all landing on one value.
func TestBackoffJitter(t *testing.T) {
	const ceiling = 40 * time.Millisecond
	seen := map[time.Duration]bool{}
	var low, high bool
	for range 1000 {
		d := backoff(3, 10*time.Millisecond, time.Second, defaultDraw)
		if d < 0 || d > ceiling {
			t.Fatalf("backoff(3) = %v, outside [0, %v]", d, ceiling)
		}
		seen[d] = true
		low = low || d < ceiling/4
		high = high || d > 3*ceiling/4
	}
	// A thousand uniform draws over 40 million values: all but certainly
	// hundreds of distinct ones, in both quarters.
	if len(seen) < 100 || !low || !high {
		t.Errorf("1000 waits: %d distinct, one under %v %v, one over %v %v: not jittered", len(seen), ceiling/4, low, 3*ceiling/4, high)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},                     // absent
		{"0", 0},                    // now
		{"1", time.Second},          // delay-seconds
		{" 120 ", 2 * time.Minute},  // with spaces
		{"86400", 24 * time.Hour},   // a day, the most believed
		{"86401", 0},                // more: nonsense, ignored
		{"99999999999999999999", 0}, // overflows
		{"-1", 0},                   // negative
		{"1.5", 0},                  // not an integer
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second}, // an HTTP-date
		{"Sunday, 01-Mar-26 12:01:00 GMT", time.Minute},     // the obsolete RFC 850 form
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0},                // in the past
		{"Mon, 01 Mar 2027 12:00:00 GMT", 0},                // a year away: nonsense
		{"soon", 0},                                         // garbage
	} {
		if got := parseRetryAfter(tc.v, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "1", "120", "Sun, 01 Mar 2026 12:00:30 GMT", "-5", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := parseRetryAfter(v, now); d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v, outside [0, %v]", v, d, maxRetryAfter)
		}
	})
}

func TestReplayable(t *testing.T) {
	req := func(method, body string, header ...string) *http.Request {
		var r *http.Request
		if body == "" {
			r, _ = http.NewRequest(method, "http://x/", nil)
		} else {
			r, _ = http.NewRequest(method, "http://x/", strings.NewReader(body))
		}
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}
	oneShot := req(http.MethodPut, "", "Idempotency-Key", "k")
	oneShot.Body, oneShot.GetBody = io.NopCloser(strings.NewReader("once")), nil
	for _, tc := range []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"GET", req(http.MethodGet, ""), true},                                                        // safe
		{"HEAD", req(http.MethodHead, ""), true},                                                      // safe
		{"OPTIONS", req(http.MethodOptions, ""), true},                                                // safe
		{"POST", req(http.MethodPost, "{}"), false},                                                   // not idempotent
		{"PATCH", req(http.MethodPatch, "{}"), false},                                                 // not idempotent
		{"PUT without a mark", req(http.MethodPut, "{}"), false},                                      // only explicitly marked writes
		{"POST with Idempotency-Key", req(http.MethodPost, "{}", "Idempotency-Key", "k"), true},       // marked
		{"DELETE with X-Idempotency-Key", req(http.MethodDelete, "", "X-Idempotency-Key", "k"), true}, // the other spelling
		{"a marked body that cannot be read again", oneShot, false},                                   // no GetBody
	} {
		if got := replayable(tc.r); got != tc.want {
			t.Errorf("%s: replayable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	status := func(code int) error { return &StatusError{Upstream: "u", Code: code} }
	transport := func(err error) error { return &TransportError{Upstream: "u", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"502", status(502), true},                         // a proxy's upstream failed
		{"503", status(503), true},                         // unavailable: shedding or restarting
		{"504", status(504), true},                         // a gateway timed out
		{"500", status(500), false},                        // a bug: the same request fails again
		{"501", status(501), false},                        // never will
		{"refused", transport(syscall.ECONNREFUSED), true}, // down, perhaps restarting
		{"reset", transport(syscall.ECONNRESET), true},     // a connection the upstream closed
		{"unknown authority", transport(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false}, // the same certificate again
		{"bad host name", transport(x509.HostnameError{Host: "x"}), false},                                            // likewise
		{"breaker open", ErrBreakerOpen, false},                                                                       // not an attempt's failure
		{"deadline", context.DeadlineExceeded, false},                                                                 // no budget left
		{"other", errors.New("x"), false},                                                                             // unknown
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("%s: retryable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
