package storefront_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// TestReplicasReadYourWrites: with reads on the replicas, a client that
// sends back the token of its write (header or cookie) reads what it wrote,
// every time, with and without the cache; a malformed token is a 400.
func TestReplicasReadYourWrites(t *testing.T) {
	primary := testdb.Postgres(t)
	s, err := storefront.Open(context.Background(), primary, storefront.Config{Replicas: testdb.PostgresReplicas(t, primary)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	seed(t, s, 20, 30, 300)
	for _, stage := range []string{"replicas", "replicas + cache"} {
		t.Run(stage, func(t *testing.T) {
			var svc storefront.Service = s
			if stage != "replicas" {
				svc = cached(t, s, testdb.Redis(t))
			}
			srv := httptest.NewServer(storefront.NewHandler(svc, storefront.HandlerConfig{}))
			t.Cleanup(srv.Close)
			for i := range 30 {
				name := fmt.Sprintf("Name %s %d", stage, i)
				w := call(t, "PATCH", srv.URL+"/users/3", fmt.Sprintf(`{"name": %q}`, name))
				tok := w.header.Get(storefront.TokenHeader)
				if w.status != 200 || tok == "" || w.header.Get("Set-Cookie") == "" {
					t.Fatalf("PATCH: %d, token %q, cookie %q: %s", w.status, tok, w.header.Get("Set-Cookie"), w.raw)
				}
				var r response
				if i%2 == 0 {
					r = call(t, "GET", srv.URL+"/users/3", "", storefront.TokenHeader, tok)
				} else {
					r = call(t, "GET", srv.URL+"/users/3", "", "Cookie", storefront.TokenCookie+"="+tok)
				}
				if r.status != 200 || r.body["name"] != name {
					t.Fatalf("write %d: read back %d %v, want name %q", i, r.status, r.body["name"], name)
				}
			}
		})
	}
	srv := httptest.NewServer(storefront.NewHandler(s, storefront.HandlerConfig{}))
	t.Cleanup(srv.Close)
	if r := call(t, "GET", srv.URL+"/users/3", "", storefront.TokenHeader, "nonsense"); r.status != 400 {
		t.Errorf("bad token header: %d, want 400: %s", r.status, r.raw)
	}
	if r := call(t, "GET", srv.URL+"/users/3", "", "Cookie", storefront.TokenCookie+"=1/zz"); r.status != 200 {
		t.Errorf("mangled token cookie: %d, want it ignored (200): %s", r.status, r.raw)
	}
}
