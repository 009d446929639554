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
