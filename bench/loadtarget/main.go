// Loadtarget is the smallest useful HTTP server: it answers every request,
// whatever its method and path, with 200 and the body "ok". It is the target
// of scripts/bench/loadtest, which points Strata's load generator, vegeta
// and wrk at it in turn, so that what is measured is the generators and not
// the service. It listens on a loopback address only, and leaves GOMAXPROCS
// at its default.
//
//	go build -o loadtarget ./loadtarget && ./loadtarget -addr 127.0.0.1:8094
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8094", "host:port to listen on; the host must be a loopback address")
	flag.Parse()
	if err := checkLoopback(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "loadtarget:", err)
		os.Exit(2)
	}
	ok := []byte("ok")
	srv := &http.Server{
		Addr: *addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Write(ok)
		}),
		ErrorLog: log.New(os.Stderr, "loadtarget: ", 0),
	}
	log.Fatal(srv.ListenAndServe())
}

// checkLoopback returns an error unless addr is host:port with host a
// loopback IP address (127.0.0.1, ::1), so that the target is never
// reachable from another machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: want a loopback IP address such as 127.0.0.1:8094", addr)
	}
	return nil
}
