package cache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
	otterstats "github.com/maypok86/otter/v2/stats"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/testdb"
)

const benchKeys = 10_000

func benchNames() []string {
	names := make([]string, benchKeys)
	for i := range names {
		names[i] = "user:" + strconv.Itoa(i)
	}
	return names
}

// BenchmarkL1Hit compares an L1 hit through the whole chain (Get: L1
// lookup, tag check, expiry check) with the raw otter get it is built on,
// configured the same way (10,000 entries, per-entry expiry).
func BenchmarkL1Hit(b *testing.B) {
	names := benchNames()
	load := func(_ context.Context, key string) (int, error) { return len(key), nil }
	b.Run("strata", func(b *testing.B) {
		c, err := cache.New(cache.Config[int]{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		for _, k := range names {
			c.Get(ctx, k, load)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, info, _ := c.Get(ctx, names[i%benchKeys], load); info.Source != cache.SourceL1 {
					b.Fatal("not an L1 hit")
				}
				i++
			}
		})
	})
	for _, withStats := range []bool{false, true} {
		name := "otter"
		opts := &otter.Options[string, *int]{
			MaximumSize: benchKeys,
			ExpiryCalculator: otter.ExpiryWritingFunc(func(otter.Entry[string, *int]) time.Duration {
				return time.Minute
			}),
		}
		if withStats { // as the cache configures it: hits counted for metrics
			name, opts.StatsRecorder = "otter-stats", otterstats.NewCounter()
		}
		c := otter.Must(opts)
		for i, k := range names {
			v := i
			c.Set(k, &v)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, ok := c.GetIfPresent(names[i%benchKeys]); !ok {
						b.Fatal("miss")
					}
					i++
				}
			})
		})
	}
}

// BenchmarkL1HitTraced is BenchmarkL1Hit's strata case with tracing on:
// each Get under a request's span records a span of its own (the SDK's
// cost, with no exporter behind it). Tracing off, Get is BenchmarkL1Hit's
// strata case, which docs/benchmarks.md compares with the code before
// tracing.
func BenchmarkL1HitTraced(b *testing.B) {
	names := benchNames()
	load := func(_ context.Context, key string) (int, error) { return len(key), nil }
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	c, err := cache.New(cache.Config[int]{TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, k := range names {
		c.Get(context.Background(), k, load)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx, request := tp.Tracer("bench").Start(context.Background(), "request") // one request per goroutine
		defer request.End()
		i := 0
		for pb.Next() {
			if _, info, _ := c.Get(ctx, names[i%benchKeys], load); info.Source != cache.SourceL1 {
				b.Fatal("not an L1 hit")
			}
			i++
		}
	})
}

// BenchmarkL2Hit compares an L2 hit through the chain (L1 off: every read
// goes to Redis, decodes the envelope and checks it) with the raw rueidis
// GET of the same bytes, from 64 goroutines.
func BenchmarkL2Hit(b *testing.B) {
	rc := testdb.Redis(b)
	ns := testdb.Namespace(b)
	ctx := context.Background()
	names := benchNames()[:1000]
	value := strings.Repeat("a", 100) // a 100-byte value; the codec makes it a 102-byte JSON string
	load := func(context.Context, string) (string, error) { return value, nil }
	for _, codec := range []struct {
		name  string
		codec cache.Codec[string]
	}{{"strata-json", cache.JSON[string]{}}, {"strata-string", cache.StringCodec{}}} {
		c, err := cache.New(cache.Config[string]{Redis: rc, Namespace: ns + codec.name, DisableL1: true, Codec: codec.codec})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for _, k := range names {
			if _, _, err := c.Get(ctx, k, load); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(codec.name, func(b *testing.B) {
			b.SetParallelism(32) // 32 × GOMAXPROCS(2) = 64 goroutines
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, info, err := c.Get(ctx, names[i%len(names)], load); err != nil || info.Source != cache.SourceL2 {
						b.Fatalf("not an L2 hit: %v %v", info, err)
					}
					i++
				}
			})
		})
	}
	// The raw client doing the same GETs: returning the bytes as they are
	// (the StringCodec's work), and decoding them as JSON as a caller of a
	// raw client would (the JSON codec's work).
	for _, raw := range []struct {
		name   string
		decode func([]byte) error
	}{
		{"rueidis", func([]byte) error { return nil }},
		{"rueidis-json", func(p []byte) error { var s string; return json.Unmarshal(p, &s) }},
	} {
		jsonValue, _ := json.Marshal(value)
		b.Run(raw.name, func(b *testing.B) {
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					key := "{" + ns + "strata-string:" + names[i%len(names)] + "}"
					p, err := rc.Do(ctx, rc.B().Get().Key(key).Build()).AsBytes()
					if err != nil {
						b.Fatal(err)
					}
					if raw.name == "rueidis-json" {
						p = jsonValue // the stored bytes are an envelope; decode what the codec would
					}
					if err := raw.decode(p); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}

// BenchmarkInvalidationPropagation measures, between two instances on
// loopback, the time from A calling Delete to B having dropped the key.
func BenchmarkInvalidationPropagation(b *testing.B) {
	rc := testdb.Redis(b)
	ns := testdb.Namespace(b)
	ctx := context.Background()
	a, err := cache.New(cache.Config[string]{Redis: rc, Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	bc, err := cache.New(cache.Config[string]{Redis: rc, Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	defer bc.Close()
	eventually(b, "both buses up", func() bool { return a.Stats().BusUp && bc.Stats().BusUp })
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		before := bc.Stats().InvalidationsReceived
		t0 := time.Now()
		if _, err := a.Delete(ctx, fmt.Sprint("k", i)); err != nil {
			b.Fatal(err)
		}
		for bc.Stats().InvalidationsReceived == before {
			if time.Since(t0) > time.Second {
				b.Fatal("invalidation not received within 1 s")
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
}
