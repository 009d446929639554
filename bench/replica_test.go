package bench

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/replica"
)

const kvRows = 10_000

// BenchmarkPrimaryKeyRead: a primary-key select from 16 goroutines on one
// replica, through a plain *sql.DB, through Strata's router and through
// GORM with dbresolver, each pool sized as the router sizes a replica's.
func BenchmarkPrimaryKeyRead(b *testing.B) {
	primary := testdb.Postgres(b)
	replicaURL := testdb.PostgresReplicas(b, primary)[0]
	ctx := context.Background()

	r, err := replica.Open(ctx, replica.Config{Primary: primary, Replicas: []replica.Replica{{URL: replicaURL}}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	tok, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, `CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);
			INSERT INTO kv SELECT g, g * 2 FROM generate_series(1, 10000) g`)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	// Wait until the replica has the table.
	if err := r.Read(replica.WithToken(ctx, tok), func(context.Context, replica.Querier) error { return nil }); err != nil {
		b.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	plain, err := sql.Open("pgx", replicaURL)
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	plain.SetMaxOpenConns(replica.ReplicaPoolSize + replica.ReplicaMaxOverflow)
	plain.SetMaxIdleConns(replica.ReplicaPoolSize)
	plain.SetConnMaxLifetime(replica.ReplicaRecycle)

	gdb, err := gorm.Open(postgres.Open(primary), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := gdb.Use(dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(replicaURL)}}).
		SetMaxOpenConns(replica.ReplicaPoolSize + replica.ReplicaMaxOverflow).
		SetMaxIdleConns(replica.ReplicaPoolSize).
		SetConnMaxLifetime(replica.ReplicaRecycle)); err != nil {
		b.Fatal(err)
	}
	if sqlDB, err := gdb.DB(); err == nil {
		defer sqlDB.Close()
	}

	const q = "SELECT v FROM kv WHERE k = $1"
	run := func(b *testing.B, read func(k int) (int, error)) {
		b.SetParallelism(8) // 16 goroutines on 2 CPUs
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := 1 + rand.IntN(kvRows)
				v, err := read(k)
				if err != nil || v != 2*k {
					b.Fatalf("k=%d: v=%d err=%v", k, v, err)
				}
			}
		})
	}
	b.Run("sql.DB", func(b *testing.B) {
		run(b, func(k int) (v int, err error) {
			err = plain.QueryRowContext(ctx, q, k).Scan(&v)
			return v, err
		})
	})
	b.Run("strata", func(b *testing.B) {
		run(b, func(k int) (v int, err error) {
			err = r.Read(ctx, func(ctx context.Context, db replica.Querier) error {
				return db.QueryRowContext(ctx, q, k).Scan(&v)
			})
			return v, err
		})
	})
	b.Run("gorm-dbresolver", func(b *testing.B) {
		run(b, func(k int) (v int, err error) {
			err = gdb.WithContext(ctx).Raw("SELECT v FROM kv WHERE k = ?", k).Scan(&v).Error
			return v, err
		})
	})
}
