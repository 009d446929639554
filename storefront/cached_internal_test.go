package storefront

import (
	"context"
	"testing"
)

// TestBackgroundAfterClose: once Close has begun, background starts
// nothing, so Close's wg.Wait can never run concurrently with a wg.Add
// from a read still in flight (the sync package forbids that).
func TestBackgroundAfterClose(t *testing.T) {
	c := &Cached{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{}, 1)
	c.background(func(context.Context) { ran <- struct{}{} })
	c.wg.Wait()
	select {
	case <-ran:
		t.Fatal("background work started after Close")
	default:
	}
}

// TestWarmingBounded: personalisation warming runs at most maxWarming at
// once; one more is skipped (and counted), not queued, so a surge of new
// users cannot pile background queries onto the database.
func TestWarmingBounded(t *testing.T) {
	c := &Cached{warming: make(chan struct{}, maxWarming)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer c.Close()
	hold, started := make(chan struct{}), make(chan struct{}, maxWarming)
	for range maxWarming {
		c.warm(func(context.Context) { started <- struct{}{}; <-hold })
	}
	for range maxWarming {
		<-started
	}
	ran := false
	c.warm(func(context.Context) { ran = true })
	if ran || c.warmSkipped.Load() != 1 {
		t.Fatalf("a warming past the bound ran (%v) or was not counted (%d skipped)", ran, c.warmSkipped.Load())
	}
	close(hold)
	c.wg.Wait() // the held warmings end and give their slots back
	done := make(chan struct{})
	c.warm(func(context.Context) { close(done) })
	<-done
}
