package bench

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	grcache "github.com/go-redis/cache/v9"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/viccon/sturdyc"

	"github.com/strata-dev/strata/cache"
)

// The shared read-through workload: 100,000 users, read by 64 goroutines
// with Zipf-distributed popularity (s = 1.1), through a 10,000-entry
// in-process level over Redis. Every key is in Redis before timing starts,
// so reads are answered by one level or the other. The loader stands for a
// primary-key read from PostgreSQL (it sleeps 500 µs) and is counted: a
// library that falls back to it pays for it.
const (
	rtUsers   = 100_000
	rtL1      = 10_000
	rtWorkers = 32 // × GOMAXPROCS(2) = 64 goroutines
)

type User struct {
	ID     int    `json:"id" msgpack:"id"`
	Email  string `json:"email" msgpack:"email"`
	Name   string `json:"name" msgpack:"name"`
	Region string `json:"region" msgpack:"region"`
}

// loaderDelay is what a loader call costs: a fast primary-key read.
const loaderDelay = 500 * time.Microsecond

func makeUser(id int) User {
	time.Sleep(loaderDelay)
	return User{ID: id, Email: "user" + strconv.Itoa(id) + "@example.com", Name: "User Number " + strconv.Itoa(id), Region: "eu-west"}
}

func rtKey(i int) string { return "user:" + strconv.Itoa(i) }

// zipfKeys returns a goroutine's sequence of keys.
func zipfKeys(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, 99))
	z := rand.NewZipf(r, 1.1, 1, rtUsers-1)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = rtKey(int(z.Uint64()))
	}
	return keys
}

func runReadThrough(b *testing.B, get func(ctx context.Context, key string) error) {
	var seed atomic.Uint64
	b.SetParallelism(rtWorkers)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		keys := zipfKeys(seed.Add(1), 1<<16)
		ctx := context.Background()
		i := 0
		for pb.Next() {
			if err := get(ctx, keys[i&(1<<16-1)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// fill reads every key once, from 64 goroutines, so that Redis holds them all.
func fillAll(b *testing.B, get func(ctx context.Context, key string) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < rtUsers; i = next.Add(1) - 1 {
				if err := get(context.Background(), rtKey(int(i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func loaderCalls(b *testing.B, n *atomic.Int64) {
	b.ReportMetric(float64(n.Load())/float64(b.N), "loads/op")
}

func BenchmarkReadThrough(b *testing.B) {
	addr := redisAddr(b)
	ns := "rt" + strconv.FormatInt(time.Now().UnixNano(), 36)

	{
		rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
		if err != nil {
			b.Fatal(err)
		}
		defer rc.Close()
		// The peers wait for Redis as long as it takes; so does Strata
		// here (L2Timeout 1 s rather than 50 ms). With 64 CPU-bound
		// goroutines on 2 cores, the Redis reader goroutine can wait tens
		// of milliseconds for a CPU, and the default timeout would send
		// some reads to the loader instead.
		c, err := cache.New(cache.Config[User]{Redis: rc, Namespace: ns + "s", L1Size: rtL1, TTL: time.Hour, L2Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		var loads atomic.Int64
		load := func(_ context.Context, key string) (User, error) {
			loads.Add(1)
			id, _ := strconv.Atoi(key[5:])
			return makeUser(id), nil
		}
		get := func(ctx context.Context, key string) error {
			_, _, err := c.Get(ctx, key, load)
			return err
		}
		fillAll(b, get)
		b.Run("strata", func(b *testing.B) {
			loads.Store(0)
			before := c.Stats()
			runReadThrough(b, get)
			loaderCalls(b, &loads)
			st := c.Stats()
			b.ReportMetric(float64(st.L2Errors-before.L2Errors)/float64(b.N), "l2errors/op")
			b.ReportMetric(float64(st.Flushes-before.Flushes), "flushes")
		})
	}

	{
		rdb := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 64})
		defer rdb.Close()
		c := grcache.New(&grcache.Options{Redis: rdb, LocalCache: grcache.NewTinyLFU(rtL1, time.Minute)})
		var loads atomic.Int64
		get := func(ctx context.Context, key string) error {
			var u User
			return c.Once(&grcache.Item{Ctx: ctx, Key: ns + "g:" + key, Value: &u, TTL: time.Hour,
				Do: func(*grcache.Item) (any, error) {
					loads.Add(1)
					id, _ := strconv.Atoi(key[5:])
					return makeUser(id), nil
				}})
		}
		fillAll(b, get)
		b.Run("go-redis-cache", func(b *testing.B) {
			loads.Store(0)
			runReadThrough(b, get)
			loaderCalls(b, &loads)
		})
	}

	{
		rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
		if err != nil {
			b.Fatal(err)
		}
		defer rc.Close()
		c := sturdyc.New[User](rtL1, 64, time.Hour, 10,
			sturdyc.WithDistributedStorage(&rueidisStorage{c: rc, prefix: ns + "t:", ttl: time.Hour}))
		var loads atomic.Int64
		fetch := func(key string) sturdyc.FetchFn[User] {
			return func(context.Context) (User, error) {
				loads.Add(1)
				id, _ := strconv.Atoi(key[5:])
				return makeUser(id), nil
			}
		}
		get := func(ctx context.Context, key string) error {
			_, err := c.GetOrFetch(ctx, key, fetch(key))
			return err
		}
		fillAll(b, get)
		b.Run("sturdyc", func(b *testing.B) {
			loads.Store(0)
			runReadThrough(b, get)
			loaderCalls(b, &loads)
		})
	}
}

// rueidisStorage is sturdyc's distributed storage on Redis, written the
// obvious way with the faster of the two clients, so that sturdyc is not
// slowed by its adapter.
type rueidisStorage struct {
	c      rueidis.Client
	prefix string
	ttl    time.Duration
}

func (s *rueidisStorage) Get(ctx context.Context, key string) ([]byte, bool) {
	b, err := s.c.Do(ctx, s.c.B().Get().Key(s.prefix+key).Build()).AsBytes()
	return b, err == nil
}

func (s *rueidisStorage) Set(ctx context.Context, key string, value []byte) {
	s.c.Do(ctx, s.c.B().Set().Key(s.prefix+key).Value(rueidis.BinaryString(value)).Px(s.ttl).Build())
}

func (s *rueidisStorage) GetBatch(ctx context.Context, keys []string) map[string][]byte {
	out := map[string][]byte{}
	for _, k := range keys {
		if b, ok := s.Get(ctx, k); ok {
			out[k] = b
		}
	}
	return out
}

func (s *rueidisStorage) SetBatch(ctx context.Context, records map[string][]byte) {
	for k, v := range records {
		s.Set(ctx, k, v)
	}
}
