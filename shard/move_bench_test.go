package shard_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// The storefront-shaped data a move copies in BenchmarkMoveCopyVerify.
const (
	benchMoveUsers    = 100_000
	benchMoveActions  = 1_000_000
	benchMoveProducts = 10_000
)

// BenchmarkMoveCopyVerify moves every virtual shard of a source shard
// holding 100,000 users and 1,000,000 actions (the storefront's shard
// schema, storefront.PrepareShard, with its indexes) to an empty target,
// and reports the rate of the two long steps of a move: the copy (PlanMove
// and RunMove up to catching-up: the target's subscription copies the rows,
// then its lag falls under the bound) and the verify (Verify of each moved
// table, default settings). Rates are rows of both tables per second:
//
//	copy-rows/s    rows / copy time
//	verify-rows/s  rows compared / verify time
//	rows/s         rows / (copy + verify time), the target
//
// Seeding (about 20 s) and the removal of the move's replication are
// outside the timer. It needs scripts/dev's shard primaries
// (wal_level=logical) and primary; an iteration takes 15 s or more, so run
// it once:
//
//	eval "$(scripts/dev env)"
//	go test ./shard -run '^$' -bench BenchmarkMoveCopyVerify -benchtime 1x -timeout 20m
//
// The mover leaves the target's secondary indexes out of the copy and
// builds them after it (see shard.DeferredIndex); the build counts as copy
// time. Variables try other ways (unset, the benchmark runs the mover as
// it is):
//
//	STRATA_MOVE_BENCH_EARLY_INDEXES=1 the indexes the mover left out are
//	    built again before the copy starts (the mover before it deferred
//	    them: every copied row goes into every index)
//	STRATA_MOVE_BENCH_CHUNK=N         Verify reads N rows at a time
//	    (VerifyConfig.Chunk; 0 is its default)
//	STRATA_MOVE_BENCH_MOVER_VERIFY=1  the verify is the mover's own
//	    (RunMove on to phase verified: Verify with the mover's retries, its
//	    progress saved in the control database after every chunk) instead
//	    of a direct call of Verify per table
func BenchmarkMoveCopyVerify(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	urls := testdb.ShardDatabases(b) // skips without the servers unless CI is set
	if len(urls) < 2 {
		b.Fatalf("want two shard primaries, have %d", len(urls))
	}
	src := benchOpen(b, urls[0])
	benchSeed(ctx, b, src)
	total := int64(benchMoveUsers + benchMoveActions)
	early := os.Getenv("STRATA_MOVE_BENCH_EARLY_INDEXES") == "1"
	viaMover := os.Getenv("STRATA_MOVE_BENCH_MOVER_VERIFY") == "1"
	chunk := 0
	if v := os.Getenv("STRATA_MOVE_BENCH_CHUNK"); v != "" {
		var err error
		if chunk, err = strconv.Atoi(v); err != nil || chunk < 0 {
			b.Fatalf("STRATA_MOVE_BENCH_CHUNK=%q: want a number of rows", v)
		}
	}
	b.Logf("early indexes %v, verify chunk %d (0: the default, %d), the mover's verify %v", early, chunk, shard.DefaultVerifyChunk, viaMover)

	b.ResetTimer()
	var copyTime, verifyTime time.Duration
	for i := range b.N {
		b.StopTimer()
		// Each iteration moves to a new, empty target under a new control
		// database: the move of the last one is still active there.
		tgtURL := urls[1]
		if i > 0 {
			tgtURL = testdb.ShardDatabases(b)[1]
		}
		tgt := benchOpen(b, tgtURL)
		b.Cleanup(func() { benchDropMove(b, src, tgt) }) // before the databases go
		ctl := benchControl(ctx, b, urls[0], tgtURL)
		for _, db := range []*sql.DB{src, tgt} {
			if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()

		id, c, copied := benchCopy(ctx, b, ctl, tgt, early)
		var v time.Duration
		var verified int64
		if viaMover {
			v, verified = benchMoverVerify(ctx, b, ctl, id, chunk)
		} else {
			v, verified = benchVerify(ctx, b, src, tgt, chunk)
		}
		copyTime += c
		verifyTime += v
		b.StopTimer()
		b.Logf("copy %.1f s (%d rows written on the target), verify %.1f s (%d rows compared)",
			c.Seconds(), copied, v.Seconds(), verified)
		if verified != total {
			b.Fatalf("verify compared %d rows, want %d", verified, total)
		}
		benchDropMove(b, src, tgt)
	}
	n := float64(b.N)
	b.ReportMetric(float64(total), "rows")
	b.ReportMetric(copyTime.Seconds()/n, "copy-s")
	b.ReportMetric(verifyTime.Seconds()/n, "verify-s")
	b.ReportMetric(float64(total)*n/copyTime.Seconds(), "copy-rows/s")
	b.ReportMetric(float64(total)*n/verifyTime.Seconds(), "verify-rows/s")
	b.ReportMetric(float64(total)*n/(copyTime+verifyTime).Seconds(), "rows/s")
}

// benchOpen opens url, closed when b ends.
func benchOpen(b *testing.B, url string) *sql.DB {
	b.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// benchSeed fills db with the storefront's shard schema and
// benchMoveUsers users with benchMoveActions actions, spread over the users
// and in id order (as they arrive: a user's actions are scattered over the
// table), then vacuums and analyses it, as a source that has been serving
// would be.
func benchSeed(ctx context.Context, b *testing.B, db *sql.DB) {
	b.Helper()
	start := time.Now()
	if err := storefront.PrepareShard(ctx, db); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO users (id, email, name, region, created_at, updated_at, version)
			SELECT g, 'user.' || g || '@example.com', 'User ' || g, (ARRAY['eu', 'na', 'apac', 'latam'])[1 + g %% 4],
				timestamptz '2026-01-01 00:00:00+00' - g * interval '37 seconds',
				timestamptz '2026-01-01 00:00:00+00' - g * interval '11 seconds', 1 + g %% 3
			FROM generate_series(1, %d) g`, benchMoveUsers),
		fmt.Sprintf(`INSERT INTO user_actions (id, user_id, product_id, kind, created_at)
			SELECT g, 1 + (hashint8(g)::bigint & 2147483647) %% %d, 1 + (hashint8(-g)::bigint & 2147483647) %% %d,
				(ARRAY['view', 'view', 'view', 'view', 'view', 'view', 'cart', 'cart', 'cart', 'purchase'])[1 + g %% 10],
				timestamptz '2026-01-01 00:00:00+00' - (%d - g) * interval '2 seconds'
			FROM generate_series(1, %d) g`, benchMoveUsers, benchMoveProducts, benchMoveActions, benchMoveActions),
		`VACUUM (ANALYZE) users, user_actions`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatalf("seed: %v\n%s", err, q)
		}
	}
	b.Logf("seeded %d users and %d actions in %.1f s", benchMoveUsers, benchMoveActions, time.Since(start).Seconds())
}

// benchControl returns a new control database whose hash map gives every
// virtual shard to shard "a" (srcURL) and names an empty shard "b" (tgtURL).
func benchControl(ctx context.Context, b *testing.B, srcURL, tgtURL string) *sql.DB {
	b.Helper()
	ctl := benchOpen(b, testdb.PostgresDatabase(b))
	if err := shard.Install(ctx, ctl); err != nil {
		b.Fatal(err)
	}
	m, err := shard.NewHashMap([]shard.Shard{{Name: "a", URL: srcURL}}, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := shard.Publish(ctx, ctl, m); err != nil {
		b.Fatal(err)
	}
	if _, err := shard.AddShard(ctx, ctl, shard.Shard{Name: "b", URL: tgtURL}); err != nil {
		b.Fatal(err)
	}
	return ctl
}

// benchCopy plans the move of every virtual shard from a to b and runs
// it to catching-up (when early, building the indexes the mover left out
// on tgt before the copy starts), and returns the move's id, the time
// taken and the rows written on the target. It logs when each table's copy
// was done.
func benchCopy(ctx context.Context, b *testing.B, ctl, tgt *sql.DB, early bool) (int64, time.Duration, int64) {
	b.Helper()
	start := time.Now()
	mv, err := shard.PlanMove(ctx, ctl, shard.VRange{Lo: 0, Hi: shard.VirtualShards - 1}, "b", storefront.ShardTables)
	if err != nil {
		b.Fatal(err)
	}
	var hook func(string)
	if early {
		hook = func(step string) {
			if step != shard.PhasePrepared { // the prepare has run; the copy has not started
				return
			}
			moves, err := shard.Moves(ctx, ctl, true)
			if err != nil || len(moves) != 1 {
				b.Fatalf("the active moves: %+v, %v", moves, err)
			}
			for _, d := range moves[0].DeferredIndexes {
				if _, err := tgt.ExecContext(ctx, d.Def); err != nil {
					b.Fatalf("%s: %v", d.Def, err)
				}
			}
			b.Logf("copy: %d indexes built before the copy", len(moves[0].DeferredIndexes))
		}
	}
	var last shard.Progress
	done := 0
	mv, err = shard.RunMove(ctx, ctl, mv.ID, shard.MoveConfig{
		Prepare: storefront.PrepareShard,
		Until:   shard.PhaseCatchingUp,
		Poll:    100 * time.Millisecond,
		Hook:    hook,
		OnProgress: func(p shard.Progress) {
			if p.TablesDone > done {
				b.Logf("copy: %d of %d tables copied after %.1f s (%d rows written)", p.TablesDone, p.Tables, time.Since(start).Seconds(), p.RowsCopied)
				done = p.TablesDone
			}
			last = p
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	if mv.Phase != shard.PhaseCatchingUp {
		b.Fatalf("RunMove stopped in phase %s, want %s", mv.Phase, shard.PhaseCatchingUp)
	}
	b.Logf("copy: caught up, %d indexes deferred, after %.1f s", len(mv.DeferredIndexes), time.Since(start).Seconds())
	return mv.ID, time.Since(start), last.RowsCopied
}

// benchVerify verifies every moved table, chunk rows at a time (0: the
// default), and returns the time taken and the rows compared.
func benchVerify(ctx context.Context, b *testing.B, src, tgt *sql.DB, chunk int) (time.Duration, int64) {
	b.Helper()
	start := time.Now()
	var rows int64
	for _, t := range storefront.ShardTables {
		rep, err := shard.Verify(ctx, src, tgt, t, shard.VRange{Lo: 0, Hi: shard.VirtualShards - 1}, shard.VirtualShards, shard.VerifyConfig{Chunk: chunk})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Clean() {
			b.Fatalf("verify %s: not clean: %d differing rows listed, truncated %v", t.Name, len(rep.Diffs), rep.Truncated)
		}
		b.Logf("verify %s: %d rows in %d chunks, %.1f s", t.Name, rep.Rows, rep.Chunks, rep.Elapsed.Seconds())
		rows += rep.Rows
	}
	return time.Since(start), rows
}

// benchMoverVerify runs move id on from catching-up to verified (the
// mover's verify of every table, chunk rows at a time), and returns the
// time taken and the rows compared.
func benchMoverVerify(ctx context.Context, b *testing.B, ctl *sql.DB, id int64, chunk int) (time.Duration, int64) {
	b.Helper()
	start := time.Now()
	mv, err := shard.RunMove(ctx, ctl, id, shard.MoveConfig{Until: shard.PhaseVerified, Verify: shard.VerifyConfig{Chunk: chunk}})
	elapsed := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	var rows int64
	for _, t := range storefront.ShardTables {
		rep := mv.Verify[t.Name]
		if rep == nil {
			b.Fatalf("the mover kept no verify of %s", t.Name)
		}
		if !rep.Clean() {
			b.Fatalf("the mover's verify of %s: not clean: %d differing rows listed, truncated %v", t.Name, len(rep.Diffs), rep.Truncated)
		}
		b.Logf("the mover's verify of %s: %d rows in %d chunks, %.1f s", t.Name, rep.Rows, rep.Chunks, rep.Elapsed.Seconds())
		rows += rep.Rows
	}
	return elapsed, rows
}

// benchDropMove removes the move's replication: every subscription of the
// target's database (dropping its slot on the source), any of their slots
// left on the source, and every publication of the source's database.
// It runs again at cleanup, so it finds nothing the second time.
func benchDropMove(b *testing.B, src, tgt *sql.DB) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := tgt.QueryContext(ctx, `SELECT quote_ident(subname), subslotname FROM pg_subscription
		WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		b.Errorf("list subscriptions: %v", err)
		return
	}
	var subs, slots []string
	for rows.Next() {
		var s string
		var slot sql.NullString
		if err := rows.Scan(&s, &slot); err != nil {
			b.Errorf("list subscriptions: %v", err)
			continue
		}
		subs = append(subs, s)
		if slot.Valid {
			slots = append(slots, slot.String)
		}
	}
	rows.Close()
	for _, s := range subs {
		if _, err := tgt.ExecContext(ctx, `DROP SUBSCRIPTION `+s); err != nil {
			b.Errorf("drop subscription %s: %v", s, err)
		}
	}
	for _, slot := range slots {
		if _, err := src.ExecContext(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
			WHERE slot_name = $1 AND NOT active`, slot); err != nil {
			b.Errorf("drop slot %s: %v", slot, err)
		}
	}
	if _, err := src.ExecContext(ctx, `DO $$ DECLARE p text; BEGIN
		FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE 'DROP PUBLICATION ' || quote_ident(p); END LOOP; END $$`); err != nil {
		b.Errorf("drop publications: %v", err)
	}
}
