package storefront

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBodyBytes is the largest request body the API reads; a larger one is
// answered with 413.
const MaxBodyBytes = 1 << 20

// apiError is an error answered to the client: a status, the field or
// parameter to blame, and what is wrong with it, a phrase that follows the
// field's name ("limit" + "must be between 1 and 100").
type apiError struct {
	status int
	field  string
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.field, e.msg) }

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

// maxQuoted is how many bytes of a client's value an error message quotes:
// enough to recognise it, and it keeps a huge value from being echoed back
// whole.
const maxQuoted = 64

// quoteValue returns s as a Go string literal for an error message. A value
// longer than maxQuoted bytes is cut there, on a character boundary, and
// followed by an ellipsis and its full length: "aaa…"… (900000 bytes).
// Control, format and invalid bytes are escaped, so the result is valid,
// printable UTF-8 whatever s holds.
func quoteValue(s string) string {
	if len(s) <= maxQuoted {
		return escapeQuote(s)
	}
	cut := maxQuoted
	for cut > maxQuoted-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", escapeQuote(s[:cut]), len(s))
}

// escapeQuote is strconv.Quote that also escapes U+FFFD, which strconv
// counts as printable: in a message it would pass for the trace of invalid
// UTF-8.
func escapeQuote(s string) string {
	return strings.ReplaceAll(strconv.Quote(s), "\uFFFD", `\ufffd`)
}

// clientField returns a name the client chose (an object key, a query
// parameter) as the field an error blames: the name itself when it is
// short and printable, its quoteValue otherwise, so that neither the field
// nor the message can carry a huge or invisible name.
func clientField(name string) string {
	if name == "" || len(name) > maxQuoted || !utf8.ValidString(name) {
		return quoteValue(name)
	}
	for _, r := range name {
		if !strconv.IsPrint(r) || r == utf8.RuneError { // U+FFFD: an invalid byte of the key
			return quoteValue(name)
		}
	}
	return name
}

// object is a decoded JSON request body: one object, its keys unique.
type object map[string]json.RawMessage

// readObject reads a request body that must be exactly one JSON object of
// at most MaxBodyBytes, with no duplicate keys and nothing after it.
func readObject(w http.ResponseWriter, r *http.Request) (object, *apiError) {
	if aerr := checkContentEncoding(r.Header); aerr != nil {
		// RFC 7694: a 415 for a content coding says which codings are
		// accepted.
		w.Header().Set("Accept-Encoding", "identity")
		return nil, aerr
	}
	if aerr := checkContentType(r.Header); aerr != nil {
		return nil, aerr
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, field: "body",
				msg: fmt.Sprintf("is larger than %d bytes", MaxBodyBytes)}
		}
		return nil, badRequest("body", "could not be read: %v", err)
	}
	obj, derr := decodeObject(body)
	if derr != nil {
		return nil, derr
	}
	return obj, nil
}

// checkContentEncoding refuses a body in a content coding (gzip, br, …):
// the API does not decode one, and reading it as plain JSON would only
// fail later with a confusing message. "identity" is no coding at all.
func checkContentEncoding(h http.Header) *apiError {
	for _, v := range h.Values("Content-Encoding") {
		for _, coding := range strings.Split(v, ",") {
			coding = strings.TrimSpace(coding)
			if coding != "" && !strings.EqualFold(coding, "identity") {
				return &apiError{status: http.StatusUnsupportedMediaType, field: "Content-Encoding",
					msg: fmt.Sprintf("%s is not supported; send the body uncompressed (identity)", quoteValue(coding))}
			}
		}
	}
	return nil
}

// checkContentType accepts no Content-Type (JSON is assumed) or
// application/json with at most a charset parameter of utf-8.
func checkContentType(h http.Header) *apiError {
	ct := h.Get("Content-Type")
	if ct == "" {
		return nil
	}
	unsupported := func(format string, args ...any) *apiError {
		return &apiError{status: http.StatusUnsupportedMediaType, field: "Content-Type", msg: fmt.Sprintf(format, args...)}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return unsupported("must be application/json (in UTF-8), got %s", quoteValue(ct))
	}
	if charset, ok := params["charset"]; ok && !strings.EqualFold(charset, "utf-8") {
		return unsupported("charset must be utf-8, got %s", quoteValue(charset))
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range params {
			if k != "charset" && !yield(k) {
				return
			}
		}
	})
	if len(names) > 0 {
		return unsupported("parameter %s is not supported (application/json takes only charset=utf-8)", quoteValue(names[0]))
	}
	return nil
}

// decodeObject parses body as one JSON object. It is the request decoder's
// core, kept free of HTTP so that it can be fuzzed.
func decodeObject(body []byte) (object, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("body", "is empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, badRequest("body", "must be a JSON object")
	}
	obj := object{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, badRequest("body", "malformed JSON: object key is not a string")
		}
		if key == "" {
			return nil, badRequest("body", "has an empty object key")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(err)
		}
		if _, dup := obj[key]; dup {
			return nil, badRequest(clientField(key), "appears more than once")
		}
		obj[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("body", "has data after the JSON object")
	}
	return obj, nil
}

func syntaxError(err error) *apiError {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return badRequest("body", "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body", "malformed JSON: unexpected end of input")
	default:
		return badRequest("body", "malformed JSON: %v", err)
	}
}

// only rejects any key not in allowed; of several, the first in byte
// order, so the answer does not change from one request to the next.
func (o object) only(allowed ...string) *apiError {
	var unknown []string
	for k := range o {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	k := slices.Min(unknown)
	if len(unknown) > 1 {
		return badRequest(clientField(k), "is not a known field, nor are %d others (want %s)", len(unknown)-1, strings.Join(allowed, ", "))
	}
	return badRequest(clientField(k), "is not a known field (want %s)", strings.Join(allowed, ", "))
}

// str returns the string field name: nil if absent (an error if required),
// an error if null or not a string.
func (o object) str(name string, required bool) (*string, *apiError) {
	raw, ok := o[name]
	if !ok {
		if required {
			return nil, badRequest(name, "is required")
		}
		return nil, nil
	}
	var s string
	if bytes.Equal(raw, []byte("null")) || json.Unmarshal(raw, &s) != nil {
		return nil, badRequest(name, "must be a string")
	}
	// encoding/json turns invalid UTF-8 and lone surrogate escapes into
	// U+FFFD without a word; a value must not change on its way in.
	if !utf8.Valid(raw) {
		return nil, badRequest(name, "is not valid UTF-8")
	}
	if strings.ContainsRune(s, utf8.RuneError) {
		return nil, badRequest(name, "holds a lone surrogate escape or U+FFFD, which is not valid text")
	}
	return &s, nil
}

// int returns the required integer field name.
func (o object) int(name string) (int64, *apiError) {
	raw, ok := o[name]
	if !ok {
		return 0, badRequest(name, "is required")
	}
	var n json.Number
	// json.Number also accepts a quoted number; an integer field must not.
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') || json.Unmarshal(raw, &n) != nil {
		return 0, badRequest(name, "must be an integer")
	}
	if strings.ContainsAny(n.String(), ".eE") {
		return 0, badRequest(name, "must be an integer, without a fraction or exponent, got %s", quoteValue(n.String()))
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, badRequest(name, "must be an integer between 1 and %d, got %s", int64(1<<63-1), quoteValue(n.String()))
	}
	return v, nil
}

// parseID reads a path id: decimal digits only, no sign, no leading zero,
// between 1 and 2^63-1.
func parseID(field, s string) (int64, *apiError) {
	v, ok := canonicalPositive(s)
	if !ok {
		return 0, badRequest(field, "must be a positive integer id, got %s", quoteValue(s))
	}
	return v, nil
}

// canonicalPositive parses the canonical decimal form of a positive int64:
// digits only, no sign, no leading zero.
func canonicalPositive(s string) (int64, bool) {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// query parses the raw query string strictly: a malformed escape or a
// parameter the endpoint does not take is an error, not silently dropped.
func query(r *http.Request, allowed ...string) (url.Values, *apiError) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("query", "is malformed: %v", err)
	}
	var unknown []string
	for name := range v {
		if !slices.Contains(allowed, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return v, nil
	}
	name := clientField(slices.Min(unknown)) // the same one every time
	if len(allowed) == 0 {
		return nil, badRequest(name, "is not a parameter of this endpoint, which takes none")
	}
	return nil, badRequest(name, "is not a parameter of this endpoint (want %s)", strings.Join(allowed, ", "))
}

// param returns a query parameter given at most once ("" when absent). Its
// value must be valid UTF-8 without control or format characters: no
// parameter of the API takes them, and a search query is echoed back.
func param(v url.Values, name string) (string, bool, *apiError) {
	vals, ok := v[name]
	if !ok {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", false, badRequest(name, "is given %d times; give it once", len(vals))
	}
	s := vals[0]
	if !utf8.ValidString(s) {
		return "", false, badRequest(name, "is not valid UTF-8")
	}
	if r, bad := firstBadRune(s); bad {
		return "", false, badRequest(name, "contains %U, a control, format or separator character", r)
	}
	return s, true, nil
}

// limitParam reads limit=: absent means DefaultLimit, otherwise an integer
// in 1..MaxLimit.
func limitParam(v url.Values) (int, *apiError) {
	return boundedLimitParam(v, DefaultLimit, MaxLimit)
}
