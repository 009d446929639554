package monitor_test

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/monitor"
)

// A service's test registers everything through a Recorder and checks it
// against the catalogue: a metric added without an entry fails the test,
// and the error names it.
func Example() {
	rec := monitor.NewRecorder(prometheus.NewRegistry())
	rec.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status code.",
	}, []string{"route", "method", "code"}))
	rec.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_http_new_total", Help: "Not catalogued yet."}))

	err := monitor.CheckCollectors(rec.Collectors()...)
	var ce *monitor.CheckError
	if errors.As(err, &ce) { // ce.Unregistered lists the rest of Strata's metrics: this registry has one

		fmt.Println("not catalogued:", ce.Unlisted)
	}

	m, _ := monitor.Lookup("strata_http_requests_total")
	fmt.Println(m.Type, m.Labels, m.Subsystem)
	// Output:
	// not catalogued: [strata_http_new_total]
	// counter [code method route] http
}

// Each dashboard is Grafana JSON to import, and its queries can be run
// against Prometheus once $__rate_interval is replaced.
func ExampleDashboards() {
	for _, d := range monitor.Dashboards() {
		b, err := d.JSON()
		if err != nil {
			panic(err)
		}
		fmt.Println(d.UID, len(d.Panels) > 0, len(b) > 0)
	}
	fmt.Println(monitor.Dashboards()[0].Queries()[0])
	// Output:
	// strata-overview true true
	// strata-cache true true
	// strata-replicas true true
	// strata-shards true true
	// strata-database true true
	// strata-overload true true
	// strata-search true true
	// sum by (route) (rate(strata_http_requests_total[$__rate_interval]))
}
