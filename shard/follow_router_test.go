package shard_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
)

// TestRouterFollowsMap: a router applies, through a Follower, a map that
// another connection publishes, within 2 s and without a restart; the
// follower's metrics are well formed.
func TestRouterFollowsMap(t *testing.T) {
	url := testdb.PostgresDatabase(t)
	control, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := shard.Install(ctx, control); err != nil {
		t.Fatal(err)
	}
	m := twoShards(t)
	if _, err := shard.Publish(ctx, control, m); err != nil {
		t.Fatal(err)
	}
	var r *shard.Router
	applied := make(chan int64, 8)
	f, err := shard.Follow(ctx, control, url, shard.FollowConfig{
		OnChange: func(ctx context.Context, m *shard.Map) (err error) {
			if r == nil {
				r, err = shard.New(ctx, m, shard.Config{})
			} else {
				err = r.Apply(ctx, m)
			}
			if err == nil {
				applied <- m.Epoch
			}
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	if got := <-applied; got != 1 {
		t.Fatalf("first map epoch %d, want 1", got)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(shard.NewFollowerMetrics(f))

	// Another connection (as another process would) moves every virtual
	// shard to the other primary.
	other, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	moved := *m
	moved.Owners = make([]int, len(m.Owners))
	for v := range moved.Owners {
		moved.Owners[v] = 1 - m.Owners[v]
	}
	k := int64(7)
	before := m.Shards[m.Owner(k)].Name
	start := time.Now()
	if _, err := shard.Publish(ctx, other, &moved); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-applied:
		if got != 2 {
			t.Fatalf("applied epoch %d, want 2", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("the published map was not applied within 2 s (stats %+v)", f.Stats())
	}
	t.Logf("applied %v after Publish", time.Since(start))
	if after := r.For(k).Name; after == before {
		t.Errorf("key %d still on %s after the move", k, after)
	}
	if problems, err := testutil.CollectAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("follower metrics lint: %v %v", err, problems)
	}
}
