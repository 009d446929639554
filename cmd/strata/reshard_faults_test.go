package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// Fault tests of online resharding (issue 14): the mover, run as the
// strata binary, is killed with SIGKILL (STRATA_FAULT_KILL_AT) at every
// step of a move, of a rollback after the cutover and of a cleanup, and
// the next run (strata shard resume, or rollback again) must finish the
// job with nothing lost and nothing left behind; and a running strata
// serve stopped with SIGSTOP must make the cutover abort within its
// bound, the service going on with the old owner.
//
// While a mover runs (and is killed, and resumed), a writer in the test
// inserts actions of moving users straight into the shard that owns them
// by the map, as an instance would: it holds the map row (FOR SHARE) from
// reading the map until its insert has committed, so that a fence cannot
// be published in between, and it writes nothing while the map fences
// its user (an instance holds such a write). The test is not an instance
// the cutover waits for; the lock is what makes it behave like one.
//
// A run of the mover that fails where it should have finished by itself
// (a cutover its own attempts could not make, a verify that ran ahead of
// a stream: moverDefect) fails the test, and is run again so that the
// test still checks what the runs leave: every write kept, nothing left
// behind. A run that changed nothing because the shared servers were
// short of slots or workers, or because a killed mover's lock was not
// yet released, is simply run again.

// Bounds and sizes of the fault tests.
const (
	// faultMoving are the virtual shards every test here moves: half of
	// shard1's, about half of the 300 users moveStore seeds.
	faultMoving = "0-499"
	// faultCmdBound bounds each run of the strata binary.
	faultCmdBound = 2 * time.Minute
	// faultWait bounds each wait on a condition.
	faultWait = 30 * time.Second
	// faultWriteEvery is how often the writer writes.
	faultWriteEvery = 8 * time.Millisecond
	// faultActionBase is the writer's first action id, far above the
	// ids the store's allocator hands out.
	faultActionBase = int64(1) << 50
	// faultStopPause is the cutover's pause in
	// TestShardCutoverStoppedInstance, and faultStopBound the bound on
	// the run that tries it DefaultCutoverAttempts times, a second apart
	// (3 x 300 ms + 2 s, and a margin for a loaded runner).
	faultStopPause = 300 * time.Millisecond
	faultStopBound = 20 * time.Second
)

// faultRange is faultMoving, parsed.
var faultRange = shard.VRange{Lo: 0, Hi: 499}

// faultRunFlags are the run flags of every move here: two short read
// steps.
var faultRunFlags = []string{"--wait", "--read-steps", "50,100", "--read-dwell", "100ms"}

// faultResumeRE finds the move's id in the command a failed run names
// to resume it.
var faultResumeRE = regexp.MustCompile(`strata shard resume --db \S+ --id (\d+) --wait`)

// TestShardMoveKilled: a move killed (SIGKILL) at each of its steps,
// while a writer inserts actions of moving users on their owner by the
// map, is finished by strata shard resume: cut over (as status shows it),
// the map gives the moved virtual shards to shard2 with no move left in
// it, the verify is clean, every acknowledged write is on shard2 (and,
// by the back stream, on shard1), and exactly the cut-over move's
// replication objects exist. strata shard cleanup then leaves no
// replication object and no row of the moved virtual shards on shard1.
func TestShardMoveKilled(t *testing.T) {
	bin := buildFaultBinary(t)
	steps := []string{shard.PhasePlanned, shard.PhasePrepared, shard.PhaseCopying, shard.PhaseCatchingUp,
		"index", shard.PhaseVerified, shard.PhaseReading, "fenced", "slot-made", "flipped"}
	start := time.Now()
	for _, step := range steps {
		t.Run(step, func(t *testing.T) { killMoveAt(t, bin, step) })
	}
	t.Logf("%d steps in %v", len(steps), time.Since(start).Round(time.Millisecond))
}

// killMoveAt is TestShardMoveKilled at one step.
func killMoveAt(t *testing.T, bin, step string) {
	start := time.Now()
	r := newFaultRig(t, bin)
	w := r.newWriter()
	w.start()
	defer w.stop() // on a failure below; stopping twice is harmless
	r.runKilled(step, append([]string{"shard", "move", "--db", r.mainURL, "--vshards", faultMoving, "--to", "shard2"}, faultRunFlags...))
	id := r.onlyMove()
	r.runOK(append([]string{"shard", "resume", "--db", r.mainURL}, faultRunFlags...))
	acked := w.stop()

	r.checkPhase(id, shard.PhaseCutOver, true)
	r.checkOwners("shard2")
	r.checkAcked(acked, "shard2")
	r.checkReplication(id, true)
	r.checkIndexes()
	// The back stream carries what shard2 took to shard1 (a rollback
	// would lose nothing).
	r.awaitAcked(acked, "shard1")

	out := r.runOK([]string{"shard", "cleanup", "--db", r.mainURL, "--id", strconv.FormatInt(id, 10)})
	if !strings.Contains(out.stdout, ": done") {
		t.Errorf("cleanup printed no phase done:\n%s", out)
	}
	r.checkPhase(id, shard.PhaseDone, false)
	r.checkReplication(id, false)
	r.checkNoRows(r.a, "shard1")
	r.checkAcked(acked, "shard2")
	if f := w.failures(); len(f) > 0 {
		t.Errorf("%d writes failed: %s", len(f), strings.Join(faultFirst(f, 5), "; "))
	}
	t.Logf("killed at %s: %s; done in %v", step, w.summary(), time.Since(start).Round(time.Millisecond))
}

// TestShardRollbackKilled: a rollback of a cut-over move, killed
// (SIGKILL) at each of its steps (those of its switch back included, and
// a DELETE of its undo) while the writer goes on, is finished by strata
// shard resume (or rollback again): rolled back, the map gives the
// virtual shards back to shard1 with no move left in it, every
// acknowledged write (the first made on shard2 after the cutover) is on
// shard1, shard2 holds no row of them, and no replication object is left.
// A cleanup killed at its steps is finished by resume the same way:
// done, every write on shard2, no row of them on shard1.
func TestShardRollbackKilled(t *testing.T) {
	bin := buildFaultBinary(t)
	cases := []struct{ cmd, step string }{
		{"rollback", shard.PhaseSwitchingBack},
		{"rollback", "fenced"},
		{"rollback", "slot-made"},
		{"rollback", "flipped"},
		{"rollback", shard.PhaseSwitchedBack},
		{"rollback", shard.PhaseUndoing},
		{"rollback", "delete"},
		{"cleanup", shard.PhaseCleaning},
		{"cleanup", "delete"},
	}
	start := time.Now()
	for _, c := range cases {
		t.Run(c.cmd+"/"+c.step, func(t *testing.T) { killEndAt(t, bin, c.cmd, c.step) })
	}
	t.Logf("%d cases in %v", len(cases), time.Since(start).Round(time.Millisecond))
}

// killEndAt is TestShardRollbackKilled for cmd (rollback or cleanup)
// killed at step.
func killEndAt(t *testing.T, bin, cmd, step string) {
	start := time.Now()
	r := newFaultRig(t, bin)
	r.runOK(append([]string{"shard", "move", "--db", r.mainURL, "--vshards", faultMoving, "--to", "shard2"}, faultRunFlags...))
	id := r.onlyMove()
	sid := strconv.FormatInt(id, 10)
	w := r.newWriter()
	first := w.writeOnce(t)
	if first.shard != "shard2" {
		t.Fatalf("the first write after the cutover went to %s, want shard2 (the new owner)", first.shard)
	}
	w.start()
	defer w.stop()

	// final owns the moved virtual shards at the end; old must hold none
	// of their rows.
	final, old := "shard1", "shard2"
	switch cmd {
	case "rollback":
		r.runKilled(step, []string{"shard", "rollback", "--db", r.mainURL, "--wait"})
		again := []string{"shard", "resume", "--db", r.mainURL, "--wait"}
		if step == shard.PhaseSwitchedBack { // rollback runs again as well as resume
			again = []string{"shard", "rollback", "--db", r.mainURL, "--id", sid, "--wait"}
		}
		r.runOK(again)
	case "cleanup":
		final, old = "shard2", "shard1"
		r.runKilled(step, []string{"shard", "cleanup", "--db", r.mainURL, "--id", sid})
		r.runOK([]string{"shard", "resume", "--db", r.mainURL, "--wait"})
	}
	acked := w.stop()

	phase := shard.PhaseRolledBack
	if cmd == "cleanup" {
		phase = shard.PhaseDone
	}
	r.checkPhase(id, phase, false)
	r.checkOwners(final)
	r.checkAcked([]faultWrite{first}, final)
	r.checkAcked(acked, final)
	r.checkNoRows(r.shardDB(old), old)
	if f := w.failures(); len(f) > 0 {
		t.Errorf("%d writes failed: %s", len(f), strings.Join(faultFirst(f, 5), "; "))
	}
	r.checkReplication(id, false)
	t.Logf("%s killed at %s: %s; done in %v", cmd, step, w.summary(), time.Since(start).Round(time.Millisecond))
}

// TestShardCutoverStoppedInstance: issue 14's "an instance that does not
// apply the new map (stopped with SIGSTOP) makes the cutover abort
// within its bound, and service continues on the old owner". A strata
// serve follows the map; a move is taken to its read migration; the
// instance is stopped right after a heartbeat (so it stays live, by
// three heartbeats, for the whole run); strata shard resume tries the
// cutover DefaultCutoverAttempts times, each aborted within its pause
// naming the instance, and exits non-zero within faultStopBound. The map
// still gives the virtual shards to shard1, unfenced; the forward stream
// runs again and the back stream's slot is gone. Continued, the instance
// serves the moving users from shard1 (a write through it lands there,
// and reaches shard2 by the forward stream), and resume then cuts over.
func TestShardCutoverStoppedInstance(t *testing.T) {
	bin := buildFaultBinary(t)
	r := newFaultRig(t, bin)
	ctx := t.Context()
	before, err := shard.Instances(ctx, r.main, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServeProcess(t, bin, "serve", "--db", r.mainURL, "--shard", r.aURL, "--addr", "127.0.0.1:0")
	inst := r.awaitInstance(before)
	t.Logf("serve at %s is instance %s", srv.base, inst.ID)

	r.runOK(append([]string{"shard", "move", "--db", r.mainURL, "--vshards", faultMoving, "--to", "shard2", "--until", shard.PhaseReading}, faultRunFlags...))
	id := r.onlyMove()
	r.checkPhase(id, shard.PhaseReading, true)

	beat := r.freezeAfterHeartbeat(srv, inst.ID)
	run := r.exec("", "shard", "resume", "--db", r.mainURL, "--wait", "--pause", faultStopPause.String(), "--read-steps", "100", "--read-dwell", "10ms")
	age := r.heartbeatAge(inst.ID)
	t.Logf("%s\n(the stopped instance's last heartbeat was %v old at the end; it was stopped %v after it)", run, age.Round(time.Millisecond), beat.Round(time.Millisecond))
	r.checkAborted(run, inst.ID, age)
	r.checkStillOld(id)

	srv.thaw(t)
	user := r.movingUsers()[0]
	action := srv.serveMoving(t, user, r.product())
	if !r.holds(r.a, action) {
		t.Errorf("the action %d written through the instance after the aborted cutover is not on shard1 (the owner)", action)
	}
	r.awaitHeld(r.b, action, "shard2, by the forward stream")

	// With the instance back, the cutover goes through.
	r.runOK([]string{"shard", "resume", "--db", r.mainURL, "--wait", "--pause", faultStopPause.String(), "--read-steps", "100", "--read-dwell", "10ms"})
	r.checkPhase(id, shard.PhaseCutOver, true)
	r.checkOwners("shard2")
	if !r.holds(r.b, action) {
		t.Errorf("the action %d is not on shard2 after the cutover", action)
	}
	if code, got := getUser(t, srv.client, srv.base, user); code != 200 || got != user {
		t.Errorf("GET /users/%d after the cutover: %d, user %d", user, code, got)
	}
	if err := srv.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
}

// buildFaultBinary builds strata into the test's temporary directory.
func buildFaultBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// faultRig is one fault test's store: a main database seeded on shard1
// (moveStore), and shard2 added (strata shard add).
type faultRig struct {
	t                   *testing.T
	bin                 string
	mainURL, aURL, bURL string
	main, a, b          *sql.DB
}

// newFaultRig seeds a store on shard1 and adds shard2.
func newFaultRig(t *testing.T, bin string) *faultRig {
	t.Helper()
	mainURL, aURL, bURL := moveStore(t)
	r := &faultRig{t: t, bin: bin, mainURL: mainURL, aURL: aURL, bURL: bURL, main: openPG(t, mainURL), a: openPG(t, aURL), b: openPG(t, bURL)}
	mustRun(t, nil, "shard", "add", "--db", mainURL, "--shard", bURL)
	m, err := shard.Load(t.Context(), r.main)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards) != 2 || m.Shards[0].Name != "shard1" || m.Shards[1].Name != "shard2" {
		t.Fatalf("the map after shard add: %+v", m.Shards)
	}
	return r
}

// shardDB is the database of shard name.
func (r *faultRig) shardDB(name string) *sql.DB {
	if name == "shard1" {
		return r.a
	}
	return r.b
}

// faultRun is one run of the strata binary.
type faultRun struct {
	args           []string
	stdout, stderr string
	err            error
	timedOut       bool
	took           time.Duration
}

// exec runs the strata binary with args, killed at step killAt ("" for
// none), bounded by faultCmdBound.
func (r *faultRig) exec(killAt string, args ...string) *faultRun {
	ctx, cancel := context.WithTimeout(context.Background(), faultCmdBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, faultEnv+"=") })
	if killAt != "" {
		cmd.Env = append(cmd.Env, faultEnv+"="+killAt)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	return &faultRun{args: args, stdout: out.String(), stderr: errOut.String(), err: err, timedOut: ctx.Err() != nil, took: time.Since(start)}
}

// killed reports whether the run died of SIGKILL (and not of the bound).
func (run *faultRun) killed() bool {
	var ee *exec.ExitError
	if run.timedOut || !errors.As(run.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// String is the run: its command, how it ended, its output.
func (run *faultRun) String() string {
	end := exitText(run.err)
	if run.timedOut {
		end = fmt.Sprintf("no end within %v (%s)", faultCmdBound, end)
	}
	return fmt.Sprintf("strata %s: %s after %v\nstdout:\n%s\nstderr:\n%s", clipArgs(run.args), end, run.took.Round(time.Millisecond), run.stdout, run.stderr)
}

// faultFirst is up to n of xs.
func faultFirst[T any](xs []T, n int) []T { return xs[:min(n, len(xs))] }

// retryable reports whether a failed run changed nothing and may simply
// be run again: its pre-flight found only the shard servers' shared
// resources short (other packages' moves hold replication slots, WAL
// senders and workers for a while), or the move's lock was still held by
// the server for a mover just killed (its connection not yet gone).
func (run *faultRun) retryable() bool {
	if strings.Contains(run.stderr, shard.ErrMoveBusy.Error()) {
		return true
	}
	if !strings.Contains(run.stderr, "stopped before changing anything") {
		return false
	}
	problems := regexp.MustCompile(`(?m)^  - ([^:]+):`).FindAllStringSubmatch(run.stderr, -1)
	for _, p := range problems {
		if !slices.Contains([]string{shard.CheckSlots, shard.CheckWALSenders, shard.CheckWorkers}, p[1]) {
			return false
		}
	}
	return len(problems) > 0
}

// moverDefect reports whether the run failed in a way a crash-safe mover
// should not: a cutover that its DefaultCutoverAttempts could not make
// (after recovering an interrupted one, the forward stream is not back
// when the next attempt starts), or a verify that found rows a stream
// had not carried yet (the verify after a rollback's switch back starts
// before the new stream has started). Both leave the move consistent,
// in its phase, and a second run finishes it.
func (run *faultRun) moverDefect() bool {
	return strings.Contains(run.stderr, shard.ErrCutoverAborted.Error()) || strings.Contains(run.stderr, shard.ErrVerifyFailed.Error())
}

// again returns the arguments that run the same move again after a
// retryable failure of args: a move recorded by strata shard move is
// resumed by its id.
func (run *faultRun) again(args []string) []string {
	if len(args) < 2 || args[1] != "move" {
		return args
	}
	m := faultResumeRE.FindStringSubmatch(run.stderr)
	if m == nil {
		return args
	}
	out := []string{"shard", "resume", "--db", args[3], "--id", m[1]}
	for i := 4; i < len(args); i++ {
		switch args[i] {
		case "--vshards", "--to":
			i++
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// runKilled runs strata args with the fault at step, and stops the test
// unless it dies of SIGKILL (see runUntil for a run that fails instead).
func (r *faultRig) runKilled(step string, args []string) {
	r.t.Helper()
	run := r.runUntil(step, args, (*faultRun).killed, "death by SIGKILL at step "+step)
	r.t.Logf("strata %s killed at %s after %v; its standard error:\n%s", clipArgs(run.args), step, run.took.Round(time.Millisecond), run.stderr)
}

// runOK runs strata args with no fault, and stops the test unless it
// exits 0 (see runUntil for a run that fails instead).
func (r *faultRig) runOK(args []string) *faultRun {
	r.t.Helper()
	run := r.runUntil("", args, func(run *faultRun) bool { return run.err == nil }, "exit 0")
	r.t.Logf("strata %s: exit 0 after %v", clipArgs(run.args), run.took.Round(time.Millisecond))
	return run
}

// faultDefectRuns bounds the runs again after a mover's defect.
const faultDefectRuns = 3

// runUntil runs strata args (killed at step, unless "") until a run is
// as want says, for up to faultWait. A run that failed having changed
// nothing (retryable) is run again. A run that failed where the mover
// should have gone on by itself (moverDefect) fails the test, and is run
// again (up to faultDefectRuns times) so that the test goes on to check
// what the next run leaves. Any other run stops the test.
func (r *faultRig) runUntil(step string, args []string, want func(*faultRun) bool, what string) *faultRun {
	t := r.t
	t.Helper()
	deadline, defects := time.Now().Add(faultWait), 0
	for {
		run := r.exec(step, args...)
		switch {
		case want(run):
			return run
		case run.err == nil || time.Now().After(deadline):
			t.Fatalf("%s\nwant %s", run, what)
		case run.retryable():
			t.Logf("run again: %s", run)
		case run.moverDefect() && defects < faultDefectRuns:
			defects++
			t.Errorf("%s\nwant %s: the mover failed where it should have gone on by itself (see moverDefect); running it again", run, what)
		default:
			t.Fatalf("%s\nwant %s", run, what)
		}
		args = run.again(args)
		time.Sleep(250 * time.Millisecond) // a poll interval, not an ordering
	}
}

// onlyMove returns the id of the store's only move.
func (r *faultRig) onlyMove() int64 {
	r.t.Helper()
	moves, err := shard.Moves(r.t.Context(), r.main, false)
	if err != nil || len(moves) != 1 {
		r.t.Fatalf("moves: %v, %+v; want one", err, moves)
	}
	return moves[0].ID
}

// move reads move id.
func (r *faultRig) move(id int64) shard.Move {
	r.t.Helper()
	moves, err := shard.Moves(r.t.Context(), r.main, false)
	if err != nil {
		r.t.Fatal(err)
	}
	i := slices.IndexFunc(moves, func(m shard.Move) bool { return m.ID == id })
	if i < 0 {
		r.t.Fatalf("no move %d: %+v", id, moves)
	}
	return moves[i]
}

// checkPhase requires strata shard status --all --json to show move id
// in phase, with no error, active until it is finished, and (verified)
// its verify of both tables done and clean.
func (r *faultRig) checkPhase(id int64, phase string, verified bool) {
	t := r.t
	t.Helper()
	all := statusJSON(t, "--db", r.mainURL, "--all")
	i := slices.IndexFunc(all, func(m moveJSON) bool { return m.ID == id })
	if i < 0 {
		t.Fatalf("status --all --json lacks move %d: %+v", id, all)
	}
	v := all[i]
	active := phase != shard.PhaseDone && phase != shard.PhaseRolledBack
	if v.Phase != phase || v.Error != "" || v.Active != active || v.VShards != faultMoving || v.Source != "shard1" || v.Target != "shard2" {
		t.Fatalf("status --all --json: move %d %s %s to %s, phase %s, active %v, error %q; want phase %s, active %v, no error",
			v.ID, v.VShards, v.Source, v.Target, v.Phase, v.Active, v.Error, phase, active)
	}
	if !verified {
		return
	}
	var tables []string
	for _, rep := range v.Verify {
		if rep.Done && rep.Clean {
			tables = append(tables, rep.Table)
		}
	}
	slices.Sort(tables)
	if !slices.Equal(tables, []string{"user_actions", "users"}) {
		t.Errorf("move %d's verify: %+v; want both tables done and clean", id, v.Verify)
	}
}

// checkOwners requires the map to give the moved virtual shards to
// owner and the others to shard1, with no move in progress.
func (r *faultRig) checkOwners(owner string) {
	t := r.t
	t.Helper()
	m, err := shard.Load(t.Context(), r.main)
	if err != nil {
		t.Fatal(err)
	}
	var wrong []string
	for v, o := range m.Owners {
		want := "shard1"
		if v >= faultRange.Lo && v <= faultRange.Hi {
			want = owner
		}
		if m.Shards[o].Name != want {
			wrong = append(wrong, fmt.Sprintf("%d: %s", v, m.Shards[o].Name))
		}
	}
	if len(wrong) > 0 || len(m.Moves) > 0 {
		t.Errorf("the map (epoch %d): %d virtual shards with the wrong owner (want %s for %s, shard1 for the rest), first %v; moves %+v",
			m.Epoch, len(wrong), owner, faultMoving, faultFirst(wrong, 5), m.Moves)
	}
}

// faultReplicationObjects lists db's publications, its subscriptions and its
// slots (those of its own database: the servers are shared), as
// "pub:NAME", "sub:NAME" and "slot:NAME", sorted.
func faultReplicationObjects(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return ids(t, db, `SELECT 'slot:' || slot_name FROM pg_replication_slots WHERE database = current_database()
		UNION ALL SELECT 'sub:' || subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		UNION ALL SELECT 'pub:' || pubname FROM pg_publication ORDER BY 1`)
}

// checkReplication requires exactly the replication objects of move id
// cut over (cutOver: on shard1 the forward publication and the back
// subscription, on shard2 the back publication and its slot), or none at
// all with no marker row left.
func (r *faultRig) checkReplication(id int64, cutOver bool) {
	t := r.t
	t.Helper()
	mv := r.move(id)
	name := "strata_move_" + strconv.FormatInt(id, 10) + "_" + mv.Token
	var want1, want2 []string
	if cutOver {
		want1 = []string{"pub:" + name, "sub:" + name + "_back"}
		want2 = []string{"pub:" + name + "_back", "slot:" + name + "_back"}
	}
	for _, s := range []struct {
		name string
		db   *sql.DB
		want []string
	}{{"shard1", r.a, want1}, {"shard2", r.b, want2}} {
		if got := faultReplicationObjects(t, s.db); !slices.Equal(got, s.want) {
			t.Errorf("move %d (%s): replication objects on %s: %v, want %v", id, mv.Phase, s.name, got, s.want)
		}
		if cutOver {
			continue
		}
		var markers []string
		if reg := ids(t, s.db, `SELECT COALESCE(to_regclass('strata_move_marker')::text, '')`); len(reg) == 1 && reg[0] != "" {
			markers = ids(t, s.db, `SELECT move FROM strata_move_marker ORDER BY 1`)
		}
		if len(markers) > 0 {
			t.Errorf("move %d (%s): marker rows left on %s: %v", id, mv.Phase, s.name, markers)
		}
	}
}

// checkIndexes requires shard2 to have the same indexes on the moved
// tables as shard1 (those the move left out of its copy built again).
func (r *faultRig) checkIndexes() {
	t := r.t
	t.Helper()
	q := `SELECT pg_get_indexdef(indexrelid) FROM pg_index
		WHERE indrelid IN (to_regclass('users'), to_regclass('user_actions')) AND indisvalid ORDER BY 1`
	if a, b := ids(t, r.a, q), ids(t, r.b, q); !slices.Equal(a, b) {
		t.Errorf("indexes of the moved tables: shard1 %v, shard2 %v", a, b)
	}
}

// checkNoRows requires db (shard name) to hold no row of the moved
// virtual shards.
func (r *faultRig) checkNoRows(db *sql.DB, name string) {
	t := r.t
	t.Helper()
	for _, tbl := range storefront.ShardTables {
		var n int64
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s`, tbl.Name, faultRange.SQL(tbl.Key, shard.VirtualShards))
		if err := db.QueryRowContext(t.Context(), q).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s holds %d rows of %s of virtual shards %s (%v), want none", name, n, tbl.Name, faultMoving, err)
		}
	}
}

// movingUsers are the seeded users of the moved virtual shards.
func (r *faultRig) movingUsers() []int64 {
	t := r.t
	t.Helper()
	var users []int64
	for _, s := range ids(t, r.a, `SELECT id::text FROM users WHERE `+faultRange.SQL("id", shard.VirtualShards)+` ORDER BY id`) {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, id)
	}
	if len(users) < 10 {
		t.Fatalf("%d users of virtual shards %s, want 10 at least", len(users), faultMoving)
	}
	return users
}

// product is a product of the store.
func (r *faultRig) product() int64 {
	t := r.t
	t.Helper()
	var p int64
	if err := r.main.QueryRowContext(t.Context(), `SELECT min(id) FROM products`).Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// holds reports whether db holds action id.
func (r *faultRig) holds(db *sql.DB, id int64) bool {
	r.t.Helper()
	var ok bool
	if err := db.QueryRowContext(r.t.Context(), `SELECT EXISTS (SELECT 1 FROM user_actions WHERE id = $1)`, id).Scan(&ok); err != nil {
		r.t.Fatal(err)
	}
	return ok
}

// awaitHeld waits, up to faultWait, until db (where) holds action id.
func (r *faultRig) awaitHeld(db *sql.DB, id int64, where string) {
	r.t.Helper()
	for deadline := time.Now().Add(faultWait); !r.holds(db, id); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Errorf("action %d is not on %s within %v", id, where, faultWait)
			return
		}
	}
}

// faultWrite is one acknowledged write of the writer.
type faultWrite struct {
	id, user int64
	shard    string // where it was written
	epoch    int64  // by the map of this epoch
	at       time.Time
}

// missing returns the writes of acked that shard name does not hold.
func (r *faultRig) missing(acked []faultWrite, name string) []faultWrite {
	t := r.t
	t.Helper()
	want := make([]int64, len(acked))
	for i, w := range acked {
		want[i] = w.id
	}
	rows, err := r.shardDB(name).QueryContext(t.Context(), `SELECT id FROM user_actions WHERE id = ANY($1)`, want)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(slices.Clone(acked), func(w faultWrite) bool { return have[w.id] })
}

// checkAcked requires shard name to hold every write of acked.
func (r *faultRig) checkAcked(acked []faultWrite, name string) {
	r.t.Helper()
	if lost := r.missing(acked, name); len(lost) > 0 {
		r.t.Errorf("%d of %d acknowledged writes are not on %s: %s", len(lost), len(acked), name, faultDescribeWrites(lost))
	}
}

// awaitAcked waits, up to faultWait, until shard name holds every write
// of acked.
func (r *faultRig) awaitAcked(acked []faultWrite, name string) {
	r.t.Helper()
	for deadline := time.Now().Add(faultWait); ; time.Sleep(50 * time.Millisecond) {
		lost := r.missing(acked, name)
		if len(lost) == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Errorf("%d of %d acknowledged writes are not on %s within %v: %s", len(lost), len(acked), name, faultWait, faultDescribeWrites(lost))
			return
		}
	}
}

// faultDescribeWrites is up to 10 writes in a line each.
func faultDescribeWrites(ws []faultWrite) string {
	var lines []string
	for _, w := range faultFirst(ws, 10) {
		lines = append(lines, fmt.Sprintf("\n  action %d of user %d (virtual shard %d), written on %s by map epoch %d at %s",
			w.id, w.user, shard.VirtualShard(w.user, shard.VirtualShards), w.shard, w.epoch, w.at.Format("15:04:05.000")))
	}
	return strings.Join(lines, "")
}

// faultWriter inserts an action of a moving user every faultWriteEvery
// on the user's owner by the map, as an instance would (see the top of
// the file), until stop.
type faultWriter struct {
	main    *sql.DB
	dbs     map[string]*sql.DB
	users   []int64
	product int64

	mu       sync.Mutex
	next     int64 // the next action id
	acked    []faultWrite
	held     int      // writes not made: the map fenced their user
	problems []string // writes that failed

	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
}

// newWriter returns a writer for r's moving users, not started.
func (r *faultRig) newWriter() *faultWriter {
	return &faultWriter{main: r.main, dbs: map[string]*sql.DB{"shard1": r.a, "shard2": r.b}, users: r.movingUsers(), product: r.product(),
		next: faultActionBase, quit: make(chan struct{}), done: make(chan struct{})}
}

// write makes one write of user: ok is false when the map fences the
// user (the write is held, so not made).
func (w *faultWriter) write(user int64) (fw faultWrite, ok bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, err := w.main.BeginTx(ctx, nil)
	if err != nil {
		return fw, false, err
	}
	defer tx.Rollback() //nolint:errcheck // it only held the map row
	var epoch int64
	if err := tx.QueryRowContext(ctx, `SELECT epoch FROM strata_shard.map FOR SHARE`).Scan(&epoch); err != nil {
		return fw, false, fmt.Errorf("lock the map: %w", err)
	}
	m, err := shard.Load(ctx, w.main)
	if err != nil {
		return fw, false, err
	}
	if m.Epoch != epoch {
		return fw, false, fmt.Errorf("the map loaded (epoch %d) is not the one locked (epoch %d)", m.Epoch, epoch)
	}
	v := shard.VirtualShard(user, len(m.Owners))
	for _, mv := range m.Moves {
		if mv.Fenced && v >= mv.VShards.Lo && v <= mv.VShards.Hi {
			return fw, false, nil
		}
	}
	owner := m.Shards[m.Owners[v]].Name
	w.mu.Lock()
	id := w.next
	w.next++
	w.mu.Unlock()
	if _, err := w.dbs[owner].ExecContext(ctx, `INSERT INTO user_actions (id, user_id, product_id, kind, created_at) VALUES ($1, $2, $3, 'view', now())`,
		id, user, w.product); err != nil {
		return fw, false, fmt.Errorf("insert action %d of user %d on %s (map epoch %d): %w", id, user, owner, epoch, err)
	}
	return faultWrite{id: id, user: user, shard: owner, epoch: epoch, at: time.Now()}, true, nil
}

// writeOnce makes one write and stops the test unless it is acknowledged.
func (w *faultWriter) writeOnce(t *testing.T) faultWrite {
	t.Helper()
	fw, ok, err := w.write(w.users[0])
	if err != nil || !ok {
		t.Fatalf("a write of user %d: made %v, %v", w.users[0], ok, err)
	}
	return fw
}

// start starts writing, in a goroutine of its own, until stop.
func (w *faultWriter) start() {
	go func() {
		defer close(w.done)
		tick := time.NewTicker(faultWriteEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
			fw, ok, err := w.write(w.users[i%len(w.users)])
			w.mu.Lock()
			switch {
			case err != nil:
				w.problems = append(w.problems, err.Error())
			case !ok:
				w.held++
			default:
				w.acked = append(w.acked, fw)
			}
			w.mu.Unlock()
		}
	}()
}

// stop stops the writer (started or not; once) and returns its
// acknowledged writes; a failed write fails the test.
func (w *faultWriter) stop() []faultWrite {
	w.stopOnce.Do(func() {
		close(w.quit)
		select {
		case <-w.done:
		case <-time.After(faultWait): // never started
		}
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// summary counts the writes by shard, the held ones and the failed ones;
// failed writes are listed.
func (w *faultWriter) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	by := map[string]int{}
	for _, a := range w.acked {
		by[a.shard]++
	}
	s := fmt.Sprintf("writer: %d acknowledged (%d on shard1, %d on shard2), %d held by a fence, %d failed", len(w.acked), by["shard1"], by["shard2"], w.held, len(w.problems))
	if len(w.problems) > 0 {
		s += ": " + strings.Join(faultFirst(w.problems, 5), "; ")
	}
	return s
}

// failures returns the writer's failed writes.
func (w *faultWriter) failures() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.problems)
}

// awaitInstance waits, up to faultWait, for an instance not in before
// to be live on the current map's epoch, and returns it.
func (r *faultRig) awaitInstance(before []shard.Instance) shard.Instance {
	t := r.t
	t.Helper()
	ctx := t.Context()
	for deadline := time.Now().Add(faultWait); ; time.Sleep(20 * time.Millisecond) {
		m, err := shard.Load(ctx, r.main)
		if err != nil {
			t.Fatal(err)
		}
		live, err := shard.Instances(ctx, r.main, 3*shard.DefaultHeartbeat)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range live {
			if !slices.ContainsFunc(before, func(b shard.Instance) bool { return b.ID == in.ID }) && in.AppliedEpoch >= m.Epoch {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new instance live on epoch %d within %v: %+v", m.Epoch, faultWait, live)
		}
	}
}

// heartbeatAt is instance id's last heartbeat, by the database's clock.
func (r *faultRig) heartbeatAt(id string) time.Time {
	r.t.Helper()
	var at time.Time
	if err := r.main.QueryRowContext(r.t.Context(), `SELECT heartbeat_at FROM strata_shard.instances WHERE id = $1`, id).Scan(&at); err != nil {
		r.t.Fatalf("instance %s: %v", id, err)
	}
	return at
}

// heartbeatAge is the age of instance id's last heartbeat.
func (r *faultRig) heartbeatAge(id string) time.Duration {
	r.t.Helper()
	var age float64
	if err := r.main.QueryRowContext(r.t.Context(), `SELECT extract(epoch FROM now() - heartbeat_at)::float8 FROM strata_shard.instances WHERE id = $1`, id).Scan(&age); err != nil {
		r.t.Fatalf("instance %s: %v", id, err)
	}
	return time.Duration(age * float64(time.Second))
}

// freezeAfterHeartbeat waits for instance id's next heartbeat, then
// stops srv (SIGSTOP) at once: it stays live for three heartbeat periods
// from then. It returns how long after the heartbeat it was stopped, by
// the database's clock.
func (r *faultRig) freezeAfterHeartbeat(srv *serveProcess, id string) time.Duration {
	t := r.t
	t.Helper()
	last := r.heartbeatAt(id)
	for deadline := time.Now().Add(faultWait); ; time.Sleep(2 * time.Millisecond) {
		if at := r.heartbeatAt(id); at.After(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s did not heartbeat within %v", id, faultWait)
		}
	}
	srv.freeze(t)
	return r.heartbeatAge(id)
}

// checkAborted requires run (the resume against a stopped instance) to
// have exited non-zero within faultStopBound, naming the aborted cutover
// and the instance, each of its DefaultCutoverAttempts attempts aborted
// within the pause (and a margin for a loaded runner).
func (r *faultRig) checkAborted(run *faultRun, instance string, age time.Duration) {
	t := r.t
	t.Helper()
	if run.err == nil {
		t.Fatalf("the resume cut over with instance %s stopped (its last heartbeat %v old at the end, live within %v): want the cutover aborted", instance, age, 3*shard.DefaultHeartbeat)
	}
	if run.timedOut || run.took > faultStopBound {
		t.Errorf("the resume took %v, want under %v", run.took, faultStopBound)
	}
	msg := run.stderr
	if !strings.Contains(msg, shard.ErrCutoverAborted.Error()) || !strings.Contains(msg, instance) {
		t.Errorf("the resume's message does not name the aborted cutover (%q) and the stopped instance %s:\n%s", shard.ErrCutoverAborted, instance, msg)
	}
	if n := strings.Count(msg, "shard: move cutover aborted"); n != shard.DefaultCutoverAttempts {
		t.Errorf("%d cutover attempts logged as aborted, want %d", n, shard.DefaultCutoverAttempts)
	}
	for _, m := range regexp.MustCompile(`cutover aborted after (\S+?):`).FindAllStringSubmatch(msg, -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil || d > faultStopPause+time.Second {
			t.Errorf("a cutover aborted after %s, past its pause of %v (and a second's margin)", m[1], faultStopPause)
		}
	}
}

// checkStillOld requires the map to give the moving virtual shards to
// shard1 still, unfenced, and the move to be back in its read migration
// with the forward stream enabled and no slot of the back stream left.
func (r *faultRig) checkStillOld(id int64) {
	t := r.t
	t.Helper()
	m, err := shard.Load(t.Context(), r.main)
	if err != nil {
		t.Fatal(err)
	}
	for v := faultRange.Lo; v <= faultRange.Hi; v++ {
		if name := m.Shards[m.Owners[v]].Name; name != "shard1" {
			t.Fatalf("after the aborted cutover the map (epoch %d) gives virtual shard %d to %s, want shard1", m.Epoch, v, name)
		}
	}
	for _, mv := range m.Moves {
		if mv.Fenced {
			t.Errorf("after the aborted cutover the map (epoch %d) still fences %+v", m.Epoch, mv)
		}
	}
	mv := r.move(id)
	if mv.Phase != shard.PhaseReading || !strings.Contains(mv.Error, shard.ErrCutoverAborted.Error()) {
		t.Errorf("move %d after the aborted cutover: phase %s, error %q; want %s with the abort recorded", id, mv.Phase, mv.Error, shard.PhaseReading)
	}
	name := "strata_move_" + strconv.FormatInt(id, 10) + "_" + mv.Token
	if got := ids(t, r.b, `SELECT subenabled::text FROM pg_subscription WHERE subname = '`+name+`'`); !slices.Equal(got, []string{"true"}) {
		t.Errorf("the forward subscription %s on shard2 after the aborted cutover: enabled %v, want [true]", name, got)
	}
	if got := faultReplicationObjects(t, r.b); slices.Contains(got, "slot:"+name+"_back") {
		t.Errorf("the back stream's slot is left on shard2 after the aborted cutover: %v", got)
	}
}

// faultProcState is the state letter of /proc/PID/stat (R, S, T, ...), or
// 0 when it cannot be read.
func faultProcState(pid int) byte {
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

// serveMoving requires the instance to serve user (GET /users/{id}) and
// to record an action of theirs (POST /users/{id}/actions), and returns
// the action's id.
func (s *serveProcess) serveMoving(t *testing.T, user, product int64) int64 {
	t.Helper()
	if code, got := getUser(t, s.client, s.base, user); code != 200 || got != user {
		t.Fatalf("GET /users/%d through the continued instance: %d, user %d\n%s", user, code, got, s.logs.String())
	}
	body := fmt.Sprintf(`{"product_id": %d, "kind": "view"}`, product)
	resp, err := s.client.Post(fmt.Sprintf("%s/users/%d/actions", s.base, user), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /users/%d/actions: %v", user, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a storefront.Action
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &a) != nil || a.ID == 0 || a.UserID != user {
		t.Fatalf("POST /users/%d/actions through the continued instance: %d %s\n%s", user, resp.StatusCode, b, s.logs.String())
	}
	return a.ID
}
