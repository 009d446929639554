package monitor_test

import (
	"fmt"
	"log"

	"github.com/strata-dev/strata/monitor"
)

// ExampleGenerate generates the rules for a service that expects 200
// requests a second, with a tighter availability SLO, and writes them
// where Prometheus reads its rule files.
func ExampleGenerate() {
	slos, err := monitor.ParseSLOs("availability=99.95,latency=p99<250ms")
	if err != nil {
		log.Fatal(err)
	}
	out, err := monitor.Generate(monitor.Config{ExpectedRPS: 200, SLOs: slos, RunbookURL: "https://wiki.example/runbooks"})
	if err != nil {
		log.Fatal(err)
	}
	// out.Write("/etc/prometheus/strata") writes rules.yml, rules_test.yml,
	// dashboards/ and runbooks/.
	for _, g := range out.Groups[:2] {
		fmt.Println(g.Name, g.Interval)
	}
	fmt.Println(len(out.Alerts()) > 20, out.Runbooks[0].Alert)
	// Output:
	// strata-node 30s
	// strata-postgres 30s
	// true NodeCPUHigh
}
