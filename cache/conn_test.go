package cache_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

func TestDialRedisRefusesBadOptions(t *testing.T) {
	addr := []string{"127.0.0.1:1"}
	cases := []struct {
		name string
		opt  rueidis.ClientOption
		cfg  cache.RedisConnConfig
		want string
	}{
		// Nothing to connect to, ever.
		{"no address", rueidis.ClientOption{}, cache.RedisConnConfig{}, "InitAddress"},
		// Waits are durations.
		{"negative wait", rueidis.ClientOption{InitAddress: addr}, cache.RedisConnConfig{RetryMin: -1}, "negative"},
		// The backoff could not grow.
		{"max under min", rueidis.ClientOption{InitAddress: addr}, cache.RedisConnConfig{RetryMin: time.Second, RetryMax: time.Millisecond}, "RetryMax"},
	}
	for _, c := range cases {
		if _, err := cache.DialRedis(c.opt, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

// TestRedisConnCloseStopsRetrying: Close ends the retries, is idempotent,
// and leaves no client behind.
func TestRedisConnCloseStopsRetrying(t *testing.T) {
	r := testdb.ReserveRedis(t)
	e := newEnv(t)
	conn, err := cache.DialRedisAt(r.Options(), cache.RedisConnConfig{Logger: discard()}, e.clk)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a first attempt", func() bool { return conn.Status().Attempts > 0 })
	conn.Close()
	conn.Close()
	n := conn.Status().Attempts
	r.Start()
	e.clk.Advance(time.Minute)
	if st := conn.Status(); st.Connected || st.Attempts != n || conn.Client() != nil {
		t.Fatalf("after Close: %+v", st)
	}
	if e.clk.Pending() != 0 {
		t.Fatalf("%d timers still running after Close", e.clk.Pending())
	}
}

// ExampleDialRedis starts a cache whether or not Redis answers: it runs
// degraded until DialRedis connects, then uses L2 and the bus.
func ExampleDialRedis() {
	opt, err := rueidis.ParseURL("redis://127.0.0.1:6379/0")
	if err != nil {
		panic(err)
	}
	opt.DisableCache = true
	conn, err := cache.DialRedis(opt, cache.RedisConnConfig{})
	if err != nil {
		panic(err) // options that can never work
	}
	defer conn.Close()
	users, err := cache.New(cache.Config[string]{Namespace: "users", RedisConn: conn})
	if err != nil {
		panic(err)
	}
	defer users.Close()

	// Give Redis a moment at start-up; go on without it if it is down.
	select {
	case <-conn.Ready():
	case <-time.After(2 * time.Second):
	}
	v, info, err := users.Get(context.Background(), "user:42", func(context.Context, string) (string, error) { return "Ada", nil })
	fmt.Println(v, info.Source, err)
	if h := users.Health(); h.Degraded() {
		fmt.Println("degraded:", h.LastError) // a readiness probe reports it, and stays ready
	}
}
