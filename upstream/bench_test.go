package upstream_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/upstream"
)

// benchServer answers a small JSON body, as a recommendation service
// would a short list.
func benchServer(b *testing.B) *httptest.Server {
	b.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"user_id":7,"recommendations":[]}`)
	}))
	b.Cleanup(s.Close)
	return s
}

// BenchmarkDo is the client's hot path: one GET through the breaker, the
// metrics and the pooled transport to a loopback server, under a budget.
// BenchmarkPlain is the same GET through a bare http.Client, for the
// client's own cost.
func BenchmarkDo(b *testing.B) {
	s := benchServer(b)
	c, err := upstream.New("bench", s.URL, upstream.Config{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := c.NewRequest(ctx, http.MethodGet, "/users/7/recommendations?limit=10", nil)
			if err != nil {
				b.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func BenchmarkPlain(b *testing.B) {
	s := benchServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: upstream.DefaultMaxConnsPerHost}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/users/7/recommendations?limit=10", nil)
			if err != nil {
				b.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
