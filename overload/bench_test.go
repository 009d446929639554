package overload_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/strata-dev/strata/overload"
)

// BenchmarkAcquireDone is the limiter's cost per request: Acquire and
// Done of critical work with room to spare, from every GOMAXPROCS
// goroutine at once, the window closing every 1,000 samples.
func BenchmarkAcquireDone(b *testing.B) {
	for _, class := range []overload.Class{overload.Critical, overload.Sheddable} {
		b.Run(fmt.Sprint(class), func(b *testing.B) {
			lim, err := overload.New(overload.Config{InitialLimit: 1000, MinLimit: 1000})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tok, err := lim.Acquire(ctx, class)
					if err != nil {
						b.Fatal(err)
					}
					tok.Done()
				}
			})
		})
	}
}

// BenchmarkRefuse is the cost of a refusal, what an overloaded instance
// pays for each request it sheds.
func BenchmarkRefuse(b *testing.B) {
	lim, err := overload.New(overload.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, QueueSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for range 4 {
		if _, err := lim.Acquire(ctx, overload.Critical); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := lim.Acquire(ctx, overload.Normal); err == nil {
				b.Fatal("admitted over the limit")
			}
		}
	})
}
