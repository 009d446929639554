package upstream

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a call (the "outcome" label of strata_upstream_calls_total).
const (
	outcomeOK          = "ok"               // an answer below 500
	outcomeError       = "error"            // a 5xx answer or a transport error, after any retries
	outcomeBreakerOpen = "breaker_open"     // failed at once: the breaker was open
	outcomeBudget      = "budget_exhausted" // the deadline passed before an answer
	outcomeCanceled    = "canceled"         // the caller canceled the call
	kindTransport      = "transport"        // an attempt got no answer: refused, reset, TLS
	kindStatus         = "status"           // an attempt was answered 5xx
	kindTimeout        = "timeout"          // an attempt was still waiting when the budget ran out
)

// metrics are one client's series, each labelled upstream="NAME".
type metrics struct {
	calls    map[string]prometheus.Counter // by outcome
	errors   map[string]prometheus.Counter // by kind
	retries  prometheus.Counter
	duration prometheus.Histogram

	reg        prometheus.Registerer
	registered []prometheus.Collector
}

// newMetrics registers the client's series on reg (none when reg is nil),
// every outcome and kind at 0; state reads the breaker at scrape time.
func newMetrics(reg prometheus.Registerer, name string, state func() float64) (*metrics, error) {
	labels := prometheus.Labels{"upstream": name}
	callVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_upstream_calls_total", ConstLabels: labels,
		Help: "Calls to an upstream service, by outcome (ok: an answer below 500; error: 5xx or no answer, after retries; breaker_open; budget_exhausted; canceled).",
	}, []string{"outcome"})
	errVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_upstream_errors_total", ConstLabels: labels,
		Help: "Failed attempts of calls to an upstream service, by kind (transport: no answer; status: a 5xx answer; timeout: no answer within the budget).",
	}, []string{"kind"})
	m := &metrics{
		calls:  map[string]prometheus.Counter{},
		errors: map[string]prometheus.Counter{},
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_upstream_retries_total", ConstLabels: labels,
			Help: "Retries of calls to an upstream service (attempts after the first).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_upstream_call_duration_seconds", ConstLabels: labels,
			// The storefront's HTTP buckets, which bracket the guide's
			// 100 ms and 500 ms budgets.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			Help:    "Time of one call to an upstream service, retries and backoff included.",
		}),
		reg: reg,
	}
	for _, o := range []string{outcomeOK, outcomeError, outcomeBreakerOpen, outcomeBudget, outcomeCanceled} {
		m.calls[o] = callVec.WithLabelValues(o)
	}
	for _, k := range []string{kindTransport, kindStatus, kindTimeout} {
		m.errors[k] = errVec.WithLabelValues(k)
	}
	if reg == nil {
		return m, nil
	}
	breaker := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_upstream_breaker_state", ConstLabels: labels,
		Help: "State of an upstream's circuit breaker: 0 closed, 1 open, 2 half-open.",
	}, state)
	for _, c := range []prometheus.Collector{callVec, errVec, m.retries, m.duration, breaker} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				return nil, fmt.Errorf("%w: %q", ErrAlreadyRegistered, name)
			}
			return nil, fmt.Errorf("upstream %s: metrics: %w", name, err)
		}
		m.registered = append(m.registered, c)
	}
	return m, nil
}

// unregister removes what newMetrics registered.
func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
	m.registered = nil
}
