package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// moveStore returns a main database seeded with a small sharded store
// whose first map names only shard A (shard1), and the URLs of A and B
// (empty). Its cleanup, which runs before the databases are dropped,
// drops the moves' subscriptions on B (and so their slots on A) and the
// publications on A.
func moveStore(t *testing.T) (mainURL, a, b string) {
	t.Helper()
	mainURL, shards := testdb.PostgresDatabase(t), testdb.ShardDatabases(t)
	a, b = shards[0], shards[1]
	t.Cleanup(func() { dropReplication(t, a, b) })
	code, out, errOut := runCLI(t, "seed", "--db", mainURL, "--shard", a, "--users", "300", "--products", "20", "--actions", "3000")
	if code != 0 {
		t.Fatalf("seed: exit %d\n%s%s", code, out, errOut)
	}
	// A move's publication, subscription and slot are named after its
	// id, and slot names are per server: start the ids far from other
	// tests' on the same shard servers.
	if _, err := openPG(t, mainURL).ExecContext(t.Context(), `SELECT setval('strata_shard.moves_id_seq', $1, false)`, 1_000_000+rand.Int64N(1_000_000_000)); err != nil {
		t.Fatal(err)
	}
	return mainURL, a, b
}

// dropReplication drops every subscription in a's and b's databases
// (which drops its slot on the other), then every publication, then any
// slot of theirs left, on connections of its own (handles the test
// opened are closed by then).
func dropReplication(t *testing.T, a, b string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []struct{ list, drop string }{
		{`SELECT quote_ident(subname) FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, "DROP SUBSCRIPTION "},
		{`SELECT quote_ident(pubname) FROM pg_publication`, "DROP PUBLICATION "},
		{`SELECT quote_literal(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active`, "SELECT pg_drop_replication_slot"},
	}
	for _, st := range steps {
		for _, url := range []string{a, b} {
			db, err := sql.Open("pgx", url)
			if err != nil {
				t.Errorf("open: %v", err)
				continue
			}
			for _, n := range listNames(ctx, t, db, st.list) {
				q := st.drop + n
				if strings.HasPrefix(st.drop, "SELECT") {
					q = st.drop + "(" + n + ")"
				}
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Errorf("%s: %v", q, err)
				}
			}
			db.Close()
		}
	}
}

// listNames returns the first column of q's rows.
func listNames(ctx context.Context, t *testing.T, db *sql.DB, q string) []string {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Errorf("%s: %v", q, err)
		return nil
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Error(err)
		}
		names = append(names, n)
	}
	return names
}

// ids returns the first column of q's rows on db, in order.
func ids(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkMoved fails unless b holds exactly a's users and actions of the
// virtual shards r.
func checkMoved(t *testing.T, a, b *sql.DB, r shard.VRange) {
	t.Helper()
	for _, q := range []struct{ table, key, cols string }{
		{"users", "id", "id::text || ' ' || email"},
		{"user_actions", "user_id", "user_id::text || ' ' || id::text || ' ' || kind"},
	} {
		want := ids(t, a, fmt.Sprintf(`SELECT %s FROM %s WHERE %s ORDER BY 1`, q.cols, q.table, r.SQL(q.key, shard.VirtualShards)))
		got := ids(t, b, fmt.Sprintf(`SELECT %s FROM %s ORDER BY 1`, q.cols, q.table))
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: the target holds %d rows, the source %d of virtual shards %s (equal: %v)", q.table, len(got), len(want), r, slices.Equal(got, want))
		}
	}
}

// statusJSON runs strata shard status --json.
func statusJSON(t *testing.T, args ...string) []moveJSON {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"shard", "status", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	var got struct {
		Moves []moveJSON `json:"moves"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	return got.Moves
}

// mustRun runs strata with args and stops the test unless it exits 0
// with each of want in its standard output, which it returns.
func mustRun(t *testing.T, want []string, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("strata %s: exit %d\n%s%s", clipArgs(args), code, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("strata %s: the output lacks %q:\n%s", clipArgs(args), w, out)
		}
	}
	return out, errOut
}

// caughtUp reports whether v is an error-free move of vshards from
// shard1 to shard2, catching up, both tables copied.
func caughtUp(v moveJSON, vshards string) bool {
	p := v.Progress
	return v.Phase == shard.PhaseCatchingUp && v.VShards == vshards && v.Source == "shard1" && v.Target == "shard2" &&
		v.Error == "" && p != nil && p.TablesDone == 2 && p.Tables == 2
}

// TestShardMoveCopies: shard add registers an empty primary (schema
// created) as shard2; shard move --wait copies exactly the moving virtual
// shards' users and actions to it and stops at catching-up (--until); a
// move recorded without --wait runs with shard resume (--id needed once
// two moves are active); status shows both with their progress. Then the
// first runs to its cutover, the second is rolled back, the first cleaned
// up (refused before its soak): both finished, nothing left behind, the
// users split between the shards.
func TestShardMoveCopies(t *testing.T) {
	mainURL, aURL, bURL := moveStore(t)
	a, b := openPG(t, aURL), openPG(t, bURL)

	out, _ := mustRun(t, nil, "shard", "add", "--db", mainURL, "--shard", bURL, "--json")
	var added struct {
		Epoch int64     `json:"epoch"`
		Shard shardJSON `json:"shard"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.Epoch != 2 || added.Shard.Name != "shard2" {
		t.Fatalf("add --json: %v: %s", err, out)
	}
	var tables int
	if err := b.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_tables WHERE tablename IN ('users', 'user_actions')`).Scan(&tables); err != nil || tables != 2 {
		t.Fatalf("the new shard has %d of the 2 sharded tables (%v)", tables, err)
	}

	_, errOut := mustRun(t, []string{": virtual shards 0-499 from shard1 to shard2: catching-up, tables 2/2"},
		"shard", "move", "--db", mainURL, "--vshards", "0-499", "--to", "shard2", "--wait", "--until", "catching-up")
	if !strings.Contains(errOut, "pre-flight: ") {
		t.Errorf("move --wait printed no pre-flight notes:\n%s", errOut)
	}
	checkMoved(t, a, b, shard.VRange{Lo: 0, Hi: 499})
	moves := statusJSON(t, "--db", mainURL)
	if len(moves) != 1 || !caughtUp(moves[0], "0-499") {
		t.Fatalf("status after the move: %+v", moves)
	}
	id1, id2 := moves[0].ID, moves[0].ID+1 // ids from one sequence

	// A second move, recorded only, then resumed.
	mustRun(t, []string{fmt.Sprintf("move %d: virtual shards 500-999 from shard1 to shard2, planned", id2), fmt.Sprintf("strata shard resume --db %s --id %d --wait", mainURL, id2)},
		"shard", "move", "--db", mainURL, "--vshards", "500-999", "--to", "shard2")
	runBadInput(t, []string{"shard", "resume", "--db", mainURL, "--wait"}, 2,
		[]string{"2 active moves: choose one with --id", fmt.Sprintf("move %d (500-999 shard1 to shard2, planned)", id2), fmt.Sprintf("move %d (0-499 shard1 to shard2, catching-up)", id1)})
	out, _ = mustRun(t, nil, "shard", "resume", "--db", mainURL, "--id", fmt.Sprint(id2), "--wait", "--json", "--until", "catching-up")
	var resumed moveJSON
	if err := json.Unmarshal([]byte(out), &resumed); err != nil || resumed.ID != id2 || !caughtUp(resumed, "500-999") {
		t.Fatalf("resume --json: %v: %s", err, out)
	}
	checkMoved(t, a, b, shard.VRange{Lo: 0, Hi: 999})

	out, _ = mustRun(t, []string{"VSHARDS  SOURCE  TARGET  PHASE"}, "shard", "status", "--db", mainURL)
	if strings.Count(out, "catching-up") != 2 || strings.Count(out, "tables 2/2") != 2 {
		t.Errorf("status:\n%s", out)
	}
	// Running a caught-up move again changes nothing and says where it is.
	mustRun(t, []string{fmt.Sprintf("move %d: virtual shards 0-499 from shard1 to shard2: catching-up", id1)},
		"shard", "resume", "--db", mainURL, "--id", fmt.Sprint(id1), "--wait", "--until", "catching-up")

	// The first move to its cutover; the second rolled back before its
	// own; the first cleaned up: nothing of either is left behind.
	_, errOut = mustRun(t, []string{fmt.Sprintf("move %d: virtual shards 0-499 from shard1 to shard2: cut-over", id1), "strata shard rollback", "strata shard cleanup"},
		"shard", "resume", "--db", mainURL, "--id", fmt.Sprint(id1), "--wait", "--read-steps", "50,100", "--read-dwell", "50ms")
	if !strings.Contains(errOut, "% of reads on the target") || !strings.Contains(errOut, "cut over: writes paused") {
		t.Errorf("resume to the cutover showed no read migration or pause:\n%s", errOut)
	}
	mustRun(t, []string{fmt.Sprintf("move %d: virtual shards 500-999 from shard1 to shard2: rolled-back", id2)},
		"shard", "rollback", "--db", mainURL, "--id", fmt.Sprint(id2), "--wait")
	runBadInput(t, []string{"shard", "cleanup", "--db", mainURL, "--id", fmt.Sprint(id1), "--soak", "1h"}, 2, []string{"under the soak of 1h0m0s"})
	mustRun(t, []string{fmt.Sprintf("move %d: virtual shards 0-499 from shard1 to shard2: done", id1)},
		"shard", "cleanup", "--db", mainURL, "--id", fmt.Sprint(id1), "--batch", "10")
	all := statusJSON(t, "--db", mainURL, "--all")
	if len(all) != 2 || all[0].Phase != shard.PhaseRolledBack || all[1].Phase != shard.PhaseDone || all[0].Active || all[1].Active {
		t.Fatalf("status --all at the end: %+v", all)
	}
	if len(all[1].Verify) != 2 || !all[1].Verify[0].Clean || !all[1].Verify[1].Clean {
		t.Errorf("the finished move's verify: %+v", all[1].Verify)
	}
	for _, db := range []*sql.DB{a, b} {
		if left := ids(t, db, `SELECT slot_name FROM pg_replication_slots WHERE database = current_database()
			UNION ALL SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			UNION ALL SELECT pubname FROM pg_publication`); len(left) > 0 {
			t.Errorf("replication objects left: %v", left)
		}
	}
	var onA, onB int
	a.QueryRowContext(t.Context(), `SELECT count(*) FROM users`).Scan(&onA)
	b.QueryRowContext(t.Context(), `SELECT count(*) FROM users`).Scan(&onB)
	if onA == 0 || onB == 0 || onA+onB != 300 {
		t.Errorf("users after the moves: %d on shard1, %d on shard2, want 300 in all, split", onA, onB)
	}
}

// TestShardMoveBadInput: each way add, move, resume and status cannot
// proceed is refused in one short message naming the flag or the move,
// passwords hidden, exit 2 for input the user must change and 1 when the
// database cannot be reached; nothing is recorded.
func TestShardMoveBadInput(t *testing.T) {
	mainURL, aURL, bURL := moveStore(t)
	const unreachable = "postgres://strata:s3cret@127.0.0.1:1/nowhere"
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		// every command needs the main database
		{"move no db", []string{"shard", "move", "--vshards", "0-499", "--to", "shard1"}, 2, []string{"--db is required"}},
		// the range is required, and checked before the database is reached
		{"move no vshards", []string{"shard", "move", "--db", unreachable, "--to", "shard2"}, 2, []string{"--vshards is required"}},
		// so is the target
		{"move no to", []string{"shard", "move", "--db", unreachable, "--vshards", "0-1"}, 2, []string{"--to is required"}},
		// a range backwards
		{"vshards backwards", []string{"shard", "move", "--db", mainURL, "--vshards", "500-100", "--to", "shard1"}, 2,
			[]string{"--vshards: virtual shards 500-100: want 0 <= LO <= HI < 1000"}},
		// not numbers
		{"vshards words", []string{"shard", "move", "--db", mainURL, "--vshards", "x", "--to", "shard1"}, 2,
			[]string{`--vshards: virtual shards "x": want LO-HI, two whole numbers`}},
		// past the keyspace, whose size comes from the map
		{"vshards past the end", []string{"shard", "move", "--db", mainURL, "--vshards", "0-1000", "--to", "shard1"}, 2,
			[]string{"want 0 <= LO <= HI < 1000"}},
		// a target the map does not name: the user must correct the flag or add the shard (as seed's --shard not in the map: exit 2)
		{"unknown target", []string{"shard", "move", "--db", mainURL, "--vshards", "0-499", "--to", "zz"}, 2,
			[]string{`--to "zz": no shard of that name in the map (epoch 1: shard1)`, "strata shard add"}},
		// onto their owner
		{"onto the owner", []string{"shard", "move", "--db", mainURL, "--vshards", "0-499", "--to", "shard1"}, 2,
			[]string{"--vshards 0-499 --to shard1: virtual shards 0-499 already belong to shard1"}},
		// read steps that do not increase, checked before anything is recorded
		{"read steps", []string{"shard", "move", "--db", mainURL, "--vshards", "0-499", "--to", "shard1", "--wait", "--read-steps", "50,10"}, 2,
			[]string{`--read-steps "50,10": want increasing percentages from 1 to 100`}},
		// a phase a move does not stop at
		{"until", []string{"shard", "move", "--db", mainURL, "--vshards", "0-499", "--to", "shard1", "--until", "done"}, 2,
			[]string{`--until "done": want one of catching-up, verified, reading, cut-over`}},
		// a pause of nothing
		{"pause", []string{"shard", "resume", "--db", mainURL, "--wait", "--pause", "0s"}, 2, []string{"--pause 0s: want a positive duration"}},
		// rollback runs in the foreground only
		{"rollback without wait", []string{"shard", "rollback", "--db", mainURL}, 2, []string{"--wait is required"}},
		// nothing to roll back
		{"rollback no moves", []string{"shard", "rollback", "--db", mainURL, "--wait"}, 2, []string{"no active move"}},
		// a cleanup batch of nothing
		{"cleanup batch", []string{"shard", "cleanup", "--db", mainURL, "--batch", "0"}, 2, []string{"--batch 0: want at least 1"}},
		// an unreachable main database is named without its password: exit 1
		{"status unreachable", []string{"shard", "status", "--db", unreachable}, 1, []string{"cannot reach the database at 127.0.0.1:1/nowhere"}},
		// nothing to resume
		{"resume no moves", []string{"shard", "resume", "--db", mainURL, "--wait"}, 2, []string{"no active move to resume"}},
		// a move that does not exist
		{"resume unknown id", []string{"shard", "resume", "--db", mainURL, "--id", "7", "--wait"}, 2, []string{"--id 7: no such move"}},
		// resume runs in the foreground only
		{"resume without wait", []string{"shard", "resume", "--db", mainURL}, 2, []string{"--wait is required"}},
		// add needs the new shard
		{"add no shard", []string{"shard", "add", "--db", mainURL}, 2, []string{"--shard is required"}},
		// not PostgreSQL, password hidden
		{"add mysql", []string{"shard", "add", "--db", mainURL, "--shard", "mysql://u:s3cret@h/x"}, 2,
			[]string{`--shard "mysql://u:xxxxx@h/x": not a PostgreSQL URL`}},
		// no scheme, password hidden all the same
		{"add no scheme", []string{"shard", "add", "--db", mainURL, "--shard", "u:s3cret@127.0.0.1:1/x"}, 2,
			[]string{`--shard "…@127.0.0.1:1/x": not a URL`}},
		// a database the map has, spelled with a password
		{"add existing URL", []string{"shard", "add", "--db", mainURL, "--shard", withPassword(t, aURL, "s3cret")}, 2,
			[]string{"the same database as shard shard1, in the map (epoch 1) already"}},
		// a name the map has
		{"add existing name", []string{"shard", "add", "--db", mainURL, "--shard", bURL, "--name", "shard1"}, 2,
			[]string{`--name "shard1": the map (epoch 1) has a shard of that name already`}},
		// a name that does not read well
		{"add bad name", []string{"shard", "add", "--db", mainURL, "--shard", bURL, "--name", "a b"}, 2, []string{`--name "a b": want 1 to 63`}},
		// the main database as a shard
		{"add main", []string{"shard", "add", "--db", mainURL, "--shard", mainURL}, 2, []string{"the same database as the main database (--db)"}},
		// an unreachable new shard is named, its password hidden: exit 1
		{"add unreachable", []string{"shard", "add", "--db", mainURL, "--shard", unreachable}, 1, []string{"cannot reach the new shard at 127.0.0.1:1/nowhere"}},
	} {
		t.Run(c.name, func(t *testing.T) { runBadInput(t, c.args, c.code, c.want) })
	}
	// None of it was recorded.
	code, out, errOut := runCLI(t, "shard", "status", "--db", mainURL, "--all")
	if code != 0 || strings.TrimSpace(out) != "no moves recorded" {
		t.Errorf("status --all: exit %d\n%s%s", code, out, errOut)
	}
	if moves := statusJSON(t, "--db", mainURL); moves == nil || len(moves) != 0 {
		t.Errorf("status --json with no moves: %#v, want []", moves)
	}
	code, out, _ = runCLI(t, "shard", "map", "--db", mainURL, "--json")
	var m mapJSON
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil || m.Epoch != 1 || len(m.Shards) != 1 {
		t.Errorf("the map changed: exit %d, %v\n%s", code, err, out)
	}
}

// TestShardMovePreflight: a move whose pre-flight finds a problem (a
// moving table whose replica identity does not cover the shard key) stops
// before anything changes, with every problem and its fix, and stays
// planned with the error recorded; fixed, it resumes.
func TestShardMovePreflight(t *testing.T) {
	mainURL, aURL, bURL := moveStore(t)
	a := openPG(t, aURL)
	if code, out, errOut := runCLI(t, "shard", "add", "--db", mainURL, "--shard", bURL); code != 0 {
		t.Fatalf("add: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := a.ExecContext(t.Context(), `ALTER TABLE user_actions REPLICA IDENTITY NOTHING`); err != nil {
		t.Fatal(err)
	}
	errOut := runBadInput(t, []string{"shard", "move", "--db", mainURL, "--vshards", "0-499", "--to", "shard2", "--wait"}, 1,
		[]string{"stopped before changing anything: the pre-flight found 1 problem(s):", "replica identity: ", "fix: ", "strata shard resume --db"})
	if !strings.Contains(errOut, "\n  - replica identity") {
		t.Errorf("the problems are not one a line:\n%s", errOut)
	}
	var pubs int
	if err := a.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_publication`).Scan(&pubs); err != nil || pubs != 0 {
		t.Errorf("the source has %d publications after a failed pre-flight (%v)", pubs, err)
	}
	moves := statusJSON(t, "--db", mainURL)
	if len(moves) != 1 || moves[0].Phase != shard.PhasePlanned || !strings.Contains(moves[0].Error, "replica identity") {
		t.Fatalf("status after a failed pre-flight: %+v", moves)
	}
	if _, err := a.ExecContext(t.Context(), `ALTER TABLE user_actions REPLICA IDENTITY DEFAULT`); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "shard", "resume", "--db", mainURL, "--wait", "--until", "catching-up"); code != 0 || !strings.Contains(out, "catching-up") {
		t.Fatalf("resume after the fix: exit %d\n%s%s", code, out, errOut)
	}
}

// TestShardMoveUnreachableTarget: a move whose target does not answer
// stops in phase planned naming the shard (exit 1, password hidden), the
// error recorded for status, with the command that resumes it.
func TestShardMoveUnreachableTarget(t *testing.T) {
	mainURL, _, _ := moveStore(t)
	if _, err := shard.AddShard(t.Context(), openPG(t, mainURL), shard.Shard{Name: "gone", URL: "postgres://strata:s3cret@127.0.0.1:1/gone"}); err != nil {
		t.Fatal(err)
	}
	runBadInput(t, []string{"shard", "move", "--db", mainURL, "--vshards", "0-9", "--to", "gone", "--wait"}, 1,
		[]string{"stopped in phase planned: shard gone: ", "connection refused", "after fixing it: strata shard resume --db"})
	moves := statusJSON(t, "--db", mainURL)
	if len(moves) != 1 || moves[0].Phase != shard.PhasePlanned || !strings.Contains(moves[0].Error, "gone") || strings.Contains(moves[0].Error, "s3cret") {
		t.Fatalf("status: %+v", moves)
	}
}

// TestShardAddNotEmpty: a database whose sharded tables hold rows is not
// a new shard (a move's copy would collide with them), and the map is
// left alone.
func TestShardAddNotEmpty(t *testing.T) {
	mainURL, _, bURL := moveStore(t)
	b := openPG(t, bURL)
	if err := storefront.PrepareShard(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ExecContext(t.Context(), `INSERT INTO users (id, email, name, region, created_at, updated_at) VALUES (1, 'x@example.com', 'x', 'eu', now(), now())`); err != nil {
		t.Fatal(err)
	}
	runBadInput(t, []string{"shard", "add", "--db", mainURL, "--shard", bURL}, 2, []string{"its table users has rows already; a new shard must be an empty database"})
	code, out, _ := runCLI(t, "shard", "map", "--db", mainURL)
	if code != 0 || strings.Contains(out, "shard2") {
		t.Errorf("the map changed: exit %d\n%s", code, out)
	}
}

// TestShardMoveMeter: the progress line names the move, phase, tables,
// rows and lag; on a pipe a line is printed when the phase or the tables
// done change, or meterEvery after the last, not on every poll.
func TestShardMoveMeter(t *testing.T) {
	p := shard.Progress{Phase: shard.PhaseCopying, RowsCopied: 1234, TablesDone: 1, Tables: 2, LagBytes: 1025, Elapsed: 3 * time.Second}
	if got, want := meterLine(7, p), "move 7 copying [##########----------] tables 1/2, 1234 rows copied, lag 2 KiB, 3s, 411 rows/s"; got != want {
		t.Errorf("meterLine = %q, want %q", got, want)
	}
	if got := lagText(-1); got != "-" {
		t.Errorf("lag before the slot exists: %q", got)
	}
	var out bytes.Buffer
	now := time.Unix(0, 0)
	m := &moveMeter{w: &out, id: 7, now: func() time.Time { return now }}
	m.update(p)               // first: printed
	m.update(p)               // nothing changed: not printed
	now = now.Add(meterEvery) // ten seconds on: printed
	m.update(p)               //
	p.TablesDone = 2          // a table done: printed
	m.update(p)               //
	m.finish()                // no bar drawn: no extra newline
	if n := strings.Count(out.String(), "\n"); n != 3 || strings.Contains(out.String(), "\r") {
		t.Errorf("meter on a pipe printed %d lines:\n%q", n, out.String())
	}
}
