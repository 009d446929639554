package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/tracing"
)

// Defaults of [Config]. The guide's HighPerformanceConnectionManager
// mounts requests' HTTPAdapter(pool_connections=100, pool_maxsize=100,
// max_retries=3); the rest are Strata's choices.
const (
	// DefaultMaxConnsPerHost bounds the connections open to the upstream,
	// and as many are kept alive between calls.
	DefaultMaxConnsPerHost = 100 // guide, Connection Pooling: pool_maxsize=100
	// DefaultRetries is how many times a failed idempotent call is tried
	// again after its first attempt.
	DefaultRetries = 3 // guide, Connection Pooling: max_retries=3
	// DefaultBaseBackoff caps the wait before the first retry; each
	// further retry doubles the cap, up to DefaultMaxBackoff. Short, so
	// that a retry fits the guide's 100 ms and 500 ms budgets.
	DefaultBaseBackoff = 10 * time.Millisecond
	// DefaultMaxBackoff caps every wait before a retry.
	DefaultMaxBackoff = time.Second
	// DefaultFailureThreshold is how many consecutive failed attempts
	// open the breaker.
	DefaultFailureThreshold = 5
	// DefaultOpenTimeout is how long the breaker stays open before it lets
	// one probe through: a dead upstream costs one attempt a second, and
	// a recovered one is used again within a second (the storefront's
	// Retry-After).
	DefaultOpenTimeout = time.Second
	// UserAgent is the User-Agent of every request: the product alone, no
	// version or host an attacker could use.
	UserAgent = "strata"
	// NoRetries, as Config.Retries, turns retries off.
	NoRetries = -1
)

// Transport settings, Strata's choices: every wait of a call is bounded by
// its budget anyway; these bound what a call without a deadline can hold.
const (
	dialTimeout         = 5 * time.Second
	tcpKeepAlive        = 30 * time.Second
	idleConnTimeout     = 90 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	maxResponseHeader   = 64 << 10
	// maxDrain is how much of an unwanted body (a failed answer's) is read
	// so that its connection can be reused; past it the connection closes.
	maxDrain = 64 << 10
	// minAttempt is the least time a retry is started with: none starts
	// with less left of the budget, whatever the recent attempts took.
	minAttempt = time.Millisecond
	// maxNameLen bounds a client's name, a metric label value.
	maxNameLen = 64
	// maxURLLen bounds the base URL ParseURL accepts.
	maxURLLen = 2048
)

// Config holds a [Client]'s optional settings; the zero value means the
// defaults above.
type Config struct {
	// Registerer receives the client's metrics, labelled
	// upstream="NAME"; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives the breaker's state changes; nil means
	// slog.Default().
	Logger *slog.Logger
	// MaxConnsPerHost bounds the open connections, and the idle ones kept
	// alive; 0 means DefaultMaxConnsPerHost. A call waits for a free
	// connection within its budget.
	MaxConnsPerHost int
	// Retries is how many times a failed idempotent call is retried; 0
	// means DefaultRetries, NoRetries (or any negative) none.
	Retries int
	// BaseBackoff and MaxBackoff shape the jittered exponential backoff
	// between attempts; 0 means DefaultBaseBackoff and DefaultMaxBackoff.
	BaseBackoff, MaxBackoff time.Duration
	// FailureThreshold is how many consecutive failed attempts open the
	// breaker; 0 means DefaultFailureThreshold.
	FailureThreshold int
	// OpenTimeout is how long the breaker stays open before it lets one
	// probe through; 0 means DefaultOpenTimeout.
	OpenTimeout time.Duration
	// RootCAs are the certificate authorities an https upstream's
	// certificate must chain to; nil means the system's. Verification is
	// never skipped.
	RootCAs *x509.CertPool
	// TracerProvider, when set, makes a client span of each attempt (a
	// retry is a span of its own) and passes on its W3C traceparent; nil
	// means off.
	TracerProvider trace.TracerProvider
}

// State is the state of a client's circuit breaker; its value is what
// strata_upstream_breaker_state exports.
type State int

// Breaker states.
const (
	StateClosed   State = 0 // calls go through
	StateOpen     State = 1 // calls fail at once with ErrBreakerOpen
	StateHalfOpen State = 2 // one probe is allowed through; the others fail at once
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	}
	return "closed"
}

// Client calls one upstream service: a pooled keep-alive transport, a
// circuit breaker and retries within the caller's budget (see the package
// doc). It is safe for concurrent use; make one per upstream and keep it.
type Client struct {
	name      string
	base      *url.URL
	http      *http.Client
	transport *http.Transport
	breaker   *gobreaker.TwoStepCircuitBreaker[struct{}]
	m         *metrics
	log       *slog.Logger

	retries                 int
	baseBackoff, maxBackoff time.Duration
	// typical is a moving average of how long recent attempts took to be
	// answered (or to fail), in ns: what a retry is expected to need.
	typical atomic.Int64
	// draw is the backoff's random source, a test seam.
	draw func(n int64) int64
	// changed, when set, is told of every breaker state change: a test seam.
	changed func(from, to State)
}

// New returns a client of the upstream at baseURL (see [ParseURL]),
// named name in its metrics, logs and errors (letters, digits, '.', '_'
// or '-'; at most 64).
func New(name, baseURL string, cfg Config) (*Client, error) {
	return newClient(name, baseURL, cfg, nil)
}

func newClient(name, baseURL string, cfg Config, changed func(from, to State)) (*Client, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	base, err := ParseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if err := resolve(&cfg); err != nil {
		return nil, err
	}
	c := &Client{
		name: name, base: base, log: cfg.Logger, retries: max(cfg.Retries, 0),
		baseBackoff: cfg.BaseBackoff, maxBackoff: cfg.MaxBackoff, draw: defaultDraw, changed: changed,
	}
	c.transport = &http.Transport{
		// No proxy: a service-to-service call goes straight to the
		// upstream, whose pool and breaker these are.
		DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost:    cfg.MaxConnsPerHost,
		MaxConnsPerHost:        cfg.MaxConnsPerHost,
		IdleConnTimeout:        idleConnTimeout,
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		MaxResponseHeaderBytes: maxResponseHeader,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
	}
	c.http = &http.Client{
		Transport: tracing.Transport(cfg.TracerProvider, c.transport),
		// A redirect is answered to the caller: following it could leave
		// the upstream this pool and breaker are for.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1, // one probe when half-open; its success closes the breaker
		Timeout:     cfg.OpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= uint32(cfg.FailureThreshold)
		},
		// A call its caller gave up on says nothing of the upstream.
		IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) { c.stateChanged(stateOf(from), stateOf(to)) },
	})
	c.m, err = newMetrics(cfg.Registerer, name, func() float64 { return float64(c.State()) })
	if err != nil {
		return nil, err
	}
	return c, nil
}

// resolve applies the defaults to cfg, and refuses values that make no
// sense, naming the field.
func resolve(cfg *Config) error {
	switch {
	case cfg.MaxConnsPerHost < 0:
		return fmt.Errorf("%w: Config.MaxConnsPerHost is %d; want 0 (the default, %d) or more", ErrBadConfig, cfg.MaxConnsPerHost, DefaultMaxConnsPerHost)
	case cfg.BaseBackoff < 0 || cfg.MaxBackoff < 0:
		return fmt.Errorf("%w: Config.BaseBackoff (%v) and Config.MaxBackoff (%v) must not be negative", ErrBadConfig, cfg.BaseBackoff, cfg.MaxBackoff)
	case cfg.FailureThreshold < 0:
		return fmt.Errorf("%w: Config.FailureThreshold is %d; want 0 (the default, %d) or more", ErrBadConfig, cfg.FailureThreshold, DefaultFailureThreshold)
	case cfg.OpenTimeout < 0:
		return fmt.Errorf("%w: Config.OpenTimeout is %v; want 0 (the default, %v) or more", ErrBadConfig, cfg.OpenTimeout, DefaultOpenTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxConnsPerHost == 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.BaseBackoff)
	}
	if cfg.MaxBackoff < cfg.BaseBackoff {
		return fmt.Errorf("%w: Config.MaxBackoff (%v) is below Config.BaseBackoff (%v)", ErrBadConfig, cfg.MaxBackoff, cfg.BaseBackoff)
	}
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = DefaultFailureThreshold
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = DefaultOpenTimeout
	}
	return nil
}

// checkName accepts a name fit for a metric label and a log line.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("%w: the name must be 1 to %d characters, got %d", ErrBadConfig, maxNameLen, len(name))
	}
	for _, r := range name {
		if r != '.' && r != '_' && r != '-' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return fmt.Errorf("%w: the name %q has %q; want letters, digits, '.', '_' or '-'", ErrBadConfig, name, r)
		}
	}
	return nil
}

// ParseURL checks an upstream's base URL: absolute http or https with a
// host (and a port, if any, in 1..65535), no credentials, no query or
// fragment; a path is kept as the prefix of every request's. Errors wrap
// ErrBadConfig and say what is wrong without repeating the URL.
func ParseURL(raw string) (*url.URL, error) {
	bad := func(format string, args ...any) (*url.URL, error) {
		return nil, fmt.Errorf("%w: URL: "+format, append([]any{ErrBadConfig}, args...)...)
	}
	if len(raw) > maxURLLen {
		return bad("%d bytes long; want at most %d", len(raw), maxURLLen)
	}
	if !strings.Contains(raw, "://") {
		return bad("not an absolute URL; want http://HOST:PORT or https://HOST:PORT")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error // repeats the URL
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad("does not parse: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("scheme %s; want http or https", clip(u.Scheme))
	case u.Opaque != "" || u.Hostname() == "":
		return bad("no host; want %s://HOST:PORT", u.Scheme)
	case u.User != nil:
		return bad("has credentials (user@ or user:password@); an upstream URL must not carry secrets")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return bad("has a query or a fragment; want only scheme, host, port and a path")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("port %s; want 1 to 65535", clip(p))
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// clip quotes s for an error message, cut to a few dozen bytes.
func clip(s string) string {
	const n = 32
	if len(s) <= n {
		return fmt.Sprintf("%q", s)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

// Name returns the client's name.
func (c *Client) Name() string { return c.name }

// URL returns the upstream's base URL.
func (c *Client) URL() string { return c.base.String() }

// State returns the state of the client's circuit breaker now.
func (c *Client) State() State { return stateOf(c.breaker.State()) }

func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return StateOpen
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	}
	return StateClosed
}

// stateChanged logs a breaker transition (it runs under the breaker's lock).
func (c *Client) stateChanged(from, to State) {
	switch to {
	case StateOpen:
		c.log.Warn("upstream circuit breaker open: calls fail at once", "upstream", c.name, "from", from.String())
	case StateClosed:
		c.log.Info("upstream circuit breaker closed: calls go through again", "upstream", c.name)
	default:
		c.log.Debug("upstream circuit breaker half-open: one probe goes through", "upstream", c.name)
	}
	if c.changed != nil {
		c.changed(from, to)
	}
}

// NewRequest returns a request for path (with any query), relative to the
// upstream's base URL, under ctx. path must start with '/'.
func (c *Client) NewRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	ref, err := url.Parse(path)
	if err != nil || ref.Scheme != "" || ref.Host != "" || !strings.HasPrefix(ref.Path, "/") {
		return nil, fmt.Errorf("upstream %s: path %s: want /PATH[?QUERY], relative to the base URL", c.name, clip(path))
	}
	u := *c.base
	u.Path = c.base.Path + ref.Path
	u.RawPath = ""
	u.RawQuery = ref.RawQuery
	return http.NewRequestWithContext(ctx, method, u.String(), body)
}

// Do sends req, which must be for this upstream (see [Client.NewRequest]),
// within the budget of its context: through the breaker, retried when it
// is idempotent and the failure retryable (see the package doc). An answer
// below 500 is returned with a nil error; the caller closes its body.
// Otherwise the error is ErrBreakerOpen, ErrBudgetExhausted, a
// *StatusError, a *TransportError or context.Canceled, each wrapped.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != c.base.Scheme || req.URL.Host != c.base.Host {
		return nil, fmt.Errorf("upstream %s: the request is not for this upstream's %s://%s", c.name, c.base.Scheme, c.base.Host)
	}
	start := time.Now()
	resp, outcome, err := c.call(req)
	c.m.duration.Observe(time.Since(start).Seconds())
	c.m.calls[outcome].Inc()
	return resp, err
}

// call makes the attempts of one call and returns its outcome.
func (c *Client) call(req *http.Request) (*http.Response, string, error) {
	ctx := req.Context()
	req = req.Clone(ctx) // headers of its own; the body is shared
	req.Header.Set("User-Agent", UserAgent)
	attempts := 1
	if replayable(req) {
		attempts += c.retries
	}
	var last error
	for n := 1; ; n++ {
		if ctx.Err() != nil {
			return c.ended(ctx, n-1, last)
		}
		resp, err := c.attempt(ctx, req)
		switch {
		case err == nil:
			return resp, outcomeOK, nil
		case errors.Is(err, ErrBreakerOpen):
			return nil, outcomeBreakerOpen, err
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return c.ended(ctx, n, last)
		case n >= attempts || !retryable(err):
			return nil, outcomeError, err
		}
		last = err
		wait := c.wait(n, err)
		if !c.fits(ctx, wait) {
			return nil, outcomeError, err // no time left for another try: the failure stands
		}
		if !sleep(ctx, wait) {
			return c.ended(ctx, n, last)
		}
		if req.GetBody != nil {
			body, berr := req.GetBody()
			if berr != nil {
				return nil, outcomeError, fmt.Errorf("upstream %s: the body cannot be sent again: %w", c.name, berr)
			}
			req.Body = body
		}
		c.m.retries.Inc()
	}
}

// ended is the outcome of a call whose context ended after attempts
// attempts, the last failed one's error being last (nil if none failed
// before).
func (c *Client) ended(ctx context.Context, attempts int, last error) (*http.Response, string, error) {
	cerr := ctx.Err()
	if errors.Is(cerr, context.Canceled) {
		return nil, outcomeCanceled, fmt.Errorf("upstream %s: %w", c.name, cerr)
	}
	what := "before the first attempt"
	switch {
	case attempts == 1:
		what = "after 1 attempt"
	case attempts > 1:
		what = fmt.Sprintf("after %d attempts", attempts)
	}
	if last != nil {
		what += fmt.Sprintf(" (an earlier one: %v)", last)
	}
	return nil, outcomeBudget, fmt.Errorf("%s: %w: no answer within the caller's deadline, %s: %w", c.name, ErrBudgetExhausted, what, cerr)
}

// attempt sends req once, through the breaker.
func (c *Client) attempt(ctx context.Context, req *http.Request) (*http.Response, error) {
	done, err := c.breaker.Allow()
	if err != nil { // open, or half-open with its probe out
		return nil, fmt.Errorf("%s: %w", c.name, ErrBreakerOpen)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			done(cerr) // a timeout counts against the upstream, a cancellation not at all
			if errors.Is(cerr, context.DeadlineExceeded) {
				c.m.errors[kindTimeout].Inc()
			}
			return nil, cerr
		}
		c.observe(time.Since(start))
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // without the method and URL
		}
		terr := &TransportError{Upstream: c.name, Err: err}
		done(terr)
		c.m.errors[kindTransport].Inc()
		return nil, terr
	}
	c.observe(time.Since(start))
	if resp.StatusCode < http.StatusInternalServerError {
		done(nil)
		return resp, nil
	}
	serr := &StatusError{Upstream: c.name, Code: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain)) // so the connection can be reused
	resp.Body.Close()
	serr.Body = strings.ToValidUTF8(strings.TrimSpace(string(head)), "�")
	done(serr)
	c.m.errors[kindStatus].Inc()
	return nil, serr
}

// observe folds an attempt's time into the moving average (weight 1/4).
func (c *Client) observe(d time.Duration) {
	for {
		old := c.typical.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/4
		}
		if c.typical.CompareAndSwap(old, next) {
			return
		}
	}
}

// wait is the wait before retry n: the backoff, or the failed answer's
// Retry-After when that is longer.
func (c *Client) wait(n int, err error) time.Duration {
	d := backoff(n, c.baseBackoff, c.maxBackoff, c.draw)
	if se := (*StatusError)(nil); errors.As(err, &se) && se.RetryAfter > d {
		d = se.RetryAfter
	}
	return d
}

// fits reports whether a wait of d and then a typical attempt end before
// ctx's deadline: only then is a retry started.
func (c *Client) fits(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	if !ok {
		return true
	}
	return time.Until(deadline) >= d+max(time.Duration(c.typical.Load()), minAttempt)
}

// sleep waits d, or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close closes the idle connections and unregisters the metrics, so that
// a client of the same name may register again. The client must not be
// used after.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
	c.m.unregister()
}
