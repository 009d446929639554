package loadtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// A sender makes one request and returns "" or the kind of its failure:
// "status NNN", "timeout" or "connection". Each sending goroutine has its
// own.
type sender interface {
	send(t Target) string
}

// senders builds a run's senders: on a caller's *http.Client when one is
// given, else on fasthttp.
//
// fasthttp (github.com/valyala/fasthttp) is the default because the
// generator's own CPU is what bounds a load test on one machine. Against
// the same minimal server, as fast as 64 connections allow, Strata on
// fasthttp sent 1.94 times vegeta's requests (vegeta is on net/http) for
// less CPU, where Strata on net/http had sent 1.35–1.62 times
// (docs/benchmarks.md). Each sender reuses one request and one response. A caller who needs net/http's
// behaviour (HTTP/2, a proxy from the environment, a custom RoundTripper)
// passes an *http.Client.
type senders struct {
	client  *http.Client
	fast    *fasthttp.Client
	timeout time.Duration
}

// readBuffer bounds a response's headers.
const readBuffer = 16 << 10

func newSenders(client *http.Client, connections int, timeout time.Duration) *senders {
	s := &senders{client: client, timeout: timeout}
	if client == nil {
		s.fast = &fasthttp.Client{
			Name:                          "strata-loadtest",
			MaxConnsPerHost:               connections,
			ReadBufferSize:                readBuffer,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
		}
	}
	return s
}

func (s *senders) new() sender {
	if s.fast != nil {
		return &fastSender{client: s.fast, timeout: s.timeout, req: new(fasthttp.Request), resp: new(fasthttp.Response)}
	}
	return netSender{client: s.client, timeout: s.timeout}
}

func (s *senders) close() {
	if s.fast != nil {
		s.fast.CloseIdleConnections()
	}
}

type fastSender struct {
	client  *fasthttp.Client
	timeout time.Duration
	req     *fasthttp.Request
	resp    *fasthttp.Response
}

func (f *fastSender) send(t Target) string {
	req, resp := f.req, f.resp
	req.Reset()
	resp.Reset()
	req.SetRequestURI(t.URL)
	if t.Method != "" {
		req.Header.SetMethod(t.Method)
	}
	for k, vs := range t.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if t.Body != nil {
		req.SetBodyRaw(t.Body)
	}
	if err := f.client.DoTimeout(req, resp, f.timeout); err != nil {
		var ne net.Error
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "connection"
	}
	if c := resp.StatusCode(); c >= 400 {
		return "status " + strconv.Itoa(c)
	}
	return ""
}

type netSender struct {
	client  *http.Client
	timeout time.Duration
}

// send's own timeout is separate from the run's end: a request sent in
// time is waited for.
func (n netSender) send(t Target) string {
	ctx, cancel := context.WithTimeout(context.Background(), n.timeout)
	defer cancel()
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if t.Body != nil {
		body = bytes.NewReader(t.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.URL, body)
	if err != nil {
		return "request"
	}
	for k, v := range t.Header {
		req.Header[k] = v
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "connection"
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return "connection"
	case resp.StatusCode >= 400:
		return "status " + strconv.Itoa(resp.StatusCode)
	}
	return ""
}
