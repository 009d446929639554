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

// processCPU returns the CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
