package cache

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/strata-dev/strata/internal/sqltext"
)

// DefaultQueryTTL is the TTL to give a cache used as the query-result level.
const DefaultQueryTTL = 60 * time.Second // guide, Stage 4: query cache 60 s

// ErrBadQuery is returned (wrapped) for a Query that cannot be cached: SQL
// that does not tokenise, an argument of a type database/sql would not
// accept, or a query that declares nothing it reads.
var ErrBadQuery = errors.New("cache: bad query")

// Query is one read through the query-result level (L3): SQL and its
// arguments, which make the key, and what the query reads, which makes its
// tags.
//
// The cache does not parse SQL to find what a query reads: views,
// functions and triggers make any parser's answer a guess, and a wrong
// guess serves stale rows. The caller, who wrote the query, says it:
// Tables for tables read in full or by a condition other than their key
// (scans, joins, aggregates, searches), Rows for rows read by key.
type Query struct {
	SQL  string
	Args []any
	// Tables are read by scan: any write to them makes the result stale.
	Tables []string
	// Rows are read by key: only a write to one of these rows, or a write
	// to the table that names no rows, makes the result stale.
	Rows []Row
}

// Row names one row (or one group of rows sharing a key, such as a user's
// actions) of a table. Key is whatever the writer names it by too.
type Row struct {
	Table string
	Key   string
}

// Key returns the cache key of q: a hash of its normalised SQL (see
// [NormalizeSQL]) and its arguments, so that formatting differences share
// one entry and different arguments never do.
func (q Query) Key() (string, error) {
	norm, err := NormalizeSQL(q.SQL)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(norm))
	buf := make([]byte, 0, 64)
	for i, a := range q.Args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return "", fmt.Errorf("%w: argument %d (%T): %v", ErrBadQuery, i+1, a, err)
		}
		buf = appendArg(buf[:0], v)
		h.Write(buf)
	}
	sum := h.Sum(nil)
	return "q:" + hex.EncodeToString(sum[:16]), nil
}

// appendArg encodes one driver.Value unambiguously: a type byte, then a
// fixed-size or length-prefixed body.
func appendArg(b []byte, v driver.Value) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, 'n')
	case bool:
		if v {
			return append(b, 'b', 1)
		}
		return append(b, 'b', 0)
	case int64:
		return binary.AppendVarint(append(b, 'i'), v)
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, 'f'), math.Float64bits(v))
	case string:
		return append(binary.AppendUvarint(append(b, 's'), uint64(len(v))), v...)
	case []byte:
		return append(binary.AppendUvarint(append(b, 'y'), uint64(len(v))), v...)
	case time.Time:
		t, _ := v.MarshalBinary() // fails only for offsets that are not whole minutes
		if t == nil {
			t = []byte(v.Format(time.RFC3339Nano))
		}
		return append(binary.AppendUvarint(append(b, 't'), uint64(len(t))), t...)
	default: // a driver.Value the default converter let through
		s := fmt.Sprintf("%T:%v", v, v)
		return append(binary.AppendUvarint(append(b, '?'), uint64(len(s))), s...)
	}
}

// Tag prefixes of the query-result level: a table read by scan, a row read
// by key, and a write to a table that names no rows.
const (
	tableTagPrefix = "t:"
	rowTagPrefix   = "r:"
	wholeTagPrefix = "w:"
)

func tableTag(t string) string  { return tableTagPrefix + t }
func wholeTag(t string) string  { return wholeTagPrefix + t }
func rowTag(t, k string) string { return rowTagPrefix + t + ":" + k }
func badName(s string) bool     { return s == "" || strings.ContainsAny(s, ":\x00") }
func queryErr(f string, a ...any) error {
	return fmt.Errorf("%w: "+f, append([]any{ErrBadQuery}, a...)...)
}

// tags returns the tags q depends on.
func (q Query) tags() ([]string, error) {
	if len(q.Tables) == 0 && len(q.Rows) == 0 {
		return nil, queryErr("the query declares no Tables or Rows it reads, so no write could invalidate it")
	}
	tags := make([]string, 0, len(q.Tables)+2*len(q.Rows))
	for _, t := range q.Tables {
		if badName(t) {
			return nil, queryErr("table name %q", t)
		}
		tags = append(tags, tableTag(t))
	}
	for _, r := range q.Rows {
		if badName(r.Table) {
			return nil, queryErr("row table name %q", r.Table)
		}
		tags = append(tags, rowTag(r.Table, r.Key), wholeTag(r.Table))
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	if len(tags) > maxTags {
		return nil, queryErr("the query reads %d tables and rows; at most %d", len(tags), maxTags)
	}
	return tags, nil
}

// Query reads q's result through the cache, calling load on a miss. The
// result is tagged with what q reads, so that [Cache.Wrote] for any of it
// makes the cached result stale on every instance.
func (c *Cache[V]) Query(ctx context.Context, q Query, load func(context.Context) (V, error)) (V, Info, error) {
	var zero V
	key, err := q.Key()
	if err != nil {
		return zero, Info{}, err
	}
	tags, err := q.tags()
	if err != nil {
		return zero, Info{}, err
	}
	loader := func(ctx context.Context, _ string) (V, error) { return load(ctx) }
	if c.tr.On() {
		return c.getTraced(ctx, spanQuery, key, loader, []Option{Tags(tags...)})
	}
	return c.get(ctx, key, loader, []Option{Tags(tags...)}, c.l1, true)
}

// Wrote invalidates every cached query result that read what a committed
// write to table changed: with keys, the queries that read those rows by
// key and every query that scanned the table; without keys (a write to
// rows it cannot name), every query that read the table at all. Other
// rows' by-key queries stay cached.
func (c *Cache[V]) Wrote(ctx context.Context, table string, keys ...string) (Invalidation, error) {
	if badName(table) {
		return Invalidation{}, queryErr("table name %q", table)
	}
	tags := []string{tableTag(table)}
	if len(keys) == 0 {
		tags = append(tags, wholeTag(table))
	}
	for _, k := range keys {
		tags = append(tags, rowTag(table, k))
	}
	return c.InvalidateTags(ctx, tags...)
}

// NormalizeSQL returns sql with comments removed, each run of whitespace
// made one space, trailing semicolons dropped and ASCII letters folded to
// lower case, all outside string literals, quoted identifiers and
// dollar-quoted strings, which are kept byte for byte. Two spellings of one
// query normalise alike under PostgreSQL's and SQLite's rules (unquoted
// identifiers and keywords are case-insensitive in both). It fails on an
// unterminated literal, quoted identifier or block comment.
func NormalizeSQL(sql string) (string, error) {
	n := sqlNormalizer{sql: sql}
	n.b.Grow(len(sql))
	for i := 0; i < len(sql); {
		next, err := n.token(i)
		if err != nil {
			return "", err
		}
		i = next
	}
	out := strings.TrimRight(n.b.String(), "; ")
	if out == "" {
		return "", queryErr("empty SQL")
	}
	return out, nil
}

// sqlNormalizer is NormalizeSQL's state: the input, the output so far, and
// whether whitespace (or a comment) came since the last token.
type sqlNormalizer struct {
	sql   string
	b     strings.Builder
	space bool
}

// emit writes one token, after a single space if whitespace preceded it.
func (n *sqlNormalizer) emit(s string) {
	if n.space && n.b.Len() > 0 {
		n.b.WriteByte(' ')
	}
	n.space = false
	n.b.WriteString(s)
}

// token normalises the token that starts at sql[i] and returns the index
// just past it.
func (n *sqlNormalizer) token(i int) (int, error) {
	sql := n.sql
	ch := sql[i]
	switch {
	case sqlSpace(ch):
		n.space = true
		return i + 1, nil
	case ch == '-' && i+1 < len(sql) && sql[i+1] == '-':
		end := strings.IndexByte(sql[i:], '\n')
		if end < 0 {
			end = len(sql) - i
		}
		n.space = true
		return i + end, nil
	case ch == '/' && i+1 < len(sql) && sql[i+1] == '*':
		end, err := blockCommentEnd(sql, i)
		n.space = true
		return end, err
	case ch == '\'':
		return n.stringLiteral(i)
	case ch == '"':
		end, err := quotedEnd(sql, i, '"', false)
		if err != nil {
			return 0, err
		}
		n.emit(sql[i:end])
		return end, nil
	case ch == '$' && !n.afterIdentifier():
		return n.dollar(i)
	}
	j := i
	for j < len(sql) && plainByte(sql, j) {
		j++
	}
	if j == i {
		j = i + 1
	}
	n.emit(asciiLower(sql[i:j]))
	return j, nil
}

// sqlSpace reports whether c is SQL whitespace (all of it is ASCII).
func sqlSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// afterIdentifier reports whether the output ends in an identifier byte
// with no space since: a $ there continues the identifier (a$b).
func (n *sqlNormalizer) afterIdentifier() bool {
	return n.b.Len() > 0 && !n.space && identByte(n.b.String()[n.b.Len()-1])
}

// stringLiteral copies the string literal at sql[i]. An E'...' string (the
// E already emitted, folded) takes backslash escapes.
func (n *sqlNormalizer) stringLiteral(i int) (int, error) {
	out := n.b.String()
	escapes := !n.space && strings.HasSuffix(out, "e") && (len(out) == 1 || !identByte(out[len(out)-2]))
	end, err := quotedEnd(n.sql, i, '\'', escapes)
	if err != nil {
		return 0, err
	}
	n.emit(n.sql[i:end])
	return end, nil
}

// dollar copies the dollar-quoted string at sql[i], or emits a $ that
// opens none (a parameter such as $1, or a lone $).
func (n *sqlNormalizer) dollar(i int) (int, error) {
	tag, ok := sqltext.DollarTag(n.sql, i)
	if !ok {
		n.emit("$")
		return i + 1, nil
	}
	end := strings.Index(n.sql[i+len(tag):], tag)
	if end < 0 {
		return 0, queryErr("unterminated dollar-quoted string starting at byte %d", i)
	}
	end += i + 2*len(tag)
	n.emit(n.sql[i:end])
	return end, nil
}

// plainByte reports whether sql[j] continues a run of ordinary text: not
// whitespace and not the start of a comment, literal or dollar quote.
func plainByte(sql string, j int) bool {
	switch sql[j] {
	case ' ', '\t', '\n', '\r', '\f', '\v', '\'', '"', '$':
		return false
	case '-', '/':
		return !(j+1 < len(sql) && (sql[j+1] == '-' && sql[j] == '-' || sql[j+1] == '*' && sql[j] == '/'))
	}
	return true
}

// asciiLower folds A-Z only: other bytes, valid UTF-8 or not, stay as they
// are, so distinct inputs never fold together by accident.
func asciiLower(s string) string {
	for k := 0; k < len(s); k++ {
		if c := s[k]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for m := k; m < len(b); m++ {
				if b[m] >= 'A' && b[m] <= 'Z' {
					b[m] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func identByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// quotedEnd returns the index just past the quoted text starting at
// sql[i] == q, where a doubled quote stands for itself.
func quotedEnd(sql string, i int, q byte, backslashEscapes bool) (int, error) {
	for j := i + 1; j < len(sql); j++ {
		switch {
		case backslashEscapes && sql[j] == '\\':
			j++
		case sql[j] == q:
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	what := "string literal"
	if q == '"' {
		what = "quoted identifier"
	}
	return 0, queryErr("unterminated %s starting at byte %d", what, i)
}

// blockCommentEnd returns the index just past the (possibly nested, as in
// PostgreSQL) block comment starting at sql[i].
func blockCommentEnd(sql string, i int) (int, error) {
	depth := 0
	for j := i; j+1 < len(sql); {
		switch {
		case sql[j] == '/' && sql[j+1] == '*':
			depth++
			j += 2
		case sql[j] == '*' && sql[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j, nil
			}
		default:
			j++
		}
	}
	return 0, queryErr("unterminated block comment starting at byte %d", i)
}
