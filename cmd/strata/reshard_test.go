package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// The load and bounds of TestReshardUnderLoad.
const (
	// The store: big enough that the copy takes a moment, small enough
	// for a CI runner of two loaded cores.
	reshardUsers    = 2000
	reshardProducts = 200
	reshardActions  = 20000
	// reshardRate is the load's request rate, both instances together
	// (50 % GET /users/{id}, 10 % its recommendations, 40 % POST of an
	// action, users uniform over the store); reshardWorkers is how many
	// requests may be in flight at once (a tick that finds them all busy
	// is skipped and counted).
	reshardRate    = 150
	reshardWorkers = 24
	// reshardMoving are the virtual shards moved, half of shard1's.
	reshardMoving = "0-499"
	// reshardWriteP99 is the bound on the write pause: the p99
	// latency of the write requests sent while the move runs.
	reshardWriteP99 = 500 * time.Millisecond
	// reshardTail is how many requests the load sends once both
	// instances route by the final map, before it stops.
	reshardTail = 2 * reshardRate
	// reshardCap bounds the whole test; reshardWait bounds each wait on a
	// condition (an instance up, the load warm, the tail).
	reshardCap  = 5 * time.Minute
	reshardWait = time.Minute
	// reshardClientTimeout is past the storefront's own request budget
	// (10 s), so a slow request is answered by the server, not cut.
	reshardClientTimeout = 20 * time.Second
)

// TestReshardUnderLoad is issue 14's acceptance test for online
// resharding. A store seeded on one shard primary (shard1) gets a second,
// empty primary (strata shard add); two `strata serve` processes, given
// shard1 only, follow the map; the test drives a steady mixed load of
// reads (GET /users/{id}, /users/{id}/recommendations) and writes (POST
// /users/{id}/actions) through both, for users of every virtual shard,
// while `strata shard move --wait` moves half of shard1's virtual shards
// to the new shard: copy, catch-up, verify, read migration (1, 10, 50,
// 100 % of the moving reads on the target, each held --read-dwell 1s),
// then the cutover (write fence, pause bounded by the default 500 ms).
// The load goes on until both instances route by the final map and
// reshardTail more requests are done. It requires:
//
//   - the move to exit 0 in phase cut-over, as it prints it and as
//     strata shard status --all --json shows it, and the map (shard.Load)
//     to give the moved virtual shards to the new shard, the others to
//     shard1, with no move left in it; both instances to route by it;
//   - no failed read: every GET of a seeded user answered 200 (with that
//     user, for GET /users/{id});
//   - no 500, ever; a write may be answered 503 only with Retry-After
//     (counted, not acknowledged, so not looked for);
//   - every acknowledged write (201, answered as sent) to be on the shard
//     the final map gives its user, row by row, as written;
//   - the p99 latency of the writes sent while the move ran under
//     reshardWriteP99 (p50, p99 and max are logged, with the writes in
//     flight during the fence and the pause the mover reports);
//   - every acknowledged write of a moved user to reach shard1 too
//     (reverse replication, which keeps the move undoable), and
//     shard.Verify to find the moved virtual shards' rows equal on both
//     primaries, the new shard holding no row of another virtual shard;
//   - the load to have written to moving users both before the map first
//     changed and after the flip (10 each): else it proved nothing.
//
// Everything waits on conditions with deadlines (reshardWait), the whole
// under reshardCap; the cleanup stops the processes and drops what the
// move left on the shard servers (subscriptions, publications, slots).
func TestReshardUnderLoad(t *testing.T) {
	mainURL, shards := testdb.PostgresDatabase(t), testdb.ShardDatabases(t)
	src, dst := shards[0], shards[1]
	// Registered after the databases' cleanups, so run before them (and
	// after the processes' cleanups, registered later).
	t.Cleanup(func() { dropMoveReplication(t, src, dst) })
	ctx, cancel := context.WithTimeout(context.Background(), reshardCap)
	defer cancel()
	r := &reshardRun{t: t, ctx: ctx, began: time.Now(), mainURL: mainURL, src: src, dst: dst}
	r.setUp()

	// Two instances, given shard1 only: they learn of the new shard from
	// the map, as they will learn of the move.
	for i := range r.inst {
		r.inst[i] = startServeProcess(t, r.bin, "serve", "--db", mainURL, "--shard", src, "--addr", "127.0.0.1:0")
	}
	seed1, seed2 := rand.Uint64(), rand.Uint64()
	t.Logf("load: %d req/s over 2 instances, %d workers, users 1..%d, random seeds %d %d", reshardRate, reshardWorkers, reshardUsers, seed1, seed2)
	load := startReshardLoad(ctx, r.inst, seed1, seed2)
	defer load.stop() // on a failure below; stopping twice is harmless
	reshardWaitFor(t, "the load is served by both instances", func() bool {
		ok := load.served()
		return ok[0] >= 100 && ok[1] >= 100
	}, func() string {
		return fmt.Sprintf("answered 2xx: %v\n%s", load.served(), r.inst[0].logs.String()+r.inst[1].logs.String())
	})

	moved := r.move()
	after := r.checkCutOver(moved)

	// A tail of load on the final map: both instances route by it, then
	// reshardTail more requests, then the load stops.
	reshardWaitFor(t, fmt.Sprintf("both instances route by epoch %d", after.Epoch), func() bool {
		return r.inst[0].epoch() >= after.Epoch && r.inst[1].epoch() >= after.Epoch
	}, func() string { return fmt.Sprintf("epochs applied: %d, %d", r.inst[0].epoch(), r.inst[1].epoch()) })
	tailFrom := load.done()
	reshardWaitFor(t, "the tail of the load", func() bool { return load.done() >= tailFrom+reshardTail },
		func() string { return fmt.Sprintf("%d of %d requests done", load.done()-tailFrom, reshardTail) })
	samples, skipped := load.stop()

	acked := r.checkRequests(samples, skipped)
	r.checkWritePause(samples)
	// Every acknowledged write is where the final map says its user lives.
	dbs := map[string]*sql.DB{r.source: openPG(t, src), r.target: openPG(t, dst)}
	checkAcked(ctx, t, after, dbs, acked, r.at)
	// Reverse replication carries the new owner's writes back to the old
	// one (so the move can be undone without loss): every acknowledged
	// write of a moved user reaches shard1 too.
	checkReversed(ctx, t, dbs[r.source], acked, r.isMoving, r.tl.flipAt(), r.at)
	r.verify(dbs[r.source], dbs[r.target])

	for i, p := range r.inst {
		if err := p.stop(); err != nil {
			t.Errorf("serve %d: %v", i+1, err)
		}
		if errs := regexp.MustCompile(`(?m)^.*level=ERROR.*$`).FindAllString(p.logs.String(), -1); len(errs) > 0 {
			t.Logf("serve %d logged %d errors:\n%s", i+1, len(errs), strings.Join(reshardFirst(errs, 10), "\n"))
		}
	}
}

// reshardRun is TestReshardUnderLoad's state, shared by its steps.
type reshardRun struct {
	t     *testing.T
	ctx   context.Context // the test's bound
	began time.Time
	bin   string // strata, built

	mainURL, src, dst string // the main database, shard1 and the new shard
	source, target    string // shard1's and the new shard's names in the map
	mainDB            *sql.DB
	moving            shard.VRange // the virtual shards moved
	n                 int          // of the keyspace

	moverPause         string // the write pause the mover reported
	inst               [2]*serveProcess
	tl                 *reshardTimeline
	moveStart, moveEnd time.Time
}

// at is x as seconds into the test.
func (r *reshardRun) at(x time.Time) string {
	if x.IsZero() {
		return "never"
	}
	return fmt.Sprintf("+%.3fs", x.Sub(r.began).Seconds())
}

// isMoving reports whether user's virtual shard is one the test moves.
func (r *reshardRun) isMoving(user int64) bool {
	v := shard.VirtualShard(user, r.n)
	return v >= r.moving.Lo && v <= r.moving.Hi
}

// duringMove reports whether x is between the move's start and end.
func (r *reshardRun) duringMove(x time.Time) bool {
	return !x.Before(r.moveStart) && !x.After(r.moveEnd)
}

// setUp builds strata, seeds the store on shard1 alone and adds the new
// shard (strata seed, strata shard add).
func (r *reshardRun) setUp() {
	t := r.t
	r.bin = filepath.Join(t.TempDir(), "strata")
	if out, err := exec.CommandContext(r.ctx, "go", "build", "-o", r.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	runStrataBin(r.ctx, t, r.bin, "seed", "--db", r.mainURL, "--shard", r.src,
		"--users", strconv.Itoa(reshardUsers), "--products", strconv.Itoa(reshardProducts), "--actions", strconv.Itoa(reshardActions))
	out := runStrataBin(r.ctx, t, r.bin, "shard", "add", "--db", r.mainURL, "--shard", r.dst, "--json")
	var added struct {
		Shard shardJSON `json:"shard"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.Shard.Name == "" {
		t.Fatalf("shard add --json: %v: %s", err, out)
	}
	r.target = added.Shard.Name
	r.mainDB = openPG(t, r.mainURL)
	before, err := shard.Load(r.ctx, r.mainDB)
	if err != nil {
		t.Fatal(err)
	}
	r.source, r.n = before.Shards[before.Owners[0]].Name, len(before.Owners)
	if len(before.Shards) != 2 || slices.ContainsFunc(before.Owners, func(o int) bool { return before.Shards[o].Name != r.source }) {
		t.Fatalf("the map before the move (epoch %d): %+v; want %s owning every virtual shard, and %s", before.Epoch, before.Shards, r.source, r.target)
	}
	if r.moving, err = shard.ParseVRange(reshardMoving, r.n); err != nil {
		t.Fatal(err)
	}
}

// move runs strata shard move --wait as a process of its own, sampling
// the map and the move's phase meanwhile for the timeline, and stops the
// test unless it exits 0. It returns what the move printed (--json).
//
// The shard servers are shared with the other packages' tests, whose
// moves hold replication slots, WAL senders and logical replication
// workers for a while: a move whose pre-flight finds only those short
// changed nothing, and is resumed until they are free (up to
// reshardWait).
func (r *reshardRun) move() moveJSON {
	t := r.t
	runFlags := []string{"--wait", "--read-dwell", "1s", "--json"}
	args := append([]string{"shard", "move", "--db", r.mainURL, "--vshards", reshardMoving, "--to", r.target}, runFlags...)
	r.tl = &reshardTimeline{began: r.began}
	r.moveStart = time.Now()
	var stdout string
	for {
		out, errOut, err := r.runMove(args)
		stdout = out
		if err == nil {
			if m := pausedRE.FindStringSubmatch(errOut); m != nil {
				r.moverPause = m[1]
			}
			break
		}
		id := resumeIDRE.FindStringSubmatch(errOut)
		if id == nil || !onlyShortOfShared(errOut) || time.Since(r.moveStart) > reshardWait {
			t.Logf("timeline (move started %s):\n%s", r.at(r.moveStart), r.tl.String())
			t.Fatalf("the move did not exit 0: %v", exitText(err))
		}
		args = append([]string{"shard", "resume", "--db", r.mainURL, "--id", id[1]}, runFlags...)
		time.Sleep(250 * time.Millisecond) // the pre-flight is the check; this is its poll interval
	}
	r.moveEnd = time.Now()
	t.Logf("timeline (move started %s, ended %s):\n%s", r.at(r.moveStart), r.at(r.moveEnd), r.tl.String())
	var moved moveJSON
	if err := json.Unmarshal([]byte(stdout), &moved); err != nil {
		t.Fatalf("move --json printed no move: %v", err)
	}
	return moved
}

// pausedRE finds the write pause the mover measured in its output.
var pausedRE = regexp.MustCompile(`cut over: writes paused (\S+?),`)

// resumeIDRE finds the move's id in the command a failed move names to
// resume it.
var resumeIDRE = regexp.MustCompile(`strata shard resume --db \S+ --id (\d+) --wait`)

// sharedProblems are the pre-flight checks of resources of a whole
// server, which other tests' moves take and give back.
var sharedProblems = []string{shard.CheckSlots, shard.CheckWALSenders, shard.CheckWorkers}

// onlyShortOfShared reports whether errOut is a move stopped by its
// pre-flight before changing anything, for want of sharedProblems only.
func onlyShortOfShared(errOut string) bool {
	if !strings.Contains(errOut, "stopped before changing anything") {
		return false
	}
	problems := regexp.MustCompile(`(?m)^  - ([^:]+):`).FindAllStringSubmatch(errOut, -1)
	for _, p := range problems {
		if !slices.Contains(sharedProblems, p[1]) {
			return false
		}
	}
	return len(problems) > 0
}

// runMove runs strata with args (a move or a resume), following the map
// and the moves for the timeline until it exits; it returns its output.
func (r *reshardRun) runMove(args []string) (stdout, stderr string, err error) {
	t := r.t
	var out, errOut lockedBuffer
	cmd := exec.CommandContext(r.ctx, r.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	err = r.tl.follow(r.ctx, r.mainDB, done) // returns once the command has exited
	t.Logf("strata %s: %s after %v\nstdout:\n%s\nstderr:\n%s", clipArgs(args),
		exitText(err), time.Since(start).Round(time.Millisecond), out.String(), errOut.String())
	return out.String(), errOut.String(), err
}

// checkCutOver requires the move to be cut over, as it printed and as
// status shows it, and the map to give the moved virtual shards to the
// new shard, the others to shard1, with no move left in it. It returns
// the final map.
func (r *reshardRun) checkCutOver(moved moveJSON) *shard.Map {
	t := r.t
	if moved.Phase != shard.PhaseCutOver || moved.Error != "" {
		t.Errorf("move --json: phase %q, error %q; want %q, no error", moved.Phase, moved.Error, shard.PhaseCutOver)
	}
	status := statusJSON(t, "--db", r.mainURL, "--all")
	if i := slices.IndexFunc(status, func(m moveJSON) bool { return m.ID == moved.ID }); i < 0 {
		t.Errorf("status --all --json lacks move %d: %+v", moved.ID, status)
	} else if s := status[i]; s.Phase != shard.PhaseCutOver || s.Error != "" || s.VShards != reshardMoving || s.Source != r.source || s.Target != r.target {
		t.Errorf("status --all --json: %+v; want %s %s to %s, phase %s, no error", s, reshardMoving, r.source, r.target, shard.PhaseCutOver)
	}
	after, err := shard.Load(r.ctx, r.mainDB)
	if err != nil {
		t.Fatal(err)
	}
	ti := slices.IndexFunc(after.Shards, func(s shard.Shard) bool { return s.Name == r.target })
	si := slices.IndexFunc(after.Shards, func(s shard.Shard) bool { return s.Name == r.source })
	if ti < 0 || si < 0 {
		t.Fatalf("the final map (epoch %d) lacks %s or %s: %+v", after.Epoch, r.source, r.target, after.Shards)
	}
	var wrong []string
	for v, o := range after.Owners {
		want := si
		if v >= r.moving.Lo && v <= r.moving.Hi {
			want = ti
		}
		if o != want {
			wrong = append(wrong, fmt.Sprintf("%d: %s, want %s", v, after.Shards[o].Name, after.Shards[want].Name))
		}
	}
	if len(wrong) > 0 || len(after.Moves) > 0 {
		t.Fatalf("the final map (epoch %d): %d virtual shards with the wrong owner (%s), moves left in it: %+v",
			after.Epoch, len(wrong), strings.Join(reshardFirst(wrong, 10), "; "), after.Moves)
	}
	return after
}

// reshardTally counts the load's answers.
type reshardTally struct {
	failures                      []string
	acked                         []*reshardSample
	reads, readsMoving, shared    int // reads 200; of moving users; of those, sent while reads were shared
	paused, http500               int // writes 503 with Retry-After; answers 500
	movingBefore, movingAfter     int // acknowledged writes of moving users done before the map first changed, sent after the flip
	firstChange, firstShare, flip time.Time
}

// add counts s.
func (c *reshardTally) add(r *reshardRun, s *reshardSample) {
	if s.status == http.StatusInternalServerError {
		c.http500++
	}
	switch {
	case !s.write && s.status == http.StatusOK && s.readUser != 0 && s.readUser != s.user:
		c.failures = append(c.failures, s.describe(r.at)+fmt.Sprintf(": answered user %d", s.readUser))
	case !s.write && s.status == http.StatusOK:
		c.reads++
		if r.isMoving(s.user) {
			c.readsMoving++
			if !c.firstShare.IsZero() && s.start.After(c.firstShare) && (c.flip.IsZero() || s.start.Before(c.flip)) {
				c.shared++
			}
		}
	case s.write && s.status == http.StatusCreated:
		c.acknowledged(r, s)
	case s.write && s.status == http.StatusServiceUnavailable && s.retryAfter != "":
		c.paused++
	default:
		c.failures = append(c.failures, s.describe(r.at))
	}
}

// acknowledged counts s, a write answered 201: a failure unless it was
// answered as sent.
func (c *reshardTally) acknowledged(r *reshardRun, s *reshardSample) {
	if s.answered.ID <= 0 || s.answered.UserID != s.user || s.answered.ProductID != s.product || string(s.answered.Kind) != s.kind {
		c.failures = append(c.failures, s.describe(r.at)+fmt.Sprintf(": answered %+v, sent user %d product %d kind %s", s.answered, s.user, s.product, s.kind))
		return
	}
	c.acked = append(c.acked, s)
	if r.isMoving(s.user) && s.start.Add(s.latency).Before(c.firstChange) {
		c.movingBefore++
	}
	if r.isMoving(s.user) && !c.flip.IsZero() && s.start.After(c.flip) {
		c.movingAfter++
	}
}

// checkRequests requires every read to be answered 200 with its user,
// every write 201 (as sent) or 503 with Retry-After, no 500, and the
// load to have written to moving users on both sides of the flip. It
// returns the acknowledged writes.
func (r *reshardRun) checkRequests(samples []*reshardSample, skipped int64) []*reshardSample {
	t := r.t
	c := &reshardTally{firstChange: r.tl.firstChange(), firstShare: r.tl.firstShare(), flip: r.tl.flipAt()}
	for _, s := range samples {
		c.add(r, s)
	}
	t.Logf("requests: %d answered (%d skipped ticks: every worker busy); reads 200: %d (%d of moving users, %d of them sent while reads were shared, before the flip); writes acknowledged: %d; writes 503 with Retry-After: %d; 500s: %d; failures: %d",
		len(samples), skipped, c.reads, c.readsMoving, c.shared, len(c.acked), c.paused, c.http500, len(c.failures))
	if len(c.failures) > 0 {
		t.Errorf("%d failed requests (a read not 200 with its user, a write neither 201 as sent nor 503 with Retry-After, or no answer):\n%s",
			len(c.failures), strings.Join(reshardFirst(c.failures, 40), "\n"))
	}
	if c.http500 > 0 {
		t.Errorf("%d requests answered 500", c.http500)
	}
	// The load reached the moving virtual shards on both sides of the
	// ownership change: the test proves nothing otherwise.
	if c.flip.IsZero() || c.movingBefore < 10 || c.movingAfter < 10 {
		t.Errorf("acknowledged writes of moving users: %d done before the map first changed (%s), %d sent after the flip (%s); want 10 each",
			c.movingBefore, r.at(c.firstChange), c.movingAfter, r.at(c.flip))
	}
	return c.acked
}

// checkWritePause logs the latency of the writes sent before and while
// the move ran (p50, p99, max) and requires the p99 of the latter under
// reshardWriteP99.
func (r *reshardRun) checkWritePause(samples []*reshardSample) {
	t := r.t
	var window, moving, base []time.Duration
	for _, s := range samples {
		switch {
		case !s.write:
		case r.duringMove(s.start):
			window = append(window, s.latency)
			if r.isMoving(s.user) {
				moving = append(moving, s.latency)
			}
		case s.start.Before(r.moveStart):
			base = append(base, s.latency)
		}
	}
	p50, p99, pmax := reshardLatencies(window)
	m50, m99, mmax := reshardLatencies(moving)
	b50, b99, bmax := reshardLatencies(base)
	t.Logf("write latency while the move ran (%d writes, 503s included): p50 %v, p99 %v, max %v; of moving users (%d): p50 %v, p99 %v, max %v; before the move (%d): p50 %v, p99 %v, max %v",
		len(window), p50, p99, pmax, len(moving), m50, m99, mmax, len(base), b50, b99, bmax)
	// The writes of moving users in flight during the cutover, from the
	// fence (or the phase before it) to the flip, as sampled.
	if from, to := r.tl.fenceAt(), r.tl.flipAt(); !from.IsZero() && !to.IsZero() {
		from, to = from.Add(-reshardSampleEvery), to.Add(reshardSampleEvery)
		var held []time.Duration
		for _, s := range samples {
			if s.write && r.isMoving(s.user) && !s.start.After(to) && !s.start.Add(s.latency).Before(from) {
				held = append(held, s.latency)
			}
		}
		h50, _, hmax := reshardLatencies(held)
		t.Logf("writes of moving users in flight from the fence to the flip (%s to %s, sampled): %d, p50 %v, max %v; the mover reported a write pause of %s",
			r.at(from), r.at(to), len(held), h50, hmax, r.moverPause)
	}
	t.Logf("the slowest writes:\n%s", strings.Join(slowest(samples, 5, r.at), "\n"))
	if len(window) == 0 {
		t.Error("no write was sent while the move ran")
	} else if p99 >= reshardWriteP99 {
		t.Errorf("the p99 write latency while the move ran is %v, want under %v", p99, reshardWriteP99)
	}
}

// verify requires shard.Verify to find each moved table's rows of the
// moved virtual shards equal on both shards, and the new shard to hold
// no row of another virtual shard.
func (r *reshardRun) verify(src, dst *sql.DB) {
	t := r.t
	for _, tbl := range storefront.ShardTables {
		rep, err := shard.Verify(r.ctx, src, dst, tbl, r.moving, r.n, shard.VerifyConfig{Retries: 20, RetryWait: 250 * time.Millisecond})
		if err != nil {
			t.Errorf("verify %s %s: %v", tbl.Name, r.moving, err)
			continue
		}
		t.Logf("verify %s %s: %d rows compared in %d chunks, %d rechecks, clean %v", tbl.Name, r.moving, rep.Rows, rep.Chunks, rep.Rechecks, rep.Clean())
		if !rep.Clean() {
			var diffs []string
			for _, d := range reshardFirst(rep.Diffs, 10) {
				diffs = append(diffs, fmt.Sprintf("  %+v", d))
			}
			t.Errorf("verify %s %s: not clean (truncated %v):\n%s", tbl.Name, r.moving, rep.Truncated, strings.Join(diffs, "\n"))
		}
		var stray int64
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE NOT %s`, tbl.Name, r.moving.SQL(tbl.Key, r.n))
		if err := dst.QueryRowContext(r.ctx, q).Scan(&stray); err != nil || stray != 0 {
			t.Errorf("%s on %s: %d rows of virtual shards it does not own (%v)", tbl.Name, r.target, stray, err)
		}
	}
}

// runStrataBin runs the built strata with args and stops the test unless it
// exits 0; it returns the standard output.
func runStrataBin(ctx context.Context, t *testing.T, bin string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("strata %s: %v\n%s%s", clipArgs(args), exitText(err), out.String(), errOut.String())
	}
	return out.String()
}

// exitText words a process's end.
func exitText(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit 0"
	case errors.As(err, &ee):
		return ee.String()
	}
	return err.Error()
}

// reshardFirst is up to n of xs.
func reshardFirst[T any](xs []T, n int) []T { return xs[:min(n, len(xs))] }

// reshardWaitFor waits, up to reshardWait, until cond holds, and stops the test
// with what state says otherwise.
func reshardWaitFor(t *testing.T, what string, cond func() bool, state func() string) {
	t.Helper()
	for deadline := time.Now().Add(reshardWait); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, reshardWait, state())
		}
	}
}

// serveProcess is a `strata serve` running as a process of its own,
// which a test may stop (SIGSTOP) and continue.
type serveProcess struct {
	base   string
	logs   *lockedBuffer
	cmd    *exec.Cmd
	exited chan struct{} // closed when it has exited; err is set then
	err    error
	client *http.Client

	mu       sync.Mutex
	frozen   bool
	stopOnce sync.Once
	stopErr  error
}

// startServeProcess starts bin with args (serve ... --addr 127.0.0.1:0)
// and waits until it logs the address it serves on. Its cleanup stops it.
func startServeProcess(t *testing.T, bin string, args ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{logs: &lockedBuffer{}, exited: make(chan struct{}), client: &http.Client{Timeout: 5 * time.Second}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, faultEnv+"=") })
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { _ = p.stop() }) // before the databases are dropped
	addrRE := regexp.MustCompile(`addr=http://(127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(reshardWait); ; time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(p.logs.String()); m != nil {
			p.base = "http://" + m[1]
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("serve exited (%v) before serving:\n%s", exitText(p.err), p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address within %v:\n%s", reshardWait, p.logs.String())
		}
	}
}

// stop continues the process if it is stopped, interrupts it, kills it
// if it has not exited 30 s later, and returns nil if it exited 0 on the
// interrupt. Only the first call stops it.
func (p *serveProcess) stop() error {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		if p.frozen {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			p.frozen = false
		}
		p.mu.Unlock()
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
			if p.err != nil {
				p.stopErr = fmt.Errorf("exited on an interrupt with %s:\n%s", exitText(p.err), p.logs.String())
			}
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = errors.New("did not exit within 30 s of an interrupt: killed")
		}
	})
	return p.stopErr
}

// freeze stops the process (SIGSTOP) and waits until it is stopped.
func (p *serveProcess) freeze(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(faultWait); faultProcState(p.cmd.Process.Pid) != 'T'; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve (pid %d) is not stopped %v after SIGSTOP", p.cmd.Process.Pid, faultWait)
		}
	}
}

// thaw continues the process (SIGCONT).
func (p *serveProcess) thaw(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	p.frozen = false
}

// epoch returns the map epoch the process routes by (its
// strata_shard_map_epoch), 0 when it cannot be read.
func (p *serveProcess) epoch() int64 {
	resp, err := p.client.Get(p.base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := epochRE.FindSubmatch(b)
	if m == nil {
		return 0
	}
	e, _ := strconv.ParseFloat(string(m[1]), 64)
	return int64(e)
}

// reshardSample is one request of the load and its answer.
type reshardSample struct {
	instance   int
	write      bool
	path       string
	user       int64
	product    int64  // a write's
	kind       string // a write's
	start      time.Time
	latency    time.Duration
	status     int               // 0: no answer
	retryAfter string            // its Retry-After header
	problem    string            // the error, or the body of an answer not 2xx
	answered   storefront.Action // a write's answer
	readUser   int64             // the id in a GET /users/{id}'s answer
}

// describe is s in a line, its times by at.
func (s *reshardSample) describe(at func(time.Time) string) string {
	method := "GET"
	if s.write {
		method = "POST"
	}
	status := strconv.Itoa(s.status)
	if s.status == 0 {
		status = "no answer"
	}
	if s.retryAfter != "" {
		status += " (Retry-After " + s.retryAfter + ")"
	}
	line := fmt.Sprintf("%s instance %d %s %s: %s after %v", at(s.start), s.instance+1, method, s.path, status, s.latency.Round(time.Millisecond))
	if s.problem != "" {
		line += ": " + s.problem
	}
	return line
}

// reshardLoad is the test's load: a ticker at reshardRate hands requests
// to reshardWorkers workers, which send them to either instance.
type reshardLoad struct {
	cancel   context.CancelFunc
	client   *http.Client
	wg       sync.WaitGroup
	mu       sync.Mutex
	samples  []*reshardSample
	ok       [2]atomic.Int64 // answered 2xx, per instance
	finished atomic.Int64
	skipped  atomic.Int64
	once     sync.Once
}

// startReshardLoad starts the load on inst until stop; requests in flight
// are bounded by ctx (the test's cap) and the client's timeout only, so
// that stopping the load does not cut them.
func startReshardLoad(ctx context.Context, inst [2]*serveProcess, seed1, seed2 uint64) *reshardLoad {
	lctx, cancel := context.WithCancel(ctx)
	client := &http.Client{Timeout: reshardClientTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: reshardWorkers, MaxIdleConns: 2 * reshardWorkers}}
	l := &reshardLoad{cancel: cancel, client: client}
	jobs := make(chan *reshardSample, reshardWorkers)
	l.wg.Add(1)
	go func() { // the ticker: the request mix and its users, from the seeds
		defer l.wg.Done()
		defer close(jobs)
		rng := rand.New(rand.NewPCG(seed1, seed2))
		tick := time.NewTicker(time.Second / reshardRate)
		defer tick.Stop()
		kinds := []string{string(storefront.View), string(storefront.Cart), string(storefront.Purchase)}
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			s := &reshardSample{instance: rng.IntN(2), user: 1 + rng.Int64N(reshardUsers)}
			switch r := rng.IntN(10); {
			case r < 5:
				s.path = fmt.Sprintf("/users/%d", s.user)
			case r < 6:
				s.path = fmt.Sprintf("/users/%d/recommendations", s.user)
			default:
				s.write, s.path = true, fmt.Sprintf("/users/%d/actions", s.user)
				s.product, s.kind = 1+rng.Int64N(reshardProducts), kinds[rng.IntN(len(kinds))]
			}
			select {
			case jobs <- s:
			default:
				l.skipped.Add(1)
			}
		}
	}()
	for range reshardWorkers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for s := range jobs {
				l.send(ctx, client, inst[s.instance].base, s)
			}
		}()
	}
	return l
}

// send sends s to base and records the answer.
func (l *reshardLoad) send(ctx context.Context, client *http.Client, base string, s *reshardSample) {
	method, body := http.MethodGet, io.Reader(nil)
	if s.write {
		method = http.MethodPost
		body = strings.NewReader(fmt.Sprintf(`{"product_id": %d, "kind": %q}`, s.product, s.kind))
	}
	req, err := http.NewRequestWithContext(ctx, method, base+s.path, body)
	if err != nil {
		panic(err)
	}
	if s.write {
		req.Header.Set("Content-Type", "application/json")
	}
	s.start = time.Now()
	resp, err := client.Do(req)
	if err != nil {
		s.latency, s.problem = time.Since(s.start), err.Error()
	} else {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.latency, s.status, s.retryAfter = time.Since(s.start), resp.StatusCode, resp.Header.Get("Retry-After")
		switch {
		case rerr != nil:
			s.status, s.problem = 0, "reading the answer: "+rerr.Error()
		case resp.StatusCode/100 != 2:
			s.problem = string(reshardFirst(b, 300))
		case s.write:
			if err := json.Unmarshal(b, &s.answered); err != nil {
				s.problem = fmt.Sprintf("the answer is not an action: %v: %s", err, reshardFirst(b, 300))
			}
		case !strings.HasSuffix(s.path, "/recommendations"):
			var u storefront.User
			if err := json.Unmarshal(b, &u); err != nil || u.ID == 0 {
				s.readUser = -1
				s.problem = fmt.Sprintf("the answer is not a user: %v: %s", err, reshardFirst(b, 300))
			} else {
				s.readUser = u.ID
			}
		}
		if resp.StatusCode/100 == 2 {
			l.ok[s.instance].Add(1)
		}
	}
	l.finished.Add(1)
	l.mu.Lock()
	l.samples = append(l.samples, s)
	l.mu.Unlock()
}

// served is the number of 2xx answers from each instance so far.
func (l *reshardLoad) served() [2]int64 { return [2]int64{l.ok[0].Load(), l.ok[1].Load()} }

// done is the number of requests answered (or failed) so far.
func (l *reshardLoad) done() int64 { return l.finished.Load() }

// stop stops the ticker, waits for the requests in flight and returns
// every request's sample and the ticks skipped.
func (l *reshardLoad) stop() ([]*reshardSample, int64) {
	l.once.Do(func() { l.cancel(); l.wg.Wait(); l.client.CloseIdleConnections() })
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.samples, l.skipped.Load()
}

// slowest describes the n slowest writes of samples, slowest first.
func slowest(samples []*reshardSample, n int, at func(time.Time) string) []string {
	var w []*reshardSample
	for _, s := range samples {
		if s.write {
			w = append(w, s)
		}
	}
	slices.SortFunc(w, func(a, b *reshardSample) int { return int(b.latency - a.latency) })
	var out []string
	for _, s := range reshardFirst(w, n) {
		out = append(out, "  "+s.describe(at))
	}
	return out
}

// checkReversed waits, up to reshardWait, until every acknowledged write
// of a moving user (by moving) is on old, the old owner, too; it fails
// the test with those that are not.
func checkReversed(ctx context.Context, t *testing.T, old *sql.DB, acked []*reshardSample, moving func(int64) bool, flip time.Time, at func(time.Time) string) {
	t.Helper()
	var want []int64
	byID := map[int64]*reshardSample{}
	for _, s := range acked {
		if moving(s.user) {
			want = append(want, s.answered.ID)
			byID[s.answered.ID] = s
		}
	}
	var missing []int64
	deadline := time.Now().Add(reshardWait)
	for {
		got := ids(t, old, fmt.Sprintf(`SELECT id FROM user_actions WHERE id = ANY('{%s}'::bigint[]) ORDER BY 1`, joinInts(want)))
		have := map[string]bool{}
		for _, id := range got {
			have[id] = true
		}
		missing = missing[:0]
		for _, id := range want {
			if !have[strconv.FormatInt(id, 10)] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(missing) == 0 {
		t.Logf("all %d acknowledged writes of moving users are on the old owner too", len(want))
		return
	}
	var lines []string
	for _, id := range reshardFirst(missing, 40) {
		s := byID[id]
		lines = append(lines, fmt.Sprintf("  action %d (sent %v after the flip): %s", id, s.start.Sub(flip).Round(time.Millisecond), s.describe(at)))
	}
	t.Errorf("%d of %d acknowledged writes of moving users never reached the old owner (reverse replication), %v after the load stopped:\n%s",
		len(missing), len(want), reshardWait, strings.Join(lines, "\n"))
}

// joinInts is xs, comma-separated.
func joinInts(xs []int64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(parts, ",")
}

// reshardLatencies returns the p50, p99 and max of ds (nearest rank), rounded.
func reshardLatencies(ds []time.Duration) (p50, p99, pmax time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))].Round(100 * time.Microsecond)
	}
	return rank(0.50), rank(0.99), s[len(s)-1].Round(100 * time.Microsecond)
}

// checkAcked fails the test for each acknowledged write that is not, as
// written, on the shard m gives its user (dbs by shard name).
func checkAcked(ctx context.Context, t *testing.T, m *shard.Map, dbs map[string]*sql.DB, acked []*reshardSample, at func(time.Time) string) {
	t.Helper()
	byOwner := map[string][]*reshardSample{}
	seen := map[int64]*reshardSample{}
	var problems []string
	for _, s := range acked {
		if o := seen[s.answered.ID]; o != nil {
			problems = append(problems, fmt.Sprintf("action id %d acknowledged twice: %s and %s", s.answered.ID, o.describe(at), s.describe(at)))
			continue
		}
		seen[s.answered.ID] = s
		name := m.Shards[m.Owner(s.user)].Name
		byOwner[name] = append(byOwner[name], s)
	}
	for name, list := range byOwner {
		db := dbs[name]
		if db == nil {
			t.Fatalf("no database for shard %s", name)
		}
		idList := make([]int64, len(list))
		for i, s := range list {
			idList[i] = s.answered.ID
		}
		type row struct {
			user, product int64
			kind          string
		}
		found := map[int64]row{}
		rows, err := db.QueryContext(ctx, `SELECT id, user_id, product_id, kind FROM user_actions WHERE id = ANY($1)`, idList)
		if err != nil {
			t.Fatalf("read the acknowledged actions on %s: %v", name, err)
		}
		for rows.Next() {
			var id int64
			var r row
			if err := rows.Scan(&id, &r.user, &r.product, &r.kind); err != nil {
				t.Fatal(err)
			}
			found[id] = r
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		for _, s := range list {
			r, ok := found[s.answered.ID]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("action %d missing on %s, its user's owner: %s", s.answered.ID, name, s.describe(at)))
			case r != row{s.user, s.product, s.kind}:
				problems = append(problems, fmt.Sprintf("action %d on %s is %+v, acknowledged as %s", s.answered.ID, name, r, s.describe(at)))
			}
		}
		t.Logf("%d acknowledged writes checked on %s, their users' owner", len(list), name)
	}
	if len(problems) > 0 {
		t.Errorf("%d of %d acknowledged writes are not on their user's owner as written:\n%s", len(problems), len(acked), strings.Join(reshardFirst(problems, 40), "\n"))
	}
}

// reshardSampleEvery is how often the timeline samples the map and the
// moves.
const reshardSampleEvery = 20 * time.Millisecond

// reshardTimeline records what the map and the move looked like while the
// move ran, as sampled every reshardSampleEvery.
type reshardTimeline struct {
	began  time.Time
	events []reshardEvent
	epoch  int64            // the last map epoch seen
	phases map[int64]string // the last phase (and error) seen of each move
}

type reshardEvent struct {
	at    time.Time
	epoch int64
	what  string
	share int  // the move's read share in the map, -1: no move in it
	fence bool // the map fences the move
	owner int  // the owner of the move's first virtual shard
}

// follow samples the map and the moves of db until done yields the
// move's end, and returns it.
func (tl *reshardTimeline) follow(ctx context.Context, db *sql.DB, done <-chan error) error {
	tick := time.NewTicker(reshardSampleEvery)
	defer tick.Stop()
	if tl.phases == nil {
		tl.phases = map[int64]string{}
	}
	for {
		if m, err := shard.Load(ctx, db); err == nil && m.Epoch != tl.epoch {
			tl.epoch = m.Epoch
			e := reshardEvent{at: time.Now(), epoch: m.Epoch, share: -1, owner: -1}
			var lo int
			for _, mv := range m.Moves {
				e.share, e.fence, lo = mv.ReadShare, mv.Fenced, mv.VShards.Lo
				e.what = fmt.Sprintf("map epoch %d: move of %s to %s, read share %d%%, fenced %v", m.Epoch, mv.VShards, m.Shards[mv.To].Name, mv.ReadShare, mv.Fenced)
			}
			e.owner = m.Owners[lo]
			if e.what == "" {
				e.what = fmt.Sprintf("map epoch %d: no move; virtual shard 0 owned by %s", m.Epoch, m.Shards[m.Owners[0]].Name)
			}
			tl.events = append(tl.events, e)
		}
		if moves, err := shard.Moves(ctx, db, false); err == nil {
			for _, mv := range moves {
				if tl.phases[mv.ID] != mv.Phase+mv.Error {
					tl.phases[mv.ID] = mv.Phase + mv.Error
					what := fmt.Sprintf("move %d: phase %s", mv.ID, mv.Phase)
					if mv.Error != "" {
						what += ", error: " + mv.Error
					}
					tl.events = append(tl.events, reshardEvent{at: time.Now(), what: what, share: -2})
				}
			}
		}
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return <-done // the command is killed with ctx
		case <-tick.C:
		}
	}
}

// firstChange is when the map first named the move (its read migration
// began, or its fence), zero if never seen.
func (tl *reshardTimeline) firstChange() time.Time {
	base := int64(-1)
	for _, e := range tl.events {
		switch {
		case e.share == -2: // a phase
		case base < 0:
			base = e.epoch
		case e.share >= 0 && e.epoch > base:
			return e.at
		}
	}
	return tl.flipAt()
}

// firstShare is when the map first sent a share of the moving reads to
// the target, zero if never seen.
func (tl *reshardTimeline) firstShare() time.Time {
	for _, e := range tl.events {
		if e.share > 0 {
			return e.at
		}
	}
	return time.Time{}
}

// fenceAt is when the map was first seen fencing the move, or else when
// the move was first seen starting its cutover; zero if neither was.
func (tl *reshardTimeline) fenceAt() time.Time {
	var phase time.Time
	for _, e := range tl.events {
		if e.fence {
			return e.at
		}
		if phase.IsZero() && e.share == -2 && strings.Contains(e.what, "phase cut-over-started") {
			phase = e.at
		}
	}
	return phase
}

// flipAt is when the map was first seen giving the moved virtual shards
// to a new owner, zero if never.
func (tl *reshardTimeline) flipAt() time.Time {
	var owner = -1
	for _, e := range tl.events {
		if e.share == -2 {
			continue
		}
		if owner < 0 {
			owner = e.owner
		} else if e.owner != owner {
			return e.at
		}
	}
	return time.Time{}
}

func (tl *reshardTimeline) String() string {
	var b strings.Builder
	for _, e := range tl.events {
		fmt.Fprintf(&b, "  +%.3fs %s\n", e.at.Sub(tl.began).Seconds(), e.what)
	}
	return b.String()
}

// dropMoveReplication drops what moves between the databases at urls
// left behind, so that the databases can be dropped and the servers'
// slots freed: every subscription (forward and reverse: each drops its
// slot on the other side), then every publication, then any replication
// slot of the databases left over.
func dropMoveReplication(t *testing.T, urls ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	steps := []struct{ list, drop string }{
		{`SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, `DROP SUBSCRIPTION "%s"`},
		{`SELECT pubname FROM pg_publication`, `DROP PUBLICATION "%s"`},
		{`SELECT slot_name FROM pg_replication_slots WHERE database = current_database()`, `SELECT pg_drop_replication_slot('%s')`},
	}
	dbs := make([]*sql.DB, len(urls))
	for i, u := range urls {
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Errorf("open: %v", err)
			return
		}
		defer db.Close()
		dbs[i] = db
	}
	for _, step := range steps {
		for _, db := range dbs {
			var names []string
			rows, err := db.QueryContext(ctx, step.list)
			if err != nil {
				t.Errorf("%s: %v", step.list, err)
				continue
			}
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					t.Error(err)
				}
				names = append(names, name)
			}
			rows.Close()
			for _, name := range names {
				if _, err := db.ExecContext(ctx, fmt.Sprintf(step.drop, name)); err != nil {
					t.Errorf(step.drop+": %v", name, err)
				}
			}
		}
	}
}
