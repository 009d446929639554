package replica

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Token is a position in the primary's write-ahead log (a PostgreSQL LSN):
// what a write hands back, so that a later read can ask for data at least
// that new. The zero Token asks for nothing.
type Token uint64

// ErrBadToken is returned (wrapped) by ParseToken.
var ErrBadToken = errors.New("replica: bad token")

// String formats t as PostgreSQL prints an LSN, "16/B374D848".
func (t Token) String() string {
	return strconv.FormatUint(uint64(t>>32), 16) + "/" + strconv.FormatUint(uint64(t&0xffffffff), 16)
}

// ParseToken reads an LSN in PostgreSQL's text form (as String writes it,
// upper or lower case hex).
func ParseToken(s string) (Token, error) {
	if len(s) > len("FFFFFFFF/FFFFFFFF") { // not echoed: it may be huge
		return 0, fmt.Errorf("%w: %d bytes long, not an LSN like 16/B374D848", ErrBadToken, len(s))
	}
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("%w: %q is not an LSN like 16/B374D848", ErrBadToken, s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: %q is not an LSN like 16/B374D848", ErrBadToken, s)
	}
	return Token(h<<32 | l), nil
}

type tokenKey struct{}

// WithToken returns a context whose reads go only where the write that
// returned t is visible: a replica that has replayed it, or the primary.
// Of two tokens on one context chain the newer wins.
func WithToken(ctx context.Context, t Token) context.Context {
	if old := TokenFrom(ctx); old >= t {
		return ctx
	}
	return context.WithValue(ctx, tokenKey{}, t)
}

// TokenFrom returns the token WithToken put on ctx, or zero.
func TokenFrom(ctx context.Context) Token {
	t, _ := ctx.Value(tokenKey{}).(Token)
	return t
}
