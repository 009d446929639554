// Package sqltext reads SQL statement text as pg_stat_statements stores
// it: a statement's kind after its comments, catalogue statements, table
// aliases, a short form with its constants replaced (Normalize, for
// traces); and formats values for reports.
package sqltext

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// reLeadingComments matches the comments, blanks and opening parentheses
// before a statement's first keyword (sqlcommenter and many ORMs prefix a
// comment).
var reLeadingComments = regexp.MustCompile(`^(?:\s+|--[^\n]*(?:\n|$)|/\*(?s:.*?)\*/|\()*`)

// reWriteKeyword finds a data-modifying keyword anywhere in a statement.
var reWriteKeyword = regexp.MustCompile(`(?i)\b(?:insert\s+into|update\s+\S+\s+set|delete\s+from|merge\s+into)\b`)

// Keyword returns a statement's first word, lower-cased, after any leading
// comments, blanks and opening parentheses: "select" for
// "/* app */ (SELECT 1)". It is "" when the text has no word there.
func Keyword(text string) string {
	kw, _ := keyword(text)
	return kw
}

// keyword returns Keyword(text) and the text from that word on.
func keyword(text string) (kw, rest string) {
	t := reLeadingComments.ReplaceAllString(text, "")
	end := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		end = len(t)
	}
	return strings.ToLower(t[:end]), t
}

// Kind classifies a statement by its first keyword, after any leading
// comments: select (SELECT, TABLE, VALUES and a read-only WITH), insert,
// update, delete, write (a WITH that modifies data) or other (utility
// statements, MERGE among them, and text with no keyword).
func Kind(text string) string {
	kw, rest := keyword(text)
	switch kw {
	case "select", "table", "values":
		return "select"
	case "with":
		// Only the statement counts, not a comment before it.
		if reWriteKeyword.MatchString(rest) {
			return "write"
		}
		return "select"
	case "update":
		return "update"
	case "delete":
		return "delete"
	case "insert":
		return "insert"
	}
	return "other"
}

// reCatalog matches the names of the system catalogues, statistics views
// and administration functions that statements of the advisor, the shard
// planner and monitoring tools use, and application statements do not.
var reCatalog = regexp.MustCompile(`(?i)\b(pg_catalog|information_schema|pg_stat\w*|pg_class|pg_index|pg_namespace|pg_attribute|pg_am|pg_constraint|pg_database|pg_prepared_statements|pg_roles|pg_extension|pg_available_extensions|pg_settings|pg_partition_tree|pg_total_relation_size|pg_relation_size|pg_is_in_recovery|pg_get_\w+|hypopg\w*|current_setting|current_database|current_user|strata_query_samples)\b`)

// IsCatalog reports whether a statement reads the catalogues or
// statistics (as Strata's own statements and monitoring tools' do) rather
// than the application's tables.
func IsCatalog(text string) bool {
	return reCatalog.MatchString(text)
}

// NotAlias reports whether a word that follows a table name in a FROM,
// JOIN, UPDATE or INTO is a keyword rather than the table's alias. Case is
// ignored.
func NotAlias(word string) bool {
	switch strings.ToLower(word) {
	case "where", "join", "left", "right", "inner", "full", "cross", "natural", "on", "using", "lateral",
		"order", "group", "having", "window", "limit", "offset", "for", "union", "except", "intersect",
		"set", "values", "default", "select", "overriding", "returning", "as", "tablesample":
		return true
	}
	return false
}

// FirstLine returns the first line of s, cut to max runes as Clip cuts.
func FirstLine(s string, max int) string {
	s, _, _ = strings.Cut(s, "\n")
	return Clip(s, max)
}

// Clip cuts s to at most n runes, marking a cut with "…" (so a cut
// string has n+1 runes). A cut never splits a rune; s is returned as is
// when it is short enough.
func Clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n, 0)]) + "…"
}

// bytesUnit is the step of binary units, as pg_size_pretty counts them.
const bytesUnit = 1024

// Bytes prints a byte count in binary units, to a tenth ("1.5 MiB");
// under a KiB in bytes ("512 B"). A value that rounds to 1024.0 of a unit
// prints in the next ("1.0 MiB", not "1024.0 KiB").
func Bytes(n int64) string {
	if n < bytesUnit {
		return fmt.Sprintf("%d B", n)
	}
	const prefixes = "KMGTPE" // KiB … EiB: an int64 holds under 8 EiB
	v, i := float64(n)/bytesUnit, 0
	const tenths = 10 // printed to a tenth: 1023.96 KiB prints as 1.0 MiB
	for math.Round(v*tenths)/tenths >= bytesUnit && i < len(prefixes)-1 {
		v /= bytesUnit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, prefixes[i])
}
