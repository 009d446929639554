package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/maypok86/otter/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

const keys = 10_000

// BenchmarkL1Library compares the in-process libraries on the hit path the
// cache uses: 10,000 entries, all present, read in parallel.
func BenchmarkL1Library(b *testing.B) {
	b.Run("otter", func(b *testing.B) {
		c := otter.Must(&otter.Options[string, *int]{
			MaximumSize:      keys,
			ExpiryCalculator: otter.ExpiryWriting[string, *int](time.Minute),
		})
		names := fill(func(k string, v *int) { c.Set(k, v) })
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, ok := c.GetIfPresent(names[i%keys]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
	b.Run("ristretto", func(b *testing.B) {
		c, err := ristretto.NewCache(&ristretto.Config[string, *int]{NumCounters: keys * 10, MaxCost: keys, BufferItems: 64})
		if err != nil {
			b.Fatal(err)
		}
		names := fill(func(k string, v *int) { c.SetWithTTL(k, v, 1, time.Minute) })
		c.Wait()
		var misses atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, ok := c.Get(names[i%keys]); !ok {
					misses.Add(1)
				}
				i++
			}
		})
		b.ReportMetric(float64(misses.Load())/float64(b.N), "misses/op")
	})
}

func fill(set func(string, *int)) []string {
	names := make([]string, keys)
	for i := range names {
		names[i] = "user:" + strconv.Itoa(i)
		v := i
		set(names[i], &v)
	}
	return names
}

func redisAddr(b *testing.B) string {
	u := os.Getenv("STRATA_REDIS_URL")
	if u == "" {
		b.Skip("STRATA_REDIS_URL not set (eval \"$(../scripts/dev env)\")")
	}
	opt, err := goredis.ParseURL(u)
	if err != nil {
		b.Fatal(err)
	}
	return opt.Addr
}

// BenchmarkRedisClient compares the two mainstream Redis clients on the L2
// hit path: GET of 100-byte values from 64 goroutines.
func BenchmarkRedisClient(b *testing.B) {
	addr := redisAddr(b)
	ctx := context.Background()
	value := string(make([]byte, 100))
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("bench:client:%d", i)
	}
	b.Run("go-redis", func(b *testing.B) {
		c := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 64})
		defer c.Close()
		for _, k := range names {
			c.Set(ctx, k, value, time.Minute)
		}
		b.SetParallelism(32) // 32 × GOMAXPROCS(2) = 64 goroutines
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if err := c.Get(ctx, names[i%len(names)]).Err(); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
	b.Run("rueidis", func(b *testing.B) {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for _, k := range names {
			c.Do(ctx, c.B().Set().Key(k).Value(value).Ex(time.Minute).Build())
		}
		b.SetParallelism(32)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if err := c.Do(ctx, c.B().Get().Key(names[i%len(names)]).Build()).Error(); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
}
