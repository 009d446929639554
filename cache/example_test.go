package cache_test

import (
	"context"
	"fmt"

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
