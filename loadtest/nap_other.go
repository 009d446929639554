//go:build !unix

package loadtest

import "time"

// nap sleeps d with the runtime's timer where nanosleep is not available.
func nap(d time.Duration) { time.Sleep(d) }
