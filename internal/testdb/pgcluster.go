package testdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pgPorts are the servers a PGCluster may run, named as in scripts/dev,
// in the order of their ports: the cluster's base port +0, +1, ...
var pgPorts = []string{"primary", "replica1", "replica2", "shard1", "shard2"}

// PGCluster is a PostgreSQL primary with two streaming replicas (or two
// independent primaries, StartPostgresShards) of one
// test's own, listening on 127.0.0.1 only, which the test may kill, restart
// and pause. Its methods stop the test (t.Fatalf) on failure, so call them
// from the test's goroutine.
type PGCluster struct {
	t        testing.TB
	script   string   // scripts/dev
	root     string   // private folder: dev/ (STRATA_DEV_DIR) and dev.lock
	port     int      // base port: primary; replica1 port+1, ... (pgPorts)
	names    []string // the servers it runs
	watchdog *exec.Cmd
	lifeline *os.File         // the watchdog's stdin: it tears the cluster down at EOF
	frozen   map[string][]int // servers Freeze stopped: postmaster first, then its children
}

// StartPostgresCluster starts a primary and two streaming replicas of the
// test's own on three consecutive free 127.0.0.1 ports, with scripts/dev
// (STRATA_DEV_ONLY="primary replica1 replica2") in a fresh folder under
// /tmp, and stops and deletes them when t ends. A watchdog process does the
// same if the test binary dies without running its cleanups (a -timeout
// panic, SIGKILL). Without the PostgreSQL server binaries the test is
// skipped, or fails when CI is set. The servers are superuser strata,
// database strata, trust authentication, as on the shared dev servers.
func StartPostgresCluster(t testing.TB) *PGCluster {
	t.Helper()
	return startCluster(t, "primary", "replica1", "replica2")
}

// StartPostgresShards starts two independent PostgreSQL primaries of the
// test's own (scripts/dev's shard1 and shard2), which the test may kill and
// restart as StartPostgresCluster's; ShardURLs gives their URLs.
func StartPostgresShards(t testing.TB) *PGCluster {
	t.Helper()
	return startCluster(t, "shard1", "shard2")
}

// ShardURLs returns the URLs of shard1 and shard2 (StartPostgresShards).
func (c *PGCluster) ShardURLs() []string {
	c.t.Helper()
	return []string{pgURL(c.portOf("shard1")), pgURL(c.portOf("shard2"))}
}

func startCluster(t testing.TB, names ...string) *PGCluster {
	t.Helper()
	if missing := missingPostgres(); len(missing) > 0 {
		msg := fmt.Sprintf("PostgreSQL server binaries missing (%s); scripts/dev up installs them", strings.Join(missing, ", "))
		if Required() {
			t.Fatalf("testdb: %s, and CI is set", msg)
		}
		t.Skip("testdb: " + msg)
	}
	script, err := devScript()
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	// Not t.TempDir(): its parent folders are private (0700), and when we
	// are root the servers run as another user. Not $TMPDIR either, for the
	// same reason. A folder of our own also holds scripts/dev's lock file,
	// which it keeps next to the data folder.
	root, err := os.MkdirTemp("/tmp", "strata-pgc-")
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		_ = os.RemoveAll(root)
		t.Fatalf("testdb: %v", err)
	}
	c := &PGCluster{t: t, script: script, root: root, names: names}
	if err := c.startWatchdog(); err != nil {
		_ = os.RemoveAll(root)
		t.Fatalf("testdb: start watchdog: %v", err)
	}
	t.Cleanup(c.stop)
	all := strings.Join(names, " ")
	for attempt := 1; ; attempt++ {
		if c.port, err = freePortBase(slices.Index(pgPorts, names[len(names)-1]) + 1); err != nil {
			t.Fatalf("testdb: %v", err)
		}
		out, err := c.dev("up", all)
		if err == nil {
			return c
		}
		// Another process may take a port between our check and the
		// server's bind: try other ports.
		if attempt < 3 && strings.Contains(out, "already in use") {
			if out, err := c.dev("down", all); err != nil {
				t.Fatalf("testdb: scripts/dev down: %v\n%s", err, out)
			}
			continue
		}
		t.Fatalf("testdb: scripts/dev up: %v\n%s", err, out)
	}
}

// PrimaryURL returns the primary's URL (user strata, database strata).
func (c *PGCluster) PrimaryURL() string { return pgURL(c.port) }

// ReplicaURLs returns the URLs of replica1 and replica2, in that order.
func (c *PGCluster) ReplicaURLs() []string { return []string{pgURL(c.port + 1), pgURL(c.port + 2)} }

// Kill stops server name (one the cluster runs, "primary" or "shard1") as a crash
// would: SIGKILL to its postmaster. It returns once the postmaster and all
// its children are gone and the port refuses connections.
func (c *PGCluster) Kill(name string) {
	c.t.Helper()
	port := c.portOf(name)
	pid := c.postmaster(name)
	if pid == 0 {
		c.t.Fatalf("testdb: Kill(%q): it is not running", name)
	}
	if err := killServer(pid); err != nil {
		c.t.Fatalf("testdb: Kill(%q): %v", name, err)
	}
	// Children close the listening sockets when they start, so the port
	// refuses as soon as the postmaster is gone; check it all the same.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		conn.Close()
		if time.Now().After(deadline) {
			c.t.Fatalf("testdb: Kill(%q): %s still accepts connections", name, addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Start starts server name again (after Kill) and returns once it accepts
// connections and, for a replica, streams from the primary again (so a
// replica needs a running primary). Starting a running server does nothing.
// After Kill of the primary, running replicas reconnect on their own within
// wal_retrieve_retry_interval (5 s); Start("primary") does not wait for them.
func (c *PGCluster) Start(name string) {
	c.t.Helper()
	port := c.portOf(name)
	if c.postmaster(name) == 0 {
		// PostgreSQL refuses to start while the PID in a lock file left by
		// a killed postmaster names a process, and a zombie counts: until
		// init reaps the dead postmaster, which takes a second or two here.
		dir := filepath.Join(c.dir(), name)
		for _, f := range []string{
			filepath.Join(dir, "data", "postmaster.pid"),
			filepath.Join(dir, "sock", fmt.Sprintf(".s.PGSQL.%d.lock", port)),
		} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				c.t.Fatalf("testdb: Start(%q): %v", name, err)
			}
		}
	}
	if out, err := c.dev("up", name); err != nil {
		c.t.Fatalf("testdb: Start(%q): scripts/dev up: %v\n%s", name, err, out)
	}
}

// Freeze makes server name (one the cluster runs) stop
// answering without closing anything, as a hung host or a network
// partition looks to its clients: SIGSTOP to its postmaster (so that it
// forks no more backends), then to each of its children. Connections stay
// open, and the kernel still accepts new ones and acknowledges what is
// sent, but nothing answers. It returns once every one of them is
// stopped. Thaw undoes it; the cluster's cleanup (and its watchdog) thaws
// a frozen server before stopping it.
func (c *PGCluster) Freeze(name string) {
	c.t.Helper()
	c.portOf(name)
	if c.frozen[name] != nil {
		c.t.Fatalf("testdb: Freeze(%q): already frozen", name)
	}
	pid := c.postmaster(name)
	if pid == 0 {
		c.t.Fatalf("testdb: Freeze(%q): it is not running", name)
	}
	if c.frozen == nil {
		c.frozen = map[string][]int{}
	}
	c.frozen[name] = []int{pid}
	if err := stopProcess(pid); err != nil {
		c.t.Fatalf("testdb: Freeze(%q): postmaster: %v", name, err)
	}
	// Stopped, the postmaster forks no more children: this list is whole.
	for _, kid := range childPIDs(pid) {
		c.frozen[name] = append(c.frozen[name], kid)
		if err := stopProcess(kid); err != nil && alive(kid) {
			c.t.Fatalf("testdb: Freeze(%q): child %d: %v", name, kid, err)
		}
	}
}

// Thaw lets server name run again after Freeze: SIGCONT to every process
// Freeze stopped. What was sent to it meanwhile is answered then.
func (c *PGCluster) Thaw(name string) {
	c.t.Helper()
	c.portOf(name)
	pids := c.frozen[name]
	if pids == nil {
		c.t.Fatalf("testdb: Thaw(%q): not frozen", name)
	}
	delete(c.frozen, name)
	// Children first: the postmaster, once running, may signal them.
	for i := len(pids) - 1; i >= 0; i-- {
		if err := syscall.Kill(pids[i], syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			c.t.Fatalf("testdb: Thaw(%q): %d: %v", name, pids[i], err)
		}
	}
}

// stopProcess sends SIGSTOP to pid and waits, at most 10 s, until it is
// stopped (signals are delivered when the process next runs).
func stopProcess(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %d: %w", pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		switch processState(pid) {
		case 'T', 't':
			return nil
		case 0, 'Z', 'X':
			return fmt.Errorf("process %d is gone", pid)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d not stopped 10 s after SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// processState returns the state letter of /proc/PID/stat (R, S, T, Z…),
// or 0 when there is no such process.
func processState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// PauseReplay pauses WAL replay on replica name ("replica1" or "replica2"):
// it keeps receiving WAL but stops applying it, so reads there return
// older data. It returns once the replica reports the pause in effect.
func (c *PGCluster) PauseReplay(name string) {
	c.t.Helper()
	url := c.replicaURL(name)
	c.query(url, "SELECT pg_wal_replay_pause()")
	for deadline := time.Now().Add(10 * time.Second); ; {
		state := c.query(url, "SELECT pg_get_wal_replay_pause_state()")
		if state == "paused" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testdb: PauseReplay(%q): replay state still %q", name, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ResumeReplay resumes WAL replay on replica name after PauseReplay.
func (c *PGCluster) ResumeReplay(name string) {
	c.t.Helper()
	c.query(c.replicaURL(name), "SELECT pg_wal_replay_resume()")
}

func pgURL(port int) string {
	return fmt.Sprintf("postgres://strata@127.0.0.1:%d/strata?sslmode=disable", port)
}

func (c *PGCluster) dir() string { return filepath.Join(c.root, "dev") }

func (c *PGCluster) portOf(name string) int {
	c.t.Helper()
	i := slices.Index(pgPorts, name)
	if i < 0 || !slices.Contains(c.names, name) {
		c.t.Fatalf("testdb: unknown server %q (this cluster runs %s)", name, strings.Join(c.names, ", "))
	}
	return c.port + i
}

func (c *PGCluster) replicaURL(name string) string {
	c.t.Helper()
	port := c.portOf(name)
	if name == "primary" {
		c.t.Fatalf("testdb: %q is not a replica", name)
	}
	return pgURL(port)
}

// query runs sql as the superuser strata and returns the first column of
// the only row as text.
func (c *PGCluster) query(url, query string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", url)
	if err != nil {
		c.t.Fatalf("testdb: %v", err)
	}
	defer db.Close()
	var out sql.NullString
	if err := db.QueryRowContext(ctx, query).Scan(&out); err != nil {
		c.t.Fatalf("testdb: %s on %s: %v", query, url, err)
	}
	return out.String
}

// dev runs scripts/dev COMMAND on this cluster's folder, for the servers
// named in only, and returns its stdout and stderr.
func (c *PGCluster) dev(command, only string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.script, command)
	cmd.Env = c.env(only)
	// Should a server ever keep our output pipe open, do not wait for it.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// env returns our environment minus the caller's STRATA_DEV_* (after
// `eval "$(scripts/dev up)"`, STRATA_DEV_DIR names the shared servers),
// plus this cluster's settings. Without a port yet (the watchdog), `down`
// reads the ports from the folder's marker file.
func (c *PGCluster) env(only string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_DEV_") {
			env = append(env, kv)
		}
	}
	env = append(env, "STRATA_DEV_DIR="+c.dir(), "STRATA_DEV_ONLY="+only)
	if c.port != 0 {
		env = append(env, "STRATA_DEV_PG_PORT="+strconv.Itoa(c.port))
	}
	return env
}

// watchdogScript waits for EOF on its stdin, then thaws every postmaster
// of the cluster's folder ($1/dev) and its children (a server Freeze left
// stopped would not stop), runs scripts/dev ($0) down and deletes the
// folder.
const watchdogScript = `read -r _
for f in "$1"/dev/*/data/postmaster.pid; do
	[ -r "$f" ] && read -r pm <"$f" && [ -n "$pm" ] || continue
	kill -CONT "$pm" 2>/dev/null
	for s in $(grep -l "^PPid:[[:space:]]*$pm\$" /proc/[0-9]*/status 2>/dev/null); do
		kid=${s#/proc/}
		kill -CONT "${kid%/status}" 2>/dev/null
	done
done
"$0" down >/dev/null 2>&1
rm -rf -- "$1"`

// startWatchdog starts, in a session of its own, a shell that waits for EOF
// on a pipe only this process holds open, then runs scripts/dev down and
// deletes the folder (watchdogScript). EOF comes when this process exits,
// however it exits.
func (c *PGCluster) startWatchdog() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command("bash", "-c", watchdogScript, c.script, c.root)
	cmd.Env = c.env(strings.Join(c.names, " "))
	cmd.Stdin = r // stdout and stderr: /dev/null, so it never holds go test's pipes
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return err
	}
	c.watchdog, c.lifeline = cmd, w
	return nil
}

// stop is the cleanup: scripts/dev down, then make sure no postmaster of
// ours is left, then delete the folder.
func (c *PGCluster) stop() {
	// The watchdog first, so that it cannot run down at the same time.
	_ = c.watchdog.Process.Kill()
	_ = c.watchdog.Wait()
	_ = c.lifeline.Close()
	// A frozen server would not stop: thaw it first.
	for name, frozen := range c.frozen {
		for _, pid := range frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
		delete(c.frozen, name)
	}
	pids := map[string]int{}
	for _, name := range c.names {
		if pid := c.postmaster(name); pid != 0 {
			pids[name] = pid
		}
	}
	if out, err := c.dev("down", strings.Join(c.names, " ")); err != nil {
		c.t.Errorf("testdb: scripts/dev down: %v\n%s", err, out)
	}
	for name, pid := range pids {
		if !alive(pid) {
			continue
		}
		c.t.Errorf("testdb: %s (pid %d) still runs after scripts/dev down; killing it", name, pid)
		if err := killServer(pid); err != nil {
			c.t.Errorf("testdb: %s: %v", name, err)
		}
	}
	if err := os.RemoveAll(c.root); err != nil {
		c.t.Errorf("testdb: %v", err)
	}
}

// postmaster returns the PID of server name's running postmaster, or 0. The
// PID comes from the first line of postmaster.pid and counts only if that
// process lives and runs on this data folder (PIDs get reused).
func (c *PGCluster) postmaster(name string) int {
	data := filepath.Join(c.dir(), name, "data")
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 || !alive(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(arg []byte) bool { return string(arg) == data }) {
		return 0
	}
	return pid
}

// killServer sends SIGKILL to a postmaster and waits until it and its
// children are gone: they notice its death and exit within milliseconds,
// and a server cannot start again while one still holds its shared memory.
// Children that linger for 2 s get SIGKILL too.
func killServer(pid int) error {
	procs := append(childPIDs(pid), pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %d: %v", pid, err)
	}
	start := time.Now()
	escalated := false
	for {
		var live []int
		for _, p := range procs {
			if alive(p) {
				live = append(live, p)
			}
		}
		switch {
		case len(live) == 0:
			return nil
		case time.Since(start) > 10*time.Second:
			return fmt.Errorf("processes %v of postmaster %d still alive after SIGKILL", live, pid)
		case !escalated && time.Since(start) > 2*time.Second:
			for _, p := range live {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			escalated = true
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
			continue
		}
		if kid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
			kids = append(kids, kid)
		}
	}
	return kids
}

// alive reports whether process pid exists and is not a zombie (a dead
// process its parent, here often init, has not reaped yet).
func alive(pid int) bool {
	st := processState(pid)
	return st != 0 && st != 'Z' && st != 'X'
}

// freePortBase returns a port p such that p .. p+n-1 are all free on
// 127.0.0.1 (net.Listen on port 0 gives no consecutive ports).
func freePortBase(n int) (int, error) {
	lo, hi := portRange(n)
	for range 200 {
		base := lo + rand.IntN(hi-lo)
		if portsFree(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports in %d-%d", n, lo, hi+n-2)
}

func portsFree(base, n int) bool {
	for i := range n {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
		if err != nil {
			return false
		}
		defer ln.Close()
	}
	return true
}

// portRange returns the range [lo, hi) to pick a base port from: 40000-50000,
// or, when that overlaps the kernel's ephemeral range (the source ports of
// outgoing connections; Linux's default is 32768-60999), the 10000 ports
// below it, so that no outgoing connection takes a port of a server the
// test has killed and will start again.
func portRange(n int) (lo, hi int) {
	lo, hi = 40000, 50000
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	elo, err1 := strconv.Atoi(f[0])
	ehi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || hi+n-2 < elo || lo > ehi {
		return lo, hi
	}
	if elo-n-10000 >= 1024 {
		return elo - n - 10000, elo - n + 1
	}
	return lo, hi
}

// missingPostgres lists what scripts/dev needs and cannot find, the way it
// looks for it (so that a test never makes it run apt-get).
func missingPostgres() []string {
	bin := pgBinDir()
	var missing []string
	for _, tool := range []string{"initdb", "pg_ctl", "pg_basebackup", "postgres"} {
		if bin == "" || !isExecutable(filepath.Join(bin, tool)) {
			missing = append(missing, tool)
		}
	}
	for _, tool := range []string{"psql", "pg_isready"} {
		if bin != "" && isExecutable(filepath.Join(bin, tool)) {
			continue
		}
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if bin != "" && isExecutable(filepath.Join(bin, "pg_config")) {
		out, err := exec.Command(filepath.Join(bin, "pg_config"), "--pkglibdir").Output()
		lib := strings.TrimSpace(string(out))
		if err == nil && lib != "" {
			if _, err := os.Stat(filepath.Join(lib, "pg_stat_statements.so")); err != nil {
				missing = append(missing, "pg_stat_statements")
			}
		}
	}
	return missing
}

// pgBinDir finds the folder of initdb as scripts/dev's find_pg_bindir does:
// pg_config --bindir, else the newest /usr/lib/postgresql/*/bin, else PATH.
func pgBinDir() string {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if dir != "" && isExecutable(filepath.Join(dir, "initdb")) {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		va, vb := version(a), version(b)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) {
			return dir
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// devScript finds scripts/dev next to the module's go.mod, above the
// current folder (a test runs in its package's folder).
func devScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			script := filepath.Join(dir, "scripts", "dev")
			if !isExecutable(script) {
				return "", fmt.Errorf("%s is missing or not executable", script)
			}
			return script, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the current folder, so no scripts/dev")
		}
		dir = parent
	}
}
