package loadtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestWriteHTML renders a synthetic four-phase report and checks that the
// page is whole, fetches nothing, escapes what the plan says, and carries
// the report as JSON. With STRATA_HTML_OUT set it also writes the page
// there, for scripts/check-report to open in a browser.
func TestWriteHTML(t *testing.T) {
	rep := syntheticReport()
	page := renderHTML(t, rep)
	if out := os.Getenv("STRATA_HTML_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", out, len(page))
	}

	for _, ph := range rep.Phases {
		if !strings.Contains(page, ">"+template.HTMLEscapeString(ph.Name)+"<") {
			t.Errorf("phase %q is not on the page", ph.Name)
		}
		for _, v := range ph.Verdicts {
			if !strings.Contains(page, ">"+template.HTMLEscapeString(v.Criterion)+"<") {
				t.Errorf("%s: criterion %q is not on the page", ph.Name, v.Criterion)
			}
		}
		if ph.Error != "" && !strings.Contains(page, template.HTMLEscapeString(ph.Error)) {
			t.Errorf("%s: its error %q is not on the page", ph.Name, ph.Error)
		}
	}
	for _, s := range []string{
		`<span class="status FAILED">FAILED</span>`, // the overall verdict, coloured
		`<span class="badge ERROR">ERROR</span>`,    // a criterion that could not be measured
		template.HTMLEscapeString(rep.Assessment.Summary),
		"breaking_point&gt;=1000/s", // a criterion's operator, escaped as text
		"750 req/s",                 // its actual value with its unit
		`data-phase="3"`,            // a chart box for the last phase
	} {
		if !strings.Contains(page, s) {
			t.Errorf("the page lacks %q", s)
		}
	}

	// Offline: nothing that makes a browser fetch.
	for _, s := range []string{`src="http`, `href="http`, `url(http`, "@import", "fetch(", "XMLHttpRequest", "<link"} {
		if strings.Contains(page, s) {
			t.Errorf("the page contains %q", s)
		}
	}
	if !strings.Contains(page, uplotJS) || !strings.Contains(page, uplotCSS) {
		t.Error("uPlot is not inlined")
	}
	if !strings.Contains(page, "Copyright (c) 2022 Leon Sorokin") {
		t.Error("uPlot's licence is not on the page")
	}
	checkCSP(t, page)

	got := reportData(t, page)
	if got.Plan != rep.Plan || len(got.Phases) != len(rep.Phases) {
		t.Fatalf("JSON: plan %q with %d phases, want %q with %d", got.Plan, len(got.Phases), rep.Plan, len(rep.Phases))
	}
	for i, ph := range rep.Phases {
		g := got.Phases[i]
		if g.Name != ph.Name || len(g.Series) != len(ph.Series) || len(g.Steps) != len(ph.Steps) || len(g.Verdicts) != len(ph.Verdicts) {
			t.Errorf("JSON phase %d: %q with %d points, %d steps, %d verdicts; want %q with %d, %d, %d", i,
				g.Name, len(g.Series), len(g.Steps), len(g.Verdicts), ph.Name, len(ph.Series), len(ph.Steps), len(ph.Verdicts))
		}
		if g.Histograms != (Histograms{}) || len(g.Series) > 0 && g.Series[0].Histogram != "" {
			t.Errorf("JSON phase %d: histograms are inlined; the page does not use them", i)
		}
		for j, p := range ph.Series {
			if (p.TargetCPU == nil) != (g.Series[j].TargetCPU == nil) {
				t.Fatalf("JSON phase %d second %d: target CPU %v, want %v", i, j, g.Series[j].TargetCPU, p.TargetCPU)
			}
		}
	}
	if rep.Phases[0].Series[0].Histogram == "" {
		t.Error("WriteHTML cleared the caller's histograms")
	}
}

// TestWriteHTMLEscapes puts markup in every string a plan or a run
// controls and checks that none of it leaves its element: the page has
// exactly its own three scripts, and the JSON still holds the text as
// written.
func TestWriteHTMLEscapes(t *testing.T) {
	const evil = `</script><script>alert(1)</script><!--`
	rep := syntheticReport()
	rep.Plan = evil
	rep.Target = `http://x/"><img src=x onerror=alert(2)>`
	rep.Phases[0].Name = evil
	rep.Phases[0].Verdicts[0].Detail = evil
	rep.Phases[3].Error = `]]></script>` + "\u2028" + `<script>alert(3)</script>`
	rep.Assessment.Findings = append(rep.Assessment.Findings, evil)
	page := renderHTML(t, rep)

	if n := strings.Count(page, "<script"); n != 3 {
		t.Errorf("the page has %d <script elements, want 3", n)
	}
	if n := strings.Count(page, "</script>"); n != 3 {
		t.Errorf("the page has %d </script> tags, want 3", n)
	}
	for _, s := range []string{"<script>alert", "<img", "<!--"} {
		if strings.Contains(page, s) {
			t.Errorf("the page contains %q unescaped", s)
		}
	}
	if !strings.Contains(page, "&lt;/script&gt;&lt;script&gt;alert(1)") {
		t.Error("the plan's name is not shown escaped")
	}
	got := reportData(t, page)
	if got.Plan != evil || got.Phases[0].Name != evil || got.Phases[3].Error != rep.Phases[3].Error {
		t.Errorf("JSON: plan %q, phase %q, error %q: the text did not round-trip", got.Plan, got.Phases[0].Name, got.Phases[3].Error)
	}
}

// TestWriteHTMLInf checks that a figure JSON cannot hold is an error, not
// a page without data.
func TestWriteHTMLInf(t *testing.T) {
	rep := syntheticReport()
	rep.Phases[2].Measures["latency_increase"] = math.Inf(1)
	if err := rep.WriteHTML(io.Discard); err == nil || !strings.Contains(err.Error(), "+Inf") {
		t.Errorf("WriteHTML with an infinite measure: %v, want an error naming +Inf", err)
	}
}

// TestWriteHTMLEmpty renders a report of a run that stopped before its
// first phase.
func TestWriteHTMLEmpty(t *testing.T) {
	page := renderHTML(t, &Report{Assessment: Assessment{Status: StatusError, Summary: "no phase ran"}})
	if !strings.Contains(page, "No phase ran.") {
		t.Error("the page does not say that no phase ran")
	}
	if got := reportData(t, page); len(got.Phases) != 0 {
		t.Errorf("JSON: %d phases, want none", len(got.Phases))
	}
}

func TestHTMLNum(t *testing.T) {
	for _, c := range []struct {
		f    float64
		prec int
		want string
	}{
		{0, 2, "0"},                           // no trailing ".00"
		{12.5, 2, "12.5"},                     // trailing zeros trimmed
		{0.126, 2, "0.13"},                    // rounded to prec
		{123.456, 2, "123.5"},                 // one decimal from 100
		{1234.6, 2, "1\u2009235"},             // none from 1000, thousands spaced
		{-9876543, 0, "-9\u2009876\u2009543"}, // the sign outside the groups
	} {
		if got := htmlNum(c.f, c.prec); got != c.want {
			t.Errorf("htmlNum(%v, %d) = %q, want %q", c.f, c.prec, got, c.want)
		}
	}
}

func renderHTML(t *testing.T, rep *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var dataScript = regexp.MustCompile(`(?s)<script type="application/json" id="report-data">(.*?)</script>`)

// reportData decodes the report the page carries for its charts.
func reportData(t *testing.T, page string) *Report {
	t.Helper()
	m := dataScript.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the page has no report-data script")
	}
	var rep Report
	if err := json.Unmarshal([]byte(m[1]), &rep); err != nil {
		t.Fatalf("the report-data script is not a report: %v", err)
	}
	return &rep
}

var (
	cspMeta      = regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`)
	inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
)

// checkCSP checks that the page forbids fetching anything and allows each
// of its inline scripts by hash, as a browser would.
func checkCSP(t *testing.T, page string) {
	t.Helper()
	m := cspMeta.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the page has no Content-Security-Policy")
	}
	csp := strings.ReplaceAll(strings.ReplaceAll(m[1], "&#39;", "'"), "&#43;", "+")
	if !strings.HasPrefix(csp, "default-src 'none';") {
		t.Errorf("CSP %q does not start with default-src 'none'", csp)
	}
	scripts := inlineScript.FindAllStringSubmatch(page, -1)
	if len(scripts) != 2 {
		t.Fatalf("%d inline scripts, want 2 (uPlot and ours)", len(scripts))
	}
	for _, s := range scripts {
		sum := sha256.Sum256([]byte(s[1]))
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, h) {
			t.Errorf("CSP %q lacks %s, the hash of a script starting %.40q", csp, h, s[1])
		}
	}
}

// syntheticReport is a plausible run of the default plan against a service
// that holds about 800 requests/s: the baseline passes (with the target's
// metrics), the stress phase finds a breaking point under the plan's
// peak, the spike passes, and the endurance phase cannot judge memory
// because its scrape failed.
func syntheticReport() *Report {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(v, frac float64) float64 { return v * (1 + frac*(2*rng.Float64()-1)) }
	start := time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)
	const n = 60
	fake := strings.Repeat("HISTogram", 40) // stands for an encoded histogram

	// point is one second at asked req/s against a service that serves
	// cap of them; past it latency climbs and requests fail.
	point := func(sec int, asked, capacity, base float64) Point {
		load := asked / capacity
		achieved := noise(math.Min(asked, capacity*1.05), 0.02)
		errs := 0.0
		if load > 1 {
			errs = achieved * math.Min(0.4, (load-1)*0.5)
		} else if rng.Float64() < 0.05 {
			errs = 1
		}
		slow := 1 + 6*math.Pow(math.Max(load-0.7, 0)/0.3, 3)
		p50 := noise(base*slow, 0.08)
		return Point{
			Second: sec, AskedRPS: asked, Requests: int64(achieved), Errors: int64(errs),
			P50MS: p50, P90MS: noise(p50*1.6, 0.08), P99MS: noise(p50*3.2, 0.15), MaxMS: noise(p50*6, 0.4),
			Histogram: fake,
		}
	}
	summary := func(series []Point) Summary {
		var s Summary
		var p50, p99, mx float64
		for _, p := range series {
			s.Requests += p.Requests
			s.Errors += p.Errors
			p50 += p.P50MS
			p99 = math.Max(p99, p.P99MS)
			mx = math.Max(mx, p.MaxMS)
		}
		s.ElapsedSeconds = float64(len(series))
		s.AchievedRPS = float64(s.Requests) / s.ElapsedSeconds
		s.LatencyMS = Percentiles{P50: p50 / float64(len(series)), P90: 1.6 * p50 / float64(len(series)), P95: 0.8 * p99, P99: 0.9 * p99, Max: mx}
		s.UncorrectedLatency = s.LatencyMS
		s.GeneratorCPU = noise(0.2, 0.3)
		if s.Errors > 0 {
			s.ErrorsByKind = map[string]int64{"http 503": s.Errors * 7 / 10, "timeout": s.Errors - s.Errors*7/10}
		}
		return s
	}
	ptr := func(f float64) *float64 { return &f }

	// baseline: 200/s, with the target's CPU, RSS and goroutines; its
	// first second has no CPU rate and two scrapes failed.
	var baseline []Point
	for s := range n {
		p := point(s, 200, 820, 6)
		if s != 17 && s != 41 {
			if s > 0 {
				p.TargetCPU = ptr(noise(0.42, 0.12))
			}
			p.TargetRSS = ptr(noise(182e6+float64(s)*0.15e6, 0.01))
			p.TargetGoroutines = ptr(math.Round(noise(64, 0.1)))
		}
		baseline = append(baseline, p)
	}

	// stress: the breaking-point search, 10 s per probe.
	steps := []Step{
		{Purpose: "ramp", AskedRPS: 250, Passed: true},
		{Purpose: "ramp", AskedRPS: 500, Passed: true},
		{Purpose: "ramp", AskedRPS: 1000},
		{Purpose: "bisect", AskedRPS: 750, Passed: true},
		{Purpose: "bisect", AskedRPS: 875},
		{Purpose: "recovery", AskedRPS: 250, Passed: true},
	}
	var stress []Point
	for k := range steps {
		var sum, errs, p99 float64
		for s := range n / len(steps) {
			p := point(k*10+s, steps[k].AskedRPS, 820, 6)
			stress = append(stress, p)
			sum += float64(p.Requests)
			errs += float64(p.Errors)
			p99 = math.Max(p99, p.P99MS)
		}
		steps[k].AchievedRPS, steps[k].P99MS, steps[k].ErrorRate = sum/10, p99, errs/math.Max(sum, 1)
	}

	// spike: 200/s, then 1,200/s from 20 s to 30 s.
	var spike []Point
	for s := range n {
		asked := 200.0
		if s >= 20 && s < 30 {
			asked = 1200
		}
		spike = append(spike, point(s, asked, 1150, 6))
	}

	// endurance: 80 % of the 750/s found.
	var endurance []Point
	for s := range n {
		endurance = append(endurance, point(s, 600, 820, 6+float64(s)*0.01))
	}

	phase := func(name string, kind Kind, pattern Pattern, status Status, at time.Duration, series []Point) PhaseReport {
		return PhaseReport{
			Name: name, Kind: kind, Pattern: pattern, Status: status, Started: start.Add(at),
			ElapsedSeconds: float64(len(series)) + 0.4, Summary: summary(series),
			Histograms: Histograms{Latency: fake, Uncorrected: fake}, Series: series,
		}
	}
	ph := []PhaseReport{
		phase("baseline", "baseline", "constant", StatusPassed, 0, baseline),
		phase("stress", "stress", "breaking", StatusFailed, 61*time.Second, stress),
		phase("spike", "spike", "spike", StatusPassed, 122*time.Second, spike),
		phase("endurance", "endurance", "sustained", StatusError, 183*time.Second, endurance),
	}
	ph[0].Verdicts = []CriterionVerdict{
		{Criterion: "p(99)<100ms", Status: StatusPassed, Actual: ph[0].Summary.LatencyMS.P99, Unit: "ms"},
		{Criterion: "rate<1%", Status: StatusPassed, Actual: float64(ph[0].Summary.Errors) / float64(ph[0].Summary.Requests)},
		{Criterion: "rps>=198", Status: StatusPassed, Actual: ph[0].Summary.AchievedRPS, Unit: "/s"},
	}
	ph[1].Steps = steps
	ph[1].Measures = map[Measure]float64{"breaking_point": 750, "first_failing_rate": 875, "recovery_seconds": 4}
	ph[1].Verdicts = []CriterionVerdict{
		{Criterion: "breaking_point>=1000/s", Status: StatusFailed, Actual: 750, Unit: "/s"},
		{Criterion: "recovery<30s", Status: StatusPassed, Actual: 4, Unit: "s"},
	}
	ph[2].Measures = map[Measure]float64{"spike_start_second": 20, "spike_end_second": 30, "latency_increase": 2.41, "spike_error_rate": 0.018, "recovery_seconds": 3}
	ph[2].Verdicts = []CriterionVerdict{
		{Criterion: "latency_increase<300%", Status: StatusPassed, Actual: 2.41},
		{Criterion: "spike_error_rate<5%", Status: StatusPassed, Actual: 0.018},
	}
	ph[3].Error = "the target's metrics: Get \"http://127.0.0.1:9090/metrics\": dial tcp 127.0.0.1:9090: connect: connection refused"
	ph[3].Measures = map[Measure]float64{"capacity": 750, "latency_increase": 0.06}
	metrics := "needs the target's metrics: give the plan a metrics URL (its Prometheus /metrics with process_ metrics)"
	ph[3].Verdicts = []CriterionVerdict{
		{Criterion: "memory_growth<10%", Status: StatusError, Detail: metrics},
		{Criterion: "latency_increase<20%", Status: StatusPassed, Actual: 0.06},
		{Criterion: "cpu_growth<50%", Status: StatusError, Detail: metrics},
	}
	return &Report{
		Plan: "checkout-api nightly", Target: "http://127.0.0.1:8080/api/cart", Slices: 1,
		Started: start, Finished: start.Add(244 * time.Second), Phases: ph,
		Assessment: Assessment{
			Status: StatusFailed, Passed: 2, Failed: 1, Errored: 1,
			Summary: "2 of 4 phases passed; stress failed",
			Findings: []string{
				"stress: breaking_point>=1000/s FAILED (actual 750/s)",
				"endurance: " + ph[3].Error,
				"endurance: memory_growth<10% ERROR (actual 0.00%): " + metrics,
				"endurance: cpu_growth<50% ERROR (actual 0.00%): " + metrics,
			},
		},
	}
}
