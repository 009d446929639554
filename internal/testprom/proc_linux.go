package testprom

import "syscall"

// procAttr makes the kernel kill the server when the test binary dies
// without running its cleanups (a -timeout panic, SIGKILL), so no
// Prometheus outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
