package advisor

import (
	"maps"
	"slices"
	"testing"
	"time"
)

func TestShape(t *testing.T) {
	cases := []struct {
		text  string
		key   string
		slots []slot
	}{
		// parameters and string and number constants all become "?"
		{"SELECT * FROM t WHERE a = $1 AND s = 'it''s' AND n > 42", "SELECT * FROM t WHERE a = ? AND s = ? AND n > ?",
			[]slot{{param: 1}, {literal: "it's"}, {literal: "42"}}},
		// digits inside identifiers and $n are not constants
		{"SELECT col2 FROM t3 WHERE x = $12", "SELECT col2 FROM t3 WHERE x = ?", []slot{{param: 12}}},
		// a decimal constant
		{"SELECT 1.5", "SELECT ?", []slot{{literal: "1.5"}}},
	}
	for _, c := range cases {
		key, slots := shape(c.text)
		if key != c.key || !slices.Equal(slots, c.slots) {
			t.Errorf("shape(%q) = %q, %v; want %q, %v", c.text, key, slots, c.key, c.slots)
		}
	}
}

func TestSamplesBind(t *testing.T) {
	// The service ran its text with a constant and one argument;
	// pg_stat_statements holds it with both as parameters, numbered in
	// order.
	service := "SELECT id FROM jobs WHERE status = 'pending' AND run_at < $1"
	pgss := "SELECT id FROM jobs WHERE status = $1 AND run_at < $2"
	key, slots := shape(service)
	ss := samples{key: {values: []string{"pending", "2026-01-01T00:00:00Z"}, consts: []bool{true, false}}}
	if len(slots) != 2 {
		t.Fatalf("shape found %d slots", len(slots))
	}
	vals, consts, ok := ss.bind(pgss, 2)
	if !ok || !slices.Equal(vals, []string{"pending", "2026-01-01T00:00:00Z"}) || !maps.Equal(consts, map[int]string{1: "pending"}) {
		t.Fatalf("bind = %q, %v, %v", vals, consts, ok)
	}
	if got := constColumns(pgss, consts); !maps.Equal(got, map[string]string{"status": "pending"}) {
		t.Errorf("constColumns = %v", got)
	}
	// Another text, or a different parameter count, does not match.
	if _, _, ok := ss.bind("SELECT id FROM jobs WHERE status = $1", 1); ok {
		t.Error("a different text matched")
	}
	if _, _, ok := ss.bind(pgss, 3); ok {
		t.Error("a text with a parameter the sample lacks matched")
	}
	// No samples at all: no match, no panic.
	if _, _, ok := samples(nil).bind(pgss, 2); ok {
		t.Error("nil samples matched")
	}
}

func TestParamText(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   any
		want string
		ok   bool
	}{
		{int64(7), "7", true},               // integers
		{"x", "x", true},                    // strings as they are
		{at, "2026-01-02T03:04:05Z", true},  // times in RFC 3339
		{[]int64{1, 2}, "{1,2}", true},      // arrays in PostgreSQL's form
		{[]string{`a"b`}, `{"a\"b"}`, true}, // quoted elements
		{nil, "", false},                    // NULL: unusable
		{[]byte("raw"), "", false},          // bytes: unusable
	}
	for _, c := range cases {
		got, ok := paramText(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("paramText(%#v) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// FuzzShape: any text, no panic; slots and "?" marks agree.
func FuzzShape(f *testing.F) {
	for _, s := range []string{"SELECT $1, 'a''b', 3.5", "'", "$", "$99999999999999999999", "x1 1x 1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		key, slots := shape(text)
		marks := 0
		for i := 0; i < len(key); i++ {
			if key[i] == '?' {
				marks++
			}
		}
		if marks < len(slots) {
			t.Fatalf("%d slots but %d marks in %q", len(slots), marks, key)
		}
	})
}
