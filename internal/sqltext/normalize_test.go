package sqltext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// normalizeCases are statements as the storefront and the routers write
// them, and the shapes that could leak a value.
var normalizeCases = []struct {
	text string
	max  int
	want string
}{
	// the storefront's user read, formatted over lines: blanks folded, $1 kept
	{"SELECT id, email\n\t FROM users\n WHERE id = $1", 100, "SELECT id, email FROM users WHERE id = $1"},
	// a string constant is a value: replaced
	{"SELECT 1 FROM user_actions WHERE kind = 'purchase' AND note = 'it''s'", 100, "SELECT ? FROM user_actions WHERE kind = ? AND note = ?"},
	// E'...' with an escaped quote is one constant, its prefix too
	{`SELECT E'a\'b', x FROM t`, 100, "SELECT ?, x FROM t"},
	// numbers are constants; names with digits and parameters are not
	{"SELECT t1.a FROM t1 WHERE b > 10.5e-3 AND c = $12 LIMIT 50", 100, "SELECT t1.a FROM t1 WHERE b > ? AND c = $12 LIMIT ?"},
	// dollar quotes are constants
	{"SELECT $tag$secret$tag$, $$x$$", 100, "SELECT ?, ?"},
	// comments dropped, a trailing semicolon too
	{"/* app=shop */ SELECT 1 -- why\n;", 100, "SELECT ?"},
	// quoted identifiers are names, kept
	{`SELECT "Name" FROM "My Table"`, 100, `SELECT "Name" FROM "My Table"`},
	// an unterminated literal hides what follows
	{"SELECT 'secret AND more", 100, "SELECT ?"},
	{`SELECT "secret AND more`, 100, "SELECT ?"},
	// an unterminated comment too
	{"SELECT 1 /* secret", 100, "SELECT ?"},
	// cut on a byte bound, marked
	{"SELECT a, b, c FROM t", 10, "SELECT a,…"},
	// cut never splits a rune
	{"SELECT ééé", 9, "SELECT é…"},
	// the WAL position query of the replica router
	{"SELECT pg_current_wal_insert_lsn()::text", 100, "SELECT pg_current_wal_insert_lsn()::text"},
	// empty
	{"  \n", 100, ""},
}

func TestNormalize(t *testing.T) {
	for _, c := range normalizeCases {
		if got := Normalize(c.text, c.max); got != c.want {
			t.Errorf("Normalize(%q, %d) = %q, want %q", c.text, c.max, got, c.want)
		}
	}
}

// FuzzNormalize: any text, no panic; the result is at most max bytes (and
// the mark of a cut), valid UTF-8 from valid UTF-8, the same when
// normalised again (when not cut); a string constant never shows.
func FuzzNormalize(f *testing.F) {
	for _, c := range normalizeCases {
		f.Add(c.text, "secret")
	}
	f.Fuzz(func(t *testing.T, text, secret string) {
		const max = 200
		out := Normalize(text, max)
		if len(strings.TrimSuffix(out, "…")) > max {
			t.Fatalf("Normalize(%q) is %d bytes, over %d", text, len(out), max)
		}
		if utf8.ValidString(text) && !utf8.ValidString(out) {
			t.Fatalf("Normalize(%q) = %q, not UTF-8", text, out)
		}
		if !strings.HasSuffix(out, "…") {
			if again := Normalize(out, max); again != out {
				t.Fatalf("Normalize(%q) = %q, but again %q", text, out, again)
			}
		}
		if strings.ContainsAny(secret, `'\`) {
			return
		}
		if got := Normalize("SELECT x FROM t WHERE a = '"+secret+"'", max); got != "SELECT x FROM t WHERE a = ?" {
			t.Fatalf("the constant %q shows: %q", secret, got)
		}
	})
}
