package storefront

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/strata-dev/strata/upstream"
)

// recommendationService names the remote recommendation service in
// errors and fallback notes.
const recommendationService = "the recommendation service"

// RemoteRecommender is a [Service] whose recommendations come from a
// remote recommendation service over HTTP: the guide's stage 3
// RecommendationService, run on its own (strata serve --only
// recommendations, [NewRecommendationHandler]) and called through an
// [upstream.Client], with its pool, retries within the caller's budget and
// circuit breaker. Everything else is served by the wrapped Service.
//
// On the composite page GET /users/{id}/home a failed call (the service
// down, slow past the non-critical budget, or its breaker open) falls back
// to the popular products, as a slow local one does. On GET
// /users/{id}/recommendations it is answered 503 with Retry-After (down,
// failing, breaker open) or 504 (no answer within the budget), with the
// cause; an answer that is not a list of recommendations is a 502.
type RemoteRecommender struct {
	Service // all but Recommend
	client  *upstream.Client
}

var (
	_ Service          = (*RemoteRecommender)(nil)
	_ popularService   = (*RemoteRecommender)(nil)
	_ degradedReporter = (*RemoteRecommender)(nil)
)

// NewRemoteRecommender returns svc with its recommendations asked of the
// recommendation service client calls. The client's base URL is the
// service's root: recommendations are GET /users/{id}/recommendations
// under it.
func NewRemoteRecommender(svc Service, client *upstream.Client) *RemoteRecommender {
	return &RemoteRecommender{Service: svc, client: client}
}

// maxRemoteBody bounds a remote answer the storefront reads: MaxLimit
// recommendations are a few tens of kilobytes.
const maxRemoteBody = MaxBodyBytes

// errBadAnswer is a remote answer that is not what the API promises.
var errBadAnswer = errors.New("storefront: unexpected answer")

// RemoteError is a call to a remote service that got no usable answer.
// Err is the upstream client's error (upstream.ErrBreakerOpen,
// upstream.ErrBudgetExhausted, an *upstream.StatusError, an
// *upstream.TransportError) or a malformed answer.
type RemoteError struct {
	Service string // "the recommendation service"
	Err     error
}

func (e *RemoteError) Error() string { return e.Service + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *RemoteError) Unwrap() error { return e.Err }

// Recommend asks the recommendation service for up to limit
// recommendations for the user, within ctx's deadline, passing on the
// incoming request's W3C traceparent. An unknown user is ErrNotFound, as
// in process; any other failure is a *RemoteError. When the wrapped
// Service is a [Cached], the top recommended products are prefetched into
// its products cache, as after a read in process.
func (r *RemoteRecommender) Recommend(ctx context.Context, userID int64, limit int) ([]Recommendation, error) {
	if err := checkID("id", userID); err != nil {
		return nil, err
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	req, err := r.client.NewRequest(ctx, http.MethodGet, fmt.Sprintf("/users/%d/recommendations?limit=%d", userID, limit), nil)
	if err != nil {
		return nil, &RemoteError{Service: recommendationService, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if tp, ok := ctx.Value(traceparentKey{}).(string); ok {
		req.Header.Set(TraceparentHeader, tp)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, &RemoteError{Service: recommendationService, Err: err}
	}
	defer resp.Body.Close()
	recs, err := decodeRecommendations(resp, userID, limit)
	if err != nil {
		return nil, err
	}
	if p, ok := r.Service.(prefetcher); ok {
		p.prefetch(ctx, recs) // the likely next reads, as after a read in process
	}
	return recs, nil
}

// prefetcher is implemented by a Service that loads the products of a
// user's recommendations ahead of their reads (*Cached).
type prefetcher interface {
	prefetch(ctx context.Context, recs []Recommendation)
}

var _ prefetcher = (*Cached)(nil)

// decodeRecommendations reads the recommendation service's answer for
// userID: 200 with the list, or 404 for an unknown user.
func decodeRecommendations(resp *http.Response, userID int64, limit int) ([]Recommendation, error) {
	bad := func(format string, args ...any) error {
		return &RemoteError{Service: recommendationService, Err: fmt.Errorf("%w: %s", errBadAnswer, fmt.Sprintf(format, args...))}
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		// The user, or (a base URL with a wrong path) the route.
		var e errorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, maxRemoteBody)).Decode(&e)
		if e.Field == "id" {
			return nil, &NotFoundError{Kind: "user", ID: userID}
		}
		return nil, bad("status 404 (%s)", clipReport(e.Error))
	default:
		return nil, bad("status %d", resp.StatusCode)
	}
	var body struct {
		UserID          int64            `json:"user_id"`
		Recommendations []Recommendation `json:"recommendations"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteBody+1))
	switch {
	case err != nil:
		return nil, &RemoteError{Service: recommendationService, Err: fmt.Errorf("reading the answer: %w", err)}
	case len(raw) > maxRemoteBody:
		return nil, bad("a body over %d bytes", maxRemoteBody)
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, bad("not JSON recommendations: %s", clipReport(err.Error()))
	}
	switch {
	case body.UserID != userID:
		return nil, bad("recommendations for user %d, not %d", body.UserID, userID)
	case body.Recommendations == nil:
		return nil, bad("no recommendations list")
	case len(body.Recommendations) > limit:
		return nil, bad("%d recommendations, over the limit of %d", len(body.Recommendations), limit)
	}
	return body.Recommendations, nil
}

// Popular returns the wrapped Service's popular products, the composite
// page's fallback when the recommendation service fails.
func (r *RemoteRecommender) Popular(ctx context.Context, limit int) ([]Recommendation, error) {
	ps, ok := r.Service.(popularService)
	if !ok {
		return nil, errors.New("storefront: no popular products to fall back on")
	}
	return ps.Popular(ctx, limit)
}

// Degraded reports the wrapped Service's degraded parts, and the
// recommendation service while its circuit breaker is not closed.
func (r *RemoteRecommender) Degraded(ctx context.Context) []string {
	var out []string
	if d, ok := r.Service.(degradedReporter); ok {
		out = d.Degraded(ctx)
	}
	if st := r.client.State(); st != upstream.StateClosed {
		out = append(out, fmt.Sprintf("%s (%s): circuit breaker %s; recommendations fall back to popular products", recommendationService, r.client.URL(), st))
	}
	return out
}

// remoteFailure says how the API answers err if it is a *RemoteError:
// the status, the cause for the client, and the Retry-After of a 503.
func remoteFailure(err error) (status int, cause, retryAfter string, ok bool) {
	var re *RemoteError
	if !errors.As(err, &re) {
		return 0, "", "", false
	}
	var se *upstream.StatusError
	var te *upstream.TransportError
	switch {
	case errors.Is(err, upstream.ErrBudgetExhausted):
		return http.StatusGatewayTimeout, re.Service + " did not answer within the request's budget", "", true
	case errors.Is(err, upstream.ErrBreakerOpen):
		return http.StatusServiceUnavailable, re.Service + " is failing and its circuit breaker is open; retry in a moment", retryAfterSeconds, true
	case errors.As(err, &se):
		retry := retryAfterSeconds
		if se.RetryAfter > time.Second {
			retry = strconv.Itoa(int(math.Ceil(min(se.RetryAfter, time.Hour).Seconds())))
		}
		return http.StatusServiceUnavailable, fmt.Sprintf("%s failed (it answered %d); retry in a moment", re.Service, se.Code), retry, true
	case errors.As(err, &te):
		return http.StatusServiceUnavailable, re.Service + " is unreachable: " + clipReport(te.Err.Error()), retryAfterSeconds, true
	case errors.Is(err, errBadAnswer):
		return http.StatusBadGateway, re.Service + " sent an answer that is not a list of recommendations: " + clipReport(re.Err.Error()), "", true
	}
	return 0, "", "", false // a cancellation, say: as any other error
}

// failRemote answers err if it is a remote service's failure, and says
// whether it did.
func (a *api) failRemote(w http.ResponseWriter, r *http.Request, err error) bool {
	status, cause, retry, ok := remoteFailure(err)
	if !ok {
		return false
	}
	a.unavailable.warn(a.log, cause, "method", r.Method, "path", r.URL.Path, "err", err)
	if retry != "" {
		w.Header().Set("Retry-After", retry)
	}
	writeJSON(w, status, errorBody{Error: cause})
	return true
}

// TraceparentHeader is the W3C Trace Context header a request's trace
// travels in. The storefront passes a well-formed one on to the services
// it calls; it does not trace by itself yet.
const TraceparentHeader = "traceparent"

type traceparentKey struct{}

// withTraceparent returns ctx carrying r's traceparent header, if it has
// a well-formed one (a malformed one is dropped, as the W3C
// recommendation says).
func withTraceparent(ctx context.Context, r *http.Request) context.Context {
	vs := r.Header.Values(TraceparentHeader)
	if len(vs) != 1 || !validTraceparent(vs[0]) {
		return ctx
	}
	return context.WithValue(ctx, traceparentKey{}, vs[0])
}

// maxTraceparent bounds a traceparent of a future version passed on.
const maxTraceparent = 256

// validTraceparent reports whether v is a traceparent as W3C Trace
// Context (level 1) defines it: version-traceid-parentid-flags, lower-case
// hex of 2, 32, 16 and 2 digits, neither id all zeros, version not ff;
// version 00 exactly so, a later version possibly followed by "-" and
// more.
func validTraceparent(v string) bool {
	const n = 55 // "00-" + 32 + "-" + 16 + "-" + 2
	if len(v) < n || len(v) > maxTraceparent || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	version, trace, parent, flags := v[0:2], v[3:35], v[36:52], v[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) {
		return false
	}
	if trace == "00000000000000000000000000000000" || parent == "0000000000000000" {
		return false
	}
	if len(v) > n {
		return version != "00" && v[n] == '-'
	}
	return true
}

// lowerHex reports whether s is lower-case hexadecimal digits.
func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
