package cache

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeEnvelope: any bytes from L2 either decode to an envelope whose
// re-encoding decodes to the same thing, or are rejected; never a panic or
// an unbounded allocation.
func FuzzDecodeEnvelope(f *testing.F) {
	codec := JSON[string]{}
	for _, e := range []*envelope[string]{
		{value: "hello", created: 1, soft: 2, hard: 3},
		{notFound: true, created: 5, soft: 6, hard: 6},
		{value: `{"a":1}`, created: 1, soft: 1, hard: 9, tags: []tagStamp{{"products", 3}, {"user:5", 0}}},
	} {
		b, err := encodeEnvelope(e, codec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b, codec)
		if err != nil {
			return
		}
		again, err := encodeEnvelope(e, codec)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := decodeEnvelope(again, codec)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if e2.value != e.value || e2.notFound != e.notFound || e2.soft != e.soft || e2.hard != e.hard || len(e2.tags) != len(e.tags) {
			t.Fatalf("round trip changed the envelope: %+v vs %+v", e, e2)
		}
		again2, _ := encodeEnvelope(e2, codec)
		if !bytes.Equal(again, again2) {
			t.Fatal("encoding is not stable")
		}
	})
}

// FuzzDecodeBusMsg: any message on the bus channel is either a valid
// message or rejected, never a panic.
func FuzzDecodeBusMsg(f *testing.F) {
	for _, s := range []string{
		`{"o":"abc","s":1,"at":5,"k":["user:1"]}`,
		`{"o":"abc","s":2,"at":5,"t":["products"],"e":[4]}`,
		`{"o":"abc","s":3,"f":true}`, `{}`, `null`, `{"o":"x","s":1,"t":["a"]}`, `[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeBusMsg(b)
		if err != nil {
			return
		}
		if m.Origin == "" || m.Seq == 0 || len(m.Tags) != len(m.Epochs) {
			t.Fatalf("accepted an invalid message: %+v", m)
		}
	})
}

// FuzzNormalizeSQL: any text either normalises or is rejected with
// ErrBadQuery; never a panic. A normal form is stable (normalising it again
// changes nothing) and keeps every byte outside whitespace and comments.
func FuzzNormalizeSQL(f *testing.F) {
	for _, s := range []string{
		"SELECT id FROM users WHERE id = $1",
		"select 'It''s' -- c\n, \"Q\"\"x\" /* a /* b */ */ ;",
		"select E'a\\'b', $t$ x $t$, a$b$c, $$ $$",
		"select 1/**/-/**/-1",
		"e'x\\'' e 'y'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		norm, err := NormalizeSQL(sql)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("error %v is not ErrBadQuery", err)
			}
			return
		}
		again, err := NormalizeSQL(norm)
		if err != nil || again != norm {
			t.Fatalf("not stable: %q -> %q -> %q, %v", sql, norm, again, err)
		}
		if strings.Trim(norm, " \t\n\r\f\v") != norm || norm == "" { // SQL whitespace is ASCII
			t.Fatalf("%q -> %q: leading or trailing space, or empty", sql, norm)
		}
	})
}
