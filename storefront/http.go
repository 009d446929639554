package storefront

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/overload"
	"github.com/strata-dev/strata/replica"
)

// HTTP server limits: a slow or idle client cannot pin a connection or a
// goroutine for longer than these. They are Strata's choices, not the
// guide's: long enough for any legitimate request, short enough to shed
// slowloris clients.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// requestTimeout bounds the work of one request, database calls included.
	requestTimeout = 10 * time.Second
	// shutdownTimeout bounds how long a graceful shutdown drains in-flight
	// requests before it closes what is left.
	shutdownTimeout = 20 * time.Second
	readyTimeout    = 2 * time.Second
)

// Service is what the HTTP API serves. *Store implements it; later stages
// of the scale journey wrap a Store (a cache in front, replicas behind)
// without the API noticing.
type Service interface {
	GetUser(ctx context.Context, id int64) (User, error)
	CreateUser(ctx context.Context, n NewUser) (User, error)
	UpdateUser(ctx context.Context, id int64, p UserPatch) (User, error)
	RecordAction(ctx context.Context, userID, productID int64, kind ActionKind) (Action, error)
	GetProduct(ctx context.Context, id int64) (Product, error)
	Search(ctx context.Context, q string, limit int) ([]Product, error)
	Suggest(ctx context.Context, prefix string, limit int) ([]Suggestion, error)
	Facets(ctx context.Context, q string) (Facets, error)
	Recommend(ctx context.Context, userID int64, limit int) ([]Recommendation, error)
	Ping(ctx context.Context) error
}

var _ Service = (*Store)(nil)

// HandlerConfig holds the API's optional settings.
type HandlerConfig struct {
	// Registerer receives the API's metrics, and Gatherer is what /metrics
	// serves; a nil Registerer means a new registry from [NewRegistry] for
	// both. Usually both are the same *prometheus.Registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Logger receives server-side errors; nil means slog.Default().
	Logger *slog.Logger
	// CriticalBudget and NonCriticalBudget bound the parts of the
	// composite page GET /users/{id}/home (the user; the
	// recommendations); zero means DefaultCriticalBudget and
	// DefaultNonCriticalBudget, the guide's 100 and 500 ms.
	CriticalBudget, NonCriticalBudget time.Duration
	// Overload is the adaptive concurrency limiter in front of the
	// routes (see [overload.Limiter]); nil, the zero value, means none.
	// With it, reads of a user or a product and the composite page are
	// critical work, the composite page's recommendations sheddable (they
	// fall back to popular products without being tried), every other
	// route normal; a refused request is answered 503 with Retry-After
	// and {"error": "...", "cause": "overload"}. /healthz, /readyz and
	// /metrics are never limited.
	Overload *overload.Limiter
	// SearchTiers are the resources of the search tiers (product search,
	// autocomplete, faceted search): each one's concurrency limit and
	// budget; the zero value means the defaults (see [SearchTiers]).
	SearchTiers SearchTiers
	// TracerProvider, when set, makes a server span of each request to a
	// route (see trace.go), the parent of the spans the service makes
	// under it; nil means off.
	TracerProvider trace.TracerProvider
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, which every Strata service exports.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

type api struct {
	svc Service
	log *slog.Logger
	// unavailable logs "cannot serve now" conditions, which last and would
	// otherwise log a line per request.
	unavailable throttle
	budgets     budgets           // of the composite page
	limiter     *overload.Limiter // nil: no overload control
	tiers       tiers             // of search
}

// NewHandler returns the storefront's HTTP JSON API over svc:
//
//	GET   /users/{id}                  a user
//	POST  /users                       create a user {email, name, region}
//	PATCH /users/{id}                  change any of email, name, region; bumps version
//	POST  /users/{id}/actions          record {product_id, kind: view|cart|purchase}
//	GET   /users/{id}/recommendations  ?limit=1..100 (default 10)
//	GET   /users/{id}/home             the user and their recommendations, within budgets (see [Home])
//	GET   /products/{id}               a product
//	GET   /search                      ?q=words&limit=1..100 (default 10)[&facets=category]
//	GET   /search/suggest              ?prefix=start of a title&limit=1..20 (default 8)
//	GET   /healthz, /readyz, /metrics  liveness, database readiness, Prometheus
//
// Every error is JSON, {"error": "...", "field": "..."}, with a 4xx status
// for bad input; a panic in a handler becomes a 500, never a dropped
// connection. Product search, autocomplete and faceted search (/search
// with facets=category) are the search tiers, each with a concurrency
// limit and a budget of its own (HandlerConfig.SearchTiers): a tier that
// is full or out of its budget answers 503 with Retry-After and
// {"error": "...", "tier": "..."}, and the other tiers answer on.
func NewHandler(svc Service, cfg HandlerConfig) http.Handler {
	return newHandler(svc, cfg, false)
}

// NewRecommendationHandler returns the recommendation service alone, the
// guide's stage-3 RecommendationService (strata serve --only
// recommendations), for storefronts that call it over HTTP
// ([RemoteRecommender]):
//
//	GET   /users/{id}/recommendations  ?limit=1..100 (default 10)
//	GET   /healthz, /readyz, /metrics  liveness, database readiness, Prometheus
//
// It answers them, and errors, exactly as [NewHandler] does.
func NewRecommendationHandler(svc Service, cfg HandlerConfig) http.Handler {
	return newHandler(svc, cfg, true)
}

// newHandler is NewHandler, or with recommendationsOnly
// NewRecommendationHandler.
func newHandler(svc Service, cfg HandlerConfig, recommendationsOnly bool) http.Handler {
	if cfg.Registerer == nil {
		reg := NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry() // serves nothing rather than failing
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &api{svc: svc, log: cfg.Logger, budgets: resolveBudgets(cfg), limiter: cfg.Overload, tiers: newTiers(cfg.SearchTiers, cfg.Registerer)}
	m := newHTTPMetrics(cfg.Registerer)
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, traceRoute(cfg.TracerProvider, pattern, m.instrument(pattern, a.recover(a.admit(pattern, h)))))
	}
	route("GET /users/{id}/recommendations", a.recommend)
	route("GET /healthz", a.healthz)
	route("GET /readyz", a.readyz)
	if !recommendationsOnly {
		route("GET /users/{id}", getByID(a, privateCache, svc.GetUser))
		route("POST /users", a.createUser)
		route("PATCH /users/{id}", a.updateUser)
		route("POST /users/{id}/actions", a.recordAction)
		route("GET /users/{id}/home", a.home)
		route("GET /products/{id}", getByID(a, publicCache, svc.GetProduct))
		route("GET /search", a.search)
		route("GET /search/suggest", a.suggest)
	}
	mux.Handle("GET /metrics", m.instrument("GET /metrics",
		promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{Registry: cfg.Registerer, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError)})))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		var served []string     // how the stage-2 caches answered, for the debug header
		var wrote replica.Token // the newest write's read-your-writes token
		fb := new(fallbacks)    // parts of the answer that are fallbacks
		ctx = withFallbacks(withTokenSink(withCacheInfo(ctx, &served), &wrote), fb)
		ctx = withTraceparent(ctx, r) // passed on to the services this one calls
		w = &infoWriter{ResponseWriter: w, served: &served, token: &wrote, fallbacks: fb}
		tok, field, err := requestToken(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error(), Field: field})
			return
		}
		r = r.WithContext(replica.WithToken(ctx, tok))
		if p := r.URL.Path; p == "" || p[0] != '/' || path.Clean(p) != p {
			// The mux would redirect to the clean path in HTML; a JSON API
			// answers only the canonical one.
			m.unmatched.WithLabelValues("404").Inc()
			writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("path %s is not canonical (no //, ., .. or trailing /)", quoteValue(p)), Field: "path"})
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			// The mux would answer 404 or 405 in plain text; answer in JSON.
			rec := &statusRecorder{header: http.Header{}}
			mux.ServeHTTP(rec, r)
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			status, msg := rec.status, fmt.Sprintf("path %s matches no route", quoteValue(r.URL.Path))
			if status == http.StatusMethodNotAllowed {
				msg = fmt.Sprintf("path %s does not take method %s (allowed: %s)", quoteValue(r.URL.Path), quoteValue(r.Method), rec.header.Get("Allow"))
			} else {
				status = http.StatusNotFound
			}
			m.unmatched.WithLabelValues(strconv.Itoa(status)).Inc()
			writeJSON(w, status, errorBody{Error: msg, Field: "path"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// NewServer returns an http.Server for h with the timeouts above. Its
// ErrorLog logs through slog.Default(); set it to use another logger.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
}

// Serve serves srv on ln until ctx is done, then shuts down gracefully:
// it stops accepting, drains in-flight requests for up to shutdownTimeout
// and returns. A nil error means a clean shutdown.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("storefront: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("storefront: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("storefront: serve: %w", err)
	}
	return nil
}

// CacheHeader is the debug response header that says which cache level
// answered each read of the request (the guide's cache_metadata), for
// example "user: l1" or "recommendations: loader l2=0.31ms load=4.20ms".
const CacheHeader = "X-Strata-Cache"

// FallbackHeader is the debug response header that says which parts of
// the answer are fallbacks, and why: for example "recommendations:
// co-purchases of shard shard2 left out, popular products instead (no
// answer within 500ms)". It is absent when nothing fell back.
const FallbackHeader = "X-Strata-Fallback"

// fallbacks collects what fell back while a request was served.
type fallbacks struct {
	mu    sync.Mutex
	notes []string
}

type fallbackKey struct{}

// withFallbacks returns a context in which noteFallback records into fb.
func withFallbacks(ctx context.Context, fb *fallbacks) context.Context {
	return context.WithValue(ctx, fallbackKey{}, fb)
}

// noteFallback records that part of the answer is a fallback, for
// FallbackHeader; without a collector in ctx it does nothing.
func noteFallback(ctx context.Context, note string) {
	if fb, ok := ctx.Value(fallbackKey{}).(*fallbacks); ok {
		fb.mu.Lock()
		fb.notes = append(fb.notes, note)
		fb.mu.Unlock()
	}
}

// list returns the notes recorded so far.
func (fb *fallbacks) list() []string {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return slices.Clone(fb.notes)
}

// infoWriter adds CacheHeader just before the response header is written.
// Read-your-writes over HTTP: a response to a write carries the write's
// token in TokenHeader and in the TokenCookie cookie; a request that sends
// either back reads data at least that new, on whichever replica serves it.
const (
	TokenHeader = "X-Strata-Token"
	TokenCookie = "strata_token"
	// tokenCookieAge bounds how long a browser sends the token back: well
	// past any replica lag the router tolerates.
	tokenCookieAge = 60
	// maxTokenLen bounds a token header: a WAL position is at most
	// "FFFFFFFF/FFFFFFFF".
	maxTokenLen = 17
)

// requestToken reads the client's read-your-writes token, if it sent one;
// field names what was malformed.
func requestToken(r *http.Request) (replica.Token, string, error) {
	var tok replica.Token
	if v := r.Header.Get(TokenHeader); v != "" {
		if len(v) > maxTokenLen {
			return 0, TokenHeader, fmt.Errorf("%s header is %d bytes long; a token is at most %d (send back the value of a write's %s)", TokenHeader, len(v), maxTokenLen, TokenHeader)
		}
		t, err := replica.ParseToken(v)
		if err != nil {
			return 0, TokenHeader, fmt.Errorf("%s header: %w", TokenHeader, err)
		}
		tok = t
	}
	if c, err := r.Cookie(TokenCookie); err == nil && c.Value != "" {
		// The cookie is ours and expires by itself: a mangled one is
		// ignored rather than failing every request for a minute.
		if t, err := replica.ParseToken(c.Value); err == nil {
			tok = max(tok, t)
		}
	}
	return tok, "", nil
}

type infoWriter struct {
	http.ResponseWriter
	served    *[]string
	token     *replica.Token
	fallbacks *fallbacks
	done      bool
}

func (w *infoWriter) WriteHeader(status int) {
	if !w.done {
		w.done = true
		if t := *w.token; t != 0 {
			w.Header().Set(TokenHeader, t.String())
			http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: t.String(), Path: "/", MaxAge: tokenCookieAge,
				HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		// Not on responses a shared cache may keep: a CDN would replay it.
		if len(*w.served) > 0 && !strings.HasPrefix(w.Header().Get("Cache-Control"), "public") {
			w.Header().Set(CacheHeader, strings.Join(*w.served, "; "))
		}
		if notes := w.fallbacks.list(); len(notes) > 0 {
			w.Header().Set(FallbackHeader, strings.Join(notes, "; "))
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *infoWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *infoWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusRecorder captures the mux's own 404/405 answers.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(status int)      { r.status = status }

// errorBody is the one shape of every error response.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	// Cause names a refusal's cause where a client may act on it:
	// "overload" when the request was shed.
	Cause string `json:"cause,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	if status >= 400 {
		h.Set("Cache-Control", "no-store") // a CDN must not keep an error
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do
}

// Edge caching policies of GET responses.
const (
	// publicCache lets browsers and shared caches (a CDN, a reverse proxy)
	// keep catalogue data for EdgeTTL: the guide's edge level.
	publicCache = "public, max-age=600"
	// privateCache keeps personal data out of shared caches; a browser may
	// keep it but must revalidate it (cheaply, with the ETag).
	privateCache = "private, no-cache"
)

// writeCacheable answers a GET with an ETag computed from the body, and
// 304 Not Modified when the client already holds that body.
func writeCacheable(w http.ResponseWriter, r *http.Request, policy string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
		return
	}
	body = append(body, '\n')
	sum := fnv.New64a()
	sum.Write(body)
	etag := `"` + strconv.FormatUint(sum.Sum64(), 36) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", policy)
	h.Set("Vary", "Accept-Encoding")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// etagMatches implements If-None-Match's weak comparison: a list of tags,
// or "*".
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, errorBody{Error: e.field + " " + e.msg, Field: e.field})
}

// fail answers an error from the service with the status it deserves.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		status := http.StatusBadRequest
		switch {
		case errors.Is(fe.Err, ErrConflict):
			status = http.StatusConflict
		case errors.Is(fe.Err, ErrNotFound) && fe.Field == "id":
			status = http.StatusNotFound
		case errors.Is(fe.Err, ErrNotFound):
			status = http.StatusUnprocessableEntity // the body names a missing row
		}
		writeJSON(w, status, errorBody{Error: fe.Error(), Field: fe.Field})
	case errors.Is(err, ErrNotFound):
		msg := "not found"
		var nf *NotFoundError
		if errors.As(err, &nf) {
			msg = nf.Error()
		}
		writeJSON(w, http.StatusNotFound, errorBody{Error: msg, Field: "id"})
	default:
		if a.failRemote(w, r, err) {
			return
		}
		if cause, ok := unavailable(err); ok {
			a.unavailable.warn(a.log, cause, "method", r.Method, "path", r.URL.Path, "err", err)
			w.Header().Set("Retry-After", retryAfterSeconds)
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: cause})
			return
		}
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
	}
}

func (a *api) recover(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
			}
		}()
		h(w, r)
	}
}

func pathID(r *http.Request) (int64, *apiError) { return parseID("id", r.PathValue("id")) }

// getByID serves GET /…/{id} with one lookup by id.
func getByID[T any](a *api, policy string, get func(context.Context, int64) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, aerr := pathID(r)
		if aerr == nil {
			_, aerr = query(r)
		}
		if aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		v, err := get(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeCacheable(w, r, policy, v)
	}
}

func (a *api) createUser(w http.ResponseWriter, r *http.Request) {
	obj, aerr := readObject(w, r)
	if aerr == nil {
		aerr = obj.only("email", "name", "region")
	}
	var email, name, region *string
	if aerr == nil {
		email, aerr = obj.str("email", true)
	}
	if aerr == nil {
		name, aerr = obj.str("name", true)
	}
	if aerr == nil {
		region, aerr = obj.str("region", true)
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	u, err := a.svc.CreateUser(r.Context(), NewUser{Email: *email, Name: *name, Region: *region})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/users/"+strconv.FormatInt(u.ID, 10))
	writeJSON(w, http.StatusCreated, u)
}

func (a *api) updateUser(w http.ResponseWriter, r *http.Request) {
	id, aerr := pathID(r)
	var obj object
	if aerr == nil {
		obj, aerr = readObject(w, r)
	}
	if aerr == nil {
		aerr = obj.only("email", "name", "region")
	}
	var p UserPatch
	if aerr == nil {
		p.Email, aerr = obj.str("email", false)
	}
	if aerr == nil {
		p.Name, aerr = obj.str("name", false)
	}
	if aerr == nil {
		p.Region, aerr = obj.str("region", false)
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	u, err := a.svc.UpdateUser(r.Context(), id, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (a *api) recordAction(w http.ResponseWriter, r *http.Request) {
	id, aerr := pathID(r)
	var obj object
	if aerr == nil {
		obj, aerr = readObject(w, r)
	}
	if aerr == nil {
		aerr = obj.only("product_id", "kind")
	}
	var productID int64
	var kind *string
	if aerr == nil {
		productID, aerr = obj.int("product_id")
	}
	if aerr == nil {
		kind, aerr = obj.str("kind", true)
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	act, err := a.svc.RecordAction(r.Context(), id, productID, ActionKind(*kind))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, act)
}

func (a *api) recommend(w http.ResponseWriter, r *http.Request) {
	id, aerr := pathID(r)
	var limit int
	if aerr == nil {
		var q map[string][]string
		if q, aerr = query(r, "limit"); aerr == nil {
			limit, aerr = limitParam(q)
		}
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	recs, err := a.svc.Recommend(r.Context(), id, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeCacheable(w, r, privateCache, map[string]any{"user_id": id, "recommendations": recs})
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := a.svc.Ping(ctx); err != nil {
		a.unavailable.warn(a.log, "not ready", "err", err)
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "database unavailable"})
		return
	}
	var degraded []string
	if d, ok := a.svc.(degradedReporter); ok {
		degraded = d.Degraded(ctx)
	}
	if len(degraded) > 0 {
		// Ready all the same: the service answers, with less (a cache
		// level or a replica missing), and a load balancer that took it
		// out would only move its load onto the others.
		writeJSON(w, http.StatusOK, readiness{Status: "degraded", Degraded: degraded})
		return
	}
	writeJSON(w, http.StatusOK, readiness{Status: "ready"})
}

// readiness is the body of /readyz.
type readiness struct {
	Status   string   `json:"status"` // "ready" or "degraded"
	Degraded []string `json:"degraded,omitempty"`
}

// degradedReporter is implemented by a Service that can run with a part of
// itself down (a replica, the primary for reads, a cache level): Degraded
// lists those parts, one short sentence each, and /readyz reports them
// while still answering 200.
type degradedReporter interface {
	Degraded(ctx context.Context) []string
}

// httpMetrics are the API's request metrics.
type httpMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inFlight  prometheus.Gauge
	unmatched *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method.",
			Buckets: latencyBuckets(),
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_http_requests_in_flight",
			Help: "HTTP requests being answered now.",
		}),
		unmatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_http_unmatched_requests_total",
			Help: "Requests that matched no route (404) or no method of a route (405), by status code.",
		}, []string{"code"}),
	}
	// Both codes exported at 0 from the start (a zero series, not a dead
	// label value: the handler counts each), so a service that has seen
	// no stray request shows 0 rather than no data.
	for _, code := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		m.unmatched.WithLabelValues(strconv.Itoa(code))
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight, m.unmatched)
	return m
}

// latencyBuckets are the buckets of the API's latency histograms, in
// seconds: half a millisecond to ten seconds, dense around the guide's
// 100 ms targets.
func latencyBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

func (m *httpMetrics) instrument(pattern string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"route": pattern}
	h = promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(labels), h)
	h = promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(labels), h)
	return promhttp.InstrumentHandlerInFlight(m.inFlight, h)
}
