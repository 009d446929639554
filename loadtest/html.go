package loadtest

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// The HTML report draws its charts with uPlot 1.6.32 (MIT,
// https://github.com/leeoniya/uPlot), from the npm registry, embedded
// unmodified with its licence; assets/README.md says how to update it.
var (
	//go:embed assets/uPlot.iife.min.js
	uplotJS string
	//go:embed assets/uPlot.min.css
	uplotCSS string
	//go:embed assets/LICENSE-uPlot
	uplotLicense string
	//go:embed assets/report.js
	reportJS string
	//go:embed report.html.tmpl
	reportTmpl string
)

// reportPage is what report.html.tmpl renders.
type reportPage struct {
	R *Report // without its histograms, which the page does not use
	// JSON is R for the page's script. html/template escapes it again in
	// its <script type="application/json">, so no string in it can close
	// the element; it is marshalled here to report what JSON cannot hold
	// (an infinite measure), which the template would write as null.
	JSON json.RawMessage
	// CSP is the page's Content-Security-Policy: nothing from the network,
	// and only the two scripts below.
	CSP      string
	UPlotCSS template.CSS
	UPlotJS  template.JS
	ReportJS template.JS
}

// WriteHTML writes the report as one self-contained HTML page: the
// assessment, each phase's verdicts and steps, and charts of its
// per-second latency, throughput and, when the run scraped them, the
// target's CPU, memory and goroutines. The chart library and the report's
// data (as JSON, without the histograms) are inlined, and the page's
// Content-Security-Policy forbids any fetch, so it opens offline and can
// be attached to a ticket as it is.
func (r *Report) WriteHTML(w io.Writer) error {
	t, err := template.New("report").Funcs(htmlFuncs).Parse(reportTmpl)
	if err != nil { // report.html.tmpl is embedded: only a bad edit gets here
		return fmt.Errorf("loadtest: parsing the HTML template: %w", err)
	}
	p := reportPage{
		R:        withoutHistograms(r),
		UPlotCSS: template.CSS(uplotCSS),
		// The licence travels with the code it covers.
		UPlotJS:  template.JS("/*! uPlot " + strings.ReplaceAll(uplotLicense, "*/", "* /") + "*/\n" + uplotJS),
		ReportJS: template.JS(reportJS),
	}
	if p.JSON, err = json.Marshal(p.R); err != nil {
		return fmt.Errorf("loadtest: writing the HTML report: %w", err)
	}
	p.CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; script-src " +
		scriptHash(string(p.UPlotJS)) + " " + scriptHash(string(p.ReportJS))
	if err := t.Execute(w, p); err != nil {
		return fmt.Errorf("loadtest: writing the HTML report: %w", err)
	}
	return nil
}

// scriptHash is the CSP source that allows an inline script whose text is s.
func scriptHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// withoutHistograms returns a copy of r without its encoded histograms,
// most of a long run's bytes, which only merging needs.
func withoutHistograms(r *Report) *Report {
	c := *r
	c.Phases = make([]PhaseReport, len(r.Phases))
	for i, ph := range r.Phases {
		ph.Histograms = Histograms{}
		ph.Series = slices.Clone(ph.Series)
		for j := range ph.Series {
			ph.Series[j].Histogram = ""
		}
		c.Phases[i] = ph
	}
	return &c
}

var htmlFuncs = template.FuncMap{
	"when":    htmlTime,
	"span":    htmlSpan,
	"actual":  htmlActual,
	"measure": htmlMeasure,
	"num":     htmlNum,
	"count":   func(n int64) string { return htmlNum(float64(n), 0) },
	"inc":     func(i int) int { return i + 1 },
	"words":   func(m Measure) string { return strings.ReplaceAll(string(m), "_", " ") },
	"pct":     func(f float64) string { return htmlNum(100*f, 2) + " %" },
	"rate":    func(n, of int64) float64 { return float64(n) / float64(max(of, 1)) },
	"rows":    func(ph PhaseReport) int { return max(len(ph.Verdicts), 1) + min(len(ph.Error), 1) },
	// saturated says the generator may have been the bottleneck.
	"saturated": func(s Summary) bool { return s.GeneratorCPU > saturatedCPU },
}

// htmlTime formats an instant in UTC, to the second; the zero time is a dash.
func htmlTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// htmlSpan formats a duration in seconds as 1h02m03s, 2m05s or 12.3s.
func htmlSpan(secs float64) string {
	d := time.Duration(secs * float64(time.Second))
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm%02ds", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// htmlNum formats f with at most prec decimals (fewer for large values),
// and thin spaces between thousands.
func htmlNum(f float64, prec int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	switch a := math.Abs(f); {
	case a >= 1000:
		prec = 0
	case a >= 100:
		prec = min(prec, 1)
	}
	s := fmt.Sprintf("%.*f", prec, f)
	if prec > 0 { // 12.50 → 12.5, 3.00 → 3
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	sign, digits := "", s
	if strings.HasPrefix(s, "-") {
		sign, digits = "-", s[1:]
	}
	whole, frac, _ := strings.Cut(digits, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString("\u2009")
		}
		b.WriteRune(c)
	}
	if frac != "" {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

// htmlActual formats a criterion's measured figure with its unit; one that
// could not be measured has none.
func htmlActual(v CriterionVerdict) string {
	switch {
	case v.Status == StatusError || v.Unmeasured:
		return "—"
	case v.Unit == "":
		return htmlNum(100*v.Actual, 2) + " %"
	case v.Unit == "/s":
		return htmlNum(v.Actual, 1) + " req/s"
	}
	return htmlNum(v.Actual, 2) + " " + v.Unit
}

// htmlMeasure formats one of a phase's measures by what it is.
func htmlMeasure(name Measure, v float64) string {
	switch name {
	case MeasureCapacity, MeasureBreakingPoint, MeasureFirstFailingRate, MeasureNoFailureUpTo:
		return htmlNum(v, 1) + " req/s"
	case MeasureRecoverySeconds:
		return htmlNum(v, 1) + " s"
	case MeasureBaselineP99, MeasureSpikeP99:
		return htmlNum(v, 2) + " ms"
	case MeasureSpikeStart, MeasureSpikeEnd:
		return "at " + htmlNum(v, 0) + " s"
	case MeasureNotRecovered:
		if v != 0 {
			return "yes"
		}
		return "no"
	case MeasureLatencyIncrease, MeasureSpikeErrorRate, MeasureMemoryGrowth, MeasureCPUGrowth, MeasureOverloadGoodput:
		return htmlNum(100*v, 1) + " %"
	}
	return htmlNum(v, 4)
}
