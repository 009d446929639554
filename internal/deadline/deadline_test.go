package deadline

import (
	"context"
	"testing"
	"time"
)

func TestSlots(t *testing.T) {
	base, cancelBase := context.WithCancel(context.Background())
	s := New(base, 50*time.Millisecond)
	a := s.Get()
	d, ok := a.Deadline()
	if until := time.Until(d); !ok || until <= 0 || until > 50*time.Millisecond+SlotLength {
		t.Fatalf("deadline in %v, want within timeout+slot", until)
	}
	time.Sleep(SlotLength + time.Millisecond)
	if c := s.Get(); c == a {
		t.Fatal("a context handed out after its slot ended")
	}

	// For: a caller deadline sooner than the timeout gets its own context.
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	ctx, cancel := s.For(short)
	if cancel == nil {
		t.Fatal("For with a sooner caller deadline returned the shared context")
	}
	cancel()
	if ctx.Err() == nil {
		t.Fatal("the caller's context was not used")
	}
	if ctx, cancel := s.For(context.Background()); cancel != nil || ctx.Err() != nil {
		t.Fatal("For without a caller deadline should hand out a live shared context")
	}

	// Ending base ends the contexts handed out.
	c := s.Get()
	cancelBase()
	if c.Err() == nil {
		t.Fatal("ending base did not end a handed-out context")
	}
}

func BenchmarkGet(b *testing.B) {
	s := New(context.Background(), 100*time.Millisecond)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = s.Get()
		}
	})
}
