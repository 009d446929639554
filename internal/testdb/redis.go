package testdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// EnvRedis names the variable holding the shared Redis server's URL.
const EnvRedis = "STRATA_REDIS_URL"

// Redis returns a client of the shared Redis server named by
// STRATA_REDIS_URL, closed when t ends. Without it the test is skipped on a
// developer's machine and fails when CI is set. Tests share the server:
// each must use its own key namespace (see Namespace).
func Redis(t testing.TB) rueidis.Client {
	t.Helper()
	url := env(t, EnvRedis, "Redis")
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		t.Fatalf("testdb: %s: %v", EnvRedis, err)
	}
	return dialRedis(t, opt)
}

// clientOptions are the options of every test client: no client-side
// cache, and a dial that gives up after a second.
func clientOptions(opt rueidis.ClientOption) rueidis.ClientOption {
	opt.DisableCache = true
	opt.Dialer.Timeout = time.Second
	return opt
}

func dialRedis(t testing.TB, opt rueidis.ClientOption) rueidis.Client {
	t.Helper()
	opt = clientOptions(opt)
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("testdb: Redis at %v does not answer: %v (start it with scripts/dev up)", opt.InitAddress, err)
	}
	t.Cleanup(c.Close)
	return c
}

// Namespace returns a key namespace unique to this test run.
func Namespace(t testing.TB) string {
	return "t" + randomHex(6)
}

// PrivateRedis is a redis-server of a test's own, which the test may kill
// and restart (fault tests). It listens on 127.0.0.1 only.
type PrivateRedis struct {
	t       testing.TB
	Addr    string
	dir     string
	cmd     *exec.Cmd
	persist bool // append-only file, synced on every write
}

// StartRedis starts a private redis-server on a free loopback port. It
// needs the redis-server binary (scripts/dev installs it); without it the
// test is skipped, or fails when CI is set.
func StartRedis(t testing.TB) *PrivateRedis {
	t.Helper()
	r := ReserveRedis(t)
	r.Start()
	return r
}

// StartPersistentRedis is StartRedis with an append-only file synced on
// every write, so that what the server holds survives Kill and Start: a
// Redis with persistence, or one that was cut off rather than killed,
// comes back with its old values (fault tests of stale data).
func StartPersistentRedis(t testing.TB) *PrivateRedis {
	t.Helper()
	r := ReserveRedis(t)
	r.persist = true
	r.Start()
	return r
}

// ReserveRedis is StartRedis without the start: it picks the server's
// free loopback port and leaves it unanswered until Start, for tests of
// clients that must cope with a Redis that is not there yet.
func ReserveRedis(t testing.TB) *PrivateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if Required() {
			t.Fatalf("redis-server is not installed and CI is set (scripts/dev up installs it)")
		}
		t.Skip("redis-server not installed; scripts/dev up installs it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &PrivateRedis{t: t, Addr: "127.0.0.1:" + strconv.Itoa(port), dir: t.TempDir()}
	t.Cleanup(r.Kill)
	return r
}

// Start starts the server (again) on its port and waits until it answers.
func (r *PrivateRedis) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	aof := []string{"--appendonly", "no"}
	if r.persist {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{"--bind", "127.0.0.1", "--port", port, "--save", ""}, aof...)
	args = append(args, "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("testdb: start redis-server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", r.Addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("testdb: redis-server on %s did not start: %v\n%s", r.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL, as a crash would.
func (r *PrivateRedis) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_, _ = r.cmd.Process.Wait()
		r.cmd = nil
	}
}

// Client returns a client of the private server, closed when the test ends.
func (r *PrivateRedis) Client() rueidis.Client {
	r.t.Helper()
	return dialRedis(r.t, rueidis.ClientOption{InitAddress: []string{r.Addr}})
}

// Options returns client options for the private server, as Client uses
// them, for code that connects by itself (the server need not be up).
func (r *PrivateRedis) Options() rueidis.ClientOption {
	return clientOptions(rueidis.ClientOption{InitAddress: []string{r.Addr}})
}

// URL returns the server's redis:// URL.
func (r *PrivateRedis) URL() string { return fmt.Sprintf("redis://%s/0", r.Addr) }

// StartRedisCluster starts a Redis Cluster of three masters of the test's
// own on free loopback ports and returns a cluster client of it. It needs
// redis-server and redis-cli (scripts/dev installs both).
func StartRedisCluster(t testing.TB) rueidis.Client {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if Required() {
				t.Fatalf("%s is not installed and CI is set (scripts/dev up installs it)", bin)
			}
			t.Skipf("%s not installed; scripts/dev up installs it", bin)
		}
	}
	var addrs []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		dir := t.TempDir()
		cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--dir", dir,
			"--logfile", filepath.Join(dir, "redis.log"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("testdb: start cluster node: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		addr := "127.0.0.1:" + strconv.Itoa(port)
		for deadline := time.Now().Add(10 * time.Second); ; {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testdb: cluster node %s did not start", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("testdb: redis-cli --cluster create: %v\n%s", err, out)
	}
	// Wait until every node agrees the cluster is up.
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		for deadline := time.Now().Add(10 * time.Second); ; {
			out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
			if strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testdb: cluster not ok on %s:\n%s", a, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return dialRedis(t, rueidis.ClientOption{InitAddress: addrs})
}
