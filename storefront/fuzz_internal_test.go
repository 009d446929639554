package storefront

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxErrorText bounds the field and message of any error: maxQuoted bytes
// of a client's value, escaped at most fourfold, plus the fixed words.
const maxErrorText = 4*maxQuoted + 200

// checkErrorText fails t if an error's text is long, invalid UTF-8, or
// carries a character that displays as nothing.
func checkErrorText(t *testing.T, input any, aerr *apiError) {
	t.Helper()
	for _, s := range []string{aerr.field, aerr.msg} {
		if len(s) > maxErrorText || !utf8.ValidString(s) {
			t.Fatalf("error for %q is long or not UTF-8 (%d bytes): %q", input, len(s), s)
		}
		if r, bad := firstBadRune(s); bad {
			t.Fatalf("error for %q carries %U: %q", input, r, s)
		}
	}
}

// FuzzDecodeObject: any body either decodes to an object whose values are
// each valid JSON, or yields a 4xx error naming a field; it never panics.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","name":"A","region":"eu"}`,
		`{"product_id": 3, "kind": "view"}`,
		`{}`, `[]`, `null`, `"x"`, `{"a":1}{"b":2}`, `{"a":1,"a":2}`, `{"a":`, `{"a":1}x`,
		`{"a":{"b":[1,2,{"c":null}]}}`, "{\"a\":\"\xff\"}", ` `, `{"a":1e999}`, `{"":1}`, `{"":"0","":0}`,
		"{\"\xe0\":\"\"}", `{"a\u202e":1}`, `{"product_id":1e0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		obj, aerr := decodeObject(body)
		if aerr == nil {
			aerr = obj.only("email", "name", "region")
		}
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 || aerr.field == "" || aerr.msg == "" {
				t.Fatalf("bad error for %q: %+v", body, aerr)
			}
			checkErrorText(t, body, aerr)
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		for k, v := range obj {
			if !json.Valid(v) {
				t.Fatalf("field %q holds invalid JSON %q", k, v)
			}
			// The typed accessors never panic on any value, and their
			// errors are bounded.
			if _, aerr := obj.str(k, true); aerr != nil {
				checkErrorText(t, body, aerr)
			}
			if _, aerr := obj.int(k); aerr != nil {
				checkErrorText(t, body, aerr)
			}
		}
	})
}

// FuzzParseID: an accepted id round-trips to the same text and is positive.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "007", "9223372036854775807", "9223372036854775808", "1e3", "", " 1", "+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, aerr := parseID("id", s)
		if aerr != nil {
			if aerr.status != 400 {
				t.Fatalf("status %d for %q", aerr.status, s)
			}
			checkErrorText(t, s, aerr)
			return
		}
		if id <= 0 || strconv.FormatInt(id, 10) != s {
			t.Fatalf("parseID(%q) = %d", s, id)
		}
	})
}

// FuzzQuoteValue: whatever the value, its quote is bounded, valid UTF-8
// without invisible characters, and the whole value when it is short;
// clientField leaves a short printable name alone.
func FuzzQuoteValue(f *testing.F) {
	for _, s := range []string{"", "a", "admin", strings.Repeat("x", 65), strings.Repeat("é", 40), "a\x00b", "\u202e", "\xff\xfe",
		strings.Repeat("\x80", 100), strings.Repeat("\x00", 70), strings.Repeat("a", 63) + "\U0001F600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, q := range []string{quoteValue(s), clientField(s)} {
			if len(q) > maxErrorText || !utf8.ValidString(q) || q == "" {
				t.Fatalf("quote of %q is empty, long or not UTF-8: %q", s, q)
			}
			if r, bad := firstBadRune(q); bad {
				t.Fatalf("quote of %q carries %U: %q", s, r, q)
			}
		}
		if len(s) <= maxQuoted {
			if u, err := strconv.Unquote(quoteValue(s)); err != nil || u != s {
				t.Fatalf("quote of the short %q does not unquote to it: %q", s, quoteValue(s))
			}
		} else if !strings.HasSuffix(quoteValue(s), "… ("+strconv.Itoa(len(s))+" bytes)") {
			t.Fatalf("quote of %d bytes does not give the length: %q", len(s), quoteValue(s))
		}
	})
}
