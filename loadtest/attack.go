package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Defaults of an attack.
const (
	DefaultConnections = 100                   // Strata: requests in flight at most, and connections kept
	DefaultTimeout     = 30 * time.Second      // Strata: a request not answered by then is an error
	maxLatency         = time.Hour             // the histograms' range
	sigFigs            = 3                     // the histograms' precision: 0.1 %
	lateAfter          = time.Millisecond      // a send that waits longer than this for a connection is late
	maxNap             = 10 * time.Millisecond // the schedule's longest sleep between looks at its context
	saturatedCPU       = 0.9                   // a generator using more of its CPUs than this warns that it may be the bottleneck
)

// ErrBadAttack is returned (wrapped) for an attack that cannot run; the
// message names the field.
var ErrBadAttack = errors.New("loadtest: bad attack")

// Target is one request to send.
type Target struct {
	Method string // default GET
	URL    string
	Header http.Header
	Body   []byte
}

// Attack is one constant-rate, or as-fast-as-possible, run.
type Attack struct {
	Targets []Target // sent in turn
	// Rate is requests per second on an open model: each is sent at its
	// scheduled time whether or not earlier ones have returned. 0 means as
	// fast as Connections allow (a closed model).
	Rate float64
	// Duration is how long requests are sent.
	Duration time.Duration
	// Connections bounds the requests in flight (and the connections
	// kept); a scheduled send with none free waits and is counted late.
	Connections int
	// Timeout bounds one request.
	Timeout time.Duration
	// Client sends the requests; nil means one built for the attack.
	Client *http.Client
}

// Result is what an attack measured. Latency runs from a request's
// scheduled send time, so a server that makes the generator fall behind
// pays for the requests it delayed (no coordinated omission);
// UncorrectedLatency runs from the actual send, as closed-model tools
// report it.
type Result struct {
	Requests, Errors int64
	// Late counts scheduled sends that found every one of Connections with
	// a request in flight, and so waited for one. Skipped counts scheduled
	// sends never made: the schedule fell more than a second behind, or
	// the run was cancelled.
	Late, Skipped int64
	Elapsed       time.Duration
	AchievedRPS   float64
	// ErrorsByKind counts errors by "status NNN", "timeout" or "connection".
	ErrorsByKind       map[string]int64
	Latency            *hdrhistogram.Histogram // microseconds
	UncorrectedLatency *hdrhistogram.Histogram // microseconds
	// GeneratorCPU is the share of the machine's CPUs (GOMAXPROCS) this
	// process used during the run; near 1 the generator itself was the
	// bottleneck and the figures are unreliable. 0 where not measured.
	GeneratorCPU float64
	// ScheduleLag is how far behind its schedule each send started: the
	// generator's own error (timer resolution, its CPU) plus any wait for
	// a connection. Corrected latencies include it.
	ScheduleLag *hdrhistogram.Histogram // microseconds
}

func (a *Attack) validate() error {
	if len(a.Targets) == 0 {
		return fmt.Errorf("%w: Targets: none", ErrBadAttack)
	}
	for i, t := range a.Targets {
		if field, msg := targetError(t); msg != "" {
			return fmt.Errorf("%w: %s: %s", ErrBadAttack, goPath(fmt.Sprintf("targets[%d].%s", i, field)), msg)
		}
	}
	switch {
	case badRate(a.Rate, MaxRate):
		return fmt.Errorf("%w: Rate: %v: want requests per second, 0 (as fast as possible) to %d", ErrBadAttack, a.Rate, MaxRate)
	case a.Duration <= 0 || a.Duration > maxDuration:
		return fmt.Errorf("%w: Duration: %v: want a positive duration up to %v", ErrBadAttack, a.Duration, maxDuration)
	case a.Connections < 0 || a.Connections > MaxConnections:
		return fmt.Errorf("%w: Connections: %d: want 1 to %d requests in flight", ErrBadAttack, a.Connections, MaxConnections)
	case a.Timeout < 0 || a.Timeout > maxLatency:
		return fmt.Errorf("%w: Timeout: %v is outside 0 to %v", ErrBadAttack, a.Timeout, maxLatency)
	case a.Rate > 0 && constant(a.Rate, a.Duration).total(0) == 0:
		return fmt.Errorf("%w: Rate: %v a second for %v makes no request", ErrBadAttack, a.Rate, a.Duration)
	}
	if a.Connections == 0 {
		a.Connections = DefaultConnections
	}
	if a.Timeout == 0 {
		a.Timeout = DefaultTimeout
	}
	return nil
}

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxLatency.Microseconds(), sigFigs)
}

// newResult returns an empty Result, its histograms ready.
func newResult() *Result {
	return &Result{ErrorsByKind: map[string]int64{}, Latency: newHistogram(), UncorrectedLatency: newHistogram(), ScheduleLag: newHistogram()}
}

// add adds o to r: its counts, its errors by kind and those of its
// histograms it has; the generator's CPU is the higher of the two. The
// rate and the elapsed time are the caller's to set.
func (r *Result) add(o *Result) {
	r.Requests += o.Requests
	r.Errors += o.Errors
	r.Late += o.Late
	r.Skipped += o.Skipped
	addKinds(&r.ErrorsByKind, o.ErrorsByKind)
	for _, h := range []struct{ to, from *hdrhistogram.Histogram }{
		{r.Latency, o.Latency}, {r.UncorrectedLatency, o.UncorrectedLatency}, {r.ScheduleLag, o.ScheduleLag},
	} {
		if h.from != nil {
			h.to.Merge(h.from)
		}
	}
	r.GeneratorCPU = max(r.GeneratorCPU, o.GeneratorCPU)
}

// countKind counts one error of kind in *kinds, making the map when needed.
func countKind(kinds *map[string]int64, kind string) {
	if *kinds == nil {
		*kinds = map[string]int64{}
	}
	(*kinds)[kind]++
}

// addKinds adds the error counts of src to *dst, making it when needed.
func addKinds(dst *map[string]int64, src map[string]int64) {
	for k, v := range src {
		if *dst == nil {
			*dst = map[string]int64{}
		}
		(*dst)[k] += v
	}
}

// Run sends the attack and returns what it measured. It stops at the end
// of Duration or when ctx ends, waits for requests in flight, and never
// takes longer than Duration plus Timeout (plus a second for a schedule
// that fell behind to catch up).
func (a Attack) Run(ctx context.Context) (*Result, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	e := &engine{
		prof: constant(a.Rate, a.Duration), max: a.Rate == 0,
		connections: a.Connections, timeout: a.Timeout, client: a.Client,
		source: func(int) func(uint64) Target {
			return func(n uint64) Target { return a.Targets[n%uint64(len(a.Targets))] }
		},
	}
	return e.run(ctx).Result, nil
}

// Summary is a Result in the form `strata loadtest attack --json` writes.
type Summary struct {
	Requests           int64            `json:"requests"`
	Errors             int64            `json:"errors"`
	Late               int64            `json:"late"`
	Skipped            int64            `json:"skipped"`
	ElapsedSeconds     float64          `json:"elapsed_seconds"`
	AchievedRPS        float64          `json:"achieved_rps"`
	ErrorsByKind       map[string]int64 `json:"errors_by_kind"`
	LatencyMS          Percentiles      `json:"latency_ms"`
	UncorrectedLatency Percentiles      `json:"uncorrected_latency_ms"`
	ScheduleLag        Percentiles      `json:"schedule_lag_ms"`
	GeneratorCPU       float64          `json:"generator_cpu"`
}

// Percentiles are latency percentiles in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P95: ms(h.ValueAtQuantile(95)),
		P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max()),
	}
}

// Summary returns r's figures for reports.
func (r *Result) Summary() Summary {
	return Summary{
		Requests: r.Requests, Errors: r.Errors, Late: r.Late, Skipped: r.Skipped, ElapsedSeconds: r.Elapsed.Seconds(),
		AchievedRPS: r.AchievedRPS, ErrorsByKind: r.ErrorsByKind,
		LatencyMS: percentiles(r.Latency), UncorrectedLatency: percentiles(r.UncorrectedLatency),
		ScheduleLag: percentiles(r.ScheduleLag), GeneratorCPU: r.GeneratorCPU,
	}
}

// Format writes the summary as the terminal shows it.
func (s Summary) Format(w io.Writer) {
	fmt.Fprintf(w, "requests  %d in %.2fs, %.1f/s achieved, %d errors, %d late, %d skipped\n", s.Requests, s.ElapsedSeconds, s.AchievedRPS, s.Errors, s.Late, s.Skipped)
	l, u := s.LatencyMS, s.UncorrectedLatency
	fmt.Fprintf(w, "latency   p50 %.2fms  p90 %.2fms  p95 %.2fms  p99 %.2fms  max %.2fms (from the scheduled send)\n", l.P50, l.P90, l.P95, l.P99, l.Max)
	fmt.Fprintf(w, "          p50 %.2fms  p90 %.2fms  p95 %.2fms  p99 %.2fms  max %.2fms (from the actual send, uncorrected)\n", u.P50, u.P90, u.P95, u.P99, u.Max)
	if s.GeneratorCPU > saturatedCPU {
		fmt.Fprintf(w, "warning   the generator used %.0f%% of the CPUs it may use: it may have been the bottleneck, and the figures are unreliable\n", 100*s.GeneratorCPU)
	}
	if g := s.ScheduleLag; g.P99 > 1 {
		fmt.Fprintf(w, "warning   sends started up to %.2fms (p99) after their scheduled time; the corrected latencies include it\n", g.P99)
		if s.Late == 0 {
			fmt.Fprintf(w, "          (no send waited for a connection: the lag is the generator's own, its timers or its CPU)\n")
		}
	}
	kinds := make([]string, 0, len(s.ErrorsByKind))
	for k := range s.ErrorsByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "errors    %s: %d\n", k, s.ErrorsByKind[k])
	}
}
