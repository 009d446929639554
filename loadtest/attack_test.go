package loadtest_test

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/loadtest"
)

func server(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAttackConstantRate(t *testing.T) {
	url := server(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	res, err := loadtest.Attack{Targets: []loadtest.Target{{URL: url}}, Rate: 200, Duration: time.Second}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 195 || res.Requests > 201 || res.Errors != 0 {
		t.Fatalf("%d requests, %d errors; want about 200 and none", res.Requests, res.Errors)
	}
	if res.AchievedRPS < 180 || res.AchievedRPS > 210 {
		t.Errorf("achieved %.1f/s, want about 200", res.AchievedRPS)
	}
	if res.Late != 0 {
		t.Errorf("%d sends waited for a connection; 100 were free", res.Late)
	}
	if res.Latency.TotalCount() != res.Requests {
		t.Errorf("histogram holds %d values for %d requests", res.Latency.TotalCount(), res.Requests)
	}
}

// TestAttackLowRates: at rates whose sends are all made well before the
// end, the achieved rate is still requests over the asked duration, and
// the schedule makes exactly the sends the duration holds.
func TestAttackLowRates(t *testing.T) {
	url := server(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range []struct {
		rate     float64
		requests int64
		achieved float64
	}{
		{2, 2, 2},    // sends at 0 and 0.5 s: 2 in the second asked for, not 4/s over the 0.5 s they took
		{0.5, 1, 1},  // half a send a second for a second: one send, at 0
		{10, 10, 10}, // sanity: a whole number of sends
	} {
		res, err := loadtest.Attack{Targets: []loadtest.Target{{URL: url}}, Rate: tc.rate, Duration: time.Second}.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != tc.requests || res.Skipped != 0 || res.AchievedRPS != tc.achieved {
			t.Errorf("rate %g: %d requests, %d skipped, %g/s achieved; want %d, 0, %g/s", tc.rate, res.Requests, res.Skipped, res.AchievedRPS, tc.requests, tc.achieved)
		}
	}
}

// TestAttackCoordinatedOmission: a server slower than the schedule with
// too few connections makes sends late; the corrected latency shows the
// queueing that the uncorrected one hides.
func TestAttackCoordinatedOmission(t *testing.T) {
	url := server(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(50 * time.Millisecond) })
	res, err := loadtest.Attack{Targets: []loadtest.Target{{URL: url}}, Rate: 100, Duration: time.Second, Connections: 2}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary()
	if res.Late == 0 {
		t.Fatalf("no late sends with 2 connections for 100/s at 50 ms each: %+v", s)
	}
	if s.LatencyMS.P99 < 3*s.UncorrectedLatency.P99 {
		t.Errorf("corrected p99 %.1fms is not well above the uncorrected %.1fms", s.LatencyMS.P99, s.UncorrectedLatency.P99)
	}
	if s.UncorrectedLatency.P50 < 50 || s.UncorrectedLatency.P50 > 120 { // above: a loaded machine's scheduling
		t.Errorf("uncorrected p50 %.1fms, want about the server's 50 ms", s.UncorrectedLatency.P50)
	}
}

func TestAttackErrorKinds(t *testing.T) {
	url := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()
	res, err := loadtest.Attack{
		Targets:  []loadtest.Target{{URL: url + "/fail"}, {URL: url + "/slow"}, {URL: refused}, {URL: url + "/ok", Method: "POST", Body: []byte("{}")}},
		Rate:     40,
		Duration: 500 * time.Millisecond,
		Timeout:  100 * time.Millisecond,
	}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	k := res.ErrorsByKind
	if k["status 503"] == 0 || k["timeout"] == 0 || k["connection"] == 0 {
		t.Fatalf("errors by kind %v; want status 503, timeout and connection", k)
	}
	if res.Errors != k["status 503"]+k["timeout"]+k["connection"] || res.Errors >= res.Requests {
		t.Fatalf("%d errors of %d requests, by kind %v", res.Errors, res.Requests, k)
	}
}

func TestAttackMaxRateStopsOnTime(t *testing.T) {
	url := server(t, func(w http.ResponseWriter, r *http.Request) {})
	t0 := time.Now()
	res, err := loadtest.Attack{Targets: []loadtest.Target{{URL: url}}, Duration: 300 * time.Millisecond, Connections: 4}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("a 300 ms attack took %v", d)
	}
	if res.Requests < 50 || res.Late != 0 {
		t.Errorf("max rate: %d requests, %d late", res.Requests, res.Late)
	}
	// As fast as possible, with the server in the same process, the
	// generator's CPU share is measured (how high depends on what else
	// the machine runs).
	if res.GeneratorCPU <= 0 || res.GeneratorCPU > 1.5 {
		t.Errorf("generator CPU share %.2f at max rate", res.GeneratorCPU)
	}
	var out strings.Builder
	res.Summary().Format(&out)
	if res.GeneratorCPU > 0.9 && !strings.Contains(out.String(), "the figures are unreliable") {
		t.Errorf("no saturation warning at %.2f CPU:\n%s", res.GeneratorCPU, out.String())
	}
}

func TestAttackValidation(t *testing.T) {
	ok := []loadtest.Target{{URL: "http://127.0.0.1:1/"}}
	for _, tc := range []struct {
		a     loadtest.Attack
		field string
	}{
		{loadtest.Attack{Duration: time.Second}, "Targets"},
		{loadtest.Attack{Targets: []loadtest.Target{{URL: "ftp://x"}}, Duration: time.Second}, "Targets[0].URL"},
		{loadtest.Attack{Targets: []loadtest.Target{{URL: "http://"}}, Duration: time.Second}, "Targets[0].URL"},
		{loadtest.Attack{Targets: ok}, "Duration"},
		{loadtest.Attack{Targets: ok, Duration: time.Second, Rate: -1}, "Rate"},
		{loadtest.Attack{Targets: ok, Duration: time.Second, Rate: math.NaN()}, "Rate"},
		{loadtest.Attack{Targets: ok, Duration: time.Second, Rate: math.Inf(1)}, "Rate"},
		{loadtest.Attack{Targets: ok, Duration: time.Second, Rate: 1e-9}, "Rate: 1e-09 a second for 1s makes no request"},
		{loadtest.Attack{Targets: ok, Duration: time.Second, Connections: -1}, "Connections"},
		{loadtest.Attack{Targets: ok, Duration: time.Second, Connections: loadtest.MaxConnections + 1}, "Connections"},
		{loadtest.Attack{Targets: []loadtest.Target{{Method: "GE T", URL: "http://127.0.0.1:1/"}}, Duration: time.Second}, "Targets[0].Method"},
		{loadtest.Attack{Targets: ok, Duration: time.Second, Timeout: 2 * time.Hour}, "Timeout"},
	} {
		_, err := tc.a.Run(context.Background())
		if !errors.Is(err, loadtest.ErrBadAttack) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: err = %v, want ErrBadAttack naming %s", tc.a, err, tc.field)
		}
	}
}
