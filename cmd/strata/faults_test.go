package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
)

// served is a 'strata serve' running in the test's process.
type served struct {
	base string
	logs *lockedBuffer
	stop func() int // cancels serve and returns its exit code
}

// startServe runs 'strata serve args... --addr 127.0.0.1:0' and waits
// until it logs the address it listens on.
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var sout lockedBuffer
	logs := &lockedBuffer{}
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), &sout, logs)
	}()
	stopped := false
	stop := func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not stop within 30 s of its cancellation")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	addrRE := regexp.MustCompile(`addr=http://(127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			return &served{base: "http://" + m[1], logs: logs, stop: stop}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before serving:\n%s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address within 30 s:\n%s", logs.String())
		}
	}
}

// readyz returns /readyz's status code and body.
func (s *served) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(s.base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status   string   `json:"status"`
		Degraded []string `json:"degraded"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Status + " " + strings.Join(body.Degraded, "; ")
}

// TestServeRedisDownAtStart: item 6. Redis is a cache level: serve starts
// while its Redis is down, says so once, answers reads, reports itself
// degraded but ready, does not log a line per write while Redis stays
// down, and recovers by itself when Redis starts.
func TestServeRedisDownAtStart(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "s.db")
	if code, _, errOut := runCLI(t, "seed", "--db", db, "--users", "20", "--products", "20", "--actions", "100"); code != 0 {
		t.Fatalf("seed: exit %d: %s", code, errOut)
	}
	redis := testdb.ReserveRedis(t) // its port answers nothing yet
	s := startServe(t, "--db", db, "--redis", "redis://"+redis.Addr+"/0")

	for i := range 100 {
		req, _ := http.NewRequest("PATCH", fmt.Sprintf("%s/users/%d", s.base, 1+i%20), strings.NewReader(`{"name": "Degraded"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PATCH with Redis down: %d", resp.StatusCode)
		}
		resp, err = http.Get(fmt.Sprintf("%s/users/%d", s.base, 1+i%20))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET with Redis down: %d", resp.StatusCode)
		}
	}
	if code, body := s.readyz(t); code != 200 || !strings.HasPrefix(body, "degraded") || !strings.Contains(body, "Redis") {
		t.Fatalf("/readyz with Redis down: %d %q, want 200 degraded naming Redis", code, body)
	}
	// 100 writes, each with an invalidation Redis could not take: a few
	// warnings, not one per write.
	if n := strings.Count(s.logs.String(), "level=WARN"); n > 10 {
		t.Fatalf("%d warnings for 100 writes while Redis is down:\n%s", n, s.logs.String())
	}

	redis.Start()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := s.readyz(t)
		if code == 200 && strings.HasPrefix(body, "ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q 30 s after Redis started:\n%s", code, body, s.logs.String())
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, s.logs.String())
	}
}

// TestServeReplicaChecks: item 7. A --replica that is the primary itself,
// or an independent primary, is refused with exit 2 and a message naming
// it; an unreachable replica is a warning, and serve starts.
func TestServeReplicaChecks(t *testing.T) {
	primary := testdb.Postgres(t)
	shards := testdb.ShardURLs(t)
	for _, c := range []struct {
		name, replica, want string
	}{
		// the primary's own URL given as its replica
		{"primary as replica", primary, "not a standby"},
		// an independent primary: not a standby of this one
		{"independent primary", shards[0], "not a standby"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, "serve", "--db", primary, "--replica", c.replica, "--addr", "127.0.0.1:0")
			if code != 2 || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, c.want, errOut)
			}
		})
	}
	t.Run("unreachable replica", func(t *testing.T) {
		s := startServe(t, "--db", primary, "--replica", "postgres://strata@127.0.0.1:1/strata?sslmode=disable")
		if !strings.Contains(s.logs.String(), "level=WARN") || !strings.Contains(s.logs.String(), "127.0.0.1:1") {
			t.Errorf("no warning naming the unreachable replica:\n%s", s.logs.String())
		}
		if code, body := s.readyz(t); code != 200 || !strings.HasPrefix(body, "degraded") {
			t.Errorf("/readyz with a replica down: %d %q, want 200 degraded", code, body)
		}
		if code := s.stop(); code != 0 {
			t.Fatalf("serve exit %d:\n%s", code, s.logs.String())
		}
	})
}
