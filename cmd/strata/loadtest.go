package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/loadtest"
)

func newLoadtest(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Load-test an HTTP service",
		Long: `Load-test an HTTP service on an open model, with latency measured from
each request's scheduled send time (no coordinated omission).`,
	}
	cmd.AddCommand(newAttack(g))
	return cmd
}

func newAttack(g *globals) *cobra.Command {
	var (
		rate, jsonPath, method string
		thresholds             []string
		a                      loadtest.Attack
	)
	cmd := &cobra.Command{
		Use:   "attack URL",
		Short: "Send requests at a constant rate (or as fast as possible) and report latency",
		Long: `Send GET (or --method) requests to URL at --rate per second for --duration,
at most --connections in flight, then print the achieved rate, the errors
by kind and the latency percentiles, corrected (from each request's
scheduled send time) and uncorrected (from its actual send). --rate max
sends as fast as the connections allow. --json writes the same figures as
JSON. Each --threshold (k6's form: p(99)<100ms, med<20ms, max<1s,
rate<0.001 for the error rate, rps>=500) is checked and printed as PASSED or
FAILED. Exits 1 if a threshold failed, or, without thresholds, if any
request failed.`,
		Example: `  strata loadtest attack http://127.0.0.1:8080/users/42 --rate 500 --duration 30s
  strata loadtest attack http://127.0.0.1:8080/healthz --rate max --duration 10s --connections 64 --json out.json
  strata loadtest attack http://127.0.0.1:8080/users/42 --rate 200 --duration 1m --threshold 'p(99)<100ms' --threshold 'rate<0.001'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range []string{"rate", "duration"} {
				if !cmd.Flags().Changed(name) {
					return usageError{fmt.Errorf("--%s is required", name)}
				}
			}
			if a.Duration <= 0 {
				return usageError{fmt.Errorf("--duration %v: want a positive duration such as 30s", a.Duration)}
			}
			var checks []loadtest.Threshold
			for _, s := range thresholds {
				th, err := loadtest.ParseThreshold(s)
				if err != nil {
					return usageError{fmt.Errorf("--threshold: %w", err)}
				}
				checks = append(checks, th)
			}
			if rate != "max" {
				r, err := strconv.ParseFloat(rate, 64)
				if err != nil || r <= 0 {
					return usageError{fmt.Errorf("--rate %q: want a positive number of requests per second, or max", rate)}
				}
				a.Rate = r
			}
			a.Targets = []loadtest.Target{{Method: method, URL: args[0]}}
			res, err := a.Run(cmd.Context())
			if errors.Is(err, loadtest.ErrBadAttack) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			s := res.Summary()
			s.Format(g.stdout)
			if jsonPath != "" {
				data, err := json.MarshalIndent(s, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
					return fmt.Errorf("--json: %w", err)
				}
			}
			if len(checks) > 0 {
				failed := 0
				for _, th := range checks {
					v := th.Check(res)
					fmt.Fprintln(g.stdout, v)
					if !v.Passed {
						failed++
					}
				}
				if failed > 0 {
					return fmt.Errorf("loadtest: %d of %d thresholds failed", failed, len(checks))
				}
				return nil
			}
			if s.Errors > 0 {
				return fmt.Errorf("loadtest: %d of %d requests failed", s.Errors, s.Requests)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rate, "rate", "", "requests per second, or max (required)")
	f.DurationVar(&a.Duration, "duration", 0, "how long to send, e.g. 30s (required)")
	f.IntVar(&a.Connections, "connections", loadtest.DefaultConnections, "requests in flight at most")
	f.DurationVar(&a.Timeout, "timeout", loadtest.DefaultTimeout, "bound on one request")
	f.StringVar(&method, "method", "GET", "HTTP method")
	f.StringVar(&jsonPath, "json", "", "also write the figures to this file as JSON")
	f.StringArrayVar(&thresholds, "threshold", nil, "a pass/fail criterion such as 'p(99)<100ms', 'rate<0.001' or 'rps>=500'; repeatable")
	return cmd
}
