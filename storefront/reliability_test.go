package storefront_test

import (
	"context"
	"sync"
	"testing"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// TestCachedCloseWhileReading: Close may run while reads still start
// background warming; no warming starts after Close, so Close's wait
// never races a new one (the race detector and the sync package catch an
// Add concurrent with Wait), and reads after Close do not panic.
func TestCachedCloseWhileReading(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	seed(t, s, 40, 5, 0)
	ctx := context.Background()
	for range 10 {
		c, err := storefront.NewCached(s, storefront.CacheConfig{})
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for id := 1 + g; id <= 40; id += 4 {
					c.GetUser(ctx, int64(id)) // a first read of each user starts warming
				}
			}()
		}
		close(start)
		c.Close()
		wg.Wait()
	}
}
