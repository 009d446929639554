package replica_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/replica"
)

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		cfg   replica.Config
		field string
	}{
		{"no primary", replica.Config{}, "Primary"},
		{"sqlite primary", replica.Config{Primary: "sqlite://x.db"}, "Primary"},
		{"bad primary", replica.Config{Primary: "mysql://x"}, "Primary"},
		{"empty replica", replica.Config{Primary: "postgres://a@127.0.0.1/x", Replicas: []replica.Replica{{}}}, "Replicas[0].URL"},
		{"duplicate name", replica.Config{Primary: "postgres://a@127.0.0.1/x", Replicas: []replica.Replica{
			{URL: "postgres://a@127.0.0.1/x", Name: "r"}, {URL: "postgres://a@127.0.0.1/x", Name: "r"}}}, "Replicas[1].Name"},
		{"negative lag bound", replica.Config{Primary: "postgres://a@127.0.0.1/x", LagBound: -1}, "LagBound"},
		{"check slower than the lag bound", replica.Config{Primary: "postgres://a@127.0.0.1/x", LagBound: time.Second, CheckInterval: 2 * time.Second}, "CheckInterval"},
		{"share over 1", replica.Config{Primary: "postgres://a@127.0.0.1/x", FallbackShare: 2}, "FallbackShare"},
		{"negative pool", replica.Config{Primary: "postgres://a@127.0.0.1/x", ReplicaPool: replica.Pool{Size: -1}}, "ReplicaPool"},
		// A mark must outlive the lag a serving replica may have.
		{"mark TTL under the lag bound", replica.Config{Primary: "postgres://a@127.0.0.1/x", MarkTTL: 100 * time.Millisecond}, "MarkTTL"},
		// A serving replica may be LagBound plus a check behind: LagBound alone is too short.
		{"mark TTL equal to the lag bound", replica.Config{Primary: "postgres://a@127.0.0.1/x", MarkTTL: time.Second}, "MarkTTL"},
		// 1 s + 500 ms + 100 ms is the least, with the default bound, check and wait.
		{"mark TTL a millisecond short", replica.Config{Primary: "postgres://a@127.0.0.1/x", MarkTTL: 1599 * time.Millisecond}, "LagBound + CheckInterval + FreshWait"},
		{"negative mark TTL", replica.Config{Primary: "postgres://a@127.0.0.1/x", MarkTTL: -1}, "MarkTTL"},
		// A read's tried set is a 64-bit mask.
		{"65 replicas", replica.Config{Primary: "postgres://a@127.0.0.1/x", Replicas: make([]replica.Replica, 65)}, "at most 64"},
	} {
		_, err := replica.Open(ctx, tc.cfg)
		if !errors.Is(err, replica.ErrBadConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err = %v, want ErrBadConfig naming %s", tc.name, err, tc.field)
		}
	}
}

func TestToken(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "ffffffff/ffffffff", "0/1"} {
		tok, err := replica.ParseToken(s)
		if err != nil {
			t.Fatalf("ParseToken(%q): %v", s, err)
		}
		if !strings.EqualFold(tok.String(), s) {
			t.Errorf("ParseToken(%q).String() = %q", s, tok.String())
		}
	}
	a, _ := replica.ParseToken("1/0")
	b, _ := replica.ParseToken("0/FFFFFFFF")
	if a <= b {
		t.Errorf("1/0 should order after 0/FFFFFFFF")
	}
	for _, s := range []string{"", "/", "1/", "/1", "g/1", "1/2/3", "100000000/0", "-1/0", "+1/0"} {
		if _, err := replica.ParseToken(s); !errors.Is(err, replica.ErrBadToken) {
			t.Errorf("ParseToken(%q) err = %v, want ErrBadToken", s, err)
		}
	}
	ctx := replica.WithToken(context.Background(), b)
	ctx = replica.WithToken(ctx, 5) // older: ignored
	if got := replica.TokenFrom(ctx); got != b {
		t.Errorf("TokenFrom = %v, want the newer %v", got, b)
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"16/B374D848", "0/0", "x", "1/+2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := replica.ParseToken(s)
		if err != nil {
			if !errors.Is(err, replica.ErrBadToken) {
				t.Fatalf("error %v is not ErrBadToken", err)
			}
			return
		}
		again, err := replica.ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("%q -> %v -> %v, %v", s, tok, again, err)
		}
	})
}

// shared returns a router over the shared dev primary (a schema of the
// test's own) and its two replicas. It runs on a fake clock, so that no
// health check ejects a replica that other tests' load makes lag.
func shared(t *testing.T, cfg replica.Config) *replica.Router {
	t.Helper()
	replica.UseClock(&cfg, replica.NewFakeClock())
	cfg.Primary = testdb.Postgres(t)
	for _, u := range testdb.PostgresReplicas(t, cfg.Primary) {
		cfg.Replicas = append(cfg.Replicas, replica.Replica{URL: u})
	}
	return open(t, cfg)
}

func open(t testing.TB, cfg replica.Config) *replica.Router {
	t.Helper()
	r, err := replica.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// port says which server a read ran on.
func port(ctx context.Context, q replica.Querier) (int, error) {
	var p int
	err := q.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&p)
	return p, err
}

// setup creates a table with one row and returns the write's token.
func setup(t testing.TB, r *replica.Router) replica.Token {
	t.Helper()
	tok, err := r.Write(context.Background(), func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL); INSERT INTO kv VALUES (1, 0)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestReadsSpreadOverReplicas(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := shared(t, replica.Config{Registerer: reg})
	for _, s := range r.Status() {
		if !s.Serving {
			t.Fatalf("replica %s not serving after Open: %s", s.Name, s.Reason)
		}
	}
	var primaryPort int
	if _, err := r.Write(context.Background(), func(ctx context.Context, q replica.Querier) (err error) {
		primaryPort, err = port(ctx, q)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	// Four rounds with a health check between them, as the health loop
	// runs between reads: a replica that one slow first call left out
	// rejoins at the next check (TestStarvedReplicaRejoins).
	const rounds, readers, readsPerRound = 4, 8, 13
	const total = rounds * readers * readsPerRound
	for round := range rounds {
		if round > 0 {
			r.CheckNow()
		}
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range readsPerRound {
					err := r.Read(context.Background(), func(ctx context.Context, q replica.Querier) error {
						p, err := port(ctx, q)
						if err == nil {
							mu.Lock()
							counts[p]++
							mu.Unlock()
						}
						return err
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	// A read reaches the primary only as a counted fallback (on a loaded
	// machine a replica can lag past its bound or miss its fast-fail
	// acquire for a moment); then the shares are the machine's, not the
	// balancer's, and only both replicas serving is required.
	var fallbacks float64
	if mfs, err := reg.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() == "strata_replica_fallbacks_total" {
				for _, m := range mf.GetMetric() {
					fallbacks += m.GetCounter().GetValue()
				}
			}
		}
	}
	onPrimary := counts[primaryPort]
	delete(counts, primaryPort)
	if float64(onPrimary) > fallbacks || len(counts) != 2 {
		t.Fatalf("reads by server port: %v, %d on the primary (%d) of which %v counted fallbacks; want both replicas, and the primary only for fallbacks", counts, onPrimary, primaryPort, fallbacks)
	}
	if onPrimary > 0 {
		t.Logf("%d reads fell back to the primary (a loaded machine); replica shares %v", onPrimary, counts)
		clear(counts) // no floor on shares the machine set
	}
	for p, n := range counts {
		// Balance by load, then latency: each gets a share, if not an
		// equal one. On a loaded machine one replica's stall raises its
		// latency average and the other takes most reads for a while
		// (34, then 4, of 400 were seen before the health check reset a
		// starved replica's average), so the floor only rules out one
		// replica taking (nearly) everything.
		if n < total/40 {
			t.Errorf("replica on port %d served %d of %d reads; want a share (counts %v)", p, n, total, counts)
		}
	}
	if n := testutil.CollectAndCount(reg, "strata_db_in_use_connections"); n != 3 {
		t.Errorf("strata_db_in_use_connections has %d series, want 3 (one per pool)", n)
	}
}

func TestQueryErrorsAreReturnedAsTheyAre(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := shared(t, replica.Config{Registerer: reg})
	err := r.Read(context.Background(), func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, "SELECT * FROM no_such_table")
		return err
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42P01" {
		t.Fatalf("err = %v, want the server's undefined_table error", err)
	}
	if n := testutil.ToFloat64(fallbacks(reg)); n != 0 {
		t.Errorf("a query error fell back to the primary (%v fallbacks)", n)
	}
	for _, s := range r.Status() {
		if !s.Serving {
			t.Errorf("a query error ejected %s", s.Name)
		}
	}
	setup(t, r)
	_, err = r.Write(context.Background(), func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, "INSERT INTO kv VALUES (1, 1)")
		return err
	})
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("duplicate key: err = %v, want unique_violation", err)
	}
}

// fallbacks sums strata_replica_fallbacks_total over reasons.
func fallbacks(reg *prometheus.Registry) prometheus.Collector {
	return prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, _ := reg.Gather()
		var sum float64
		for _, mf := range mfs {
			if mf.GetName() == "strata_replica_fallbacks_total" {
				for _, m := range mf.GetMetric() {
					sum += m.GetCounter().GetValue()
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("fallbacks", "", nil, nil), prometheus.CounterValue, sum)
	})
}

// TestReadYourWrites: a read carrying a write's token sees the write, on
// whichever server it runs, every time.
func TestReadYourWrites(t *testing.T) {
	r := shared(t, replica.Config{})
	ctx := replica.WithToken(context.Background(), setup(t, r))
	for i := 1; i <= 100; i++ {
		tok, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
			_, err := q.ExecContext(ctx, "UPDATE kv SET v = $1 WHERE k = 1", i)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx = replica.WithToken(ctx, tok)
		var v int
		if err := r.Read(ctx, func(ctx context.Context, q replica.Querier) error {
			return q.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 1").Scan(&v)
		}); err != nil {
			t.Fatal(err)
		}
		if v != i {
			t.Fatalf("write %d: the read after it saw v = %d", i, v)
		}
	}
}

func TestWriteTxAndReadTx(t *testing.T) {
	r := shared(t, replica.Config{})
	ctx := replica.WithToken(context.Background(), setup(t, r))
	boom := errors.New("boom")
	if _, err := r.WriteTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE kv SET v = 99"); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("WriteTx err = %v, want the function's error", err)
	}
	tok, err := r.WriteTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO kv VALUES (2, 2)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var n, sum int
	if err := r.ReadTx(replica.WithToken(ctx, tok), func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "SELECT count(*), sum(v) FROM kv").Scan(&n, &sum)
	}); err != nil {
		t.Fatal(err)
	}
	err = r.ReadTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO kv VALUES (3, 3)")
		return err
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" {
		t.Errorf("a write in ReadTx: err = %v, want read_only_sql_transaction", err)
	}
	if n != 2 || sum != 2 {
		t.Fatalf("ReadTx saw %d rows summing to %d; want 2 rows, sum 2 (the rolled-back update must not show)", n, sum)
	}
}

// TestRegionPreference: reads stay in the caller's region while it has a
// healthy replica.
func TestRegionPreference(t *testing.T) {
	primary := testdb.Postgres(t)
	urls := testdb.PostgresReplicas(t, primary)
	cfg := replica.Config{Primary: primary, Region: "eu-west", Replicas: []replica.Replica{
		{URL: urls[0], Region: "us-east"}, {URL: urls[1], Region: "eu-west"},
	}}
	replica.UseClock(&cfg, replica.NewFakeClock()) // no check ejects the eu-west replica mid-test
	r := open(t, cfg)
	u, err := url.Parse(urls[1])
	if err != nil {
		t.Fatal(err)
	}
	want, _ := strconv.Atoi(u.Port())
	counts := map[int]int{}
	for range 50 {
		if err := r.Read(context.Background(), func(ctx context.Context, q replica.Querier) error {
			p, err := port(ctx, q)
			counts[p]++
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(counts) != 1 || counts[want] != 50 {
		t.Fatalf("reads by port %v; want all 50 on the eu-west replica (port %d)", counts, want)
	}
}

// TestAcquireTimeoutFallsBack: a replica whose pool hands out no
// connection within its acquire timeout is skipped; the read runs on the
// primary at once instead of queueing.
func TestAcquireTimeoutFallsBack(t *testing.T) {
	primary := testdb.Postgres(t)
	urls := testdb.PostgresReplicas(t, primary)
	reg := prometheus.NewRegistry()
	cfg := replica.Config{Primary: primary, Replicas: []replica.Replica{{URL: urls[0]}},
		ReplicaPool: replica.Pool{Size: 1, Overflow: 1}, Registerer: reg}
	replica.UseClock(&cfg, replica.NewFakeClock())
	r := open(t, cfg)
	// Hold both of the replica's connections.
	hold := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.Read(context.Background(), func(ctx context.Context, q replica.Querier) error {
				<-hold
				return nil
			})
		}()
	}
	waitFor(t, 10*time.Second, "both replica connections held", func() bool { return r.Status()[0].InFlight >= 2 })
	var primaryPort int
	if _, err := r.Write(context.Background(), func(ctx context.Context, q replica.Querier) (err error) {
		primaryPort, err = port(ctx, q)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var p int
	err := r.Read(context.Background(), func(ctx context.Context, q replica.Querier) (err error) {
		p, err = port(ctx, q)
		return err
	})
	d := time.Since(t0)
	close(hold)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	// Had it queued, it would never have returned (the held reads wait for
	// it); the bound only says it did not take long.
	if d > 10*replica.ReplicaAcquireTimeout {
		t.Errorf("the read took %v; want about the acquire timeout (%v) and then the primary", d, replica.ReplicaAcquireTimeout)
	}
	if n := testutil.ToFloat64(fallbacks(reg)); n != 1 {
		t.Errorf("%v fallbacks counted, want 1", n)
	}
	// Counted on the replica's pool alone (every pool's series exists, at 0
	// until then).
	if n := counter(t, reg, "strata_replica_acquire_timeouts_total", "pool", "replica1"); n < 1 {
		t.Errorf("acquire timeouts on replica1: %v, want at least 1", n)
	}
	if n := counter(t, reg, "strata_replica_acquire_timeouts_total", "pool", "primary"); n != 0 {
		t.Errorf("acquire timeouts on the primary: %v, want 0", n)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	if p != primaryPort {
		t.Errorf("the read ran on port %d, want the primary's %d", p, primaryPort)
	}
}

// TestCloseUnregisters: a router's Close removes its metrics, so another
// router can register on the same registry; Close is idempotent; and an
// Open that fails leaves nothing registered.
func TestCloseUnregisters(t *testing.T) {
	primary := testdb.Postgres(t)
	urls := testdb.PostgresReplicas(t, primary)
	reg := prometheus.NewRegistry()
	cfg := replica.Config{Primary: primary, Replicas: []replica.Replica{{URL: urls[0]}}, Registerer: reg}
	for i := range 3 {
		r, err := replica.Open(context.Background(), cfg)
		if err != nil {
			t.Fatalf("open %d on one registry: %v", i+1, err)
		}
		if n := testutil.CollectAndCount(reg, "strata_db_in_use_connections"); n != 2 {
			t.Errorf("open %d: %d pool series, want 2", i+1, n)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("a second Close: %v", err)
		}
		if n := testutil.CollectAndCount(reg); n != 0 {
			t.Fatalf("after Close, %d series left registered", n)
		}
	}
	bad := cfg
	bad.Replicas = []replica.Replica{{URL: primary}}
	if _, err := replica.Open(context.Background(), bad); !errors.Is(err, replica.ErrNotStandby) {
		t.Fatalf("the primary as a replica: %v, want ErrNotStandby", err)
	}
	if n := testutil.CollectAndCount(reg); n != 0 {
		t.Fatalf("after a failed Open, %d series registered", n)
	}
}

// TestOpenChecksServers: Open refuses a replica URL that names the primary
// itself, an independent primary or, as the primary, a standby, naming the
// URL without its password.
func TestOpenChecksServers(t *testing.T) {
	primary := testdb.Postgres(t)
	urls := testdb.PostgresReplicas(t, primary)
	shards := strings.Split(os.Getenv("STRATA_PG_SHARD_URLS"), ",")
	if shards[0] == "" {
		if testdb.Required() {
			t.Fatal("STRATA_PG_SHARD_URLS is not set and CI is (eval \"$(scripts/dev up)\")")
		}
		t.Skip("STRATA_PG_SHARD_URLS not set; run eval \"$(scripts/dev up)\"")
	}
	withPassword := func(u string) string { return strings.Replace(u, "strata@", "strata:hunter2@", 1) }
	for _, tc := range []struct {
		name     string
		primary  string
		replicas []string
		is       error
		says     []string
	}{
		// The primary's own URL given as a replica.
		{"primary as replica", primary, []string{urls[0], withPassword(primary)}, replica.ErrNotStandby,
			[]string{"Replicas[1]", "the primary itself", "xxxxx"}},
		// An independent primary (a shard) given as a replica.
		{"independent primary", primary, []string{withPassword(shards[0])}, replica.ErrNotStandby,
			[]string{"Replicas[0]", "independent primary", "system identifier", "xxxxx"}},
		// A standby given as the primary.
		{"standby as primary", urls[0], nil, replica.ErrNotPrimary, []string{"Primary", "in recovery"}},
	} {
		r, err := replica.Open(context.Background(), replica.Config{Primary: tc.primary, Replicas: replicas(tc.replicas)})
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, tc.is) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.is)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", tc.name, err, s)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
}

func replicas(urls []string) []replica.Replica {
	var out []replica.Replica
	for _, u := range urls {
		out = append(out, replica.Replica{URL: u})
	}
	return out
}

// syncBuffer is a log destination that the router's goroutines and the
// test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOpenWithAStoppedReplica: a replica that does not answer at Open is
// a warning, not an error: it starts ejected and the health check admits
// it once it is up.
func TestOpenWithAStoppedReplica(t *testing.T) {
	c := testdb.StartPostgresCluster(t)
	c.Kill("replica2")
	var logs syncBuffer
	clk := replica.NewFakeClock()
	cfg := replica.Config{Primary: c.PrimaryURL(), Replicas: replicas(c.ReplicaURLs()),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), LagBound: testBound, CheckInterval: testInterval}
	replica.UseClock(&cfg, clk)
	r := open(t, cfg)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "replica=replica2") {
		t.Fatalf("no warning naming replica2 at Open; logs:\n%s", logs.String())
	}
	if s := status(r, "replica2"); s.Serving {
		t.Fatal("replica2, stopped at Open, is serving")
	}
	if s := status(r, "replica1"); !s.Serving {
		t.Fatalf("replica1 not serving: %s", s.Reason)
	}
	c.Start("replica2")
	waitReplayed(t, c.ReplicaURLs()[1], position(t, c.PrimaryURL()))
	waitFor(t, 30*time.Second, "replica2 admitted once up (two good checks)", func() bool {
		clk.Advance(testInterval)
		r.CheckNow()
		return status(r, "replica2").Serving
	})
}

// TestStarvedReplicaRejoins: a replica whose latency average one slow call
// raised gets no reads at equal load, so its average never moves; the
// health check gives it the latency of the fastest replica that served
// reads, and it shares the reads again (a slow replica then loses them on
// its own merit). Before, one stall could starve a replica for as long as
// load ties held (4 of 400 reads in one CI run).
func TestStarvedReplicaRejoins(t *testing.T) {
	// No lag ejection: on a loaded machine the check below could eject
	// replica1 for lag, and an ejected replica keeps its latency.
	r := shared(t, replica.Config{LagBound: time.Hour})
	r.SetLatency("replica1", time.Second) // one stall's worth
	r.SetLatency("replica2", time.Millisecond)
	r.CheckNow() // the counts of calls so far become the baseline
	for range 50 {
		if err := r.Read(context.Background(), func(ctx context.Context, q replica.Querier) error {
			_, err := port(ctx, q)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Latency("replica1"); got != time.Second {
		t.Fatalf("replica1 was read while starved (latency %v): the test's premise is gone", got)
	}
	r.CheckNow()
	if a, b := r.Latency("replica1"), r.Latency("replica2"); a > b {
		t.Fatalf("after a check, the starved replica's latency is %v, the serving one's %v: want it reset to at most the other's", a, b)
	}
}
