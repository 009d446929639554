//go:build !linux

package testprom

import "syscall"

// procAttr has nothing to add outside Linux, which alone offers a signal
// on the parent's death.
func procAttr() *syscall.SysProcAttr { return nil }
