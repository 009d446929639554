package storefront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
)

// spanLog records every span, and hands each local root to roots when it
// ends: a server span ends just after its response is written, so a test
// waits for it rather than for the response.
type spanLog struct {
	*tracetest.SpanRecorder
	roots chan sdktrace.ReadOnlySpan
}

func (l spanLog) OnEnd(s sdktrace.ReadOnlySpan) {
	l.SpanRecorder.OnEnd(s)
	if p := s.Parent(); !p.IsValid() || p.IsRemote() {
		l.roots <- s
	}
}

// traced is a storefront served with tracing on, recording its spans.
type traced struct {
	url   string
	log   spanLog
	ns    string // the caches' Redis namespace
	store *Store
}

// serveTraced opens the store at url with cfg, seeds it, and serves it
// through the Redis cache with every span recorded.
func serveTraced(t *testing.T, url string, cfg Config) traced {
	t.Helper()
	log := spanLog{tracetest.NewSpanRecorder(), make(chan sdktrace.ReadOnlySpan, 16)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(log))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	cfg.TracerProvider = tp
	ctx := context.Background()
	s, err := Open(ctx, url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := Seed(ctx, s, SeedConfig{Users: 20, Products: 30, Actions: 300, RandSeed: 7}); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, s)
	ns := testdb.Namespace(t)
	c, err := NewCached(s, CacheConfig{Redis: testdb.Redis(t), Namespace: ns, TracerProvider: tp, NoPrefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Budgets a loaded CI machine keeps: these tests are about the trace.
	srv := httptest.NewServer(NewHandler(c, HandlerConfig{TracerProvider: tp, CriticalBudget: 5 * time.Second, NonCriticalBudget: 5 * time.Second}))
	t.Cleanup(srv.Close)
	return traced{url: srv.URL, log: log, ns: ns, store: s}
}

// waitReplicas waits until the store's replicas serve and have replayed
// the seed (a replica a loaded machine left behind would not have the
// test's tables yet).
func waitReplicas(t *testing.T, s *Store) {
	t.Helper()
	r := s.Router()
	if r == nil {
		return
	}
	pos, err := r.Position(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ready := 0
		for _, st := range r.Status() {
			if st.Serving && st.Replayed >= pos {
				ready++
			}
		}
		if ready == len(r.Status()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not serving the seed within 30 s: %+v", r.Status())
		}
	}
}

// get sends GET path (with headers, name then value) and returns the
// request's trace, once its server span has ended.
func (tr traced) get(t *testing.T, path string, header ...string) (sdktrace.ReadOnlySpan, spanTree) {
	t.Helper()
	req, _ := http.NewRequest("GET", tr.url+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	select {
	case root := <-tr.log.roots:
		var tree spanTree
		for _, s := range tr.log.Ended() {
			if s.SpanContext().TraceID() == root.SpanContext().TraceID() {
				tree = append(tree, s)
			}
		}
		return root, tree
	case <-time.After(10 * time.Second):
		t.Fatalf("GET %s: no server span ended", path)
		return nil, nil
	}
}

// spanTree is the spans of one trace.
type spanTree []sdktrace.ReadOnlySpan

// children returns the spans directly under parent named name.
func (st spanTree) children(parent sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range st {
		if s.Parent().SpanID() == parent.SpanContext().SpanID() && s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// path follows names down from parent, each a direct child of the one
// before (the first that leads on), and returns the last; it fails the
// test naming the step it could not take.
func (st spanTree) path(t *testing.T, parent sdktrace.ReadOnlySpan, names ...string) sdktrace.ReadOnlySpan {
	t.Helper()
	if len(names) == 0 {
		return parent
	}
	for _, c := range st.children(parent, names[0]) {
		if end := st.find(c, names[1:]); end != nil {
			return end
		}
	}
	t.Fatalf("no path %s under %s; the trace:\n%s", strings.Join(names, " > "), parent.Name(), st)
	return nil
}

// find is path without failing: nil when there is no such path.
func (st spanTree) find(parent sdktrace.ReadOnlySpan, names []string) sdktrace.ReadOnlySpan {
	if len(names) == 0 {
		return parent
	}
	for _, c := range st.children(parent, names[0]) {
		if end := st.find(c, names[1:]); end != nil {
			return end
		}
	}
	return nil
}

// String draws the tree, for failures.
func (st spanTree) String() string {
	var b strings.Builder
	var draw func(parent trace.SpanID, depth int)
	draw = func(parent trace.SpanID, depth int) {
		for _, s := range st {
			if s.Parent().SpanID() == parent {
				fmt.Fprintf(&b, "%s%s %v\n", strings.Repeat("  ", depth), s.Name(), s.Attributes())
				draw(s.SpanContext().SpanID(), depth+1)
			}
		}
	}
	for _, s := range st {
		if !slices.ContainsFunc(st, func(p sdktrace.ReadOnlySpan) bool { return p.SpanContext().SpanID() == s.Parent().SpanID() }) {
			fmt.Fprintf(&b, "%s %v\n", s.Name(), s.Attributes())
			draw(s.SpanContext().SpanID(), 1)
		}
	}
	return b.String()
}

// attr returns s's attribute key, "" when it has none.
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

// wantAttrs fails t unless s has each attribute, key then value.
func wantAttrs(t *testing.T, s sdktrace.ReadOnlySpan, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if got := attr(s, kv[i]); got != kv[i+1] {
			t.Errorf("%s: %s = %q, want %q (attributes %v)", s.Name(), kv[i], got, kv[i+1], s.Attributes())
		}
	}
}

// holdLease makes another instance hold the lease of key in the
// recommendations cache: its load starts and waits until the test ends.
// A Redis call that times out on a loaded machine makes that instance
// load without a lease (failing open), so it tries again until its
// Stats count the lease.
func (tr traced) holdLease(t *testing.T, key string, tags ...string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		other, err := cache.New(cache.Config[[]Recommendation]{Namespace: tr.ns + ":recommendations", Redis: testdb.Redis(t)})
		if err != nil {
			t.Fatal(err)
		}
		started, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			other.Get(context.Background(), key, func(context.Context, string) ([]Recommendation, error) {
				close(started)
				<-release
				return nil, errors.New("the other instance gave up")
			}, cache.Tags(tags...))
		}()
		stop := func() { close(release); <-done; other.Close() }
		<-started
		if other.Stats().Leases == 1 {
			t.Cleanup(stop)
			return
		}
		stop()
		if attempt == 5 {
			t.Fatal("another instance could not take the lease in 5 tries")
		}
	}
}

// checkSQL checks an SQL span: PostgreSQL, a statement, under parent.
func checkSQL(t *testing.T, tree spanTree, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	for _, s := range tree {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindClient {
			continue
		}
		wantAttrs(t, s, "db.system.name", "postgresql")
		if attr(s, "db.query.text") == "" {
			t.Errorf("%s under %s: no db.query.text", s.Name(), parent.Name())
		}
		return
	}
	t.Errorf("no SQL span under %s", parent.Name())
}

// TestTraceRecommendations is issue 16's "a trace of one request shows
// every span in the right parent order": GET /users/{id}/recommendations
// on PostgreSQL with replicas, and sharded, each through the Redis cache,
// while another instance holds the lease on the user's recommendations.
// The server span is the root; under it the cache read (answered by the
// loader), the lease wait (timed out), the load, and under that the
// shard and replica choices with the SQL they ran.
func TestTraceRecommendations(t *testing.T) {
	const user = 3
	for _, c := range []struct {
		name string
		open func(t *testing.T) traced
		// paths under the load that must exist, each ending in an SQL span
		paths [][]string
	}{
		// stage 2: the fill's WAL position on the primary, the reads on a replica
		{"replicas", func(t *testing.T) traced {
			primary := testdb.Postgres(t)
			return serveTraced(t, primary, Config{Replicas: testdb.PostgresReplicas(t, primary)})
		}, [][]string{{"replica.Position"}, {"replica.Read"}}},
		// stage 5: the user's shard, the fan-out over every shard, the main database's products
		{"sharded", func(t *testing.T) traced {
			return serveTraced(t, testdb.PostgresDatabase(t), Config{Shards: testdb.ShardDatabases(t)})
		}, [][]string{{"shard.Read", "replica.Read"}, {"shard.Each", "shard.call", "replica.Read"}, {}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := c.open(t)
			tr.holdLease(t, recsKey(user, DefaultLimit), actionsTag(user))
			root, tree := tr.get(t, fmt.Sprintf("/users/%d/recommendations", user))
			if root.Name() != "GET /users/{id}/recommendations" || root.SpanKind() != trace.SpanKindServer || root.Parent().IsValid() {
				t.Fatalf("root span %s (kind %v, parent %v), want the server span of the route, with no parent", root.Name(), root.SpanKind(), root.Parent())
			}
			wantAttrs(t, root, "http.request.method", "GET", "http.route", "/users/{id}/recommendations", "http.response.status_code", "200")
			get := tree.path(t, root, "cache.Get")
			wantAttrs(t, get, "strata.cache.level", "loader", "strata.cache.shared", "false", "strata.cache.stale", "false",
				"strata.cache.namespace", tr.ns+":recommendations")
			wait := tree.path(t, get, "cache.lease_wait")
			// The holder never delivers: the wait ends at LeaseWait, or
			// sooner if a poll of Redis fails on a loaded machine; the
			// reader then loads by itself.
			load := tree.path(t, get, "cache.load")
			switch outcome := attr(wait, "strata.cache.lease.outcome"); {
			case outcome != "timeout" && outcome != "l2_error":
				t.Errorf("cache.lease_wait: outcome %q, want timeout (or l2_error)", outcome)
			case outcome == "timeout" && !wait.EndTime().After(wait.StartTime().Add(cache.DefaultLeaseWait/2)):
				t.Errorf("the lease wait timed out after %v, before LeaseWait", wait.EndTime().Sub(wait.StartTime()))
			}
			if load.StartTime().Before(wait.EndTime()) {
				t.Errorf("the load started (%v) during the lease wait (%v to %v)", load.StartTime(), wait.StartTime(), wait.EndTime())
			}
			for _, p := range c.paths {
				checkSQL(t, tree, tree.path(t, load, p...))
			}
			checkChoices(t, tree, c.name)
			if r := tr.store.Shards(); r != nil { // the shard the router chose, as the span says
				m := r.Map()
				wantAttrs(t, tree.path(t, load, "shard.Read"), "strata.shard.key", fmt.Sprint(user),
					"strata.shard.name", r.For(user).Name, "strata.shard.virtual_shard", fmt.Sprint(shard.VirtualShard(user, len(m.Owners))))
			}
		})
	}
}

// checkChoices checks the attributes of the shard and replica choices.
func checkChoices(t *testing.T, tree spanTree, stage string) {
	t.Helper()
	for _, s := range tree {
		switch s.Name() {
		case "replica.Read":
			if pool := attr(s, "strata.replica.pool"); pool == "" || stage == "sharded" && pool != "primary" {
				t.Errorf("replica.Read: pool %q (%v)", pool, s.Attributes())
			}
			if stage == "replicas" && attr(s, "strata.replica.token") == "" {
				t.Errorf("replica.Read of a cache fill: no read-your-writes token (%v)", s.Attributes())
			}
		case "replica.token_wait":
			if o := attr(s, "strata.replica.token_wait.outcome"); o != "replayed" && o != "timeout" {
				t.Errorf("replica.token_wait: outcome %q", o)
			}
		case "shard.Read":
			if attr(s, "strata.shard.name") == "" || attr(s, "strata.shard.epoch") != "1" || attr(s, "strata.shard.virtual_shard") == "" {
				t.Errorf("shard.Read: %v, want the shard, epoch 1, the virtual shard", s.Attributes())
			}
		case "shard.Each":
			wantAttrs(t, s, "strata.shard.count", "2", "strata.shard.answered", "2")
		}
	}
}

// TestTraceHome: the composite page's two parallel parts are both under
// the request's server span, each a cache read with its load and SQL.
func TestTraceHome(t *testing.T) {
	primary := testdb.Postgres(t)
	tr := serveTraced(t, primary, Config{Replicas: testdb.PostgresReplicas(t, primary)})
	root, tree := tr.get(t, "/users/4/home?limit=5")
	wantAttrs(t, root, "http.route", "/users/{id}/home", "http.response.status_code", "200")
	var namespaces []string
	for _, get := range tree.children(root, "cache.Get") {
		namespaces = append(namespaces, strings.TrimPrefix(attr(get, "strata.cache.namespace"), tr.ns+":"))
		wantAttrs(t, get, "strata.cache.level", "loader")
		checkSQL(t, tree, tree.path(t, get, "cache.load", "replica.Read"))
	}
	slices.Sort(namespaces)
	if !slices.Equal(namespaces, []string{"recommendations", "users"}) {
		t.Fatalf("cache reads under the page: %v, want users and recommendations\n%s", namespaces, tree)
	}
}

// TestTraceparent: a request that carries a W3C traceparent is a child
// of the caller's span, in the caller's trace; one without starts a
// trace of its own.
func TestTraceparent(t *testing.T) {
	tr := serveTraced(t, testdb.SQLite(t), Config{})
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	for _, c := range []struct {
		name   string
		header []string
	}{
		{"with traceparent", []string{"traceparent", "00-" + traceID + "-" + parentID + "-01", "tracestate", "vendor=x"}},
		{"without", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, tree := tr.get(t, "/users/3", c.header...)
			if c.header == nil {
				if root.Parent().IsValid() || root.SpanContext().TraceID().String() == traceID {
					t.Fatalf("without traceparent: parent %v, trace %s", root.Parent(), root.SpanContext().TraceID())
				}
				return
			}
			p := root.Parent()
			if root.SpanContext().TraceID().String() != traceID || p.SpanID().String() != parentID || !p.IsRemote() || p.TraceState().Get("vendor") != "x" {
				t.Fatalf("with traceparent: trace %s, parent %v; want trace %s under the caller's %s", root.SpanContext().TraceID(), p, traceID, parentID)
			}
			if get := tree.path(t, root, "cache.Get"); get.SpanContext().TraceID() != root.SpanContext().TraceID() {
				t.Fatal("the cache read is not in the caller's trace")
			}
		})
	}
}
