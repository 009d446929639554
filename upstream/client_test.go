package upstream_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-dev/strata/upstream"
)

// server is an upstream whose handler answers attempt n (from 1).
type server struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	seen []*http.Request // a copy of each request, body read into bodies
	body []string
}

func newServer(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(s.handler(answer))
	t.Cleanup(s.Close)
	return s
}

func (s *server) handler(answer func(n int, w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.hits.Add(1))
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen, s.body = append(s.seen, r.Clone(context.Background())), append(s.body, string(b))
		s.mu.Unlock()
		answer(n, w, r)
	})
}

// bodies returns the bodies the server has read.
func (s *server) bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.body)
}

// requests returns the requests the server has seen.
func (s *server) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// quiet is the clients' logger: the breaker's state changes are expected.
func quiet(cfg upstream.Config) upstream.Config {
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// status answers every attempt with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// firstThen answers the first attempt with first, the others 200.
func firstThen(first func(w http.ResponseWriter, r *http.Request)) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			first(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// hang answers only once the client has given up.
func hang(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func newClient(t *testing.T, base string, cfg upstream.Config) *upstream.Client {
	t.Helper()
	c, err := upstream.New("test", base, quiet(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// call sends method path (with body) through c within budget and returns
// the status (0 on an error), the error and the time it took.
func call(t *testing.T, c *upstream.Client, budget time.Duration, method, body string, header ...string) (int, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := c.NewRequest(ctx, method, "/x", rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := c.Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, took, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, took, nil
}

// TestRetriesOnlyIdempotent: a failed attempt is retried only when the
// request is idempotent (or marked so) and the failure retryable; a
// retried body is sent again whole.
func TestRetriesOnlyIdempotent(t *testing.T) {
	code := func(c int) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(c) }
	}
	for _, tc := range []struct {
		name         string
		method, body string
		header       []string
		first        func(http.ResponseWriter, *http.Request)
		hits, status int // status 0: an error
	}{
		{"GET after 503", http.MethodGet, "", nil, code(503), 2, 200},                                                              // retried
		{"GET after 502", http.MethodGet, "", nil, code(502), 2, 200},                                                              // retried
		{"GET after 504", http.MethodGet, "", nil, code(504), 2, 200},                                                              // retried
		{"HEAD after 503", http.MethodHead, "", nil, code(503), 2, 200},                                                            // retried
		{"GET after a dropped connection", http.MethodGet, "", nil, drop, 2, 200},                                                  // a transport error is retried
		{"GET after 500", http.MethodGet, "", nil, code(500), 1, 0},                                                                // a bug is not
		{"GET after 404", http.MethodGet, "", nil, code(404), 1, 404},                                                              // an answer, not a failure
		{"GET after 429", http.MethodGet, "", nil, code(429), 1, 429},                                                              // below 500: the caller's to handle
		{"POST after 503", http.MethodPost, `{"a":1}`, nil, code(503), 1, 0},                                                       // not idempotent
		{"POST after a dropped connection", http.MethodPost, `{"a":1}`, nil, drop, 1, 0},                                           // not even then
		{"PUT after 503", http.MethodPut, `{"a":1}`, nil, code(503), 1, 0},                                                         // only marked writes
		{"POST with Idempotency-Key after 503", http.MethodPost, `{"a":1}`, []string{"Idempotency-Key", "k1"}, code(503), 2, 200},  // marked: retried, body again
		{"DELETE with X-Idempotency-Key after 502", http.MethodDelete, "", []string{"X-Idempotency-Key", "k2"}, code(502), 2, 200}, // the other spelling
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, firstThen(tc.first))
			c := newClient(t, s.URL, upstream.Config{BaseBackoff: time.Millisecond})
			got, _, err := call(t, c, 10*time.Second, tc.method, tc.body, tc.header...)
			if got != tc.status || (tc.status == 0) != (err != nil) || int(s.hits.Load()) != tc.hits {
				t.Fatalf("status %d, err %v, %d attempts; want status %d and %d attempts", got, err, s.hits.Load(), tc.status, tc.hits)
			}
			for i, b := range s.bodies() {
				if b != tc.body {
					t.Errorf("attempt %d sent body %q, want %q", i+1, b, tc.body)
				}
			}
			var se *upstream.StatusError
			var te *upstream.TransportError
			if err != nil && !errors.As(err, &se) && !errors.As(err, &te) {
				t.Errorf("error %v is neither a StatusError nor a TransportError", err)
			}
		})
	}
}

// TestRetriesStayWithinBudget: retries stop when the next one could not
// finish before the caller's deadline, so a call never outlasts its
// budget, and an attempt still waiting when the budget ends is cut.
func TestRetriesStayWithinBudget(t *testing.T) {
	const margin = 150 * time.Millisecond // a loaded 2-core machine's scheduling
	t.Run("slow failures", func(t *testing.T) {
		// Each attempt takes 400 ms: after the second (at 800 ms) the 200
		// ms left cannot hold a third, so none starts and the 503 stands.
		s := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			time.Sleep(400 * time.Millisecond) // a slow upstream
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		c := newClient(t, s.URL, upstream.Config{Retries: 10, BaseBackoff: time.Millisecond})
		_, took, err := call(t, c, time.Second, http.MethodGet, "")
		var se *upstream.StatusError
		if !errors.As(err, &se) || se.Code != 503 {
			t.Fatalf("error %v, want the 503 (a retry that cannot finish must not start)", err)
		}
		if n := s.hits.Load(); n < 1 || n > 2 || took > time.Second+margin {
			t.Fatalf("%d attempts in %v, want at most 2 within the 1 s budget", n, took)
		}
	})
	t.Run("fast failures", func(t *testing.T) {
		// Instant 503s: the backoff, doubling from 10 ms, is what runs out
		// of budget; the client stops before it would sleep into the deadline.
		s := newServer(t, status(http.StatusServiceUnavailable))
		c := newClient(t, s.URL, upstream.Config{Retries: 1000, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
			FailureThreshold: 10000})
		_, took, err := call(t, c, 300*time.Millisecond, http.MethodGet, "")
		var se *upstream.StatusError
		if !errors.As(err, &se) {
			t.Fatalf("error %v, want the 503: the last backoff must not run into the deadline", err)
		}
		if n := s.hits.Load(); n < 3 || n > 1001 || took > 300*time.Millisecond+margin {
			t.Fatalf("%d attempts in %v, want several within the 300 ms budget", n, took)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		s := newServer(t, hang)
		c := newClient(t, s.URL, upstream.Config{})
		_, took, err := call(t, c, 200*time.Millisecond, http.MethodGet, "")
		if !errors.Is(err, upstream.ErrBudgetExhausted) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want ErrBudgetExhausted matching context.DeadlineExceeded", err)
		}
		if n := s.hits.Load(); n != 1 || took < 200*time.Millisecond || took > 200*time.Millisecond+margin {
			t.Fatalf("%d attempts in %v, want 1 cut at the 200 ms budget", n, took)
		}
	})
	t.Run("no budget left", func(t *testing.T) {
		s := newServer(t, status(200))
		c := newClient(t, s.URL, upstream.Config{})
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		req, _ := c.NewRequest(ctx, http.MethodGet, "/x", nil)
		if _, err := c.Do(req); !errors.Is(err, upstream.ErrBudgetExhausted) || s.hits.Load() != 0 {
			t.Fatalf("error %v after %d attempts; want ErrBudgetExhausted before any", err, s.hits.Load())
		}
	})
}

// TestRetryAfter: a 503's Retry-After is waited out when it fits the
// budget, and ends the retries when it does not (the caller gets it).
func TestRetryAfter(t *testing.T) {
	busy := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	t.Run("too long for the budget", func(t *testing.T) {
		s := newServer(t, func(_ int, w http.ResponseWriter, r *http.Request) { busy(w, r) })
		c := newClient(t, s.URL, upstream.Config{})
		_, took, err := call(t, c, 500*time.Millisecond, http.MethodGet, "")
		var se *upstream.StatusError
		if !errors.As(err, &se) || se.RetryAfter != time.Second || s.hits.Load() != 1 || took > 400*time.Millisecond {
			t.Fatalf("error %v after %d attempts in %v; want the 503 with Retry-After 1s at once", err, s.hits.Load(), took)
		}
	})
	t.Run("fits the budget", func(t *testing.T) {
		s := newServer(t, firstThen(busy))
		c := newClient(t, s.URL, upstream.Config{})
		got, took, err := call(t, c, 5*time.Second, http.MethodGet, "")
		if got != 200 || s.hits.Load() != 2 || took < time.Second {
			t.Fatalf("status %d, err %v, %d attempts in %v; want 200 on the second, after the 1 s Retry-After", got, err, s.hits.Load(), took)
		}
	})
}

// TestBreakerCounts: what opens the breaker (consecutive failed attempts:
// 5xx, no answer, a timeout) and what does not (answers below 500, calls
// the caller canceled).
func TestBreakerCounts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(int, http.ResponseWriter, *http.Request)
		budget time.Duration
		cancel bool
		want   upstream.State
	}{
		{"503s", status(503), time.Second, false, upstream.StateOpen},                                                                       // failures
		{"500s", status(500), time.Second, false, upstream.StateOpen},                                                                       // not retried, but failures
		{"dropped connections", func(_ int, w http.ResponseWriter, r *http.Request) { drop(w, r) }, time.Second, false, upstream.StateOpen}, // no answer
		{"timeouts", hang, 30 * time.Millisecond, false, upstream.StateOpen},                                                                // no answer within the budget
		{"404s", status(404), time.Second, false, upstream.StateClosed},                                                                     // the caller's problem
		{"canceled calls", hang, time.Minute, true, upstream.StateClosed},                                                                   // say nothing of the upstream
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.answer)
			c := newClient(t, s.URL, upstream.Config{Retries: upstream.NoRetries, FailureThreshold: 3, OpenTimeout: time.Hour})
			for range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
				req, _ := c.NewRequest(ctx, http.MethodGet, "/x", nil)
				if tc.cancel {
					go func() {
						for s.hits.Load() == 0 { // cancel once the request is in
							time.Sleep(time.Millisecond)
						}
						cancel()
					}()
				}
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				if tc.cancel && !errors.Is(err, context.Canceled) {
					t.Errorf("a canceled call's error is %v, want context.Canceled", err)
				}
				cancel()
				s.hits.Store(0)
			}
			if got := c.State(); got != tc.want {
				t.Fatalf("after 3 calls the breaker is %v, want %v", got, tc.want)
			}
		})
	}
}

// TestBreakerFailsFast: once open, a call fails at once with
// ErrBreakerOpen, without reaching the upstream and without a retry.
func TestBreakerFailsFast(t *testing.T) {
	s := newServer(t, status(503))
	changes := make(chan [2]upstream.State, 10)
	c, err := upstream.NewWithHook("test", s.URL, quiet(upstream.Config{FailureThreshold: 3, OpenTimeout: time.Hour, BaseBackoff: time.Millisecond}),
		func(from, to upstream.State) { changes <- [2]upstream.State{from, to} })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One call: its first attempt and two retries are the 3 failures.
	if _, _, err := call(t, c, 5*time.Second, http.MethodGet, ""); err == nil {
		t.Fatal("a call to an upstream answering 503 succeeded")
	}
	if got := <-changes; got != [2]upstream.State{upstream.StateClosed, upstream.StateOpen} {
		t.Fatalf("first state change %v, want closed to open", got)
	}
	hits := s.hits.Load()
	if hits != 3 {
		t.Fatalf("%d attempts before the breaker opened, want 3 (the third failure opened it; the last retry failed fast)", hits)
	}
	for range 5 {
		_, took, err := call(t, c, 5*time.Second, http.MethodGet, "")
		if !errors.Is(err, upstream.ErrBreakerOpen) || took > 100*time.Millisecond {
			t.Fatalf("with the breaker open: error %v in %v, want ErrBreakerOpen at once", err, took)
		}
	}
	if s.hits.Load() != hits {
		t.Fatalf("the upstream saw %d more attempts with the breaker open", s.hits.Load()-hits)
	}
}

// TestBreakerRecovers: after its open timeout the breaker lets one probe
// through; a failed probe opens it again, a successful one closes it.
// The test waits for the transitions, not for time.
func TestBreakerRecovers(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	s := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	changes := make(chan [2]upstream.State, 20)
	c, err := upstream.NewWithHook("test", s.URL, quiet(upstream.Config{Retries: upstream.NoRetries, FailureThreshold: 2, OpenTimeout: 20 * time.Millisecond}),
		func(from, to upstream.State) { changes <- [2]upstream.State{from, to} })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect := func(from, to upstream.State) {
		t.Helper()
		select {
		case got := <-changes:
			if got != [2]upstream.State{from, to} {
				t.Fatalf("state change %v to %v, want %v to %v", got[0], got[1], from, to)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no state change from %v to %v within 10 s", from, to)
		}
	}
	// poll calls until the upstream has seen n attempts in all, and
	// returns the last call's error; calls in between fail fast.
	poll := func(n int32) error {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			_, _, err := call(t, c, time.Second, http.MethodGet, "")
			if s.hits.Load() >= n {
				return err
			}
			if !errors.Is(err, upstream.ErrBreakerOpen) {
				t.Fatalf("while open: %v, want ErrBreakerOpen", err)
			}
		}
		t.Fatalf("the upstream saw %d attempts, not %d, within 10 s", s.hits.Load(), n)
		return nil
	}
	call(t, c, time.Second, http.MethodGet, "")
	call(t, c, time.Second, http.MethodGet, "")
	expect(upstream.StateClosed, upstream.StateOpen)
	// The probe fails: open again.
	if err := poll(3); err == nil {
		t.Fatal("the probe of a failing upstream succeeded")
	}
	expect(upstream.StateOpen, upstream.StateHalfOpen)
	expect(upstream.StateHalfOpen, upstream.StateOpen)
	// The upstream recovers; the next probe closes the breaker.
	failing.Store(false)
	if err := poll(4); err != nil {
		t.Fatalf("the probe of a recovered upstream: %v", err)
	}
	expect(upstream.StateOpen, upstream.StateHalfOpen)
	expect(upstream.StateHalfOpen, upstream.StateClosed)
	if got, _, err := call(t, c, time.Second, http.MethodGet, ""); got != 200 || c.State() != upstream.StateClosed || s.hits.Load() != 5 {
		t.Fatalf("after recovery: %d %v, breaker %v, %d attempts", got, err, c.State(), s.hits.Load())
	}
}

// TestTLSVerification: a self-signed certificate is refused (a transport
// error, not retried), and accepted once its CA is given in RootCAs.
func TestTLSVerification(t *testing.T) {
	var hits atomic.Int32
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	s.StartTLS()
	defer s.Close()
	c := newClient(t, s.URL, upstream.Config{BaseBackoff: time.Millisecond})
	_, _, err := call(t, c, 5*time.Second, http.MethodGet, "")
	var te *upstream.TransportError
	var ve *tls.CertificateVerificationError
	if !errors.As(err, &te) || !errors.As(err, &ve) || hits.Load() != 0 {
		t.Fatalf("a self-signed upstream: %v (%d requests served), want a TransportError for the certificate", err, hits.Load())
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	trusted := newClient(t, s.URL, upstream.Config{RootCAs: pool})
	if got, _, err := call(t, trusted, 5*time.Second, http.MethodGet, ""); got != 200 || hits.Load() != 1 {
		t.Fatalf("with the CA trusted: %d %v", got, err)
	}
}

// TestPooledKeepAlive: sequential calls share one kept-alive connection,
// and every request carries the bare User-Agent, whatever the caller set.
func TestPooledKeepAlive(t *testing.T) {
	var conns atomic.Int32
	s := &server{}
	s.Server = httptest.NewUnstartedServer(s.handler(func(_ int, w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	defer s.Close()
	c := newClient(t, s.URL, upstream.Config{})
	for range 20 {
		if got, _, err := call(t, c, 5*time.Second, http.MethodGet, "", "User-Agent", "internal-batch/1.2 (host db-7)"); got != 200 {
			t.Fatalf("%d %v", got, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential calls opened %d connections, want 1 kept alive", n)
	}
	for _, r := range s.requests() {
		if ua := r.Header.Get("User-Agent"); ua != upstream.UserAgent {
			t.Fatalf("User-Agent %q, want %q", ua, upstream.UserAgent)
		}
	}
}

func TestNewRequest(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:9/api/", upstream.Config{})
	if c.URL() != "http://127.0.0.1:9/api" {
		t.Errorf("URL() = %q", c.URL())
	}
	for _, tc := range []struct {
		path, want string // want "" for an error
	}{
		{"/users/7/recommendations?limit=3", "http://127.0.0.1:9/api/users/7/recommendations?limit=3"}, // joined under the base path, query kept
		{"/", "http://127.0.0.1:9/api/"}, // the root
		{"users/7", ""},                  // relative
		{"http://evil.example/x", ""},    // another host
		{"//evil.example/x", ""},         // another host, scheme-relative
		{"/%zz", ""},                     // does not parse
	} {
		req, err := c.NewRequest(context.Background(), http.MethodGet, tc.path, nil)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("NewRequest(%q) = %s, want an error", tc.path, req.URL)
		case tc.want != "" && (err != nil || req.URL.String() != tc.want):
			t.Errorf("NewRequest(%q) = %v, %v; want %s", tc.path, req, err, tc.want)
		}
	}
	other, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:10/api/x", nil)
	if _, err := c.Do(other); err == nil || !strings.Contains(err.Error(), "not for this upstream") {
		t.Errorf("Do of a request for another host: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	long := "http://h/" + strings.Repeat("a", 3000)
	for _, tc := range []struct {
		name, url string
		cfg       upstream.Config
		says      string
	}{
		{"", "http://h", upstream.Config{}, "name"},                                                              // no name
		{"recs svc", "http://h", upstream.Config{}, "name"},                                                      // a space
		{strings.Repeat("n", 65), "http://h", upstream.Config{}, "name"},                                         // too long
		{"r", "", upstream.Config{}, "absolute"},                                                                 // empty
		{"r", "127.0.0.1:8080", upstream.Config{}, "absolute"},                                                   // no scheme
		{"r", "ftp://h", upstream.Config{}, "scheme"},                                                            // another scheme
		{"r", "http://", upstream.Config{}, "no host"},                                                           // no host
		{"r", "http:opaque", upstream.Config{}, "absolute"},                                                      // opaque
		{"r", "http://user:s3cret@h", upstream.Config{}, "credentials"},                                          // a secret
		{"r", "http://h/?x=1", upstream.Config{}, "query"},                                                       // a query
		{"r", "http://h/#f", upstream.Config{}, "fragment"},                                                      // a fragment
		{"r", "http://h:0", upstream.Config{}, "port"},                                                           // port 0
		{"r", "http://h:70000", upstream.Config{}, "port"},                                                       // out of range
		{"r", "http://h:x", upstream.Config{}, "parse"},                                                          // not a port
		{"r", long, upstream.Config{}, "bytes long"},                                                             // huge
		{"r", "http://h", upstream.Config{MaxConnsPerHost: -1}, "MaxConnsPerHost"},                               // negative
		{"r", "http://h", upstream.Config{BaseBackoff: -time.Second}, "BaseBackoff"},                             // negative
		{"r", "http://h", upstream.Config{BaseBackoff: time.Second, MaxBackoff: time.Millisecond}, "MaxBackoff"}, // below the base
		{"r", "http://h", upstream.Config{FailureThreshold: -2}, "FailureThreshold"},                             // negative
		{"r", "http://h", upstream.Config{OpenTimeout: -time.Second}, "OpenTimeout"},                             // negative
	} {
		c, err := upstream.New(tc.name, tc.url, tc.cfg)
		if err == nil {
			c.Close()
			t.Errorf("New(%.20q, %.40q, %+v) accepted", tc.name, tc.url, tc.cfg)
			continue
		}
		if !errors.Is(err, upstream.ErrBadConfig) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("New(%.20q, %.40q): %v; want ErrBadConfig saying %q", tc.name, tc.url, err, tc.says)
		}
		if strings.Contains(err.Error(), "s3cret") || len(err.Error()) > 300 {
			t.Errorf("the error repeats the input: %.400s", err)
		}
	}
}

// FuzzParseURL: any input is refused with a short error or yields a URL
// the client can use.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080", "https://recs.internal/api/", "http://u:p@h", "ftp://x", "http://h:99999", "::", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := upstream.ParseURL(raw)
		if err != nil {
			if !errors.Is(err, upstream.ErrBadConfig) || len(err.Error()) > 300 {
				t.Fatalf("ParseURL(%q): %v", raw, err)
			}
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("ParseURL(%q) = %#v", raw, u)
		}
	})
}
