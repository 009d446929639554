package cache_test

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-dev/strata/cache"
)

type user struct {
	ID   int
	Name string
}

// Example reads through an L1-only cache: the first read loads, the second
// is answered by L1, and a Delete makes the next read load again. Give
// Config a Redis client to add L2, leases and the invalidation bus.
func Example() {
	users, err := cache.New(cache.Config[user]{Namespace: "users"})
	if err != nil {
		panic(err)
	}
	defer users.Close()
	ctx := context.Background()
	load := func(ctx context.Context, key string) (user, error) {
		fmt.Println("loading", key)
		return user{ID: 42, Name: "Ada"}, nil
	}

	u, info, _ := users.Get(ctx, "user:42", load)
	fmt.Println(u.Name, info.Source)
	u, info, _ = users.Get(ctx, "user:42", load)
	fmt.Println(u.Name, info.Source)

	inv, _ := users.Delete(ctx, "user:42")
	fmt.Println("invalidated", inv.Levels)
	_, info, _ = users.Get(ctx, "user:42", load)
	fmt.Println(info.Source)
	// Output:
	// loading user:42
	// Ada loader
	// Ada l1
	// invalidated [l1]
	// loading user:42
	// loader
}

// ExampleParsePeaks schedules warm-ups ahead of known peaks: every evening
// at 19:00 London time and once on Christmas Eve. With Peaks set, the
// cache warms its hottest keys with AutoWarm PeakLead (30 minutes by
// default) before each.
func ExampleParsePeaks() {
	peaks, err := cache.ParsePeaks("19:00 Europe/London, 2026-12-24T18:00:00Z")
	if err != nil {
		fmt.Println(err)
		return
	}
	load := func(ctx context.Context, key string) (string, error) { return "value of " + key, nil }
	c, err := cache.New(cache.Config[string]{TrackHot: true, AutoWarm: load, Peaks: peaks})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	after := time.Date(2026, 12, 24, 12, 0, 0, 0, time.UTC)
	for _, p := range peaks {
		fmt.Println(p, "next:", p.Next(after).UTC().Format(time.RFC3339))
	}
	_, err = cache.ParsePeaks("19:00, 7pm")
	fmt.Println(err)
	// Output:
	// 19:00 Europe/London next: 2026-12-24T19:00:00Z
	// 2026-12-24T18:00:00Z next: 2026-12-24T18:00:00Z
	// cache: peak 2 "7pm": want "HH:MM", "HH:MM ZONE" (daily; UTC without a zone) or an RFC 3339 time such as "2026-12-24T19:00:00Z" (once)
}
