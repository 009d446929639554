package loadtest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteSummary writes the end-of-run table: one row per phase with its
// requests, rates, latencies and status, each criterion under it, then the
// overall assessment.
func (r *Report) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tpattern\trequests\tachieved/s\terrors\tlate\tskipped\tp50 ms\tp99 ms\tmax ms\tstatus")
	for _, ph := range r.Phases {
		s := ph.Summary
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%s\n", ph.Name, ph.Pattern, s.Requests, s.AchievedRPS,
			s.Errors, s.Late, s.Skipped, s.LatencyMS.P50, s.LatencyMS.P99, s.LatencyMS.Max, ph.Status)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "phase\tcriterion\tactual\tstatus\t")
	for _, ph := range r.Phases {
		for _, v := range ph.Verdicts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ph.Name, v.Criterion, formatActual(v), v.Status, v.Detail)
		}
		if ph.Error != "" {
			fmt.Fprintf(tw, "%s\t(phase)\t\t%s\t%s\n", ph.Name, ph.Status, ph.Error)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ph := range r.Phases {
		if len(ph.Measures) > 0 {
			var ms []string
			for _, k := range sortedKeys(ph.Measures) {
				ms = append(ms, fmt.Sprintf("%s=%.4g", k, ph.Measures[k]))
			}
			fmt.Fprintf(w, "%s measured: %s\n", ph.Name, strings.Join(ms, " "))
		}
	}
	a := r.Assessment
	fmt.Fprintf(w, "\noverall: %s: %s\n", a.Status, a.Summary)
	for _, f := range a.Findings {
		fmt.Fprintf(w, "  - %s\n", f)
	}
	for _, ph := range r.Phases {
		if ph.Summary.GeneratorCPU > saturatedCPU {
			fmt.Fprintf(w, "warning: in %s the generator used %.0f%% of its CPUs: it may have been the bottleneck, and the figures are unreliable\n", ph.Name, 100*ph.Summary.GeneratorCPU)
		}
	}
	return nil
}

// junit is the JUnit XML that CI systems read: a suite per run, a test
// case per criterion.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Name    string       `xml:"name,attr"`
	Tests   int          `xml:"tests,attr"`
	Fails   int          `xml:"failures,attr"`
	Errors  int          `xml:"errors,attr"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name   string      `xml:"name,attr"`
	Tests  int         `xml:"tests,attr"`
	Fails  int         `xml:"failures,attr"`
	Errors int         `xml:"errors,attr"`
	Time   float64     `xml:"time,attr"`
	Cases  []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: one test suite per phase and
// one test case per criterion, FAILED as a failure and ERROR as an error,
// so that a CI system shows which criterion failed.
func (r *Report) WriteJUnit(w io.Writer) error {
	all := junitSuites{Name: "strata loadtest " + r.Plan}
	for _, ph := range r.Phases {
		s := junitSuite{Name: ph.Name, Time: ph.ElapsedSeconds}
		cls := "loadtest." + r.Plan + "." + ph.Name
		if ph.Error != "" && len(ph.Verdicts) == 0 {
			s.Cases = append(s.Cases, junitCase{Name: "phase", Classname: cls, Error: &junitProblem{Message: ph.Error, Text: ph.Error}})
			s.Errors++
		}
		for _, v := range ph.Verdicts {
			c := junitCase{Name: v.Criterion, Classname: cls}
			msg := fmt.Sprintf("%s: actual %s", v.Criterion, formatActual(v))
			if v.Detail != "" {
				msg += " (" + v.Detail + ")"
			}
			switch v.Status {
			case StatusFailed:
				c.Failure = &junitProblem{Message: msg, Text: msg}
				s.Fails++
			case StatusError:
				c.Error = &junitProblem{Message: msg, Text: msg}
				s.Errors++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(s.Cases)
		all.Tests += s.Tests
		all.Fails += s.Fails
		all.Errors += s.Errors
		all.Suites = append(all.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
