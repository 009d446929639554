package storefront

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/tracing"
)

// Tracing (stage 5's request tracing): with HandlerConfig.TracerProvider,
// each request to a route is a server span named by its pattern ("GET
// /users/{id}/recommendations", with http.request.method, http.route and
// http.response.status_code), a child of the caller's span when the
// request carries a W3C traceparent. Under it, with the same provider in
// CacheConfig and Config: cache.Get (the level that answered),
// cache.lease_wait and cache.load, shard.Read (the virtual shard and its
// owner), replica.Read (the pool chosen, why it fell back, the
// read-your-writes token and its wait) and one span per SQL statement on
// PostgreSQL. Background work (warming, prefetch, the popularity ranking)
// makes no spans: its spans have no request to belong to.
//
// The liveness and readiness probes are not traced: a load balancer's
// probe every second would make most of a quiet service's traces.

// traceRoute returns h under a server span per request when tp is on.
func traceRoute(tp trace.TracerProvider, pattern string, h http.Handler) http.Handler {
	if tp == nil || pattern == "GET /healthz" || pattern == "GET /readyz" {
		return h
	}
	return otelhttp.NewHandler(h, pattern, tracing.HTTPOptions(tp)...)
}
