package replica

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDialerBoundsADeadPeer: every connection the router opens has TCP
// keepalive (5 s, then every second, 5 probes) and TCP_USER_TIMEOUT
// (10 s), so that a call on a connection to a host that died or was cut
// off fails within about 10 s, and a Unix socket is left alone.
func TestDialerBoundsADeadPeer(t *testing.T) {
	pc, err := pgx.ParseConfig("postgres://a@127.0.0.1:1/x?connect_timeout=60")
	if err != nil {
		t.Fatal(err)
	}
	tuneConnConfig(pc)
	if pc.ConnectTimeout != 5*time.Second {
		t.Errorf("connect timeout %v, want at most 5s", pc.ConnectTimeout)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := pc.DialFunc(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		// Keepalive is on: a silent connection is probed.
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		// After 5 s of silence, not the kernel's two hours.
		{"TCP_KEEPIDLE (s)", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 5},
		// Then a probe a second.
		{"TCP_KEEPINTVL (s)", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 1},
		// Five unanswered probes drop it.
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 5},
		// Data unacknowledged for 10 s drops it, not 15 minutes of retransmissions.
		{"TCP_USER_TIMEOUT (ms)", syscall.IPPROTO_TCP, sysTCPUserTimeout, 10_000},
	} {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), o.level, o.opt) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil || got != o.want {
			t.Errorf("%s = %d (%v), want %d", o.name, got, gerr, o.want)
		}
	}
	// A Unix socket takes no TCP option: the dial must not fail for it.
	dir := t.TempDir()
	uln, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()
	uc, err := pc.DialFunc(context.Background(), "unix", dir+"/s")
	if err != nil {
		t.Fatalf("dial of a Unix socket: %v", err)
	}
	uc.Close()
}
