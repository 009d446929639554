package demo_test

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-dev/strata/demo"
)

// The smoke journey on SQLite alone: every stage served and checked in a
// few seconds, with stage 3's budgets phase and the overload phase.
// Standard (the zero Mode) measures each stage for about 10 s;
// Config.Redis, Postgres, Replicas and Shards add the other stages.
func ExampleRun() {
	res, err := demo.Run(context.Background(), demo.Config{
		Mode: demo.Smoke, Rate: 100, Users: 200, Products: 50, Actions: 1000, Out: io.Discard,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, st := range res.Stages {
		fmt.Println(st.Name)
		if b := st.Budgets; b != nil {
			fmt.Println("  with the recommendation service stalled, pages answered:", b.Down.Pages > 0)
		}
	}
	if o := res.Overload; o != nil {
		fmt.Printf("overload phase: %s at %d × its capacity, with and without the controller\n", o.Stage, demo.OverloadFactor)
	}
	fmt.Println("answers no load explains (not 503 or 504):", res.Bugs())
	// Output:
	// stage 1: monolith, one database, no cache
	// stage 2: read-through cache, in-process L1
	// stage 3: service split, recommendations over HTTP; L1 on SQLite
	//   with the recommendation service stalled, pages answered: true
	// overload phase: stage 1 (no cache) at 3 × its capacity, with and without the controller
	// answers no load explains (not 503 or 504): 0
}
