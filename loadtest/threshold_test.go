package loadtest

import (
	"errors"
	"strings"
	"testing"
)

func TestParseThreshold(t *testing.T) {
	for _, tc := range []struct {
		in     string
		metric Metric
		q      float64
		op     string
		value  float64
		err    string
	}{
		{in: "p(99)<100ms", metric: "latency", q: 99, op: "<", value: 100},
		{in: " p(99.9) <= 1.5s ", metric: "latency", q: 99.9, op: "<=", value: 1500},
		{in: "med<250us", metric: "latency", q: 50, op: "<", value: 0.25},
		{in: "max<2µs", metric: "latency", q: 100, op: "<", value: 0.002},
		{in: "rate<0.001", metric: "rate", op: "<", value: 0.001},
		{in: "rps>=5000", metric: "rps", op: ">=", value: 5000},
		{in: "p(0)<1ms", err: "percentile"},
		{in: "p(101)<1ms", err: "percentile"},
		{in: "p(99)<100", err: "needs a unit"},
		{in: "p(99)<-1ms", err: "negative"},
		{in: "rate<2", err: "at most 1"},
		{in: "rps>=lots", err: "non-negative number"},
		{in: "avg<1ms", err: "unknown metric"},
		{in: "p(99)", err: "want METRIC OP VALUE"},
		{in: "<1ms", err: "want METRIC OP VALUE"},
		{in: "p(99)=<1ms", err: "operator"},
	} {
		got, err := ParseThreshold(tc.in)
		if tc.err != "" {
			if !errors.Is(err, ErrBadThreshold) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseThreshold(%q) err = %v, want ErrBadThreshold mentioning %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.Metric != tc.metric || got.Quantile != tc.q || got.Op != tc.op || got.Value != tc.value {
			t.Errorf("ParseThreshold(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestThresholdCheck(t *testing.T) {
	r := &Result{Requests: 1000, Errors: 2, AchievedRPS: 490, Latency: newHistogram()}
	for i := int64(1); i <= 1000; i++ {
		_ = r.Latency.RecordValue(i * 100) // 0.1 ms .. 100 ms
	}
	for _, tc := range []struct {
		th   string
		pass bool
	}{
		{"p(99)<100ms", true}, {"p(99)<50ms", false}, {"med<=50.1ms", true}, {"max<100ms", false},
		{"rate<0.001", false}, {"rate<0.01", true}, {"rps>=500", false}, {"rps>400", true},
	} {
		th, err := ParseThreshold(tc.th)
		if err != nil {
			t.Fatal(err)
		}
		if v := th.Check(r); v.Passed != tc.pass {
			t.Errorf("%s: %s, want passed=%v", tc.th, v, tc.pass)
		}
	}
	th, _ := ParseThreshold("rate<0.5")
	if v := th.Check(&Result{Latency: newHistogram()}); v.Passed {
		t.Error("a run without requests passed a threshold")
	}
}

// FuzzParseThreshold: any text parses or is rejected with ErrBadThreshold;
// what parses has a known metric and operator and a non-negative value.
func FuzzParseThreshold(f *testing.F) {
	for _, s := range []string{"p(99)<100ms", "rate<0.001", "rps>=5000", "med<2µs", "p(x)<1", "max==0s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := ParseThreshold(s)
		if err != nil {
			if !errors.Is(err, ErrBadThreshold) {
				t.Fatalf("error %v is not ErrBadThreshold", err)
			}
			return
		}
		switch {
		case th.Metric != "latency" && th.Metric != "rate" && th.Metric != "rps",
			th.Op == "", th.Value < 0, th.Value != th.Value:
			t.Fatalf("%q parsed to %+v", s, th)
		}
	})
}
