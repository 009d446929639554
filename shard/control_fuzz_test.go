package shard

import (
	"errors"
	"testing"
)

// FuzzDecodeMap: any stored body, no panic; what decodes is a map that
// routes every key (so a stored map can never make For panic), and what
// does not is ErrBadMap.
func FuzzDecodeMap(f *testing.F) {
	for _, s := range []string{
		`{"kind":"hash","shards":[{"name":"a","url":"postgres://x"}],"owners":[0,0]}`,
		`{"kind":"range","shards":[{"name":"a","url":"u"}],"ranges":[{"lo":-9223372036854775808,"hi":0,"owner":0}]}`,
		`{"kind":"hash","shards":[],"owners":[]}`, `{"kind":"hash","owners":[5]}`, `null`, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeMap(7, body)
		if err != nil {
			if !errors.Is(err, ErrBadMap) {
				t.Fatalf("error %v is not ErrBadMap", err)
			}
			return
		}
		if m.Epoch != 7 {
			t.Fatalf("epoch %d, want the row's 7", m.Epoch)
		}
		for _, k := range []int64{0, 1, -1, 1 << 62, -1 << 63, 1<<63 - 1} {
			if o := m.Owner(k); o < 0 || o >= len(m.Shards) {
				t.Fatalf("key %d routed to shard %d of %d", k, o, len(m.Shards))
			}
		}
	})
}
