package shard

import (
	"errors"
	"testing"
)

func TestParseVRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want VRange
		err  bool
	}{
		{"0-499", VRange{0, 499}, false},
		{" 7 ", VRange{7, 7}, false},
		{"999-999", VRange{999, 999}, false},
		{"500-100", VRange{}, true},
		{"0-1000", VRange{}, true},
		{"-1-5", VRange{}, true},
		{"a-b", VRange{}, true},
		{"", VRange{}, true},
		{"1-2-3", VRange{}, true},
	} {
		got, err := ParseVRange(c.in, VirtualShards)
		if c.err {
			if !errors.Is(err, ErrBadMove) {
				t.Errorf("ParseVRange(%q) = %v, %v; want ErrBadMove", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseVRange(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if s := (VRange{3, 9}).SQL("user_id", 1000); s != "(((hashint8((user_id)::bigint) & 2147483647) % 1000) BETWEEN 3 AND 9)" {
		t.Errorf("SQL = %s", s)
	}
}

func FuzzParseVRange(f *testing.F) {
	for _, s := range []string{"0-499", "7", "a-b", "-1-5", "999999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseVRange(s, VirtualShards)
		if err == nil && (r.Lo < 0 || r.Hi >= VirtualShards || r.Lo > r.Hi) {
			t.Fatalf("ParseVRange(%q) = %v accepted out of range", s, r)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Fatalf("error too long: %d bytes", len(err.Error()))
		}
	})
}
