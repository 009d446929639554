package demo_test

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-dev/strata/demo"
)

// The smoke journey on SQLite alone: every stage served and checked in a
// few seconds. Standard (the zero Mode) measures each stage for about
// 10 s; Config.Redis, Postgres, Replicas and Shards add the later stages.
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
	}
	fmt.Println("requests failed at the fixed rate:", res.Failed())
	// Output:
	// stage 1: monolith, one database, no cache
	// stage 2: read-through cache, in-process L1
	// requests failed at the fixed rate: 0
}
