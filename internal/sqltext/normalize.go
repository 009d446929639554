package sqltext

import (
	"strings"
	"unicode/utf8"
)

// Normalize returns a short form of a statement fit to show where values
// must not be (a trace, a log line): comments dropped, each run of blanks
// made one space, a trailing semicolon dropped, and every constant (a
// string, dollar-quoted or numeric literal) replaced by "?", as
// pg_stat_statements replaces them with parameters. Parameters ($1) and
// quoted identifiers stay. The result is cut to at most max bytes, on a
// rune boundary, with "…" marking a cut. Text that does not tokenise (an
// unterminated literal or comment) ends with a "?" for what is left: it
// never shows what followed.
func Normalize(text string, max int) string {
	n := normalizer{src: text, max: max}
	n.out.Grow(min(len(text), max+len("…")))
	for i := 0; i < len(text) && !n.full; {
		i = n.token(i)
	}
	out := strings.TrimRight(n.out.String(), "; ")
	if n.full {
		out += "…"
	}
	return out
}

// normalizer is Normalize's state: the input, the output so far, whether
// blanks (or a comment) came since the last token, and whether the output
// reached max.
type normalizer struct {
	src   string
	out   strings.Builder
	max   int
	space bool
	full  bool
}

// emit writes one token, after a space if blanks preceded it; a token that
// does not fit is cut on a rune boundary and ends the output.
func (n *normalizer) emit(s string) {
	if n.space && n.out.Len() > 0 {
		s = " " + s
	}
	n.space = false
	if room := n.max - n.out.Len(); len(s) > room {
		cut := max(room, 0)
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		n.out.WriteString(s[:cut])
		n.full = true
		return
	}
	n.out.WriteString(s)
}

// token normalises the token that starts at src[i] and returns the index
// just past it.
func (n *normalizer) token(i int) int {
	src := n.src
	c := src[i]
	next := byte(0)
	if i+1 < len(src) {
		next = src[i+1]
	}
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		n.space = true
		return i + 1
	case c == '-' && next == '-':
		n.space = true
		if end := strings.IndexByte(src[i:], '\n'); end >= 0 {
			return i + end
		}
		return len(src)
	case c == '/' && next == '*':
		n.space = true
		return commentEnd(src, i)
	case c == '\'':
		n.dropEscapePrefix()
		n.emit("?")
		end, _ := quoteEnd(src, i, '\'')
		return end
	case c == '"':
		end, ok := quoteEnd(src, i, '"')
		if !ok { // what follows an unterminated quote is not shown
			n.emit("?")
			return end
		}
		n.emit(src[i:end])
		return end
	case c == '$' && !n.afterWord():
		if tag, ok := DollarTag(src, i); ok {
			n.emit("?")
			if end := strings.Index(src[i+len(tag):], tag); end >= 0 {
				return i + 2*len(tag) + end
			}
			return len(src)
		}
	case c >= '0' && c <= '9' && !n.afterWord():
		n.emit("?")
		return numberEnd(src, i)
	}
	j := i + 1
	for j < len(src) && wordByte(src[j]) && wordByte(c) {
		j++
	}
	n.emit(src[i:j])
	return j
}

// afterWord reports whether the output ends in a word byte (or $) with no
// blank since: a digit or $ there continues a name or a parameter ($1,
// t1), not a constant.
func (n *normalizer) afterWord() bool {
	s := n.out.String()
	return !n.space && len(s) > 0 && (wordByte(s[len(s)-1]) || s[len(s)-1] == '$')
}

// dropEscapePrefix removes the E (or B, X, N, U&) written just before a
// string literal that it prefixes: E'...' is one constant.
func (n *normalizer) dropEscapePrefix() {
	s := n.out.String()
	if n.space {
		return
	}
	k := len(s)
	for k > 0 && (wordByte(s[k-1]) || s[k-1] == '&') {
		k--
	}
	switch strings.ToLower(s[k:]) {
	case "e", "b", "x", "n", "u&":
		n.out.Reset()
		n.out.WriteString(s[:k]) // a blank before the prefix stays before the "?"
	}
}

// wordByte reports whether c may be part of an unquoted name or keyword.
func wordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// quoteEnd returns the index just past the text quoted by q that starts at
// src[i], where a doubled quote stands for itself and a backslash escapes
// the next byte (as in E'...'; in a standard string this may end a cut
// constant later than PostgreSQL would, never earlier). Unterminated: the
// end of src, and false.
func quoteEnd(src string, i int, q byte) (int, bool) {
	for j := i + 1; j < len(src); j++ {
		switch {
		case src[j] == '\\' && q == '\'':
			j++
		case src[j] == q && j+1 < len(src) && src[j+1] == q:
			j++
		case src[j] == q:
			return j + 1, true
		}
	}
	return len(src), false
}

// commentEnd returns the index just past the (possibly nested) block
// comment at src[i]; unterminated, the end of src.
func commentEnd(src string, i int) int {
	depth := 0
	for j := i; j+1 < len(src); {
		switch {
		case src[j] == '/' && src[j+1] == '*':
			depth++
			j += 2
		case src[j] == '*' && src[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j
			}
		default:
			j++
		}
	}
	return len(src)
}

// numberEnd returns the index just past the numeric constant at src[i]:
// digits, a decimal point, an exponent, hexadecimal and underscores.
func numberEnd(src string, i int) int {
	j := i
	for j < len(src) {
		c := src[j]
		switch {
		case wordByte(c) || c == '.':
			j++
		case (c == '+' || c == '-') && (src[j-1] == 'e' || src[j-1] == 'E'):
			j++
		default:
			return j
		}
	}
	return j
}

// DollarTag returns the $tag$ that opens a dollar-quoted string at
// src[i], and whether one does.
func DollarTag(src string, i int) (string, bool) {
	for j := i + 1; j < len(src); j++ {
		c := src[j]
		switch {
		case c == '$':
			return src[i : j+1], true
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
		case c >= '0' && c <= '9' && j > i+1:
		default:
			return "", false
		}
	}
	return "", false
}
