package storefront_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/storefront"
)

// maxErrorResponse bounds the size of any error response: an error quotes
// at most 64 bytes of what the client sent (escaped, that is at most 256),
// whatever the size of the value.
const maxErrorResponse = 1 << 10

// badInputHandler returns the API over a small seeded SQLite store (users
// 1 to 3, products 1 to 5; user 1's email is taken@example.com).
func badInputHandler(t *testing.T) http.Handler {
	t.Helper()
	s := open(t, testdb.SQLite(t))
	seed(t, s, 3, 5, 20)
	if _, err := s.UpdateUser(context.Background(), 1, storefront.UserPatch{Email: ptr("taken@example.com")}); err != nil {
		t.Fatal(err)
	}
	return storefront.NewHandler(s, storefront.HandlerConfig{SearchTiers: relaxedTiers()})
}

type sent struct {
	status int
	header http.Header
	raw    string
	body   struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
}

// send serves one request through h, without a network: the request line
// and headers reach the handler exactly as written here.
func send(t *testing.T, h http.Handler, method, target, body string, header ...string) sent {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out := sent{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Code >= 400 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out.body); err != nil {
			t.Fatalf("%s %.80s: error response is not JSON: %v: %.200s", method, target, err, out.raw)
		}
	}
	return out
}

// user returns a POST /users body with the given fields, JSON-encoded
// (an invalid string goes through as U+FFFD, so raw bytes use userRaw).
func user(email, name, region string) string {
	b, _ := json.Marshal(map[string]string{"email": email, "name": name, "region": region})
	return string(b)
}

// userRaw returns a POST /users body with the fields pasted in as they
// are, for escapes and bytes that json.Marshal would change.
func userRaw(email, name, region string) string {
	return `{"email":"` + email + `","name":"` + name + `","region":"` + region + `"}`
}

// TestBadInputHTTP sends hostile input of every kind through the handler.
// Every error names its field, quotes at most a bounded part of what was
// sent, and carries no invisible characters; every accepted value is
// stored as sent (normalised, never silently altered).
func TestBadInputHTTP(t *testing.T) {
	h := badInputHandler(t)
	huge := strings.Repeat("x", 900_000)
	hugeDigits := "1" + strings.Repeat("0", 900_000)
	longHeader := strings.Repeat("y", 60_000) // under MaxHeaderBytes, so a server lets it through
	longDigits := strings.Repeat("9", 60_000)
	deep := `{"email":` + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + `}`
	type tc struct {
		name, method, target, body string
		header                     []string
		status                     int
		field                      string // "" on success
		want                       string // in the error message, or in the body on success
	}
	cases := []tc{
		// Errors quote a bounded part of what was sent.

		// The reported case: an unknown key of 900 KB was echoed twice (1.8 MB).
		{"huge unknown key", "POST", "/users", `{"` + huge + `":1}`, nil, 400, `"` + huge[:64] + `"… (900000 bytes)`, "is not a known field"},
		// A huge duplicate key is clipped the same way.
		{"huge duplicate key", "POST", "/users", `{"` + huge[:400_000] + `":1,"` + huge[:400_000] + `":2}`, nil, 400, `"` + huge[:64] + `"… (400000 bytes)`, "appears more than once"},
		// A number literal of 900 KB is not echoed whole.
		{"huge number", "POST", "/users/1/actions", `{"product_id":` + hugeDigits + `,"kind":"view"}`, nil, 400, "product_id", "(900001 bytes)"},
		// A 60 KB path id is clipped.
		{"long path id", "GET", "/users/" + longDigits, "", nil, 400, "id", "(60000 bytes)"},
		// A 60 KB limit is clipped.
		{"long limit", "GET", "/search?q=tea&limit=" + longDigits, "", nil, 400, "limit", "(60000 bytes)"},
		// A 60 KB unknown parameter name is clipped, in the field too.
		{"long parameter name", "GET", "/users/1?" + longHeader + "=1", "", nil, 400, `"` + longHeader[:64] + `"… (60000 bytes)`, "is not a parameter"},
		// A 900 KB action kind is clipped.
		{"huge kind", "POST", "/users/2/actions", `{"product_id":1,"kind":"` + huge + `"}`, nil, 400, "kind", "(900000 bytes)"},
		// A 60 KB path that is not canonical, or matches no route, is clipped.
		{"long odd path", "GET", "/users//" + longHeader, "", nil, 404, "path", "(60008 bytes)"},
		{"long unknown path", "GET", "/nowhere/" + longHeader, "", nil, 404, "path", "(60009 bytes)"},
		// A 60 KB read-your-writes token is refused without echoing it.
		{"long token", "GET", "/users/1", "", []string{storefront.TokenHeader, longHeader}, 400, storefront.TokenHeader, "is 60000 bytes long"},
		// A 60 KB Content-Type is clipped.
		{"long content type", "POST", "/users", user("a@example.com", "A", "eu"), []string{"Content-Type", "text/" + longHeader}, 415, "Content-Type", "(60005 bytes)"},
		// A 60 KB Content-Encoding is clipped.
		{"long content encoding", "POST", "/users", user("a@example.com", "A", "eu"), []string{"Content-Encoding", longHeader}, 415, "Content-Encoding", "(60000 bytes)"},
		// Over-long values of every string field are refused without an echo.
		{"huge email", "POST", "/users", user(huge, "A", "eu"), nil, 400, "email", "longer than 254 bytes"},
		{"huge name", "POST", "/users", user("a@example.com", huge, "eu"), nil, 400, "name", "longer than 200 characters"},
		{"huge region", "POST", "/users", user("a@example.com", "A", huge), nil, 400, "region", "longer than 32"},
		{"huge patch email", "PATCH", "/users/2", `{"email":"` + huge + `"}`, nil, 400, "email", "longer than 254 bytes"},
		// An invalid address of the longest size is quoted in part only.
		{"long invalid email", "POST", "/users", user(strings.Repeat("a", 250), "A", "eu"), nil, 400, "email", "… (250 bytes) is not a valid address"},
		// The quote is cut on a character boundary, so it stays valid UTF-8.
		{"multibyte key cut", "POST", "/users", `{"` + strings.Repeat("é", 100) + `":1}`, nil, 400, `"` + strings.Repeat("é", 32) + `"… (200 bytes)`, "is not a known field"},

		// Emails: what a name refuses, an email refuses too.

		// Invalid UTF-8 was stored as U+FFFD.
		{"email invalid UTF-8", "POST", "/users", userRaw("a\xffb@example.com", "A", "eu"), nil, 400, "email", "not valid UTF-8"},
		// A lone surrogate escape decodes to U+FFFD.
		{"email lone surrogate", "POST", "/users", userRaw(`a\ud800b@example.com`, "A", "eu"), nil, 400, "email", "lone surrogate"},
		// U+FFFD itself is never text a user meant.
		{"email U+FFFD", "POST", "/users", user("a\ufffdb@example.com", "A", "eu"), nil, 400, "email", "lone surrogate"},
		// A zero-width space makes two addresses look alike.
		{"email zero-width space", "POST", "/users", user("a\u200bb@example.com", "A", "eu"), nil, 400, "email", "U+200B"},
		// A right-to-left override reverses how the address displays.
		{"email RTL override", "POST", "/users", user("moc.elpmaxe\u202e@a.example", "A", "eu"), nil, 400, "email", "U+202E"},
		// A left-to-right mark is a bidirectional control too.
		{"email LTR mark", "POST", "/users", user("a\u200e@example.com", "A", "eu"), nil, 400, "email", "U+200E"},
		// A byte-order mark in the middle is invisible.
		{"email BOM", "POST", "/users", user("a\ufeff@example.com", "A", "eu"), nil, 400, "email", "U+FEFF"},
		// A NUL byte, escaped in JSON.
		{"email NUL", "POST", "/users", userRaw(`a\u0000@example.com`, "A", "eu"), nil, 400, "email", "U+0000"},
		// A no-break space inside the address.
		{"email no-break space", "POST", "/users", user("a\u00a0b@example.com", "A", "eu"), nil, 400, "email", "U+00A0, a space"},
		// A line separator in the domain.
		{"email line separator", "POST", "/users", user("a@exa\u2028mple.com", "A", "eu"), nil, 400, "email", "U+2028"},
		// A domain label may not start with a hyphen.
		{"email domain leading hyphen", "POST", "/users", user("a@-b.example", "A", "eu"), nil, 400, "email", "not a valid address"},
		// A domain label may not end with a hyphen.
		{"email domain trailing hyphen", "POST", "/users", user("a@b-.example", "A", "eu"), nil, 400, "email", "not a valid address"},
		// A domain label is at most 63 bytes.
		{"email domain label too long", "POST", "/users", user("a@"+strings.Repeat("b", 64)+".example", "A", "eu"), nil, 400, "email", "not a valid address"},
		// A domain label of punctuation.
		{"email domain punctuation", "POST", "/users", user("a@b_c.example", "A", "eu"), nil, 400, "email", "not a valid address"},
		// A PATCH checks the email the same way.
		{"patch email RTL", "PATCH", "/users/2", `{"email":"a\u202e@example.com"}`, nil, 400, "email", "U+202E"},
		// An internationalised address is still accepted, lower-cased.
		{"email internationalised", "POST", "/users", user(" José@Bücher.Example ", "José", "eu"), nil, 201, "", `"email":"josé@bücher.example"`},

		// Names and regions.

		// A line separator breaks a name over two lines.
		{"name line separator", "POST", "/users", user("n1@example.com", "a\u2028b", "eu"), nil, 400, "name", "U+2028"},
		// A paragraph separator too.
		{"name paragraph separator", "POST", "/users", user("n2@example.com", "a\u2029b", "eu"), nil, 400, "name", "U+2029"},
		// A zero-width joiner alone.
		{"name zero-width", "POST", "/users", user("n3@example.com", "a\u200db", "eu"), nil, 400, "name", "U+200D"},
		// Invalid UTF-8 is named as such, not as U+FFFD.
		{"name invalid UTF-8", "POST", "/users", userRaw("n4@example.com", "a\xc3", "eu"), nil, 400, "name", "not valid UTF-8"},
		// 201 characters is one too many.
		{"name too long", "POST", "/users", user("n5@example.com", strings.Repeat("é", 201), "eu"), nil, 400, "name", "longer than 200"},
		// 200 characters is the limit and accepted.
		{"name at the limit", "POST", "/users", user("n6@example.com", strings.Repeat("é", 200), "eu"), nil, 201, "", `"region":"eu"`},
		// A region starting with a dash.
		{"region leading dash", "POST", "/users", user("r1@example.com", "A", "-eu"), nil, 400, "region", "begin and end with a letter or digit"},
		// A region ending with a dash.
		{"region trailing dash", "POST", "/users", user("r2@example.com", "A", "eu-"), nil, 400, "region", "begin and end"},
		// A region of only a dash.
		{"region dash", "POST", "/users", user("r3@example.com", "A", "-"), nil, 400, "region", "begin and end"},
		// The Kelvin sign lower-cases to an ASCII k: refused, not turned into "keu".
		{"region Kelvin sign", "POST", "/users", user("r4@example.com", "A", "\u212aeu"), nil, 400, "region", "only letters, digits"},
		// 33 characters is one too many.
		{"region too long", "POST", "/users", user("r5@example.com", "A", strings.Repeat("a", 33)), nil, 400, "region", "longer than 32"},
		// A region with a NUL.
		{"region NUL", "POST", "/users", userRaw("r6@example.com", "A", `eu\u0000`), nil, 400, "region", `"eu\x00"`},
		// Mixed case and digits are fine, lower-cased.
		{"region mixed case", "POST", "/users", user("r7@example.com", "A", "EU-West-1"), nil, 201, "", `"region":"eu-west-1"`},

		// Content-Encoding and Content-Type.

		// A gzip body was read as plain JSON.
		{"gzip body", "POST", "/users", user("e1@example.com", "A", "eu"), []string{"Content-Encoding", "gzip"}, 415, "Content-Encoding", `"gzip" is not supported`},
		// A list with identity in it is still a coding.
		{"gzip then identity", "POST", "/users", user("e2@example.com", "A", "eu"), []string{"Content-Encoding", "identity, br"}, 415, "Content-Encoding", `"br"`},
		// A second header line counts too.
		{"two encoding headers", "POST", "/users", user("e3@example.com", "A", "eu"), []string{"Content-Encoding", "identity", "Content-Encoding", "deflate"}, 415, "Content-Encoding", `"deflate"`},
		// PATCH refuses it too.
		{"patch gzip", "PATCH", "/users/2", `{"name":"B"}`, []string{"Content-Encoding", "gzip"}, 415, "Content-Encoding", "gzip"},
		// So does recording an action.
		{"action zstd", "POST", "/users/2/actions", `{"product_id":1,"kind":"view"}`, []string{"Content-Encoding", "zstd"}, 415, "Content-Encoding", "zstd"},
		// identity, in any case, is no coding and is fine.
		{"identity", "POST", "/users", user("e4@example.com", "A", "eu"), []string{"Content-Encoding", "Identity"}, 201, "", `"email":"e4@example.com"`},
		// An unknown parameter of application/json.
		{"content type parameter", "POST", "/users", user("c1@example.com", "A", "eu"), []string{"Content-Type", "application/json; profile=x"}, 415, "Content-Type", `parameter "profile"`},
		// Two different charsets are malformed, whichever comes first.
		{"charset twice", "POST", "/users", user("c2@example.com", "A", "eu"), []string{"Content-Type", "application/json; charset=utf-8; charset=latin1"}, 415, "Content-Type", "application/json"},
		// A charset other than UTF-8 is named.
		{"charset utf-16", "POST", "/users", user("c3@example.com", "A", "eu"), []string{"Content-Type", "application/json; charset=utf-16"}, 415, "Content-Type", `charset must be utf-8, got "utf-16"`},
		// A JSON-like type is not JSON.
		{"merge patch type", "PATCH", "/users/2", `{"name":"B"}`, []string{"Content-Type", "application/merge-patch+json"}, 415, "Content-Type", "application/json"},
		// A quoted, upper-case UTF-8 charset is fine.
		{"charset quoted", "POST", "/users", user("c4@example.com", "A", "eu"), []string{"Content-Type", `Application/JSON; charset="UTF-8"`}, 201, "", `"email":"c4@example.com"`},

		// JSON bodies.

		// A key spelt with an escape is the same key.
		{"duplicate key by escape", "POST", "/users", `{"email":"d1@example.com","\u0065mail":"d2@example.com","name":"A","region":"eu"}`, nil, 400, "email", "appears more than once"},
		// Keys are matched exactly, not case-insensitively as encoding/json does.
		{"key in other case", "POST", "/users", `{"Email":"d3@example.com","name":"A","region":"eu"}`, nil, 400, "Email", "is not a known field"},
		// A key with a NUL is quoted, escaped, in the field.
		{"key with NUL", "POST", "/users", `{"a\u0000b":1}`, nil, 400, `"a\x00b"`, "is not a known field"},
		// A key with an RTL override is escaped, never shown raw.
		{"key with RTL override", "POST", "/users", `{"a\u202eb":1}`, nil, 400, `"a\u202eb"`, "is not a known field"},
		// A key of invalid UTF-8 (decoded to U+FFFD) is escaped in the field.
		{"key invalid UTF-8", "POST", "/users", "{\"a\xffb\":1}", nil, 400, `"a\ufffdb"`, "is not a known field"},
		// Several unknown keys: the first in byte order, and a count.
		{"several unknown keys", "POST", "/users", `{"zz":1,"mm":1,"aa":1}`, nil, 400, "aa", "nor are 2 others"},
		// A byte-order mark before the object.
		{"BOM before body", "POST", "/users", "\ufeff" + user("j1@example.com", "A", "eu"), nil, 400, "body", "malformed JSON"},
		// Nesting past encoding/json's depth limit.
		{"deep nesting", "POST", "/users", deep, nil, 400, "body", "malformed JSON"},
		// Trailing whitespace is not trailing data.
		{"trailing whitespace", "POST", "/users", user("j2@example.com", "A", "eu") + " \n\t", nil, 201, "", `"email":"j2@example.com"`},
		// A second value after the object.
		{"trailing number", "POST", "/users", user("j3@example.com", "A", "eu") + " 1", nil, 400, "body", "data after the JSON object"},

		// Numbers.

		// 1.0 is a float, not an integer.
		{"id as 1.0", "POST", "/users/2/actions", `{"product_id":1.0,"kind":"view"}`, nil, 400, "product_id", "without a fraction or exponent, got \"1.0\""},
		// 1e0 is an exponent; it was reported as out of range.
		{"id as 1e0", "POST", "/users/2/actions", `{"product_id":1e0,"kind":"view"}`, nil, 400, "product_id", "without a fraction or exponent"},
		// A capital E too.
		{"id as 1E2", "POST", "/users/2/actions", `{"product_id":1E2,"kind":"view"}`, nil, 400, "product_id", "without a fraction or exponent"},
		// Past int64.
		{"id past int64", "POST", "/users/2/actions", `{"product_id":9223372036854775808,"kind":"view"}`, nil, 400, "product_id", `got "9223372036854775808"`},
		// Minus zero is zero.
		{"id minus zero", "POST", "/users/2/actions", `{"product_id":-0,"kind":"view"}`, nil, 400, "product_id", "positive"},
		// A leading zero is not JSON.
		{"id leading zero", "POST", "/users/2/actions", `{"product_id":01,"kind":"view"}`, nil, 400, "body", "malformed JSON"},
		// A boolean.
		{"id true", "POST", "/users/2/actions", `{"product_id":true,"kind":"view"}`, nil, 400, "product_id", "must be an integer"},
		// An array of one.
		{"id array", "POST", "/users/2/actions", `{"product_id":[1],"kind":"view"}`, nil, 400, "product_id", "must be an integer"},
		// A kind with a NUL is escaped in the message.
		{"kind with NUL", "POST", "/users/2/actions", `{"product_id":1,"kind":"view\u0000"}`, nil, 400, "kind", `"view\x00"`},
		// Kinds are case-sensitive.
		{"kind upper case", "POST", "/users/2/actions", `{"product_id":1,"kind":"VIEW"}`, nil, 400, "kind", "view, cart, purchase"},
		// A kind as invalid UTF-8.
		{"kind invalid UTF-8", "POST", "/users/2/actions", "{\"product_id\":1,\"kind\":\"vi\xffew\"}", nil, 400, "kind", "not valid UTF-8"},

		// Query parameters.

		// A control character in a search query, which is echoed back.
		{"search control", "GET", "/search?q=tea%01", "", nil, 400, "q", "U+0001"},
		// A tab.
		{"search tab", "GET", "/search?q=green%09tea", "", nil, 400, "q", "U+0009"},
		// A NUL.
		{"search NUL", "GET", "/search?q=tea%00", "", nil, 400, "q", "U+0000"},
		// A right-to-left override.
		{"search RTL override", "GET", "/search?q=tea%E2%80%AE", "", nil, 400, "q", "U+202E"},
		// A zero-width space.
		{"search zero-width", "GET", "/search?q=te%E2%80%8Ba", "", nil, 400, "q", "U+200B"},
		// Invalid UTF-8.
		{"search invalid UTF-8", "GET", "/search?q=tea%FF", "", nil, 400, "q", "not valid UTF-8"},
		// An empty parameter name.
		{"empty parameter name", "GET", "/users/1?=x", "", nil, 400, `""`, "is not a parameter"},
		// A parameter name with a NUL is escaped in the field.
		{"parameter name NUL", "GET", "/users/1?a%00b=1", "", nil, 400, `"a\x00b"`, "which takes none"},
		// Several unknown parameters: the first in byte order.
		{"several unknown parameters", "GET", "/search?q=tea&zz=1&bb=1&mm=1", "", nil, 400, "bb", "is not a parameter"},
		// A semicolon is not a separator.
		{"semicolon", "GET", "/search?q=tea;limit=5", "", nil, 400, "query", "malformed"},
		// A limit with a leading space.
		{"limit leading space", "GET", "/search?q=tea&limit=%205", "", nil, 400, "limit", `got " 5"`},
		// A limit with a trailing NUL.
		{"limit NUL", "GET", "/search?q=tea&limit=5%00", "", nil, 400, "limit", "U+0000"},
		// Arabic-Indic digits are digits to Unicode, not to limit.
		{"limit Arabic digit", "GET", "/search?q=tea&limit=%D9%A5", "", nil, 400, "limit", `got "٥"`},
		// An exponent.
		{"limit exponent", "GET", "/search?q=tea&limit=1e1", "", nil, 400, "limit", `got "1e1"`},
		// A hexadecimal limit.
		{"limit hex", "GET", "/search?q=tea&limit=0x10", "", nil, 400, "limit", `got "0x10"`},
		// A limit past int64.
		{"limit past int64", "GET", "/users/2/recommendations?limit=9223372036854775808", "", nil, 400, "limit", "between 1 and 100"},
		// The largest limit is accepted.
		{"limit 100", "GET", "/search?q=tea&limit=100", "", nil, 200, "", `"results":`},
		// The smallest too.
		{"limit 1", "GET", "/users/2/recommendations?limit=1", "", nil, 200, "", `"recommendations":`},

		// Path ids.

		// A NUL after the id.
		{"id with NUL", "GET", "/users/1%00", "", nil, 400, "id", `"1\x00"`},
		// Arabic-Indic digits.
		{"id Arabic digit", "GET", "/products/%D9%A1", "", nil, 400, "id", `got "١"`},
		// An RTL override is escaped in the message.
		{"id RTL override", "GET", "/products/1%E2%80%AE2", "", nil, 400, "id", `"1\u202e2"`},
		// Invalid UTF-8 is escaped, so the response stays valid.
		{"id invalid UTF-8", "GET", "/products/%FF", "", nil, 400, "id", `"\xff"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := send(t, h, c.method, c.target, c.body, c.header...)
			if r.status != c.status {
				t.Fatalf("%s %.80s: status %d, want %d: %.300s", c.method, c.target, r.status, c.status, r.raw)
			}
			if c.status < 400 {
				if !strings.Contains(r.raw, c.want) {
					t.Fatalf("%s %.80s: body lacks %q: %.300s", c.method, c.target, c.want, r.raw)
				}
				return
			}
			if len(r.raw) > maxErrorResponse {
				t.Fatalf("%s %.80s: error response of %d bytes, want at most %d: %.300s", c.method, c.target, len(r.raw), maxErrorResponse, r.raw)
			}
			if r.body.Field != c.field || !strings.HasPrefix(r.body.Error, c.field+" ") || !strings.Contains(r.body.Error, c.want) {
				t.Fatalf("%s %.80s: error %q on field %q; want field %q and %q in the message", c.method, c.target, r.body.Error, r.body.Field, c.field, c.want)
			}
			if i := strings.IndexFunc(r.body.Error, invisible); i >= 0 {
				t.Fatalf("%s %.80s: error carries an invisible character at byte %d: %q", c.method, c.target, i, r.body.Error)
			}
			if c.field == "Content-Encoding" && r.header.Get("Accept-Encoding") != "identity" {
				t.Fatalf("415 for a content coding without Accept-Encoding: identity")
			}
		})
	}
}

// invisible reports a character that displays as nothing or changes how
// the text around it displays.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || r == '\ufffd'
}

// TestBadInputStable: with several bad names in one request, the error
// names the same one every time (Go's map order is random).
func TestBadInputStable(t *testing.T) {
	h := badInputHandler(t)
	for _, c := range []struct{ method, target, body, field string }{
		// Unknown keys of a body.
		{"POST", "/users", `{"k9":1,"k3":1,"k7":1,"k1":1,"k5":1}`, "k1"},
		// Unknown query parameters.
		{"GET", "/users/1?p9=1&p3=1&p7=1&p1=1&p5=1", "", "p1"},
	} {
		for range 20 {
			if r := send(t, h, c.method, c.target, c.body); r.status != 400 || r.body.Field != c.field {
				t.Fatalf("%s %s: %d on field %q, want 400 on %q", c.method, c.target, r.status, r.body.Field, c.field)
			}
		}
	}
}

// TestSeedBounds: Seed refuses counts outside their documented ranges with
// ErrBadSeed, before allocating anything.
func TestSeedBounds(t *testing.T) {
	s := open(t, testdb.SQLite(t))
	for _, c := range []struct {
		name string
		cfg  storefront.SeedConfig
		want string
	}{
		// The reported panic: makeslice: len out of range.
		{"users far too many", storefront.SeedConfig{Users: 99999999999999, Products: 1}, "Users must be between 1 and 10000000, got 99999999999999"},
		// One past the maximum.
		{"users one too many", storefront.SeedConfig{Users: storefront.MaxSeedUsers + 1, Products: 1}, "Users must be between"},
		// No user at all.
		{"zero users", storefront.SeedConfig{Users: 0, Products: 1}, "Users must be between 1"},
		// Products past their maximum.
		{"products too many", storefront.SeedConfig{Users: 1, Products: storefront.MaxSeedProducts + 1}, "Products must be between 1 and 1000000"},
		// Negative products.
		{"negative products", storefront.SeedConfig{Users: 1, Products: -1}, "Products must be between 1"},
		// Actions had no upper bound.
		{"actions too many", storefront.SeedConfig{Users: 1, Products: 1, Actions: storefront.MaxSeedActions + 1}, "Actions must be between 0 and 100000000"},
		// Negative actions.
		{"negative actions", storefront.SeedConfig{Users: 1, Products: 1, Actions: -1}, "Actions must be between 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := storefront.Seed(context.Background(), s, c.cfg)
			if !errors.Is(err, storefront.ErrBadSeed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Seed(%+v) = %v, want ErrBadSeed with %q", c.cfg, err, c.want)
			}
		})
	}
}
