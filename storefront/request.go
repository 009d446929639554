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

// object is a decoded JSON request body: one object, its keys unique.
type object map[string]json.RawMessage

// readObject reads a request body that must be exactly one JSON object of
// at most MaxBodyBytes, with no duplicate keys and nothing after it.
func readObject(w http.ResponseWriter, r *http.Request) (object, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		charset, hasCharset := params["charset"]
		if err != nil || mt != "application/json" || hasCharset && !strings.EqualFold(charset, "utf-8") {
			return nil, &apiError{status: http.StatusUnsupportedMediaType, field: "Content-Type",
				msg: fmt.Sprintf("must be application/json (in UTF-8), got %q", ct)}
		}
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
			return nil, badRequest(key, "appears more than once")
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

// only rejects any key not in allowed.
func (o object) only(allowed ...string) *apiError {
	for k := range o {
		if !slices.Contains(allowed, k) {
			return badRequest(k, "is not a known field (want %s)", strings.Join(allowed, ", "))
		}
	}
	return nil
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
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, badRequest(name, "must be an integer between 1 and %d, got %s", int64(1<<63-1), n)
	}
	return v, nil
}

// parseID reads a path id: decimal digits only, no sign, no leading zero,
// between 1 and 2^63-1.
func parseID(field, s string) (int64, *apiError) {
	v, ok := canonicalPositive(s)
	if !ok {
		return 0, badRequest(field, "must be a positive integer id, got %q", s)
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
	for name := range v {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, badRequest(name, "is not a parameter of this endpoint, which takes none")
			}
			return nil, badRequest(name, "is not a parameter of this endpoint (want %s)", strings.Join(allowed, ", "))
		}
	}
	return v, nil
}

// param returns a query parameter given at most once ("" when absent).
func param(v url.Values, name string) (string, bool, *apiError) {
	vals, ok := v[name]
	if !ok {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", false, badRequest(name, "is given %d times; give it once", len(vals))
	}
	return vals[0], true, nil
}

// limitParam reads limit=: absent means DefaultLimit, otherwise an integer
// in 1..MaxLimit.
func limitParam(v url.Values) (int, *apiError) {
	s, ok, aerr := param(v, "limit")
	if aerr != nil || !ok {
		return DefaultLimit, aerr
	}
	n, ok := canonicalPositive(s)
	if !ok || n > MaxLimit {
		return 0, badRequest("limit", "must be an integer between 1 and %d, got %q", MaxLimit, s)
	}
	return int(n), nil
}
