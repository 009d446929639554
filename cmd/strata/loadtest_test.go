package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadtestFlagsRefused: a flag value that cannot make a sensible plan
// or run is refused with exit code 2 and a message naming the flag (and
// the other flag it contradicts), instead of being accepted silently.
func TestLoadtestFlagsRefused(t *testing.T) {
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(plan, []byte("target: http://127.0.0.1:1\nrequests: [{path: /}]\nphases: [{name: a, rate: 10, duration: 1s}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:1/"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		// a peak below the current rate contradicts itself
		{"peak below current", []string{"loadtest", "init", "--current-rps", "100", "--peak-rps", "50"}, "--peak-rps 50 is below --current-rps 100"},
		// a current rate of 0 used to become the default 100 silently
		{"zero current", []string{"loadtest", "init", "--current-rps", "0"}, "--current-rps 0: want a positive number"},
		// not a number
		{"NaN current", []string{"loadtest", "init", "--current-rps", "NaN"}, "--current-rps NaN"},
		// more than one generator may be asked for
		{"huge current", []string{"loadtest", "init", "--current-rps", "1e12"}, "--current-rps 1e+12"},
		// a peak of 0 given on purpose, not left to its default
		{"zero peak", []string{"loadtest", "init", "--peak-rps", "0"}, "--peak-rps 0: want a positive number"},
		// a negative peak
		{"negative peak", []string{"loadtest", "init", "--peak-rps", "-5"}, "--peak-rps -5"},
		// a target that is not a URL names the flag, not the plan's line
		{"bad target", []string{"loadtest", "init", "--target", "localhost:8080"}, `--target "localhost:8080": want the service's base URL`},
		// an infinite scale
		{"infinite scale", []string{"loadtest", "run", plan, "--scale", "Inf"}, "--scale +Inf"},
		// a start time already passed: the slices would not start together
		{"start passed", []string{"loadtest", "run", plan, "--start-at", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "ago: the slices of a split run would not start together"}, // the exact age is checkStartAt's test, on a fixed clock
		// a start time years ahead is a typo
		{"start far", []string{"loadtest", "run", plan, "--start-at", time.Now().Add(10 * 365 * 24 * time.Hour).UTC().Format(time.RFC3339)}, "ahead: want a time within 24h0m0s"},
		// no connections: 0 used to become the default 100 silently
		{"zero connections", []string{"loadtest", "attack", url, "--rate", "5", "--duration", "1s", "--connections", "0"}, "--connections 0: want 1 to 65536"},
		// a negative timeout
		{"negative timeout", []string{"loadtest", "attack", url, "--rate", "5", "--duration", "1s", "--timeout", "-1s"}, "--timeout -1s"},
		// no timeout: 0 used to become the default 30 s silently
		{"zero timeout", []string{"loadtest", "attack", url, "--rate", "5", "--duration", "1s", "--timeout", "0s"}, "--timeout 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != 2 || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, output %q %q; want 2 with %q", code, out, errOut, tc.want)
			}
		})
	}
}

// TestLoadtestInitPeak: a peak equal to the current rate, or above it, is
// a plan; the plan carries both.
func TestLoadtestInitPeak(t *testing.T) {
	for _, args := range [][]string{{"--current-rps", "100", "--peak-rps", "100"}, {"--current-rps", "100", "--peak-rps", "250"}, {"--current-rps", "40"}} {
		code, out, errOut := runCLI(t, append([]string{"loadtest", "init"}, args...)...)
		if code != 0 || !strings.Contains(out, "current_rps: "+args[1]) {
			t.Errorf("init %v: exit %d, %s", args, code, errOut)
		}
	}
}

func TestCheckStartAt(t *testing.T) {
	now := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want string // in the error; "" for none
	}{
		{"2026-11-23T15:00:30Z", ""},                          // half a minute ahead
		{"2026-11-23T14:59:59.5Z", ""},                        // half a second ago: the generators' clocks differ that much
		{"2026-11-23T14:59:00Z", "passed 1m0s ago"},           // a minute ago
		{"2026-11-25T15:00:00Z", "is 48h0m0s ahead"},          // two days ahead
		{"tomorrow", "want an RFC 3339 time such as"},         // not a time
		{"2026-11-23T16:00:00+01:00", ""},                     // the same instant in another zone
		{"2026-11-23T15:00:00+01:00", "passed 1h0m0s ago"},    // an hour ago, in another zone
		{"2026-11-24T14:59:00Z", ""},                          // a day ahead, less a minute
		{"2026-11-24T15:00:01Z", "ahead: want a time within"}, // a day ahead and a second
	} {
		_, err := checkStartAt(tc.in, now)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.want)
		}
	}
}
