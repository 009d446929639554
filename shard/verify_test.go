package shard

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/strata-dev/strata/internal/testdb"
)

// verifyActions is the table most verify tests compare.
var verifyActions = Table{Name: "user_actions", Key: "user_id"}

// verifyRange is the half of the keyspace they verify.
var verifyRange = VRange{Lo: 0, Hi: 499}

// verifySchema creates the tables on a side; the target's users table
// orders its columns differently and has one more, which Verify must
// not mind.
const (
	verifySchemaSource = `
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text, created_at timestamptz NOT NULL);
CREATE TABLE user_actions (user_id bigint NOT NULL, id bigint NOT NULL, product_id bigint, kind text,
	created_at timestamptz NOT NULL, PRIMARY KEY (user_id, id));`
	verifySchemaTarget = `
CREATE TABLE users (email text NOT NULL, created_at timestamptz NOT NULL, name text, id bigint PRIMARY KEY, note text DEFAULT 'copied');
CREATE TABLE user_actions (user_id bigint NOT NULL, id bigint NOT NULL, product_id bigint, kind text,
	created_at timestamptz NOT NULL, PRIMARY KEY (user_id, id));`
)

// verifyFill replaces the rows of both tables on db with the same rows
// every time: users 1 to users, each with perUser actions numbered from 1.
func verifyFill(tb testing.TB, db *sql.DB, users, perUser int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range []string{
		`TRUNCATE users, user_actions`,
		`INSERT INTO users (id, email, name, created_at)
			SELECT u, 'user' || u || '@example.com', CASE WHEN u % 3 = 0 THEN NULL ELSE 'User ' || u END,
				timestamptz '2026-01-01 00:00:00+00' + u * interval '1 minute' + u * interval '1 microsecond'
			FROM generate_series(1, $1::bigint) AS u`,
		`INSERT INTO user_actions (user_id, id, product_id, kind, created_at)
			SELECT u, a, (u * 7 + a) % 500, (ARRAY['view', 'cart', 'buy'])[1 + (u + a) % 3],
				timestamptz '2026-01-01 00:00:00+00' + (u * 100 + a) * interval '1 second' + a * interval '7 microseconds'
			FROM generate_series(1, $1::bigint) AS u, generate_series(1, $2::bigint) AS a`,
		`ANALYZE users, user_actions`,
	} {
		args := []any{users, perUser}
		switch strings.Count(q, "$") {
		case 0:
			args = nil
		case 1:
			args = args[:1]
		}
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			tb.Fatalf("fill: %v", err)
		}
	}
}

// verifyDBs returns a source and a target database, on the first and the
// second shard primary, with the tables created and filled alike.
func verifyDBs(tb testing.TB, users, perUser int) (source, target *sql.DB) {
	tb.Helper()
	urls := testdb.ShardDatabases(tb)
	if len(urls) < 2 {
		tb.Fatalf("want two shard primaries, have %d", len(urls))
	}
	var dbs [2]*sql.DB
	for i, schema := range []string{verifySchemaSource, verifySchemaTarget} {
		db, err := sql.Open("pgx", urls[i])
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		if _, err := db.Exec(schema); err != nil {
			tb.Fatal(err)
		}
		verifyFill(tb, db, users, perUser)
		dbs[i] = db
	}
	return dbs[0], dbs[1]
}

// usersIn returns the first count user ids from 1 to max whose virtual
// shard is (in true) or is not (in false) in verifyRange.
func usersIn(in bool, count, max int) []int64 {
	var ids []int64
	for id := int64(1); id <= int64(max) && len(ids) < count; id++ {
		v := VirtualShard(id, VirtualShards)
		if (v >= verifyRange.Lo && v <= verifyRange.Hi) == in {
			ids = append(ids, id)
		}
	}
	return ids
}

// execAll runs statements on db, failing tb on an error.
func execAll(tb testing.TB, db *sql.DB, qs ...string) {
	tb.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// actionPK is a RowDiff's identity for an action.
func actionPK(user, id int64) []string {
	return []string{fmt.Sprint(user), fmt.Sprint(id)}
}

// noWait makes re-reads of differing rows immediate.
func noWait(context.Context, time.Duration) error { return nil }

func TestVerify(t *testing.T) {
	const users, perUser = 2000, 10
	src, tgt := verifyDBs(t, users, perUser)
	in := usersIn(true, 3, users)
	out := usersIn(false, 2, users)
	a, b, c := in[0], in[1], in[2]
	inRows := int64(len(usersIn(true, users, users)) * perUser)

	for _, tc := range []verifyCase{
		// identical sides (in one chunk) match, with the rows of the range counted
		{name: "identical", cfg: VerifyConfig{Chunk: 100_000}},
		// identical sides in many small chunks match too
		{name: "identical chunks", cfg: VerifyConfig{Chunk: 777}},
		// a users table whose target orders its columns differently and has
		// one more is compared by the source's column names
		{name: "users identical", table: Table{Name: "users", Key: "id"}},
		// one changed email of users is listed with its column
		{name: "users email", table: Table{Name: "users", Key: "id"},
			tgt:  []string{fmt.Sprintf(`UPDATE users SET email = 'x' WHERE id = %d`, a)},
			want: []RowDiff{{Key: a, PK: []string{fmt.Sprint(a)}, Kind: DiffChanged, Columns: []string{"email"}}}},
		// a row missing on the target is listed as missing
		{name: "missing", tgt: []string{fmt.Sprintf(`DELETE FROM user_actions WHERE user_id = %d AND id = 3`, a)},
			want: []RowDiff{{Key: a, PK: actionPK(a, 3), Kind: DiffMissing}}, rowsDelta: -1},
		// a row only on the target is listed as extra
		{name: "extra", tgt: []string{fmt.Sprintf(`INSERT INTO user_actions VALUES (%d, 11, 1, 'view', now())`, a)},
			want: []RowDiff{{Key: a, PK: actionPK(a, 11), Kind: DiffExtra}}, rowsDelta: 1},
		// one column changed is listed as changed, naming the column
		{name: "changed", tgt: []string{fmt.Sprintf(`UPDATE user_actions SET product_id = product_id + 1 WHERE user_id = %d AND id = 5`, b)},
			want: []RowDiff{{Key: b, PK: actionPK(b, 5), Kind: DiffChanged, Columns: []string{"product_id"}}}},
		// a value against a NULL differs
		{name: "null", tgt: []string{fmt.Sprintf(`UPDATE user_actions SET kind = NULL WHERE user_id = %d AND id = 6`, b)},
			want: []RowDiff{{Key: b, PK: actionPK(b, 6), Kind: DiffChanged, Columns: []string{"kind"}}}},
		// a NULL against an empty string differs
		{name: "null vs empty",
			src:  []string{fmt.Sprintf(`UPDATE user_actions SET kind = NULL WHERE user_id = %d AND id = 6`, b)},
			tgt:  []string{fmt.Sprintf(`UPDATE user_actions SET kind = '' WHERE user_id = %d AND id = 6`, b)},
			want: []RowDiff{{Key: b, PK: actionPK(b, 6), Kind: DiffChanged, Columns: []string{"kind"}}}},
		// a timestamp a microsecond later differs
		{name: "microsecond", tgt: []string{fmt.Sprintf(`UPDATE user_actions SET created_at = created_at + interval '1 microsecond' WHERE user_id = %d AND id = 7`, c)},
			want: []RowDiff{{Key: c, PK: actionPK(c, 7), Kind: DiffChanged, Columns: []string{"created_at"}}}},
		// rows outside the range are ignored, however they differ
		{name: "outside", tgt: []string{
			fmt.Sprintf(`DELETE FROM user_actions WHERE user_id = %d`, out[0]),
			fmt.Sprintf(`UPDATE user_actions SET kind = 'x' WHERE user_id = %d`, out[1]),
			fmt.Sprintf(`INSERT INTO user_actions VALUES (%d, 99, 1, 'view', now())`, out[1]),
			`INSERT INTO user_actions SELECT 1000000 + u, 1, 1, 'view', now() FROM generate_series(1, 5000) u
				WHERE ((hashint8((1000000 + u)::bigint) & 2147483647) % 1000) >= 500`,
		}},
		// several differences in several chunks are listed in key order
		// (the ids in numeric order within a key), whatever the chunking
		{name: "several", cfg: VerifyConfig{Chunk: 500}, tgt: []string{
			fmt.Sprintf(`DELETE FROM user_actions WHERE user_id = %d AND id IN (2, 10)`, c),
			fmt.Sprintf(`INSERT INTO user_actions VALUES (%d, 12, 1, 'view', now())`, a),
			fmt.Sprintf(`UPDATE user_actions SET kind = 'buy!', created_at = created_at - interval '1 day' WHERE user_id = %d AND id = 9`, a),
		}, want: []RowDiff{
			{Key: a, PK: actionPK(a, 9), Kind: DiffChanged, Columns: []string{"kind", "created_at"}},
			{Key: a, PK: actionPK(a, 12), Kind: DiffExtra},
			{Key: c, PK: actionPK(c, 2), Kind: DiffMissing},
			{Key: c, PK: actionPK(c, 10), Kind: DiffMissing},
		}, rowsDelta: -1},
		// a changed shard key (to another user in the range) is one row
		// missing and another extra
		{name: "key changed", tgt: []string{fmt.Sprintf(`UPDATE user_actions SET user_id = %d, id = 50 WHERE user_id = %d AND id = 1`, c, a)},
			want: []RowDiff{{Key: a, PK: actionPK(a, 1), Kind: DiffMissing}, {Key: c, PK: actionPK(c, 50), Kind: DiffExtra}}},
		// more differences than MaxVerifyDiffs: the list is capped and
		// says so, the per-virtual-shard counts are not
		{name: "truncated", cfg: VerifyConfig{Chunk: 3000}, tgt: []string{`DELETE FROM user_actions WHERE id <= 3`},
			truncated: true, totalDiffs: inRows * 3 / 10, rowsDelta: -inRows * 3 / 10},
	} {
		t.Run(tc.name, func(t *testing.T) { testVerifyCase(t, tc, src, tgt, users, perUser, inRows) })
	}
}

// verifyCase is one case of TestVerify.
type verifyCase struct {
	name       string
	table      Table
	src, tgt   []string // statements run on each side after a fresh fill
	want       []RowDiff
	cfg        VerifyConfig
	rowsDelta  int64 // target rows minus source rows over the range
	truncated  bool
	totalDiffs int64 // sum of VShardCheck.Diffs, when more than listed
}

// verifyTotals adds up a report's rows and differences over its virtual
// shards, checking each is the next in the range and its Match.
func verifyTotals(t *testing.T, rep *VerifyReport) (srcRows, tgtRows, diffs int64) {
	t.Helper()
	for i, s := range rep.Shards {
		if s.VShard != verifyRange.Lo+i {
			t.Fatalf("shard %d is virtual shard %d", i, s.VShard)
		}
		srcRows += s.SourceRows
		tgtRows += s.TargetRows
		diffs += s.Diffs
		if s.Match != (s.Diffs == 0 && s.SourceRows == s.TargetRows) {
			t.Errorf("%+v: Match is wrong", s)
		}
	}
	return srcRows, tgtRows, diffs
}

// testVerifyCase fills both sides afresh, applies the case's statements,
// verifies, and checks the report against the case.
func testVerifyCase(t *testing.T, tc verifyCase, src, tgt *sql.DB, users, perUser int, inRows int64) {
	ctx := context.Background()
	for _, db := range []*sql.DB{src, tgt} {
		verifyFill(t, db, users, perUser)
	}
	execAll(t, src, tc.src...)
	execAll(t, tgt, tc.tgt...)
	table := tc.table
	if table == (Table{}) {
		table = verifyActions
	}
	cfg := tc.cfg
	cfg.sleep = noWait
	rep, err := Verify(ctx, src, tgt, table, verifyRange, VirtualShards, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Done || rep.Next != nil || len(rep.Shards) != verifyRange.Len() {
		t.Fatalf("Done %v, Next %v, %d shards", rep.Done, rep.Next, len(rep.Shards))
	}
	srcRows, tgtRows, diffs := verifyTotals(t, rep)
	wantSrc := inRows
	if table.Name == "users" {
		wantSrc = inRows / int64(perUser)
	}
	if srcRows != wantSrc || tgtRows-srcRows != tc.rowsDelta || rep.Rows != srcRows {
		t.Errorf("source rows %d (Rows %d), target rows %d; want %d and %+d", srcRows, rep.Rows, tgtRows, wantSrc, tc.rowsDelta)
	}
	if tc.truncated {
		if !rep.Truncated || len(rep.Diffs) != MaxVerifyDiffs || diffs != tc.totalDiffs || rep.Clean() {
			t.Errorf("Truncated %v, %d listed, %d counted; want a list of %d out of %d", rep.Truncated, len(rep.Diffs), diffs, MaxVerifyDiffs, tc.totalDiffs)
		}
		for _, d := range rep.Diffs {
			if d.Kind != DiffMissing || (d.PK[1] != "1" && d.PK[1] != "2" && d.PK[1] != "3") {
				t.Fatalf("listed %+v, want missing actions 1 to 3", d)
			}
		}
		return
	}
	for i := range tc.want {
		tc.want[i].VShard = VirtualShard(tc.want[i].Key, VirtualShards)
	}
	if tc.want == nil {
		tc.want = []RowDiff{}
	}
	if !reflect.DeepEqual(rep.Diffs, tc.want) || rep.Truncated || diffs != int64(len(tc.want)) {
		t.Errorf("diffs (truncated %v, %d counted):\n got %+v\nwant %+v", rep.Truncated, diffs, rep.Diffs, tc.want)
	}
	if rep.Clean() != (len(tc.want) == 0) {
		t.Errorf("Clean() = %v with %d differences", rep.Clean(), len(tc.want))
	}
	for _, s := range rep.Shards {
		if s.Match == (s.Diffs > 0) {
			t.Errorf("%+v: Match against Diffs", s)
		}
	}
	t.Logf("%d chunks, %d rows, %.0f rows/s", rep.Chunks, rep.Rows, rep.RowsPerSecond)
}

func TestVerifyResume(t *testing.T) {
	const users, perUser = 2000, 10
	src, tgt := verifyDBs(t, users, perUser)
	in := usersIn(true, 40, users)
	for i, u := range in {
		if i%10 == 0 {
			execAll(t, tgt, fmt.Sprintf(`DELETE FROM user_actions WHERE user_id = %d AND id = %d`, u, 1+i%perUser))
		} else if i%10 == 5 {
			execAll(t, tgt, fmt.Sprintf(`UPDATE user_actions SET product_id = NULL WHERE user_id = %d AND id = 2`, u))
		}
	}
	cfg := VerifyConfig{Chunk: 1000, sleep: noWait}
	whole, err := Verify(context.Background(), src, tgt, verifyActions, verifyRange, VirtualShards, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if whole.Chunks < 8 || len(whole.Diffs) != 8 {
		t.Fatalf("uninterrupted: %d chunks, %d diffs; the test wants many chunks and some diffs", whole.Chunks, len(whole.Diffs))
	}

	// Interrupt after 3 chunks, keeping the progress as JSON, as a mover
	// would in its control schema.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var saved []byte
	chunks := 0
	cfg.OnChunk = func(p *VerifyReport) {
		b, err := json.Marshal(p)
		if err != nil {
			t.Error(err)
		}
		saved = b
		if chunks++; chunks == 3 {
			cancel()
		}
	}
	part, err := Verify(ctx, src, tgt, verifyActions, verifyRange, VirtualShards, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted: %v, want context.Canceled", err)
	}
	if part == nil || part.Done || part.Chunks != 3 || part.Next == nil {
		t.Fatalf("interrupted report: %+v", part)
	}
	var from VerifyReport
	if err := json.Unmarshal(saved, &from); err != nil {
		t.Fatal(err)
	}
	if from.Chunks != 3 || *from.Next != *part.Next {
		t.Fatalf("saved progress at chunk %d, %v; returned %v", from.Chunks, from.Next, part.Next)
	}

	cfg.OnChunk = nil
	cfg.From = &from
	resumed, err := Verify(context.Background(), src, tgt, verifyActions, verifyRange, VirtualShards, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if from.Chunks != 3 || from.Done {
		t.Errorf("From was modified: %+v", from)
	}
	for _, r := range []*VerifyReport{whole, resumed} {
		r.Elapsed, r.RowsPerSecond = 0, 0
	}
	if !reflect.DeepEqual(whole, resumed) {
		t.Errorf("resumed report differs:\n got %+v\nwant %+v", resumed, whole)
	}

	// A report of another range is refused as From.
	cfg.From = whole
	if _, err := Verify(context.Background(), src, tgt, verifyActions, VRange{0, 9}, VirtualShards, cfg); !errors.Is(err, ErrBadMove) {
		t.Errorf("From of another range: %v, want ErrBadMove", err)
	}
	// A finished report as From is returned as it is.
	again, err := Verify(context.Background(), src, tgt, verifyActions, verifyRange, VirtualShards, cfg)
	if err != nil || !reflect.DeepEqual(again, whole) {
		t.Errorf("From a finished report: %v, %+v", err, again)
	}
}

// TestVerifyRetries shows a difference that a write in flight heals
// before the re-read is not reported, and one that stays is, after
// Retries re-reads.
func TestVerifyRetries(t *testing.T) {
	const users, perUser = 500, 4
	src, tgt := verifyDBs(t, users, perUser)
	in := usersIn(true, 2, users)
	healed, stays := in[0], in[1]
	// In flight: an update and an insert of the source that the target
	// has not replayed yet; and a row the target really lacks.
	execAll(t, src, fmt.Sprintf(`UPDATE user_actions SET kind = 'late' WHERE user_id = %d AND id = 3`, healed))
	execAll(t, tgt,
		fmt.Sprintf(`DELETE FROM user_actions WHERE user_id = %d AND id = 2`, healed),
		fmt.Sprintf(`DELETE FROM user_actions WHERE user_id = %d AND id = 4`, stays))
	var waits []time.Duration
	cfg := VerifyConfig{Retries: 2, RetryWait: time.Second, sleep: func(ctx context.Context, d time.Duration) error {
		if len(waits) == 0 {
			// the target catches up with the first user during the first wait
			for _, q := range []string{
				fmt.Sprintf(`UPDATE user_actions SET kind = 'late' WHERE user_id = %d AND id = 3`, healed),
				fmt.Sprintf(`INSERT INTO user_actions (user_id, id, product_id, kind, created_at)
					SELECT u, a, (u * 7 + a) %% 500, (ARRAY['view', 'cart', 'buy'])[1 + (u + a) %% 3],
						timestamptz '2026-01-01 00:00:00+00' + (u * 100 + a) * interval '1 second' + a * interval '7 microseconds'
					FROM (VALUES (%d::bigint, 2::bigint)) AS k(u, a)`, healed),
			} {
				if _, err := tgt.ExecContext(ctx, q); err != nil {
					return err
				}
			}
		}
		waits = append(waits, d)
		return nil
	}}
	rep, err := Verify(context.Background(), src, tgt, verifyActions, verifyRange, VirtualShards, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []RowDiff{{VShard: VirtualShard(stays, VirtualShards), Key: stays, PK: actionPK(stays, 4), Kind: DiffMissing}}
	if !reflect.DeepEqual(rep.Diffs, want) {
		t.Errorf("diffs %+v, want %+v", rep.Diffs, want)
	}
	if len(waits) != 2 || waits[0] != time.Second || rep.Rechecks != 2 {
		t.Errorf("waited %v, %d rechecks; want two waits of 1s", waits, rep.Rechecks)
	}
	for _, s := range rep.Shards {
		if s.VShard == VirtualShard(healed, VirtualShards) && (!s.Match || s.SourceRows != s.TargetRows || s.SourceRows == 0) {
			t.Errorf("healed virtual shard: %+v", s)
		}
	}

	// Retries < 0: no re-read, the first look is reported.
	waits = nil
	execAll(t, tgt, fmt.Sprintf(`UPDATE user_actions SET kind = 'later' WHERE user_id = %d AND id = 3`, healed))
	rep, err = Verify(context.Background(), src, tgt, verifyActions, verifyRange, VirtualShards, VerifyConfig{Retries: -1, sleep: cfg.sleep})
	if err != nil {
		t.Fatal(err)
	}
	if len(waits) != 0 || rep.Rechecks != 0 || len(rep.Diffs) != 2 {
		t.Errorf("Retries -1: %d waits, %d rechecks, diffs %+v", len(waits), rep.Rechecks, rep.Diffs)
	}
}

// TestVerifyConcurrentWrites runs Verify while rows of the range are
// inserted, updated and deleted on the source and, a few milliseconds
// later, on the target (a replication that keeps up): nothing is
// reported, and the counts agree.
func TestVerifyConcurrentWrites(t *testing.T) {
	const users, perUser = 2000, 10
	src, tgt := verifyDBs(t, users, perUser)
	in := usersIn(true, 200, users)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	writes := 0
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			u := in[i%len(in)]
			var q string
			switch i % 3 {
			case 0:
				q = fmt.Sprintf(`INSERT INTO user_actions VALUES (%d, %d, 1, 'view', timestamptz '2026-02-01 00:00:00.000001+00')`, u, 1000+i)
			case 1:
				q = fmt.Sprintf(`UPDATE user_actions SET kind = 'k%d', created_at = created_at + interval '1 microsecond' WHERE user_id = %d AND id = %d`, i, u, 1+i%perUser)
			default:
				q = fmt.Sprintf(`DELETE FROM user_actions WHERE user_id = %d AND id = %d`, u, 1000+i-2)
			}
			for _, db := range []*sql.DB{src, tgt} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					if ctx.Err() == nil {
						done <- err
					}
					return
				}
				time.Sleep(2 * time.Millisecond) // the target's lag
			}
			writes++
		}
	}()
	rep, err := Verify(context.Background(), src, tgt, verifyActions, verifyRange, VirtualShards,
		VerifyConfig{Chunk: 1000, RetryWait: 50 * time.Millisecond})
	stop()
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Errorf("not clean under writes: diffs %+v", rep.Diffs)
	}
	t.Logf("%d writes during the verify: %d chunks, %d rechecks, %d rows, %.0f rows/s", writes, rep.Chunks, rep.Rechecks, rep.Rows, rep.RowsPerSecond)
}

func TestVerifyErrors(t *testing.T) {
	src, tgt := verifyDBs(t, 10, 1)
	ctx := context.Background()
	execAll(t, src, `CREATE TABLE nokey (user_id bigint, v text)`, `CREATE TABLE only_source (user_id bigint PRIMARY KEY)`)
	execAll(t, tgt, `CREATE TABLE nokey (user_id bigint, v text)`, `CREATE TABLE narrower (user_id bigint PRIMARY KEY)`)
	execAll(t, src, `CREATE TABLE narrower (user_id bigint PRIMARY KEY, v text)`)
	for _, c := range []struct {
		table Table
		r     VRange
		n     int
		cfg   VerifyConfig
		want  string // in the error
	}{
		// a range outside the keyspace
		{verifyActions, VRange{0, 1000}, VirtualShards, VerifyConfig{}, "virtual shards 0-1000"},
		// no keyspace
		{verifyActions, VRange{0, 0}, 0, VerifyConfig{}, "0 virtual shards"},
		// a negative chunk
		{verifyActions, verifyRange, VirtualShards, VerifyConfig{Chunk: -1}, "Chunk -1"},
		// a key column the table does not have
		{Table{Name: "user_actions", Key: "nope"}, verifyRange, VirtualShards, VerifyConfig{}, `no key column "nope"`},
		// a table without a primary key has no way to name its rows
		{Table{Name: "nokey", Key: "user_id"}, verifyRange, VirtualShards, VerifyConfig{}, "no primary key"},
		// a table the target lacks: the error names the target
		{Table{Name: "only_source", Key: "user_id"}, verifyRange, VirtualShards, VerifyConfig{}, "on target"},
		// a target without one of the source's columns
		{Table{Name: "narrower", Key: "user_id"}, verifyRange, VirtualShards, VerifyConfig{}, `column "v" of the source is missing on target`},
	} {
		rep, err := Verify(ctx, src, tgt, c.table, c.r, c.n, c.cfg)
		if !errors.Is(err, ErrBadMove) || !strings.Contains(err.Error(), c.want) || rep != nil {
			t.Errorf("%+v %v %d: %v, %v; want ErrBadMove with %q", c.table, c.r, c.n, rep, err, c.want)
		}
	}

	// A side that fails mid-way is named, and the report so far returned.
	broken, err := sql.Open("pgx", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer broken.Close()
	if _, err := Verify(ctx, src, broken, verifyActions, verifyRange, VirtualShards, VerifyConfig{}); err == nil || !strings.Contains(err.Error(), "on target") {
		t.Errorf("unreachable target: %v", err)
	}
	if _, err := Verify(ctx, broken, tgt, verifyActions, verifyRange, VirtualShards, VerifyConfig{}); err == nil || !strings.Contains(err.Error(), "on source") {
		t.Errorf("unreachable source: %v", err)
	}
}

// BenchmarkVerify verifies 200,000 identical actions (the whole keyspace)
// and reports the rate.
func BenchmarkVerify(b *testing.B) {
	src, tgt := verifyDBs(b, 20_000, 10)
	b.ReportAllocs()
	var rows int64
	start := time.Now()
	for b.Loop() {
		rep, err := Verify(context.Background(), src, tgt, verifyActions, VRange{0, VirtualShards - 1}, VirtualShards, VerifyConfig{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Clean() || rep.Rows != 200_000 {
			b.Fatalf("clean %v, %d rows", rep.Clean(), rep.Rows)
		}
		rows += rep.Rows
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}
