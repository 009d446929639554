package storefront_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/internal/sqlstats"
	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// apiServer serves a freshly seeded store (20 users, 30 products, 300
// actions) at the given stage ("1": the store; "2": through the cache,
// with Redis when the shared one is configured) and returns its base URL.
func apiServer(t *testing.T, url, stage string) (string, *storefront.Store) {
	t.Helper()
	return apiServerOn(t, open(t, url), stage)
}

// apiServerOn serves s, seeded, at stage ("2" adds the cache).
func apiServerOn(t *testing.T, s *storefront.Store, stage string) (string, *storefront.Store) {
	t.Helper()
	seed(t, s, 20, 30, 300)
	var svc storefront.Service = s
	if stage == "2" {
		svc = cached(t, s, testdb.Redis(t))
	}
	srv := httptest.NewServer(storefront.NewHandler(svc, storefront.HandlerConfig{SearchTiers: relaxedTiers()}))
	t.Cleanup(srv.Close)
	return srv.URL, s
}

// relaxedTiers are search tiers whose budgets a loaded CI machine, under
// the race detector, cannot overrun, for the tests that are not about
// budgets (TestSearchTierBudgets tests the defaults).
func relaxedTiers() storefront.SearchTiers {
	relaxed := storefront.TierConfig{Budget: 5 * time.Second}
	return storefront.SearchTiers{Search: relaxed, Autocomplete: relaxed, Facets: relaxed}
}

// cached wraps s in the stage-2 cache over rc, in a namespace of its own.
func cached(t testing.TB, s *storefront.Store, rc rueidis.Client) *storefront.Cached {
	t.Helper()
	c, err := storefront.NewCached(s, storefront.CacheConfig{Redis: rc, Namespace: testdb.Namespace(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stages lists the scale-journey stages every API test runs at.
var stages = []string{"1", "2"}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, url string, body string, header ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: response is not a JSON object: %v: %s", method, url, err, raw)
		}
	}
	return out
}

func TestAPIHappyPaths(t *testing.T) {
	for _, b := range backends() {
		for _, stage := range stages {
			t.Run(b.name+"/stage"+stage, func(t *testing.T) { testHappyPaths(t, b, stage) })
		}
	}
}

func testHappyPaths(t *testing.T, b backend, stage string) {
	base, _ := apiServerOn(t, b.open(t), stage)

	r := call(t, "POST", base+"/users", `{"email":"Linus@Example.com","name":"Linus","region":"eu-north"}`)
	if r.status != 201 || r.body["email"] != "linus@example.com" || r.header.Get("Location") != "/users/21" {
		t.Fatalf("POST /users = %d %v %s", r.status, r.header.Get("Location"), r.raw)
	}
	r = call(t, "GET", base+"/users/21", "")
	if r.status != 200 || r.body["name"] != "Linus" || r.body["version"] != float64(1) {
		t.Fatalf("GET /users/21 = %d %s", r.status, r.raw)
	}
	r = call(t, "PATCH", base+"/users/21", `{"region":"us-west"}`)
	if r.status != 200 || r.body["region"] != "us-west" || r.body["name"] != "Linus" || r.body["version"] != float64(2) {
		t.Fatalf("PATCH /users/21 = %d %s", r.status, r.raw)
	}
	r = call(t, "POST", base+"/users/21/actions", `{"product_id": 4, "kind": "purchase"}`)
	if r.status != 201 || r.body["product_id"] != float64(4) || r.body["kind"] != "purchase" {
		t.Fatalf("POST actions = %d %s", r.status, r.raw)
	}
	r = call(t, "GET", base+"/users/21/recommendations?limit=3", "")
	if recs, _ := r.body["recommendations"].([]any); r.status != 200 || len(recs) != 3 {
		t.Fatalf("GET recommendations = %d %s", r.status, r.raw)
	}
	r = call(t, "GET", base+"/users/1/recommendations", "")
	if recs, _ := r.body["recommendations"].([]any); r.status != 200 || len(recs) != storefront.DefaultLimit {
		t.Fatalf("GET recommendations (default limit) = %d %s", r.status, r.raw)
	}
	testHappyCatalogue(t, base)
}

// testHappyCatalogue walks the catalogue, search and the service endpoints.
func testHappyCatalogue(t *testing.T, base string) {
	r := call(t, "GET", base+"/products/4", "")
	if r.status != 200 || r.body["id"] != float64(4) || r.body["title"] == "" {
		t.Fatalf("GET /products/4 = %d %s", r.status, r.raw)
	}
	title := r.body["title"].(string)
	r = call(t, "GET", base+"/search?q="+strings.ReplaceAll(title, " ", "+")+"&limit=5", "")
	results, _ := r.body["results"].([]any)
	if r.status != 200 || len(results) == 0 || results[0].(map[string]any)["id"] != float64(4) {
		t.Fatalf("GET /search for %q = %d %s", title, r.status, r.raw)
	}
	r = call(t, "GET", base+"/search?q=zzzyyyxxx", "")
	if results, ok := r.body["results"].([]any); r.status != 200 || !ok || len(results) != 0 {
		t.Fatalf("search with no match = %d %s, want 200 and []", r.status, r.raw)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := call(t, "GET", base+p, ""); r.status != 200 {
			t.Fatalf("GET %s = %d %s", p, r.status, r.raw)
		}
	}
	r = call(t, "GET", base+"/metrics", "")
	for _, want := range []string{`strata_http_requests_total{code="201",method="post",route="POST /users"} 1`, "go_goroutines", "process_resident_memory_bytes"} {
		if r.status != 200 || !strings.Contains(r.raw, want) {
			t.Fatalf("GET /metrics lacks %q: %d\n%s", want, r.status, r.raw)
		}
	}
}

// TestAPIBadInput sends every class of bad input to every endpoint and
// checks the status and the field the error names. No case may get a 500.
func TestAPIBadInput(t *testing.T) {
	for _, b := range backends() {
		for _, stage := range stages {
			t.Run(b.name+"/stage"+stage, func(t *testing.T) { testBadInput(t, b, stage) })
		}
	}
}

func testBadInput(t *testing.T, b backend, stage string) {
	base, _ := apiServerOn(t, b.open(t), stage)
	if r := call(t, "POST", base+"/users", `{"email":"taken@example.com","name":"T","region":"eu"}`); r.status != 201 {
		t.Fatalf("setup: %d %s", r.status, r.raw)
	}
	big := `{"email":"a@example.com","name":"` + strings.Repeat("x", storefront.MaxBodyBytes) + `","region":"eu"}`
	cases := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		field                    string
	}{
		// ids in the path
		{"id not a number", "GET", "/users/abc", "", nil, 400, "id"},
		{"negative id", "GET", "/users/-1", "", nil, 400, "id"},
		{"zero id", "GET", "/users/0", "", nil, 400, "id"},
		{"leading zero id", "GET", "/users/007", "", nil, 400, "id"},
		{"id with plus", "GET", "/users/+5", "", nil, 400, "id"},
		{"id over int64", "GET", "/users/9223372036854775808", "", nil, 400, "id"},
		{"huge id", "GET", "/users/99999999999999999999999", "", nil, 400, "id"},
		{"fractional id", "GET", "/products/1.5", "", nil, 400, "id"},
		{"hex id", "GET", "/products/0x10", "", nil, 400, "id"},
		{"id with space", "GET", "/products/1%202", "", nil, 400, "id"},
		{"unknown user", "GET", "/users/9223372036854775807", "", nil, 404, "id"},
		{"unknown product", "GET", "/products/999999", "", nil, 404, "id"},
		{"patch unknown user", "PATCH", "/users/999999", `{"name":"x"}`, nil, 404, "id"},
		{"recommend unknown user", "GET", "/users/999999/recommendations", "", nil, 404, "id"},
		{"action of unknown user", "POST", "/users/999999/actions", `{"product_id":1,"kind":"view"}`, nil, 404, "id"},
		{"bad id before body", "POST", "/users/x/actions", `{`, nil, 400, "id"},

		// bodies
		{"malformed JSON", "POST", "/users", `{"email":`, nil, 400, "body"},
		{"not JSON", "POST", "/users", `email=a@b.c`, nil, 400, "body"},
		{"empty body", "POST", "/users", ``, nil, 400, "body"},
		{"whitespace body", "POST", "/users", "  \n ", nil, 400, "body"},
		{"JSON array", "POST", "/users", `[{"email":"a@example.com"}]`, nil, 400, "body"},
		{"JSON string", "POST", "/users", `"hello"`, nil, 400, "body"},
		{"JSON null", "POST", "/users", `null`, nil, 400, "body"},
		{"trailing data", "POST", "/users", `{"email":"a@example.com","name":"A","region":"eu"} {}`, nil, 400, "body"},
		{"trailing garbage", "POST", "/users", `{"email":"a@example.com","name":"A","region":"eu"}x`, nil, 400, "body"},
		{"unknown field", "POST", "/users", `{"email":"a@example.com","name":"A","region":"eu","admin":true}`, nil, 400, "admin"},
		{"duplicate key", "POST", "/users", `{"email":"a@example.com","email":"b@example.com","name":"A","region":"eu"}`, nil, 400, "email"},
		{"missing email", "POST", "/users", `{"name":"A","region":"eu"}`, nil, 400, "email"},
		{"missing name", "POST", "/users", `{"email":"a@example.com","region":"eu"}`, nil, 400, "name"},
		{"missing region", "POST", "/users", `{"email":"a@example.com","name":"A"}`, nil, 400, "region"},
		{"email wrong type", "POST", "/users", `{"email":42,"name":"A","region":"eu"}`, nil, 400, "email"},
		{"email null", "POST", "/users", `{"email":null,"name":"A","region":"eu"}`, nil, 400, "email"},
		{"name object", "POST", "/users", `{"email":"a@example.com","name":{},"region":"eu"}`, nil, 400, "name"},
		{"invalid email", "POST", "/users", `{"email":"not-an-email","name":"A","region":"eu"}`, nil, 400, "email"},
		{"email with name", "POST", "/users", `{"email":"A <a@example.com>","name":"A","region":"eu"}`, nil, 400, "email"},
		{"duplicate email", "POST", "/users", `{"email":"TAKEN@example.com","name":"A","region":"eu"}`, nil, 409, "email"},
		{"empty name", "POST", "/users", `{"email":"a@example.com","name":"","region":"eu"}`, nil, 400, "name"},
		{"name with NUL", "POST", "/users", `{"email":"a@example.com","name":"a\u0000b","region":"eu"}`, nil, 400, "name"},
		{"invalid UTF-8 name", "POST", "/users", "{\"email\":\"a@example.com\",\"name\":\"a\xffb\",\"region\":\"eu\"}", nil, 400, "name"},
		{"bad region", "POST", "/users", `{"email":"a@example.com","name":"A","region":"eu/west"}`, nil, 400, "region"},
		{"body over 1 MiB", "POST", "/users", big, nil, 413, "body"},
		{"wrong content type", "POST", "/users", `{"email":"a@example.com","name":"A","region":"eu"}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"broken content type", "POST", "/users", `{}`, []string{"Content-Type", ";;;"}, 415, "Content-Type"},
		{"patch nothing", "PATCH", "/users/1", `{}`, nil, 400, "body"},
		{"patch null name", "PATCH", "/users/1", `{"name":null}`, nil, 400, "name"},
		{"patch unknown field", "PATCH", "/users/1", `{"version":9}`, nil, 400, "version"},
		{"patch to taken email", "PATCH", "/users/1", `{"email":"taken@example.com"}`, nil, 409, "email"},
		{"patch bad email", "PATCH", "/users/1", `{"email":"@"}`, nil, 400, "email"},

		// actions
		{"action unknown product", "POST", "/users/1/actions", `{"product_id":999999,"kind":"view"}`, nil, 422, "product_id"},
		{"action bad kind", "POST", "/users/1/actions", `{"product_id":1,"kind":"like"}`, nil, 400, "kind"},
		{"action missing kind", "POST", "/users/1/actions", `{"product_id":1}`, nil, 400, "kind"},
		{"action missing product", "POST", "/users/1/actions", `{"kind":"view"}`, nil, 400, "product_id"},
		{"action product as string", "POST", "/users/1/actions", `{"product_id":"1","kind":"view"}`, nil, 400, "product_id"},
		{"action fractional product", "POST", "/users/1/actions", `{"product_id":1.5,"kind":"view"}`, nil, 400, "product_id"},
		{"action huge product", "POST", "/users/1/actions", `{"product_id":1e30,"kind":"view"}`, nil, 400, "product_id"},
		{"action negative product", "POST", "/users/1/actions", `{"product_id":-3,"kind":"view"}`, nil, 400, "product_id"},
		{"action zero product", "POST", "/users/1/actions", `{"product_id":0,"kind":"view"}`, nil, 400, "product_id"},
		{"action kind number", "POST", "/users/1/actions", `{"product_id":1,"kind":1}`, nil, 400, "kind"},

		// search and limits
		{"search without q", "GET", "/search", "", nil, 400, "q"},
		{"search empty q", "GET", "/search?q=", "", nil, 400, "q"},
		{"search blank q", "GET", "/search?q=+++", "", nil, 400, "q"},
		{"search punctuation only", "GET", "/search?q=%22%22%2A", "", nil, 400, "q"},
		{"search q over 200", "GET", "/search?q=" + strings.Repeat("a", 201), "", nil, 400, "q"},
		{"search q twice", "GET", "/search?q=a&q=b", "", nil, 400, "q"},
		{"search bad escape", "GET", "/search?q=%zz", "", nil, 400, "query"},
		{"search limit zero", "GET", "/search?q=tea&limit=0", "", nil, 400, "limit"},
		{"search limit 101", "GET", "/search?q=tea&limit=101", "", nil, 400, "limit"},
		{"search limit negative", "GET", "/search?q=tea&limit=-1", "", nil, 400, "limit"},
		{"search limit word", "GET", "/search?q=tea&limit=ten", "", nil, 400, "limit"},
		{"search limit empty", "GET", "/search?q=tea&limit=", "", nil, 400, "limit"},
		{"search limit huge", "GET", "/search?q=tea&limit=99999999999999999999", "", nil, 400, "limit"},
		{"recommend limit 0", "GET", "/users/1/recommendations?limit=0", "", nil, 400, "limit"},
		{"recommend limit 101", "GET", "/users/1/recommendations?limit=101", "", nil, 400, "limit"},
		{"recommend limit float", "GET", "/users/1/recommendations?limit=2.5", "", nil, 400, "limit"},
		{"recommend limit twice", "GET", "/users/1/recommendations?limit=2&limit=3", "", nil, 400, "limit"},

		{"search unknown parameter", "GET", "/search?q=tea&lmit=5", "", nil, 400, "lmit"},
		{"recommend unknown parameter", "GET", "/users/1/recommendations?count=5", "", nil, 400, "count"},
		{"user unknown parameter", "GET", "/users/1?expand=all", "", nil, 400, "expand"},
		{"limit with plus", "GET", "/search?q=tea&limit=%2B5", "", nil, 400, "limit"},
		{"limit with leading zero", "GET", "/search?q=tea&limit=05", "", nil, 400, "limit"},
		{"latin1 body", "POST", "/users", `{"email":"a@example.com","name":"A","region":"eu"}`, []string{"Content-Type", "application/json; charset=latin1"}, 415, "Content-Type"},
		{"name with RTL override", "POST", "/users", `{"email":"a@example.com","name":"a\u202eb","region":"eu"}`, nil, 400, "name"},
		{"email address literal", "POST", "/users", `{"email":"a@[127.0.0.1]","name":"A","region":"eu"}`, nil, 400, "email"},
		{"empty key", "POST", "/users", `{"":1}`, nil, 400, "body"},

		// routes and methods
		{"unknown route", "GET", "/nope", "", nil, 404, "path"},
		{"trailing slash", "GET", "/users/1/", "", nil, 404, "path"},
		{"collection GET", "GET", "/users", "", nil, 405, "path"},
		{"DELETE a user", "DELETE", "/users/1", "", nil, 405, "path"},
		{"PUT a product", "PUT", "/products/1", `{}`, nil, 405, "path"},
		{"POST search", "POST", "/search?q=a", `{}`, nil, 405, "path"},
		{"GET actions", "GET", "/users/1/actions", "", nil, 405, "path"},
		{"double slash", "GET", "//users/1", "", nil, 404, "path"},
		{"dot segment", "GET", "/users/./1", "", nil, 404, "path"},
		{"dot-dot segment", "GET", "/products/../users/1", "", nil, 404, "path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, c.method, base+c.path, c.body, c.header...)
			if r.status != c.status {
				t.Fatalf("%s %s: status %d, want %d: %s", c.method, c.path, r.status, c.status, r.raw)
			}
			msg, _ := r.body["error"].(string)
			if msg == "" || r.body["field"] != c.field || c.status == 400 && !strings.HasPrefix(msg, c.field+" ") {
				t.Fatalf("%s %s: body %s, want an error naming field %q", c.method, c.path, r.raw, c.field)
			}
			if c.status == 405 && r.header.Get("Allow") == "" {
				t.Fatalf("405 without an Allow header")
			}
		})
	}
}

// TestAPIGracefulShutdown: a request in flight when shutdown starts is
// answered, and new connections are refused.
func TestAPIGracefulShutdown(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	seed(t, s, 2, 2, 0)
	slow := &slowService{Service: s, gate: make(chan struct{}), entered: make(chan struct{})}
	srv := storefront.NewServer("127.0.0.1:0", storefront.NewHandler(slow, storefront.HandlerConfig{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- storefront.Serve(ctx, srv, ln) }()
	url := "http://" + ln.Addr().String()

	var wg sync.WaitGroup
	var status int
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, err := http.Get(url + "/users/1")
		if err != nil {
			t.Errorf("in-flight request failed: %v", err)
			return
		}
		resp.Body.Close()
		status = resp.StatusCode
	}()
	<-slow.entered
	cancel() // SIGTERM arrives while the request is in flight
	// Wait until shutdown has closed the listener, so the request is
	// drained, not merely finished before shutdown began.
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still open 10 s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(slow.gate)
	wg.Wait()
	if status != 200 {
		t.Fatalf("in-flight request got %d, want 200", status)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("server still accepts requests after shutdown")
	}
}

type slowService struct {
	storefront.Service
	gate    chan struct{} // closed to let GetUser finish
	entered chan struct{} // closed when GetUser starts
	once    sync.Once
}

func (s *slowService) GetUser(ctx context.Context, id int64) (storefront.User, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.gate
	return s.Service.GetUser(ctx, id)
}

// TestAPIPanicIsJSON500: a panicking service answers a JSON 500 and the
// server keeps serving.
func TestAPIPanicIsJSON500(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	srv := httptest.NewServer(storefront.NewHandler(panicService{s}, storefront.HandlerConfig{}))
	defer srv.Close()
	r := call(t, "GET", srv.URL+"/products/1", "")
	if r.status != 500 || r.body["error"] != "internal error" {
		t.Fatalf("panic: %d %s", r.status, r.raw)
	}
	if r := call(t, "GET", srv.URL+"/healthz", ""); r.status != 200 {
		t.Fatalf("after panic: %d", r.status)
	}
}

type panicService struct{ storefront.Service }

func (panicService) GetProduct(context.Context, int64) (storefront.Product, error) {
	panic("boom")
}

// TestAPIDatabaseDown: with the database gone, readiness fails with 503 and
// reads fail with a JSON error, never a hang.
func TestAPIDatabaseDown(t *testing.T) {
	s, err := storefront.Open(context.Background(), testdb.SQLite(t), storefront.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(storefront.NewHandler(s, storefront.HandlerConfig{}))
	defer srv.Close()
	s.Close()
	if r := call(t, "GET", srv.URL+"/readyz", ""); r.status != 503 || r.body["error"] == "" {
		t.Fatalf("readyz with the database closed: %d %s", r.status, r.raw)
	}
	if r := call(t, "GET", srv.URL+"/users/1", ""); r.status != 500 || r.body["error"] == "" {
		t.Fatalf("read with the database closed: %d %s", r.status, r.raw)
	}
}

func TestMetricsLint(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	reg := storefront.NewRegistry()
	reg.MustRegister(sqlstats.New(map[string]*sql.DB{"primary": s.DB()}))
	srv := httptest.NewServer(storefront.NewHandler(s, storefront.HandlerConfig{Registerer: reg, Gatherer: reg}))
	defer srv.Close()
	call(t, "GET", srv.URL+"/users/1", "")
	call(t, "GET", srv.URL+"/nope", "")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "strata_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("metric %s is outside the strata_ namespace", name)
		}
	}
}

// TestUnmatchedStartAtZero: the unmatched requests' series, 404 and 405,
// are exported at 0 before any stray request (a dashboard shows 0, not
// no data), and count the requests that match no route or method.
func TestUnmatchedStartAtZero(t *testing.T) {
	reg := storefront.NewRegistry()
	srv := httptest.NewServer(storefront.NewHandler(panicService{}, storefront.HandlerConfig{Registerer: reg, Gatherer: reg}))
	defer srv.Close()
	unmatched := func(code string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "strata_http_unmatched_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == code {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no strata_http_unmatched_requests_total{code=%q}", code)
		return 0
	}
	if n := testutil.CollectAndCount(reg, "strata_http_unmatched_requests_total"); n != 2 {
		t.Errorf("unmatched requests: %d series before any request, want 2 (404, 405)", n)
	}
	r := call(t, "GET", srv.URL+"/metrics", "")
	for _, want := range []string{`strata_http_unmatched_requests_total{code="404"} 0`, `strata_http_unmatched_requests_total{code="405"} 0`} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	if r := call(t, "GET", srv.URL+"/nowhere", ""); r.status != 404 {
		t.Fatalf("GET /nowhere = %d %s", r.status, r.raw)
	}
	if r := call(t, "DELETE", srv.URL+"/products/1", ""); r.status != 405 {
		t.Fatalf("DELETE /products/1 = %d %s", r.status, r.raw)
	}
	call(t, "GET", srv.URL+"/nowhere", "")
	if n404, n405 := unmatched("404"), unmatched("405"); n404 != 2 || n405 != 1 {
		t.Errorf("unmatched requests: 404 %v, 405 %v; want 2 and 1", n404, n405)
	}
}
