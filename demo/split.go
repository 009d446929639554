package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/loadtest"
	"github.com/strata-dev/strata/storefront"
	"github.com/strata-dev/strata/upstream"
)

// recommendationsUpstream names the recommendation service in the
// storefront's upstream client (upstream="recommendations"), as `strata
// serve --recommendations-url` does.
const recommendationsUpstream = "recommendations"

// recoveryBound bounds the wait, after the recommendation service comes
// back, for its breaker to close and a page to have its recommendations
// again: the breaker probes after upstream.DefaultOpenTimeout (1 s), so
// this leaves several probes' worth of slack on a loaded machine.
const recoveryBound = 10 * time.Second

// fallbackShareDown is the least share of pages answered with fallback
// recommendations while the recommendation service stalls, and
// fallbackShareBack the most once it is back: every page falls back while
// it stalls (past the budget, or at once with the breaker open), and
// hardly any once it answers, so both hold with a wide margin.
const (
	fallbackShareDown = 0.5
	fallbackShareBack = 0.5
)

// Budgets is stage 3's budgets phase: the composite page GET
// /users/{id}/home alone, at the fixed rate, while the recommendation
// service stalls past the page's 500 ms budget for them, and again once
// the service is back.
type Budgets struct {
	// Down and Back are the page while the service stalls and after it
	// came back.
	Down, Back PagePhase
	// Recovery is how long after the service came back its breaker was
	// closed and a page had its recommendations again; Recovered is
	// false when that did not happen within recoveryBound.
	Recovery  time.Duration
	Recovered bool
}

// PagePhase is the composite page measured for one part of the budgets
// phase.
type PagePhase struct {
	// Report is the load test of the page (its latency from each
	// request's scheduled send, and errors), with the demo's verdicts on
	// fallbacks and the breaker added to loadtest's.
	Report loadtest.PhaseReport
	// Pages counts the page's 200 answers, as the storefront sent them,
	// and Fallbacks those whose recommendations were the fallback (the
	// popular products; "fallbacks": ["recommendations"]).
	Pages, Fallbacks int64
	// Upstream is what the storefront's client of the recommendation
	// service counted over the phase (strata_upstream_*), and Breaker its
	// breaker's state at the end.
	Upstream Upstream
	Breaker  string
}

// FallbackShare is the share of the page's answers that fell back; NaN
// without answers.
func (p PagePhase) FallbackShare() float64 {
	return perRequest(float64(p.Fallbacks), float64(p.Pages))
}

// Upstream is an upstream client's counters over a phase.
type Upstream struct {
	// Calls counts calls by outcome (ok, error, breaker_open,
	// budget_exhausted, canceled).
	Calls map[string]int64
	// Errors counts failed attempts by kind (transport, status,
	// timeout); Retries the attempts after a call's first.
	Errors  map[string]int64
	Retries int64
}

// split is stage 3's recommendation service, on a loopback listener of
// its own, and the storefront's client of it.
type split struct {
	gate   *stallGate
	client *upstream.Client
	reg    *prometheus.Registry // the service's own metrics (its cache's)
	close  func()
}

// startSplit serves the recommendation service over store, through its
// own L1 cache (as `strata serve --only recommendations` with the cache
// on), on a free loopback port, and returns the storefront's client of
// it, whose metrics go to reg.
func (j *journey) startSplit(ctx context.Context, store *storefront.Store, index int, reg prometheus.Registerer) (*split, error) {
	sreg := storefront.NewRegistry()
	c, err := storefront.NewCached(store, storefront.CacheConfig{Registerer: sreg, Logger: j.log,
		Namespace: fmt.Sprintf("demo%d-%d-recommendations", time.Now().UnixNano(), index)})
	if err != nil {
		return nil, err
	}
	gate := &stallGate{next: storefront.NewRecommendationHandler(c, storefront.HandlerConfig{Registerer: sreg, Gatherer: sreg, Logger: j.log})}
	srv := storefront.NewServer("127.0.0.1:0", gate)
	srv.ErrorLog = slog.NewLogLogger(j.log.Handler(), slog.LevelWarn)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("demo: listen: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- storefront.Serve(sctx, srv, ln) }()
	client, err := upstream.New(recommendationsUpstream, "http://"+ln.Addr().String(), upstream.Config{Registerer: reg, Logger: j.log})
	if err != nil {
		stop()
		<-served
		c.Close()
		return nil, err
	}
	return &split{gate: gate, client: client, reg: sreg, close: func() {
		gate.release()
		client.Close()
		stop()
		if err := <-served; err != nil {
			j.log.Warn("demo: the recommendation service", "err", err)
		}
		c.Close()
	}}, nil
}

// stallGate holds every request to the handler it wraps while it is
// shut, until the caller gives up (the storefront's budget) or the gate
// opens: the recommendation service alive to the network but answering
// nothing, the failure a budget exists for.
type stallGate struct {
	next http.Handler
	held atomic.Pointer[chan struct{}] // nil while requests pass
	// waiting and gaveUp, when set, are told when a request starts to
	// wait at the gate and when one leaves it unserved: a test seam.
	waiting, gaveUp func()
}

func (g *stallGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ch := g.held.Load(); ch != nil {
		if g.waiting != nil {
			g.waiting()
		}
		select {
		case <-*ch:
		case <-r.Context().Done():
			if g.gaveUp != nil {
				g.gaveUp()
			}
			return // the caller gave up; no one reads an answer
		}
	}
	g.next.ServeHTTP(w, r)
}

// stall shuts the gate.
func (g *stallGate) stall() {
	ch := make(chan struct{})
	g.held.Store(&ch)
}

// release opens the gate and lets the held requests through.
func (g *stallGate) release() {
	if ch := g.held.Swap(nil); ch != nil {
		close(*ch)
	}
}

// pageCounter counts the composite page's 200 answers, and those whose
// recommendations fell back (storefront.FallbackHeader names them), as
// the storefront sends them.
type pageCounter struct {
	next             http.Handler
	pages, fallbacks atomic.Int64
}

func (p *pageCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/users/") || !strings.HasSuffix(r.URL.Path, "/home") {
		p.next.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	p.next.ServeHTTP(sw, r)
	if sw.status != http.StatusOK {
		return
	}
	p.pages.Add(1)
	if strings.HasPrefix(w.Header().Get(storefront.FallbackHeader), "recommendations") {
		p.fallbacks.Add(1)
	}
}

// counts returns the pages and fallbacks counted so far.
func (p *pageCounter) counts() (pages, fallbacks int64) { return p.pages.Load(), p.fallbacks.Load() }

// statusWriter records the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// budgets runs stage 3's budgets phase against the storefront at base:
// the page with the recommendation service stalled, then the wait for it
// to recover, then the page again.
func (j *journey) budgets(ctx context.Context, st stage, base string, sp *split, pc *pageCounter, reg prometheus.Gatherer) (*Budgets, error) {
	b := &Budgets{}
	sp.gate.stall()
	down, err := j.pagePhase(ctx, st, base, "recommendations down", j.t.BudgetDown, sp, pc, reg)
	sp.gate.release()
	if err != nil {
		return nil, err
	}
	judgePage(&down, true)
	b.Down = down
	b.Recovery, b.Recovered = waitRecovered(ctx, base, j.cfg.Users, sp.client)
	back, err := j.pagePhase(ctx, st, base, "recommendations back", j.t.BudgetBack, sp, pc, reg)
	if err != nil {
		return nil, err
	}
	judgePage(&back, false)
	b.Back = back
	return b, nil
}

// pagePhase runs the page alone at the fixed rate for d and reads what
// the storefront and its upstream client counted meanwhile.
func (j *journey) pagePhase(ctx context.Context, st stage, base, name string, d time.Duration, sp *split, pc *pageCounter, reg prometheus.Gatherer) (PagePhase, error) {
	p, err := planOf(j.t, st.short+": "+name, base, 0, j.cfg, homeOnly,
		&constantPhase{Name: name, Rate: j.cfg.Rate, Duration: d, Criteria: j.t.budgetCriteria, Connections: wideConnections})
	if err != nil {
		return PagePhase{}, err
	}
	before, err := read(reg, nil)
	if err != nil {
		return PagePhase{}, err
	}
	pages0, falls0 := pc.counts()
	r, err := p.Run(ctx, loadtest.RunOptions{})
	if err != nil {
		return PagePhase{}, fmt.Errorf("demo: %s: %s: %w", st.short, name, err)
	}
	after, err := read(reg, nil)
	if err != nil {
		return PagePhase{}, err
	}
	pages, falls := pc.counts()
	return PagePhase{Report: r.Phases[0], Pages: pages - pages0, Fallbacks: falls - falls0,
		Upstream: after.upstreamSince(before), Breaker: sp.client.State().String()}, nil
}

// judgePage adds the demo's verdicts on the page's fallbacks to its
// load test's: while the service is down (down) most pages fall back,
// once it is back most do not and the breaker is closed.
func judgePage(p *PagePhase, down bool) {
	share := p.FallbackShare()
	v := loadtest.CriterionVerdict{Actual: share, Status: loadtest.StatusPassed}
	if down {
		v.Criterion = fmt.Sprintf("fallback_share>%.0f%%", 100*fallbackShareDown)
		if !(share > fallbackShareDown) {
			v.Status = loadtest.StatusFailed
		}
	} else {
		v.Criterion = fmt.Sprintf("fallback_share<%.0f%%", 100*fallbackShareBack)
		if !(share < fallbackShareBack) {
			v.Status = loadtest.StatusFailed
		}
	}
	v.Detail = fmt.Sprintf("%d of %d pages answered with fallback recommendations", p.Fallbacks, p.Pages)
	if p.Pages == 0 {
		v.Status, v.Actual, v.Detail = loadtest.StatusFailed, 0, "no page was answered 200"
		v.Unmeasured = true
	}
	addVerdict(&p.Report, v)
	if !down {
		b := loadtest.CriterionVerdict{Criterion: "breaker=closed", Status: loadtest.StatusPassed, Detail: "the breaker is " + p.Breaker}
		if p.Breaker != upstream.StateClosed.String() {
			b.Status = loadtest.StatusFailed
		}
		addVerdict(&p.Report, b)
	}
}

// addVerdict adds v to ph's verdicts; a failed one fails the phase.
func addVerdict(ph *loadtest.PhaseReport, v loadtest.CriterionVerdict) {
	ph.Verdicts = append(ph.Verdicts, v)
	if v.Status == loadtest.StatusFailed && ph.Status == loadtest.StatusPassed {
		ph.Status = loadtest.StatusFailed
	}
}

// waitRecovered asks for pages, one at a time, until the client's
// breaker is closed and a page has its recommendations, for at most
// recoveryBound; it returns how long that took, and whether it happened.
func waitRecovered(ctx context.Context, base string, users int, client *upstream.Client) (time.Duration, bool) {
	start := time.Now()
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	for user := 1; time.Since(start) < recoveryBound && ctx.Err() == nil; user++ {
		resp, err := hc.Get(fmt.Sprintf("%s/users/%d/home", base, 1+user%users))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get(storefront.FallbackHeader) == "" && client.State() == upstream.StateClosed {
				return time.Since(start), true
			}
		}
		if sleep(ctx, 20*time.Millisecond) != nil {
			break
		}
	}
	return time.Since(start), false
}
