package loadtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/strata-dev/strata/loadtest"
)

// Example sends 100 requests a second for half a second to a local server
// and reads the figures.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	res, err := loadtest.Attack{
		Targets:  []loadtest.Target{{URL: srv.URL}},
		Rate:     100,
		Duration: 500 * time.Millisecond,
	}.Run(context.Background())
	if err != nil {
		panic(err)
	}
	s := res.Summary()
	fmt.Println("errors:", s.Errors, "about 50 sent:", s.Requests >= 45 && s.Requests <= 51)
	// Output: errors: 0 about 50 sent: true
}
