package overload_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/strata-dev/strata/overload"
)

// Example puts a limiter in front of a handler: critical work is refused
// last, and a refusal is answered 503 with Retry-After.
func Example() {
	lim, err := overload.New(overload.Config{}) // p99 < 100 ms, the guide's SLA
	if err != nil {
		panic(err)
	}
	limited := func(class overload.Class, h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tok, err := lim.Acquire(r.Context(), class)
			if errors.Is(err, overload.ErrOverloaded) {
				w.Header().Set("Retry-After", "1")
				http.Error(w, `{"error": "overloaded", "cause": "overload"}`, http.StatusServiceUnavailable)
				return
			}
			if err != nil { // the client went away while queued
				return
			}
			defer tok.Done() // the latency goes to the limit's window
			h(w, r)
		}
	}
	h := limited(overload.Critical, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "a user") })

	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/users/1", nil))
	fmt.Println(rec.Code, rec.Body.String())

	// Background work asks too, and stops when refused.
	if tok, err := lim.Acquire(context.Background(), overload.Sheddable); err == nil {
		tok.Done()
		fmt.Println("prefetched")
	}
	st := lim.Stats()
	fmt.Println(st.Limit, st.Admitted)
	// Output:
	// 200 a user
	// prefetched
	// 20 [1 0 1]
}
