package replica

import (
	"strings"
	"syscall"
)

// sysTCPUserTimeout is TCP_USER_TIMEOUT (linux/tcp.h; the same on every
// architecture), which package syscall does not define.
const sysTCPUserTimeout = 0x12

// setUserTimeout sets TCP_USER_TIMEOUT on a TCP socket before it connects:
// data the peer has not acknowledged within tcpUserTimeout drops the
// connection, as keepalive does for a silent one. Other sockets (a Unix
// socket's path) are left as they are.
func setUserTimeout(network, _ string, c syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, sysTCPUserTimeout, int(tcpUserTimeout.Milliseconds()))
	}); err != nil {
		return err
	}
	return serr
}
