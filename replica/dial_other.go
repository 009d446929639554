//go:build !linux

package replica

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not known: there
// only keepalive bounds a call on a connection whose peer is gone.
func setUserTimeout(string, string, syscall.RawConn) error { return nil }
