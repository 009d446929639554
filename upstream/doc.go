// Package upstream calls another service over HTTP: the HTTP side of the
// guide's HighPerformanceConnectionManager ("Connection Pooling and
// Resource Management"), for service-to-service calls such as the
// storefront's calls to its recommendation service (the guide's stage 3).
//
// A [Client] is one upstream: a base URL and a name that labels its
// metrics. It keeps its own pooled, keep-alive transport (the guide's
// 100 connections per host), verifies TLS certificates (against the
// system roots, or [Config].RootCAs for a private CA; never skipped), and
// sends a User-Agent that names no version or host.
//
// # Budgets and retries
//
// The caller's context deadline is the call's budget. An idempotent
// request (GET, HEAD, OPTIONS, TRACE, or one carrying an Idempotency-Key
// header, as net/http's own Transport decides) is retried up to the
// guide's 3 times after a retryable failure: a transport error or a 502,
// 503 or 504 answer. The wait before a retry is a jittered exponential
// backoff ("full jitter"), or the answer's Retry-After when that is longer.
// A retry is started only when its wait and a typical attempt (an average
// of the recent ones) fit in what is left of the budget: the client never
// sleeps into a deadline, and an attempt in flight ends with the budget, so
// a call never outlasts it. When the budget runs out first the error is
// [ErrBudgetExhausted].
//
// # The circuit breaker
//
// Every attempt goes through a circuit breaker of the upstream's own:
// after [DefaultFailureThreshold] consecutive failed attempts (a transport
// error, a 5xx answer, no answer within the budget) it opens, and calls
// fail at once with [ErrBreakerOpen], without a connection or a wait;
// after [DefaultOpenTimeout] one probe goes through, and its success
// closes the breaker again. A 4xx answer is the caller's problem, not the
// upstream's: it counts as a success. A call its caller canceled counts as
// neither.
//
// The breaker is github.com/sony/gobreaker/v2: small, without
// dependencies, widely used and maintained, and its two-step form
// (TwoStepCircuitBreaker: Allow, then report the outcome) lets each
// attempt of a retried call count on its own, with Strata deciding what a
// failure is and which errors (a caller's cancellation) do not count. Its
// one shortcoming here is that it reads the wall clock, with no seam: the
// tests drive it with small open timeouts and wait for its state changes
// rather than sleeping.
//
// # Errors and metrics
//
// A failed call's error is one of: [ErrBreakerOpen], [ErrBudgetExhausted]
// (which also matches context.DeadlineExceeded), a [*StatusError] (a 5xx
// answer: its code and Retry-After), a [*TransportError] (no answer: a
// refused or reset connection, a TLS failure), or the caller's
// context.Canceled. Answers below 500 are returned as they are, with a nil
// error.
//
// With a [Config].Registerer the client exports, labelled
// upstream="NAME": strata_upstream_calls_total{outcome},
// strata_upstream_errors_total{kind} (per failed attempt),
// strata_upstream_retries_total, strata_upstream_breaker_state and the
// strata_upstream_call_duration_seconds histogram. Every label value is
// exported at 0 from the start.
package upstream
