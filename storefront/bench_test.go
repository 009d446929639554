package storefront_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// benchHandler seeds a store on backend b (1,000 users, 500 products,
// 20,000 actions) and returns its HTTP handler.
func benchHandler(b *testing.B, backend testdb.Backend) http.Handler {
	b.Helper()
	s := open(b, backend.URL(b))
	seed(b, s, 1000, 500, 20000)
	return storefront.NewHandler(s, storefront.HandlerConfig{})
}

// BenchmarkReadHandlers measures each read endpoint through the whole HTTP
// handler (routing, decoding, store, JSON encoding), without a network.
func BenchmarkReadHandlers(b *testing.B) {
	for _, backend := range testdb.Backends() {
		if backend.Name == "postgres" && os.Getenv(testdb.EnvPostgres) == "" {
			continue
		}
		h := benchHandler(b, backend)
		for _, ep := range []struct{ name, path string }{
			{"user", "/users/%d"},
			{"product", "/products/%d"},
			{"recommendations", "/users/%d/recommendations?limit=10"},
			{"search", "/search?q=wireless+headphones&limit=10"},
			{"suggest", "/search/suggest?prefix=acme+c"},
			{"facets", "/search?q=wireless+headphones&limit=10&facets=category"},
		} {
			b.Run(backend.Name+"/"+ep.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					path := ep.path
					if strings.Contains(path, "%d") {
						path = fmt.Sprintf(ep.path, i%500+1)
					}
					req := httptest.NewRequestWithContext(context.Background(), "GET", path, nil)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatalf("%s: %d %s", path, w.Code, w.Body)
					}
				}
			})
		}
	}
}
