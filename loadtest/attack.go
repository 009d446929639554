package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
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
	// a request in flight, and so waited for one.
	Late        int64
	Elapsed     time.Duration
	AchievedRPS float64
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
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: Targets[%d].URL: %q is not an http:// or https:// URL with a host", ErrBadAttack, i, t.URL)
		}
	}
	switch {
	case a.Rate < 0:
		return fmt.Errorf("%w: Rate: %v is negative", ErrBadAttack, a.Rate)
	case a.Duration <= 0:
		return fmt.Errorf("%w: Duration: %v must be positive", ErrBadAttack, a.Duration)
	case a.Connections < 0:
		return fmt.Errorf("%w: Connections: %d is negative", ErrBadAttack, a.Connections)
	case a.Timeout < 0 || a.Timeout > maxLatency:
		return fmt.Errorf("%w: Timeout: %v is outside 0 to %v", ErrBadAttack, a.Timeout, maxLatency)
	}
	if a.Connections == 0 {
		a.Connections = DefaultConnections
	}
	if a.Timeout == 0 {
		a.Timeout = DefaultTimeout
	}
	return nil
}

// worker is one sender's private tallies, merged at the end, so that
// senders share nothing while they run.
type worker struct {
	requests, errors   int64
	kinds              map[string]int64
	lat, raw, schedLag *hdrhistogram.Histogram
}

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxLatency.Microseconds(), sigFigs)
}

// Run sends the attack and returns what it measured. It stops at the end
// of Duration or when ctx ends, waits for requests in flight, and never
// takes longer than Duration plus Timeout.
func (a Attack) Run(ctx context.Context) (*Result, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	client := a.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = a.Connections
		tr.MaxConnsPerHost = a.Connections
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(ctx, a.Duration)
	defer cancel()

	start, cpu0 := time.Now(), processCPU()
	var ticks chan time.Time // scheduled send times; nil in max mode
	var late int64           // written by schedule, read after it ends
	var busy atomic.Int64    // senders with a request in flight
	scheduled := make(chan struct{})
	if a.Rate > 0 {
		ticks = make(chan time.Time)
		go func() {
			defer close(scheduled)
			late = schedule(ctx, start, start.Add(a.Duration), a.Rate, ticks, &busy, int64(a.Connections))
		}()
	} else {
		close(scheduled)
	}
	workers := make([]*worker, a.Connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{kinds: map[string]int64{}, lat: newHistogram(), raw: newHistogram(), schedLag: newHistogram()}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ; n += len(workers) {
				var intended time.Time
				if ticks != nil {
					t, ok := <-ticks
					if !ok {
						return
					}
					intended = t
				} else if ctx.Err() != nil {
					return
				}
				busy.Add(1)
				sent := time.Now()
				if intended.IsZero() {
					intended = sent
				}
				_ = w.schedLag.RecordValue(max(sent.Sub(intended).Microseconds(), 0))
				kind := a.send(client, a.Targets[n%len(a.Targets)])
				done := time.Now()
				busy.Add(-1)
				w.requests++
				_ = w.lat.RecordValue(max(done.Sub(intended).Microseconds(), 1))
				_ = w.raw.RecordValue(max(done.Sub(sent).Microseconds(), 1))
				if kind != "" {
					w.errors++
					w.kinds[kind]++
				}
			}
		}()
	}
	wg.Wait()
	<-scheduled
	res := &Result{Elapsed: time.Since(start), ErrorsByKind: map[string]int64{}, Late: late,
		Latency: newHistogram(), UncorrectedLatency: newHistogram(), ScheduleLag: newHistogram()}
	for _, w := range workers {
		res.Requests += w.requests
		res.Errors += w.errors
		res.ScheduleLag.Merge(w.schedLag)
		for k, v := range w.kinds {
			res.ErrorsByKind[k] += v
		}
		res.Latency.Merge(w.lat)
		res.UncorrectedLatency.Merge(w.raw)
	}
	if s := res.Elapsed.Seconds(); s > 0 {
		res.AchievedRPS = float64(res.Requests) / s
		if cpu := processCPU() - cpu0; cpu > 0 {
			res.GeneratorCPU = cpu.Seconds() / s / float64(runtime.GOMAXPROCS(0))
		}
	}
	return res, nil
}

// schedule sends the scheduled time of each request, rate per second from
// start until end (or until ctx ends); then it closes ticks and returns how
// many sends found every sender with a request in flight.
func schedule(ctx context.Context, start, end time.Time, rate float64, ticks chan<- time.Time, busy *atomic.Int64, conns int64) (late int64) {
	defer close(ticks)
	// Go's timers can wake a lightly loaded process up to a millisecond
	// late, which the open model would charge to the target. The schedule
	// sleeps on an OS thread of its own (with nanosleep on Unix, see nap),
	// which wakes within tens of microseconds: a p99 schedule lag of
	// 0.27 ms against 1.2 ms with a timer, at 3,000/s.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	interval := time.Duration(float64(time.Second) / rate)
	for i := int64(0); ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) {
			return // exactly rate × duration sends, not one more at the end
		}
		for d := time.Until(at); d > 0; d = time.Until(at) {
			if ctx.Err() != nil {
				return
			}
			nap(min(d, maxNap)) // look at ctx now and then
		}
		select {
		case ticks <- at: // a worker was waiting
			continue
		default:
		}
		// No sender waiting: either all have a request in flight (the
		// bound is hit: late), or they are only waiting for a CPU, which
		// the schedule lag shows.
		if busy.Load() >= conns {
			late++
		}
		select {
		case <-ctx.Done():
			return
		case ticks <- at:
		}
	}
}

// send makes one request and returns "" or the kind of its failure. Its
// own timeout is separate from the attack's end: a request sent in time is
// waited for.
func (a Attack) send(client *http.Client, t Target) string {
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if t.Body != nil {
		body = bytes.NewReader(t.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.URL, body)
	if err != nil {
		return "request"
	}
	for k, v := range t.Header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "connection"
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return "connection"
	case resp.StatusCode >= 400:
		return "status " + strconv.Itoa(resp.StatusCode)
	}
	return ""
}

// Summary is a Result in the form `strata loadtest attack --json` writes.
type Summary struct {
	Requests           int64            `json:"requests"`
	Errors             int64            `json:"errors"`
	Late               int64            `json:"late"`
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
		Requests: r.Requests, Errors: r.Errors, Late: r.Late, ElapsedSeconds: r.Elapsed.Seconds(),
		AchievedRPS: r.AchievedRPS, ErrorsByKind: r.ErrorsByKind,
		LatencyMS: percentiles(r.Latency), UncorrectedLatency: percentiles(r.UncorrectedLatency),
		ScheduleLag: percentiles(r.ScheduleLag), GeneratorCPU: r.GeneratorCPU,
	}
}

// Format writes the summary as the terminal shows it.
func (s Summary) Format(w io.Writer) {
	fmt.Fprintf(w, "requests  %d in %.2fs, %.1f/s achieved, %d errors, %d late\n", s.Requests, s.ElapsedSeconds, s.AchievedRPS, s.Errors, s.Late)
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
