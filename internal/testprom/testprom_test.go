package testprom_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testprom"
)

// TestServer starts a Prometheus that scrapes a fake exporter and
// evaluates a rule file, and checks every reader: the query, the target,
// the rules' health, an alert going pending then firing, and resolving
// after a reload without it.
func TestServer(t *testing.T) {
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte("# TYPE fake_value gauge\nfake_value{kind=\"a\"} 42\n"))
	}))
	defer exporter.Close()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	writeRules := func(expr string) {
		t.Helper()
		body := `groups:
- name: test
  rules:
  - record: fake:value:doubled
    expr: 2 * fake_value
  - alert: FakeHigh
    expr: ` + expr + `
    for: 2s
    labels: {severity: critical}
    annotations: {summary: "fake_value is {{ $value }}"}
`
		if err := os.WriteFile(rules, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeRules("fake_value > 10")
	p := testprom.Start(t, testprom.Config{
		Jobs:           []testprom.Job{{Name: "fake", Targets: []string{strings.TrimPrefix(exporter.URL, "http://")}}},
		ScrapeInterval: 500 * time.Millisecond,
		RuleFiles:      []string{rules},
	})
	p.WaitForTargetsUp(20 * time.Second)

	got := p.WaitForData(20*time.Second, `fake:value:doubled`)
	if len(got) != 1 || got[0].Value != 84 || got[0].Metric["kind"] != "a" || got[0].Metric["job"] != "fake" {
		t.Fatalf("fake:value:doubled = %v, want one sample 84 with kind=a, job=fake", got)
	}
	for _, r := range p.WaitForRules(20 * time.Second) {
		if r.Health != "ok" {
			t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
		}
	}

	match := map[string]string{"alertname": "FakeHigh"}
	pending := p.WaitForAlert(20*time.Second, "pending", match)
	firing := p.WaitForAlert(20*time.Second, "firing", match)
	if firing.Labels["severity"] != "critical" || firing.Annotations["summary"] != "fake_value is 42" {
		t.Errorf("firing alert = %+v, want severity critical and the value in its summary", firing)
	}
	if !firing.ActiveAt.Equal(pending.ActiveAt) {
		t.Errorf("the firing alert is active since %v, the pending one since %v: not the same alert", firing.ActiveAt, pending.ActiveAt)
	}

	writeRules("fake_value > 100")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	p.WaitForNoAlert(20*time.Second, match)
}

// TestQueryErrors checks that a bad expression and a range vector are
// errors naming the query, and that a scalar is one sample.
func TestQueryErrors(t *testing.T) {
	p := testprom.Start(t, testprom.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, expr := range []string{
		"sum(",   // a parse error
		"up[1m]", // a range vector, which Query refuses
	} {
		if _, err := p.Query(ctx, expr); err == nil || !strings.Contains(err.Error(), expr) {
			t.Errorf("Query(%q) = %v, want an error naming the query", expr, err)
		}
	}
	got, err := p.Query(ctx, "1 + 1")
	if err != nil || len(got) != 1 || got[0].Value != 2 {
		t.Errorf("Query(1 + 1) = %v, %v, want one sample 2", got, err)
	}
	if err := p.Reload(ctx); err != nil {
		t.Errorf("Reload: %v", err)
	}
}
