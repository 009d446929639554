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

// NormalizeEmail trims and lower-cases an address and checks it is a bare
// addr-spec ("a@b.example", no display name, no angle brackets).
func NormalizeEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return "", fieldErr("email", "is required")
	case len(s) > MaxEmailLen:
		return "", fieldErr("email", "is longer than %d bytes", MaxEmailLen)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", fieldErr("email", "%q is not a valid address", s)
	}
	local, domain, _ := strings.Cut(s, "@")
	if local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") ||
		strings.HasSuffix(domain, ".") || strings.HasPrefix(domain, "[") { // no address literals

		return "", fieldErr("email", "%q is not a valid address", s)
	}
	return s, nil
}

// normalizeName trims a display name and rejects empty, over-long or
// control-character names.
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
	for _, r := range s {
		// Cf covers invisible format characters such as U+202E, which
		// reverses the text displayed after it.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "", fieldErr("name", "contains a control, format or invalid character")
		}
	}
	return s, nil
}

// normalizeRegion lower-cases a region label: letters, digits and dashes.
func normalizeRegion(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", fieldErr("region", "is required")
	}
	if len(s) > MaxRegionLen {
		return "", fieldErr("region", "is longer than %d characters", MaxRegionLen)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return "", fieldErr("region", "%q may hold only letters, digits and '-'", s)
		}
	}
	return s, nil
}

func (n NewUser) normalize() (NewUser, error) {
	var err error
	if n.Email, err = NormalizeEmail(n.Email); err != nil {
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
		v, err := NormalizeEmail(*p.Email)
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
