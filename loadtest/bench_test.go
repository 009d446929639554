package loadtest

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkStripeRecord: what each completed request costs the recorder,
// from as many goroutines as there are CPUs, spread over the stripes as a
// run spreads its senders.
func BenchmarkStripeRecord(b *testing.B) {
	stripes := newStripes(4)
	start := time.Now()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		st := stripes[next.Add(1)%int64(len(stripes))]
		intended := start.Add(time.Millisecond)
		sent := intended.Add(50 * time.Microsecond)
		done := sent.Add(800 * time.Microsecond)
		for pb.Next() {
			st.record(0, intended, sent, done, "")
		}
	})
}

// BenchmarkMixNext: drawing one request from a two-request mix with a
// Zipf variable in the path and a sequence in the body.
func BenchmarkMixNext(b *testing.B) {
	p, err := ParsePlan([]byte(goodPlan), ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	next := p.mix.source(1)(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if tg := next(uint64(i)); tg.URL == "" {
			b.Fatal("no URL")
		}
	}
}
