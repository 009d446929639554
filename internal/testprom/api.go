package testprom

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sample is one element of a query's result: a series' labels and its
// value at the query's time.
type Sample struct {
	Metric map[string]string // labels, __name__ included when the result keeps it
	Value  float64
	Time   time.Time
}

// String shows the sample as Prometheus's console does.
func (s Sample) String() string {
	var b strings.Builder
	b.WriteString(s.Metric["__name__"])
	b.WriteByte('{')
	first := true
	for _, k := range sortedKeys(s.Metric) {
		if k == "__name__" {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "%s=%q", k, s.Metric[k])
	}
	fmt.Fprintf(&b, "} %g", s.Value)
	return b.String()
}

// Alert is one active alert of GET /api/v1/alerts: pending (its
// condition holds, for less than its for: period) or firing.
type Alert struct {
	Name        string            // the alertname label
	State       string            // "pending" or "firing"
	Labels      map[string]string // alertname, severity, ... and the series' labels
	Annotations map[string]string // summary, description, runbook_url, ...
	ActiveAt    time.Time         // when the condition began to hold
	Value       string            // the expression's value at the last evaluation
}

// Rule is one rule of GET /api/v1/rules, with the health of its last
// evaluation.
type Rule struct {
	Group     string // the rule group's name
	Name      string // the alert's name or the recorded series' name
	Type      string // "alerting" or "recording"
	Query     string
	Health    string // "ok", "err" or "unknown" (not evaluated yet)
	LastError string
	State     string // alerting rules: "inactive", "pending" or "firing"
}

// Target is one scrape target of GET /api/v1/targets.
type Target struct {
	Job       string // the job label
	ScrapeURL string
	Health    string // "up", "down" or "unknown" (not scraped yet)
	LastError string
}

// apiResponse is the envelope of every /api/v1 answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// get fetches path and, when into is not nil, decodes the envelope's data
// into it.
func (s *Server) get(ctx context.Context, path string, into any) error {
	return s.do(ctx, http.MethodGet, path, nil, into)
}

// do sends one request; a form, when not nil, is the POST body.
func (s *Server) do(ctx context.Context, method, path string, form url.Values, into any) error {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		return err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("testprom: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("testprom: %s %s: %w", method, path, err)
	}
	if into == nil {
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("testprom: %s %s: %s", method, path, resp.Status)
		}
		return nil
	}
	var r apiResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("testprom: %s %s: %s: %w", method, path, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("testprom: %s %s: %s: %s", method, path, r.ErrorType, r.Error)
	}
	if err := json.Unmarshal(r.Data, into); err != nil {
		return fmt.Errorf("testprom: %s %s: decode data: %w", method, path, err)
	}
	return nil
}

// Query runs expr as an instant query at the server's present and returns
// the result as samples: a vector's elements, or a scalar as one sample
// without labels. A range vector (expr ends in [d]) is an error: Query is
// for the values a dashboard or rule would compute.
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.do(ctx, http.MethodPost, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, fmt.Errorf("%w (query %s)", err, expr)
	}
	switch data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, fmt.Errorf("testprom: query %s: %w", expr, err)
		}
		out := make([]Sample, 0, len(raw))
		for _, r := range raw {
			t, v, err := point(r.Value)
			if err != nil {
				return nil, fmt.Errorf("testprom: query %s: %w", expr, err)
			}
			out = append(out, Sample{Metric: r.Metric, Value: v, Time: t})
		}
		return out, nil
	case "scalar":
		var raw [2]any
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, fmt.Errorf("testprom: query %s: %w", expr, err)
		}
		t, v, err := point(raw)
		if err != nil {
			return nil, fmt.Errorf("testprom: query %s: %w", expr, err)
		}
		return []Sample{{Metric: map[string]string{}, Value: v, Time: t}}, nil
	}
	return nil, fmt.Errorf("testprom: query %s: a %s result, want a vector or a scalar", expr, data.ResultType)
}

// point decodes the API's [unix seconds, "value"] pair.
func point(p [2]any) (time.Time, float64, error) {
	ts, ok := p[0].(float64)
	str, ok2 := p[1].(string)
	if !ok || !ok2 {
		return time.Time{}, 0, fmt.Errorf("malformed sample %v", p)
	}
	v, err := strconv.ParseFloat(str, 64) // also NaN, +Inf, -Inf
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("malformed value %q", str)
	}
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(frac*1e9)), v, nil
}

// Alerts returns the active alerts, pending and firing.
func (s *Server) Alerts(ctx context.Context) ([]Alert, error) {
	var data struct {
		Alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			State       string            `json:"state"`
			ActiveAt    time.Time         `json:"activeAt"`
			Value       string            `json:"value"`
		} `json:"alerts"`
	}
	if err := s.get(ctx, "/api/v1/alerts", &data); err != nil {
		return nil, err
	}
	out := make([]Alert, 0, len(data.Alerts))
	for _, a := range data.Alerts {
		out = append(out, Alert{Name: a.Labels["alertname"], State: a.State, Labels: a.Labels,
			Annotations: a.Annotations, ActiveAt: a.ActiveAt, Value: a.Value})
	}
	return out, nil
}

// Rules returns every loaded rule with the health of its last evaluation.
func (s *Server) Rules(ctx context.Context) ([]Rule, error) {
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Type      string `json:"type"`
				Query     string `json:"query"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				State     string `json:"state"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := s.get(ctx, "/api/v1/rules", &data); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			out = append(out, Rule{Group: g.Name, Name: r.Name, Type: r.Type, Query: r.Query,
				Health: r.Health, LastError: r.LastError, State: r.State})
		}
	}
	return out, nil
}

// Targets returns the active scrape targets and their health.
func (s *Server) Targets(ctx context.Context) ([]Target, error) {
	var data struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			ScrapeURL string            `json:"scrapeUrl"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := s.get(ctx, "/api/v1/targets?state=active", &data); err != nil {
		return nil, err
	}
	out := make([]Target, 0, len(data.ActiveTargets))
	for _, t := range data.ActiveTargets {
		out = append(out, Target{Job: t.Labels["job"], ScrapeURL: t.ScrapeURL, Health: t.Health, LastError: t.LastError})
	}
	return out, nil
}
