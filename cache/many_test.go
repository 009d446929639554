package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

func TestGetMany(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", withRedis), func(t *testing.T) {
			o := newOrigin()
			for i := range 10 {
				o.put(fmt.Sprint(i), fmt.Sprint("v", i))
			}
			var batches atomic.Int64
			var asked atomic.Int64
			load := func(ctx context.Context, keys []string) (map[string]string, error) {
				batches.Add(1)
				asked.Add(int64(len(keys)))
				out := map[string]string{}
				for _, k := range keys {
					if v, err := o.load(ctx, k); err == nil {
						out[k] = v
					}
				}
				return out, nil
			}
			e := newEnv(t)
			cfg := cache.Config[string]{L2Timeout: generous}
			if withRedis {
				cfg.Redis, cfg.Namespace = testdb.Redis(t), testdb.Namespace(t)
			}
			a := e.cache(cfg)
			if withRedis {
				e.waitBus(a)
			}
			ctx := context.Background()
			a.Get(ctx, "0", o.load) // one key already cached

			got, err := a.GetMany(ctx, []string{"0", "1", "2", "2", "missing"}, load)
			if err != nil || len(got) != 3 || got["1"] != "v1" || got["0"] != "v0" {
				t.Fatalf("GetMany = %v, %v", got, err)
			}
			if batches.Load() != 1 || asked.Load() != 3 { // 1, 2 and missing; 0 was cached, 2 deduplicated
				t.Fatalf("loader: %d batches, %d keys", batches.Load(), asked.Load())
			}
			// Now everything, including "missing" (not found), is cached.
			if got, _ := a.GetMany(ctx, []string{"1", "2", "missing"}, load); len(got) != 2 || batches.Load() != 1 {
				t.Fatalf("second GetMany = %v after %d batches", got, batches.Load())
			}
			if withRedis { // a second instance reads them from L2
				b := e.cache(cfg)
				e.waitBus(b)
				if got, _ := b.GetMany(ctx, []string{"1", "2"}, load); len(got) != 2 || batches.Load() != 1 {
					t.Fatalf("other instance: %v after %d batches", got, batches.Load())
				}
			}
			// Loader errors are returned and not cached.
			boom := errors.New("boom")
			if _, err := a.GetMany(ctx, []string{"5"}, func(context.Context, []string) (map[string]string, error) { return nil, boom }); !errors.Is(err, boom) {
				t.Fatalf("loader error: %v", err)
			}
			if got, _ := a.GetMany(ctx, []string{"5"}, load); got["5"] != "v5" {
				t.Fatalf("after a loader error: %v", got)
			}
		})
	}
}
