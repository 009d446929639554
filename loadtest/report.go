package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is a plan's run: what `strata loadtest run --json` writes, what
// `strata loadtest merge` reads and combines, and what the HTML report
// shows.
type Report struct {
	Plan   string `json:"plan"`
	Target string `json:"target"`
	// Split is "i/N" for the result of one of N generators; Slices is how
	// many generators' results this report holds (1, or N once merged).
	Split      string        `json:"split,omitempty"`
	Slices     int           `json:"slices"`
	Started    time.Time     `json:"started"`
	Finished   time.Time     `json:"finished"`
	Phases     []PhaseReport `json:"phases"`
	Assessment Assessment    `json:"assessment"`
}

// Assessment is the run's overall verdict (the guide's
// _generate_overall_assessment): FAILED if a phase failed, ERROR if none
// failed but one could not be measured, else PASSED.
type Assessment struct {
	Status  Status `json:"status"`
	Passed  int    `json:"passed"`
	Failed  int    `json:"failed"`
	Errored int    `json:"errored"`
	// Summary is one sentence; Findings say what each failure means.
	Summary  string   `json:"summary"`
	Findings []string `json:"findings,omitempty"`
}

// PhaseReport is one phase's figures and verdicts.
type PhaseReport struct {
	Name    string    `json:"name"`
	Kind    Kind      `json:"kind"`
	Pattern Pattern   `json:"pattern"`
	Status  Status    `json:"status"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	// ElapsedSeconds is the phase's wall time, ramps and probes included.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Summary is the whole phase's totals.
	Summary Summary `json:"summary"`
	// Histograms hold the whole phase's latencies (corrected and
	// uncorrected) in HDR's compressed, base64 form, so that merged
	// reports get exact percentiles.
	Histograms Histograms `json:"histograms"`
	// Measures are the phase's derived figures by name (the Measure
	// constants say what each is, and in which unit). not_recovered is 1
	// when p99 did not come back in the time watched (recovery_seconds is
	// then that time).
	Measures map[Measure]float64 `json:"measures,omitempty"`
	Verdicts []CriterionVerdict  `json:"verdicts"`
	// Steps are the constant-rate probes of a breaking-point search, in
	// the order they ran.
	Steps []Step `json:"steps,omitempty"`
	// Series has one point per second of the phase.
	Series []Point `json:"series"`
}

// Histograms are a phase's latency histograms, encoded.
type Histograms struct {
	Latency     string `json:"latency"`
	Uncorrected string `json:"uncorrected"`
}

// CriterionVerdict is one criterion measured.
type CriterionVerdict struct {
	Criterion string  `json:"criterion"` // as written, e.g. "p(99)<100ms"
	Status    Status  `json:"status"`
	Actual    float64 `json:"actual"`
	Unit      string  `json:"unit,omitempty"` // ms, /s, s or "" (a fraction)
	// Detail says why the status is ERROR, or anything the figure alone
	// does not.
	Detail string `json:"detail,omitempty"`
	// Unmeasured marks a FAILED criterion that has no figure, Actual
	// meaning nothing: a stress phase's recovery when no probe passed. An
	// ERROR criterion never has one.
	Unmeasured bool `json:"unmeasured,omitempty"`
}

// Step is one constant-rate probe of a breaking-point search.
type Step struct {
	Purpose     string  `json:"purpose"` // ramp, descend, bisect, confirm (a failed probe run again), overload or recovery
	AskedRPS    float64 `json:"asked_rps"`
	AchievedRPS float64 `json:"achieved_rps"`
	P99MS       float64 `json:"p99_ms"`
	ErrorRate   float64 `json:"error_rate"`
	Passed      bool    `json:"passed"` // the probe criteria held (recovery: p99 came back); an overload is not judged
}

// Point is one second of a phase. AskedRPS is the schedule's rate in that
// second; Requests, Errors and the latencies are of the requests that
// completed in it. Target figures are present when the plan gives
// a metrics URL and the scrape in that second succeeded.
type Point struct {
	Second       int              `json:"second"` // from the phase's start
	AskedRPS     float64          `json:"asked_rps"`
	Requests     int64            `json:"requests"`
	Errors       int64            `json:"errors"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind,omitempty"`
	P50MS        float64          `json:"p50_ms"`
	P90MS        float64          `json:"p90_ms"`
	P99MS        float64          `json:"p99_ms"`
	MaxMS        float64          `json:"max_ms"`
	// Histogram is the second's latencies, encoded, for exact merging.
	Histogram string `json:"histogram,omitempty"`
	// TargetCPU is the target's CPU use in cores (rate of
	// process_cpu_seconds_total); TargetRSS its resident memory in bytes;
	// TargetGoroutines go_goroutines; TargetSeries the plan's named series.
	TargetCPU        *float64           `json:"target_cpu,omitempty"`
	TargetRSS        *float64           `json:"target_rss_bytes,omitempty"`
	TargetGoroutines *float64           `json:"target_goroutines,omitempty"`
	TargetSeries     map[string]float64 `json:"target_series,omitempty"`
}

// add adds q's requests and errors to p.
func (p *Point) add(q Point) {
	p.Requests += q.Requests
	p.Errors += q.Errors
	addKinds(&p.ErrorsByKind, q.ErrorsByKind)
}

// encodeHistogram returns h in HDR's compressed base64 form.
func encodeHistogram(h *hdrhistogram.Histogram) string {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil { // only for a cookie it does not know
		panic(fmt.Sprintf("loadtest: encoding a histogram: %v", err))
	}
	return string(b)
}

// decodeHistogram reads what encodeHistogram wrote; "" is an empty one.
func decodeHistogram(s string) (*hdrhistogram.Histogram, error) {
	if s == "" {
		return newHistogram(), nil
	}
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("loadtest: decoding a histogram: %w", err)
	}
	return h, nil
}

// ErrNotReport is returned (wrapped) by ReadReport for JSON that is not a
// report WriteJSON wrote.
var ErrNotReport = errors.New("loadtest: not a load-test report")

// ReadReport reads a report written by WriteJSON, and checks that it is
// one: phases with a name and a status each, and a split of the form i/N.
func ReadReport(r io.Reader) (*Report, error) {
	var rep Report
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotReport, err)
	}
	if len(rep.Phases) == 0 {
		return nil, fmt.Errorf("%w: no phases (is it an attack's --json? merge reads what `strata loadtest run --json` writes)", ErrNotReport)
	}
	for i, ph := range rep.Phases {
		switch {
		case ph.Name == "":
			return nil, fmt.Errorf("%w: phases[%d] has no name", ErrNotReport, i)
		case ph.Status != StatusPassed && ph.Status != StatusFailed && ph.Status != StatusError:
			return nil, fmt.Errorf("%w: phase %q: status %q is not PASSED, FAILED or ERROR", ErrNotReport, ph.Name, ph.Status)
		}
	}
	if rep.Split != "" {
		if _, _, ok := ParseSplit(rep.Split); !ok {
			return nil, fmt.Errorf("%w: split %q is not i/N", ErrNotReport, rep.Split)
		}
	}
	return &rep, nil
}

// ParseSplit reads "i/N", 1 ≤ i ≤ N, as `--split` and a report's split
// write it.
func ParseSplit(s string) (i, n int, ok bool) {
	a, b, found := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return i, n, found && err1 == nil && err2 == nil && n >= 1 && i >= 1 && i <= n
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
