package storefront

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// RecentActions is how many of a user's latest actions recommendations read
// (guide, Stage 1: "ORDER BY created_at DESC LIMIT 100").
const RecentActions = 100

// Limits on request values. They bound work per request and keep one client
// from storing arbitrarily large rows.
const (
	MaxLimit       = 100 // largest limit= a list endpoint accepts
	DefaultLimit   = 10  // limit when none is given (guide: recommendations?limit=10)
	MaxQueryLen    = 200 // longest search query, in characters
	MaxNameLen     = 200 // longest user name, in characters
	MaxEmailLen    = 254 // RFC 5321 path limit
	MaxRegionLen   = 32  // longest region label
	MaxSearchTerms = 16  // words of a query that are searched; the rest are ignored
)

// User is a customer account.
type User struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Region    string    `json:"region"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Version starts at 1 and grows by one on every update.
	Version int64 `json:"version"`
}

// Product is an item of the catalogue.
type Product struct {
	ID          int64     `json:"id"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Category    string    `json:"category"`
	PriceCents  int64     `json:"price_cents"`
	Stock       int64     `json:"stock"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ActionKind is what a user did with a product.
type ActionKind string

// The kinds of action, weakest interest first.
const (
	View     ActionKind = "view"
	Cart     ActionKind = "cart"
	Purchase ActionKind = "purchase"
)

// Valid reports whether k is one of View, Cart and Purchase.
func (k ActionKind) Valid() bool { return k == View || k == Cart || k == Purchase }

// Action is one recorded user action.
type Action struct {
	ID        int64      `json:"id"`
	UserID    int64      `json:"user_id"`
	ProductID int64      `json:"product_id"`
	Kind      ActionKind `json:"kind"`
	CreatedAt time.Time  `json:"created_at"`
}

// NewUser is the input of [Store.CreateUser].
type NewUser struct {
	Email  string
	Name   string
	Region string
}

// UserPatch is the input of [Store.UpdateUser]; nil fields are left alone.
type UserPatch struct {
	Email  *string
	Name   *string
	Region *string
}

// Errors a caller tells apart with errors.Is.
var (
	// ErrNotFound: the row named does not exist.
	ErrNotFound = errors.New("storefront: not found")
	// ErrConflict: the write breaks a uniqueness rule (a taken email).
	ErrConflict = errors.New("storefront: conflict")
)

// NotFoundError names a row that does not exist. It matches ErrNotFound
// with errors.Is, however deeply a caller wraps it.
type NotFoundError struct {
	Kind string // "user" or "product"
	ID   int64
}

// Error says which row is missing, for example "user 5 not found".
func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %d not found", e.Kind, e.ID) }

// Is reports whether target is ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// FieldError says which input field is wrong and why. It wraps ErrNotFound
// or ErrConflict where the field names a missing or taken row.
type FieldError struct {
	Field string // the input field or parameter, for example "email"
	Msg   string // what is wrong, a phrase that follows the field's name
	Err   error  // optional: ErrNotFound or ErrConflict
}

// Error returns the field's name followed by what is wrong with it.
func (e *FieldError) Error() string { return e.Field + " " + e.Msg }

// Unwrap returns the category of the error, if any.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// firstBadRune returns the first rune of s that has no place in a stored
// or echoed value: a control character (NUL, tab, …), an invisible format
// character (Cf: zero-width spaces and joiners, bidirectional controls such
// as U+202E, which reverses the text displayed after it), a line or
// paragraph separator, or U+FFFD, which is what invalid UTF-8 decodes to.
func firstBadRune(s string) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || r == utf8.RuneError {
			return r, true
		}
	}
	return 0, false
}

// normalizeEmail trims and lower-cases an address and checks it is a bare
// addr-spec ("a@b.example", no display name, no angle brackets) of
// printable characters, whose domain is dot-separated labels of letters,
// digits and inner hyphens.
func normalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", fieldErr("email", "is required")
	case len(s) > MaxEmailLen:
		return "", fieldErr("email", "is longer than %d bytes", MaxEmailLen)
	case !utf8.ValidString(s): // checked before ToLower, which would hide it
		return "", fieldErr("email", "is not valid UTF-8")
	}
	if r, bad := firstBadRune(s); bad {
		return "", fieldErr("email", "contains %U, a control, format or invalid character", r)
	}
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return "", fieldErr("email", "contains %U, a space", r)
	}
	s = strings.ToLower(s)
	if len(s) > MaxEmailLen { // lower-casing can lengthen a few letters
		return "", fieldErr("email", "is longer than %d bytes", MaxEmailLen)
	}
	invalid := fieldErr("email", "%s is not a valid address", quoteValue(s))
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", invalid
	}
	local, domain, _ := strings.Cut(s, "@")
	if local == "" || !strings.Contains(domain, ".") {
		return "", invalid
	}
	for _, label := range strings.Split(domain, ".") { // no address literals, no empty labels
		if !validDomainLabel(label) {
			return "", invalid
		}
	}
	return s, nil
}

// validDomainLabel reports whether label is a DNS label: 1 to 63 bytes of
// letters (internationalised ones too), digits and hyphens, neither first
// nor last a hyphen.
func validDomainLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for _, r := range label {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) && r != '-' {
			return false
		}
	}
	return true
}

// normalizeName trims a display name and rejects empty, over-long, invalid
// or invisible-character names.
func normalizeName(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", fieldErr("name", "is required")
	case !utf8.ValidString(s):
		return "", fieldErr("name", "is not valid UTF-8")
	case utf8.RuneCountInString(s) > MaxNameLen:
		return "", fieldErr("name", "is longer than %d characters", MaxNameLen)
	}
	if r, bad := firstBadRune(s); bad {
		return "", fieldErr("name", "contains %U, a control, format or invalid character", r)
	}
	return s, nil
}

// normalizeRegion lower-cases a region label: ASCII letters, digits and
// inner dashes ("eu-west-1").
func normalizeRegion(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fieldErr("region", "is required")
	}
	if len(s) > MaxRegionLen {
		return "", fieldErr("region", "is longer than %d characters", MaxRegionLen)
	}
	// Checked before lower-casing, which maps a few non-ASCII letters
	// (U+212A KELVIN SIGN) to ASCII ones.
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return "", fieldErr("region", "%s may hold only letters, digits and '-'", quoteValue(s))
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return "", fieldErr("region", "%s must begin and end with a letter or digit", quoteValue(s))
	}
	return strings.ToLower(s), nil
}

func (n NewUser) normalize() (NewUser, error) {
	var err error
	if n.Email, err = normalizeEmail(n.Email); err != nil {
		return n, err
	}
	if n.Name, err = normalizeName(n.Name); err != nil {
		return n, err
	}
	if n.Region, err = normalizeRegion(n.Region); err != nil {
		return n, err
	}
	return n, nil
}

func (p UserPatch) normalize() (UserPatch, error) {
	if p.Email == nil && p.Name == nil && p.Region == nil {
		return p, fieldErr("body", "names no field to change (want email, name or region)")
	}
	if p.Email != nil {
		v, err := normalizeEmail(*p.Email)
		if err != nil {
			return p, err
		}
		p.Email = &v
	}
	if p.Name != nil {
		v, err := normalizeName(*p.Name)
		if err != nil {
			return p, err
		}
		p.Name = &v
	}
	if p.Region != nil {
		v, err := normalizeRegion(*p.Region)
		if err != nil {
			return p, err
		}
		p.Region = &v
	}
	return p, nil
}
