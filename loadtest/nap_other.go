//go:build !unix

package loadtest

import "time"

// nap sleeps d with the runtime's timer where nanosleep is not available.
func nap(d time.Duration) { time.Sleep(d) }

// processCPU is not measured here; 0 turns the saturation warning off.
func processCPU() time.Duration { return 0 }
