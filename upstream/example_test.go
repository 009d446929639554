package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/strata-dev/strata/upstream"
)

func Example() {
	recs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
	}))
	defer recs.Close()

	// One client per upstream, kept for the life of the service.
	c, err := upstream.New("recommendations", recs.URL, upstream.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	// The caller's deadline is the budget of the call, retries included.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodGet, "/users/7/recommendations?limit=3", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := c.Do(req)
	switch {
	case errors.Is(err, upstream.ErrBreakerOpen), errors.Is(err, upstream.ErrBudgetExhausted):
		fmt.Println("fall back:", err)
	case err != nil:
		fmt.Println("failed:", err)
	default:
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	// Output: 200 {"path": "/users/7/recommendations"}
}
