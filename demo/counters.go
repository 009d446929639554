package demo

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// reading is the service's counters at one moment: what the demo needs to
// say what a stage changes.
type reading struct {
	queries    float64            // statements counted at the driver
	counted    bool               // queries were counted: the stage has a driver count
	calls      map[string]float64 // the replica router's calls, by pool
	shardCalls map[string]float64 // the shard router's calls, by shard
	cacheReads float64            // L1 hits and misses, over every cache
	cacheLoads float64            // loader calls, over every cache
	// answers counts the service's answers by endpoint and status code.
	answers map[string]map[string]float64
	// upCalls, upErrors and upRetries are the upstream clients' calls by
	// outcome, failed attempts by kind and retries, over every upstream.
	upCalls, upErrors map[string]float64
	upRetries         float64
	// page is the composite page's latency histogram in the service
	// (strata_http_request_duration_seconds): cumulative counts by
	// upper bound, +Inf included.
	page map[float64]float64
}

// read takes a reading of reg and of the driver's count n (nil: none).
func read(reg prometheus.Gatherer, n *atomic.Int64) (reading, error) {
	r := reading{calls: map[string]float64{}, shardCalls: map[string]float64{}, answers: map[string]map[string]float64{},
		upCalls: map[string]float64{}, upErrors: map[string]float64{}, page: map[float64]float64{}}
	if n != nil {
		r.queries, r.counted = float64(n.Load()), true
	}
	mfs, err := reg.Gather()
	if err != nil {
		return r, fmt.Errorf("demo: reading the service's metrics: %w", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := labels(m)
			switch mf.GetName() {
			case "strata_cache_hits_total", "strata_cache_misses_total":
				if l["level"] == "l1" {
					r.cacheReads += m.GetCounter().GetValue()
				}
			case "strata_cache_loads_total":
				r.cacheLoads += m.GetCounter().GetValue()
			case "strata_replica_query_duration_seconds":
				// A shard's own replica router (labelled by shard)
				// is counted by strata_shard_calls_total.
				if l["shard"] == "" {
					r.calls[l["pool"]] += float64(m.GetHistogram().GetSampleCount())
				}
			case "strata_shard_calls_total":
				r.shardCalls[l["shard"]] += m.GetCounter().GetValue()
			case "strata_upstream_calls_total":
				r.upCalls[l["outcome"]] += m.GetCounter().GetValue()
			case "strata_upstream_errors_total":
				r.upErrors[l["kind"]] += m.GetCounter().GetValue()
			case "strata_upstream_retries_total":
				r.upRetries += m.GetCounter().GetValue()
			case "strata_http_request_duration_seconds":
				if endpointName(l["method"], l["route"]) == pageEndpoint {
					h := m.GetHistogram()
					for _, b := range h.GetBucket() {
						r.page[b.GetUpperBound()] += float64(b.GetCumulativeCount())
					}
					r.page[math.Inf(1)] += float64(h.GetSampleCount())
				}
			case "strata_http_requests_total":
				ep := endpointName(l["method"], l["route"])
				if r.answers[ep] == nil {
					r.answers[ep] = map[string]float64{}
				}
				r.answers[ep][l["code"]] += m.GetCounter().GetValue()
			}
		}
	}
	return r, nil
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// endpointName is "METHOD /route": the route label may carry the method
// already (a Go 1.22 mux pattern), and promhttp writes methods lower-case.
func endpointName(method, route string) string {
	if strings.Contains(route, " ") {
		return route
	}
	return strings.ToUpper(method) + " " + route
}

// since sets what the stage changed between r0 and r, over requests sent,
// in res (the calls of res.Shards by name).
func (r reading) since(r0 reading, requests int64, res *StageResult) {
	n := float64(requests)
	switch {
	case len(r.calls) > 0:
		var all, primary float64
		for pool, c := range r.calls {
			all += c - r0.calls[pool]
			if pool == "primary" {
				primary += c - r0.calls[pool]
			}
		}
		res.Queries = perRequest(all, n)
		res.OnReplicas = perRequest(all-primary, all)
	case r.counted:
		res.Queries = perRequest(r.queries-r0.queries, n)
	}
	for i, sh := range res.Shards {
		res.Shards[i].Calls = perRequest(r.shardCalls[sh.Name]-r0.shardCalls[sh.Name], n)
	}
	if reads := r.cacheReads - r0.cacheReads; reads > 0 {
		res.HitRatio = max(0, 1-(r.cacheLoads-r0.cacheLoads)/reads)
	}
	res.Page = pageLatency(r.page, r0.page)
	res.Endpoints = nil
	for _, ep := range slices.Sorted(maps.Keys(r.answers)) {
		e := Endpoint{Name: ep}
		var codes []string
		for _, code := range slices.Sorted(maps.Keys(r.answers[ep])) {
			d := int64(r.answers[ep][code] - r0.answers[ep][code])
			e.Requests += d
			if d > 0 && code >= "400" {
				e.Failed += d
				codes = append(codes, fmt.Sprintf("%s ×%d", code, d))
				if code == "503" || code == "504" {
					e.Unavailable += d
				}
			}
		}
		e.Codes = strings.Join(codes, ", ")
		if e.Requests > 0 {
			res.Endpoints = append(res.Endpoints, e)
		}
	}
}

// upstreamSince is what the upstream clients counted between r0 and r.
func (r reading) upstreamSince(r0 reading) Upstream {
	u := Upstream{Calls: map[string]int64{}, Errors: map[string]int64{}, Retries: int64(r.upRetries - r0.upRetries)}
	for k, v := range r.upCalls {
		u.Calls[k] = int64(v - r0.upCalls[k])
	}
	for k, v := range r.upErrors {
		u.Errors[k] = int64(v - r0.upErrors[k])
	}
	return u
}

// pageEndpoint is the composite page, as endpointName writes it.
const pageEndpoint = "GET /users/{id}/home"

// pageLatency is the composite page's latency between two readings of
// its histogram: p50 and p99 interpolated within the buckets, as
// Prometheus's histogram_quantile does.
func pageLatency(h, h0 map[float64]float64) Latency {
	bounds := slices.Sorted(maps.Keys(h))
	n := h[math.Inf(1)] - h0[math.Inf(1)]
	if n <= 0 {
		return Latency{P50: math.NaN(), P99: math.NaN()}
	}
	q := func(want float64) float64 {
		rank := want * n
		lo, below := 0.0, 0.0
		for _, b := range bounds {
			c := h[b] - h0[b]
			if c >= rank {
				if math.IsInf(b, 1) {
					return lo // past the last bucket: its lower bound
				}
				return lo + (b-lo)*(rank-below)/max(c-below, 1e-9)
			}
			lo, below = b, c
		}
		return lo
	}
	return Latency{Count: int64(n), P50: q(0.5), P99: q(0.99)}
}
