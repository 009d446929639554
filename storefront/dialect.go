package storefront

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/strata-dev/strata/internal/database"
)

// dialect is everything that differs between SQLite and PostgreSQL. The rest
// of the store is one set of queries: both engines accept $N placeholders,
// RETURNING and the same SELECTs.
type dialect struct {
	kind database.Kind
	// timeArg converts a time for binding: SQLite stores Unix microseconds
	// (sortable integers), PostgreSQL a timestamptz.
	timeArg func(time.Time) any
	// emailTaken tells a violation of the users' unique email from other
	// errors (another unique key's violation is a bug, not a conflict);
	// foreignKeyViolation classifies a missing user or product.
	emailTaken          func(error) bool
	foreignKeyViolation func(error) bool
	// searchSQL selects productColumns of products matching $1, best first,
	// at most $2 rows; searchArg turns the query's words into $1.
	searchSQL string
	searchArg func(terms []string) string
	// suggestSQL selects suggestionColumns of the products whose
	// lower-cased title starts with lower($1), in title order, at most $2
	// rows: a range scan of the products_title_prefix index, compared byte
	// by byte. U+10FFFF, a noncharacter, closes the range.
	suggestSQL string
	// facetSQL counts the products matching $1 (as searchArg makes it) by
	// category, most first, at most $2 categories.
	facetSQL string
	// lockMigrations serialises schema migrations between processes inside tx.
	lockMigrations func(ctx context.Context, tx *sql.Tx) error
}

func dialectFor(k database.Kind) (dialect, error) {
	switch k {
	case database.SQLite:
		return sqliteDialect(), nil
	case database.Postgres:
		return postgresDialect(), nil
	}
	return dialect{}, fmt.Errorf("storefront: unsupported database kind %q", k)
}

func sqliteDialect() dialect {
	return dialect{
		kind:    database.SQLite,
		timeArg: func(t time.Time) any { return t.UnixMicro() },
		emailTaken: func(err error) bool {
			return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE && strings.Contains(err.Error(), "users.email")
		},
		foreignKeyViolation: func(err error) bool {
			return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
		},
		searchSQL: `SELECT ` + prefixed("p.", productColumns) + `
		FROM products_fts f JOIN products p ON p.id = f.rowid
		WHERE products_fts MATCH $1
		ORDER BY bm25(products_fts, 10.0, 1.0), p.id LIMIT $2`,
		searchArg: fts5Query,
		suggestSQL: `SELECT ` + suggestionColumns + `
		FROM products
		WHERE lower(title) >= lower($1) AND lower(title) < (lower($1) || char(1114111))
		ORDER BY lower(title), id LIMIT $2`,
		facetSQL: `SELECT p.category, COUNT(*)
		FROM products_fts f JOIN products p ON p.id = f.rowid
		WHERE products_fts MATCH $1
		GROUP BY p.category ORDER BY COUNT(*) DESC, p.category LIMIT $2`,
		// _txlock=immediate (see internal/database) already makes every
		// transaction take SQLite's single write lock up front.
		lockMigrations: func(context.Context, *sql.Tx) error { return nil },
	}
}

func postgresDialect() dialect {
	return dialect{
		kind:    database.Postgres,
		timeArg: func(t time.Time) any { return t },
		emailTaken: func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "users_email_key"
		},
		foreignKeyViolation: func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "23503"
		},
		searchSQL: `SELECT ` + productColumns + `
		FROM products, plainto_tsquery('english', $1) q
		WHERE search @@ q
		ORDER BY ts_rank(search, q) DESC, id LIMIT $2`,
		// plainto_tsquery parses its input as plain words joined by AND: no
		// operators, so the user's words stay data.
		searchArg: func(terms []string) string { return strings.Join(terms, " ") },
		suggestSQL: `SELECT ` + suggestionColumns + `
		FROM products
		WHERE (lower(title) COLLATE "C") >= lower($1::text)
		AND (lower(title) COLLATE "C") < (lower($1::text) || chr(1114111))
		ORDER BY (lower(title) COLLATE "C"), id LIMIT $2`,
		facetSQL: `SELECT category, count(*)
		FROM products, plainto_tsquery('english', $1) q
		WHERE search @@ q
		GROUP BY category ORDER BY count(*) DESC, category LIMIT $2`,
		lockMigrations: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7428117)`)
			return err
		},
	}
}

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// fts5Query quotes each word as an FTS5 string ("word", inner quotes
// doubled); space-separated strings are ANDed. Quoting makes every word a
// literal, so no input can reach FTS5's query syntax (NEAR, *, ^, column:).
func fts5Query(terms []string) string {
	var b strings.Builder
	for i, t := range terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(t, `"`, `""`))
		b.WriteByte('"')
	}
	return b.String()
}

// timeCol scans a timestamp stored by either dialect.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*c.t = v.UTC()
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("storefront: cannot scan %T into a time", src)
	}
	return nil
}

func prefixed(prefix, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
