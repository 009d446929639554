package replica_test

import (
	"context"
	"fmt"
	"log"

	"github.com/strata-dev/strata/replica"
)

// Example routes a write to the primary and reads the row back from a
// replica, carrying the write's token so that the read sees it. (It needs
// the servers of scripts/dev, so it is compiled but not run.)
func Example() {
	ctx := context.Background()
	r, err := replica.Open(ctx, replica.Config{
		Primary: "postgres://strata@127.0.0.1:55432/strata?sslmode=disable",
		Replicas: []replica.Replica{
			{URL: "postgres://strata@127.0.0.1:55433/strata?sslmode=disable"},
			{URL: "postgres://strata@127.0.0.1:55434/strata?sslmode=disable"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	tok, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, "UPDATE users SET name = $1 WHERE id = $2", "Ada", 42)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	// Reads may run more than once (on another server after a failure):
	// each attempt starts afresh.
	var name string
	err = r.Read(replica.WithToken(ctx, tok), func(ctx context.Context, q replica.Querier) error {
		return q.QueryRowContext(ctx, "SELECT name FROM users WHERE id = $1", 42).Scan(&name)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)
}

// ExampleWithKeys gives read-your-writes per entity to a client that keeps
// no token: the write names the user it changes, and so does a later read
// of that user, in this request or another. (Compiled, not run.)
func ExampleWithKeys() {
	ctx := context.Background()
	r, err := replica.Open(ctx, replica.Config{
		Primary:  "postgres://strata@127.0.0.1:55432/strata?sslmode=disable",
		Replicas: []replica.Replica{{URL: "postgres://strata@127.0.0.1:55433/strata?sslmode=disable"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	user := replica.WithKeys(ctx, "user:42")
	if _, err := r.Write(user, func(ctx context.Context, q replica.Querier) error {
		_, err := q.ExecContext(ctx, "UPDATE users SET name = $1 WHERE id = $2", "Ada", 42)
		return err
	}); err != nil {
		log.Fatal(err)
	}
	// Later, with no token: the read still sees the update.
	var name string
	if err := r.Read(replica.WithKeys(context.Background(), "user:42"), func(ctx context.Context, q replica.Querier) error {
		return q.QueryRowContext(ctx, "SELECT name FROM users WHERE id = $1", 42).Scan(&name)
	}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)
}

// ExampleHedge turns on hedged reads: a statement still unanswered after
// its replica's recent p95 is sent to the other replica too, at most 5 %
// more reads, and the read gets the first answer. The read function is
// the same as without hedging. (Compiled, not run.)
func ExampleHedge() {
	ctx := context.Background()
	r, err := replica.Open(ctx, replica.Config{
		Primary: "postgres://strata@127.0.0.1:55432/strata?sslmode=disable",
		Replicas: []replica.Replica{
			{URL: "postgres://strata@127.0.0.1:55433/strata?sslmode=disable"},
			{URL: "postgres://strata@127.0.0.1:55434/strata?sslmode=disable"},
		},
		Hedge: replica.Hedge{Enabled: true}, // Budget 5 %, MinDelay 10 ms by default
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	var name string
	if err := r.Read(ctx, func(ctx context.Context, q replica.Querier) error {
		return q.QueryRowContext(ctx, "SELECT name FROM users WHERE id = $1", 42).Scan(&name)
	}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)
}
