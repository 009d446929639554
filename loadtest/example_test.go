package loadtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/strata-dev/strata/loadtest"
)

// Example sends 100 requests a second for half a second to a local server
// and reads the figures.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	res, err := loadtest.Attack{
		Targets:  []loadtest.Target{{URL: srv.URL}},
		Rate:     100,
		Duration: 500 * time.Millisecond,
	}.Run(context.Background())
	if err != nil {
		panic(err)
	}
	s := res.Summary()
	fmt.Println("errors:", s.Errors, "about 50 sent:", s.Requests >= 45 && s.Requests <= 51)
	// Output: errors: 0 about 50 sent: true
}

// ExampleParsePlan runs a one-phase plan against a local server and reads
// its verdicts.
func ExampleParsePlan() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	plan, err := loadtest.ParsePlan([]byte(`
target: `+srv.URL+`
variables:
  user: {zipf: {min: 1, max: 1000}}
requests:
  - path: /users/{{user}}
phases:
  - name: baseline
    rate: 100
    duration: 1s
    criteria: ["p(99)<1s", "rate<0.1%"]
`), loadtest.ParseOptions{File: "plan.yaml"})
	if err != nil {
		panic(err)
	}
	rep, err := plan.Run(context.Background(), loadtest.RunOptions{})
	if err != nil {
		panic(err)
	}
	ph := rep.Phases[0]
	fmt.Println(ph.Name, ph.Summary.Requests, "requests:", ph.Status)
	for _, v := range ph.Verdicts {
		fmt.Println(v.Criterion, v.Status)
	}
	fmt.Println("overall:", rep.Assessment.Status)
	// Output:
	// baseline 100 requests: PASSED
	// p(99)<1s PASSED
	// rate<0.1% PASSED
	// overall: PASSED
}

// ExamplePlan_Run runs a Plan built in Go: a target and one phase. The
// request is GET target/, and the phase's kind, custom, brings the
// guide's error-rate criterion. A literal with a bad field is refused
// before anything is sent.
func ExamplePlan_Run() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	plan := &loadtest.Plan{Target: srv.URL, Phases: []loadtest.Phase{{Name: "smoke", Rate: 50, Duration: time.Second}}}
	rep, err := plan.Run(context.Background(), loadtest.RunOptions{})
	if err != nil {
		panic(err)
	}
	ph := rep.Phases[0]
	fmt.Println(ph.Name, ph.Kind, ph.Pattern, ph.Summary.Requests, "requests:", ph.Status)
	for _, v := range ph.Verdicts {
		fmt.Println(v.Criterion, v.Status)
	}
	plan.Phases[0].Rate = -1
	_, err = plan.Run(context.Background(), loadtest.RunOptions{})
	fmt.Println(err)
	// Output:
	// smoke custom constant 50 requests: PASSED
	// rate<0.1% PASSED
	// loadtest: bad plan: Phases[0].Rate: -1: want requests per second, 0 to 10000000
}
