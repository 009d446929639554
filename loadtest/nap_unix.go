//go:build unix

package loadtest

import (
	"syscall"
	"time"
)

// nap sleeps d on the calling OS thread with nanosleep, which wakes far
// closer to time than the runtime's timers on a lightly loaded process.
func nap(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil) // an early wake-up just loops again
}
