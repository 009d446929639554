package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// TestServeProcessesStayFresh starts two `strata serve` processes on one
// PostgreSQL database and one Redis, writes through each in turn, and reads
// through the other: the new value must show within the cache's staleness
// bound.
func TestServeProcessesStayFresh(t *testing.T) {
	db := testdb.Postgres(t)
	redisURL := os.Getenv(testdb.EnvRedis)
	if redisURL == "" {
		testdb.Redis(t) // skips, or fails in CI
	}
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "seed", "--db", db, "--users", "50", "--products", "20", "--actions", "200").CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	var bases []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(bin, "serve", "--db", db, "--redis", redisURL, "--addr", addr, "--log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		bases = append(bases, "http://"+addr)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(base string) (string, string) {
		resp, err := client.Get(base + "/users/9")
		if err != nil {
			return "", ""
		}
		defer resp.Body.Close()
		var u storefront.User
		json.NewDecoder(resp.Body).Decode(&u)
		return u.Name, resp.Header.Get(storefront.CacheHeader)
	}
	// Both processes up and serving user 9 from their own L1.
	for _, base := range bases {
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, how := get(base); strings.HasPrefix(how, "user: l1") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never served user 9 from L1", base)
			}
		}
	}
	bound := cache.DefaultStalenessBound
	for round := range 4 {
		writer, reader := bases[round%2], bases[(round+1)%2]
		name := fmt.Sprintf("Process write %d", round)
		req, _ := http.NewRequest("PATCH", writer+"/users/9", strings.NewReader(`{"name":"`+name+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("PATCH through %s: %v %v", writer, err, resp)
		}
		resp.Body.Close()
		written := time.Now()
		for {
			// A stale answer counts by when the read was sent: on a loaded
			// machine a read sent within the bound may return after it.
			sent := time.Now()
			got, how := get(reader)
			if got == name {
				t.Logf("round %d: the other process served the write after %v (%s)", round, time.Since(written).Round(time.Microsecond), how)
				break
			}
			if sent.Sub(written) > bound {
				t.Fatalf("round %d: %s still serves %q to a read sent %v after the write (%s)", round, reader, got, sent.Sub(written), how)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}
