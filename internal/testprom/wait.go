package testprom

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// WaitFor asks cond every 100 ms until it returns nil, and fails the test,
// naming what it waited for and cond's last error, when timeout passes
// first. cond says why it is not done yet by its error; an error of the
// server (a query that fails) does not end the wait either, since the
// server may be between states, but shows at the deadline. Call it from
// the test's goroutine.
func (s *Server) WaitFor(timeout time.Duration, what string, cond func(ctx context.Context) error) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(requestTimeout, max(time.Until(deadline), pollInterval)))
		err := cond(ctx)
		cancel()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			s.t.Fatalf("testprom: %s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(min(pollInterval, time.Until(deadline)))
	}
}

// WaitForData waits until expr returns at least one sample, and returns
// the samples.
func (s *Server) WaitForData(timeout time.Duration, expr string) []Sample {
	s.t.Helper()
	var got []Sample
	s.WaitFor(timeout, "data for "+expr, func(ctx context.Context) error {
		var err error
		if got, err = s.Query(ctx, expr); err != nil {
			return err
		}
		if len(got) == 0 {
			return errors.New("an empty result")
		}
		return nil
	})
	return got
}

// WaitForAlert waits until an active alert whose labels include every one
// of labels (alertname, severity, ...) is in state, "pending" or
// "firing", and returns it.
func (s *Server) WaitForAlert(timeout time.Duration, state string, labels map[string]string) Alert {
	s.t.Helper()
	var found Alert
	s.WaitFor(timeout, fmt.Sprintf("an alert %v %s", labels, state), func(ctx context.Context) error {
		alerts, err := s.Alerts(ctx)
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if a.State == state && matches(a.Labels, labels) {
				found = a
				return nil
			}
		}
		return fmt.Errorf("active alerts: %s", describe(alerts))
	})
	return found
}

// WaitForNoAlert waits until no active alert, pending or firing, has
// every one of labels: the alert has resolved (or never began).
func (s *Server) WaitForNoAlert(timeout time.Duration, labels map[string]string) {
	s.t.Helper()
	s.WaitFor(timeout, fmt.Sprintf("no alert %v active", labels), func(ctx context.Context) error {
		alerts, err := s.Alerts(ctx)
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if matches(a.Labels, labels) {
				return fmt.Errorf("still active: %s", describe([]Alert{a}))
			}
		}
		return nil
	})
}

// WaitForTargetsUp waits until the server has scraped every target
// successfully (health "up").
func (s *Server) WaitForTargetsUp(timeout time.Duration) {
	s.t.Helper()
	s.WaitFor(timeout, "every target up", func(ctx context.Context) error {
		targets, err := s.Targets(ctx)
		if err != nil {
			return err
		}
		var bad []string
		for _, t := range targets {
			if t.Health != "up" {
				bad = append(bad, fmt.Sprintf("%s %s: %s %s", t.Job, t.ScrapeURL, t.Health, t.LastError))
			}
		}
		if len(bad) > 0 {
			return errors.New(strings.Join(bad, "; "))
		}
		return nil
	})
}

// WaitForRules waits until every loaded rule has been evaluated (health
// not "unknown"), and returns the rules.
func (s *Server) WaitForRules(timeout time.Duration) []Rule {
	s.t.Helper()
	var got []Rule
	s.WaitFor(timeout, "every rule evaluated", func(ctx context.Context) error {
		var err error
		if got, err = s.Rules(ctx); err != nil {
			return err
		}
		if len(got) == 0 {
			return errors.New("no rules loaded")
		}
		for _, r := range got {
			if r.Health == "unknown" || r.Health == "" {
				return fmt.Errorf("rule %s of group %s not evaluated yet", r.Name, r.Group)
			}
		}
		return nil
	})
	return got
}

// matches reports whether have includes every label of want.
func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// describe lists alerts briefly, for failure messages.
func describe(alerts []Alert) string {
	if len(alerts) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(alerts))
	for _, a := range alerts {
		var ls []string
		for _, k := range sortedKeys(a.Labels) {
			if k != "alertname" {
				ls = append(ls, k+"="+a.Labels[k])
			}
		}
		parts = append(parts, fmt.Sprintf("%s{%s} %s (value %s)", a.Name, strings.Join(ls, ","), a.State, a.Value))
	}
	return strings.Join(parts, "; ")
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
