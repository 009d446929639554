package storefront

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/strata-dev/strata/upstream"
)

func TestValidTraceparent(t *testing.T) {
	const v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name, v string
		want    bool
	}{
		{"the spec's example", v, true},                                                      // version 00
		{"not sampled", v[:53] + "00", true},                                                 // any flags
		{"a later version", "01" + v[2:], true},                                              // parsed as 00
		{"a later version, longer", "01" + v[2:] + "-what-comes-next", true},                 // more fields after a '-'
		{"version 00, longer", v + "-x", false},                                              // 00 is exactly 55
		{"a later version, glued", "01" + v[2:] + "x", false},                                // more, but no '-'
		{"version ff", "ff" + v[2:], false},                                                  // forbidden
		{"upper-case", strings.ToUpper(v), false},                                            // lower-case hex only
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},  // invalid
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false}, // invalid
		{"short", v[:54], false},                                                             // truncated
		{"wrong separator", strings.Replace(v, "-", "_", 1), false},                          // not a '-'
		{"not hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false},        // a g
		{"empty", "", false},                                                                 // absent
		{"huge", "01" + v[2:] + "-" + strings.Repeat("a", 300), false},                       // past maxTraceparent
	} {
		if got := validTraceparent(tc.v); got != tc.want {
			t.Errorf("%s: validTraceparent(%.60q) = %v, want %v", tc.name, tc.v, got, tc.want)
		}
	}
}

func FuzzTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		if !validTraceparent(v) {
			return
		}
		// What is passed on is short, printable and shaped as the spec says.
		if len(v) < 55 || len(v) > maxTraceparent || strings.ContainsAny(v, "\r\n\x00 ") || !lowerHex(v[:2]) {
			t.Fatalf("validTraceparent(%q) = true", v)
		}
	})
}

// FuzzDecodeRecommendations: whatever a remote service answers, the
// storefront gets a list within the limit, ErrNotFound, or a RemoteError;
// never a panic.
func FuzzDecodeRecommendations(f *testing.F) {
	f.Add(200, `{"user_id": 7, "recommendations": [{"product": {"id": 1}, "score": 1, "reason": "popular"}]}`)
	f.Add(200, `{"user_id": 7, "recommendations": null}`)
	f.Add(404, `{"error": "user 7 not found", "field": "id"}`)
	f.Add(404, `{"error": "no route", "field": "path"}`)
	f.Add(200, `<html>`)
	f.Add(302, ``)
	f.Fuzz(func(t *testing.T, status int, body string) {
		resp := &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))}
		recs, err := decodeRecommendations(resp, 7, 3)
		var re *RemoteError
		switch {
		case err == nil && len(recs) > 3:
			t.Fatalf("%d recommendations over the limit of 3", len(recs))
		case err != nil && !errors.Is(err, ErrNotFound) && !errors.As(err, &re):
			t.Fatalf("error %v is neither ErrNotFound nor a RemoteError", err)
		case err != nil && len(err.Error()) > 1000:
			t.Fatalf("the error is %d bytes long", len(err.Error()))
		}
	})
}

// TestRemotePrefetch: recommendations read from the remote service
// prefetch their top products into the storefront's cache, as a read in
// process does.
func TestRemotePrefetch(t *testing.T) {
	c, done := prefetched(t, CacheConfig{})
	recs := httptest.NewServer(NewRecommendationHandler(c.store, HandlerConfig{}))
	t.Cleanup(recs.Close)
	client, err := upstream.New("recommendations", recs.URL, upstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	got, err := NewRemoteRecommender(c, client).Recommend(context.Background(), 3, DefaultLimit)
	if err != nil || len(got) < PrefetchTop {
		t.Fatalf("Recommend: %d recommendations, %v", len(got), err)
	}
	var want []string
	for _, r := range got[:PrefetchTop] {
		want = append(want, productKey(r.Product.ID))
	}
	if keys := next(t, done); !slices.Equal(keys, want) {
		t.Fatalf("prefetched %v, want the top %d of the remote list %v", keys, PrefetchTop, want)
	}
}
