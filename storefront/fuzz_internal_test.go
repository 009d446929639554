package storefront

import (
	"encoding/json"
	"strconv"
	"testing"
)

// FuzzDecodeObject: any body either decodes to an object whose values are
// each valid JSON, or yields a 4xx error naming a field; it never panics.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","name":"A","region":"eu"}`,
		`{"product_id": 3, "kind": "view"}`,
		`{}`, `[]`, `null`, `"x"`, `{"a":1}{"b":2}`, `{"a":1,"a":2}`, `{"a":`, `{"a":1}x`,
		`{"a":{"b":[1,2,{"c":null}]}}`, "{\"a\":\"\xff\"}", ` `, `{"a":1e999}`, `{"":1}`, `{"":"0","":0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		obj, aerr := decodeObject(body)
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 || aerr.field == "" || aerr.msg == "" {
				t.Fatalf("bad error for %q: %+v", body, aerr)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		for k, v := range obj {
			if !json.Valid(v) {
				t.Fatalf("field %q holds invalid JSON %q", k, v)
			}
			// The typed accessors never panic on any value.
			obj.str(k, true)
			obj.int(k)
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
			return
		}
		if id <= 0 || strconv.FormatInt(id, 10) != s {
			t.Fatalf("parseID(%q) = %d", s, id)
		}
	})
}
