// Package database opens the SQL databases Strata runs on from a URL:
// SQLite through the pure-Go modernc.org/sqlite driver (the embedded
// default, no cgo) and PostgreSQL through pgx v5's database/sql driver.
//
// The package does not link the SQLite driver itself, so that programs and
// packages that only speak PostgreSQL (the replica router) do not compile
// it: a program that opens sqlite:// URLs imports modernc.org/sqlite (the
// storefront does), and [Open] says so clearly when it has not.
//
// It owns the pool settings of a single primary (the guide's "Connection
// Pooling and Resource Management" numbers) and nothing else: the SQL each
// engine speaks is the storefront's business.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Kind names a database engine.
type Kind string

// The engines Strata runs on.
const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// Pool settings of the primary, from the guide's Connection Pooling section
// (pool_size=50, max_overflow=20, pool_recycle=3600). database/sql has no
// separate overflow: the pool may open PrimaryPoolSize+PrimaryMaxOverflow
// connections and keeps PrimaryPoolSize of them idle. database/sql has no
// acquire timeout either: at stage 1 a query waits for a connection until its
// context ends (the storefront bounds each request to 10 s). The replica
// router adds the guide's fast-fail acquire timeouts.
const (
	PrimaryPoolSize    = 50        // guide: primary pool_size 50
	PrimaryMaxOverflow = 20        // guide: primary max_overflow 20
	PrimaryRecycle     = time.Hour // guide: primary pool_recycle 3600 s
)

// DefaultConnectTimeout bounds how long Open waits for the server to answer,
// so an unreachable database is an error, not a hang.
const DefaultConnectTimeout = 5 * time.Second

// sqliteMaxConns caps SQLite connections: one writer at a time is all the
// engine allows, and a few readers run alongside it in WAL mode.
const sqliteMaxConns = 8

// sqliteDriver is the database/sql driver name modernc.org/sqlite registers.
const sqliteDriver = "sqlite"

// ErrBadURL is returned (wrapped) for a database URL Strata cannot use.
var ErrBadURL = errors.New("database: bad URL")

// ErrNoDriver is returned (wrapped) by Open for an engine whose
// database/sql driver is not linked into the program.
var ErrNoDriver = errors.New("database: driver not linked")

// Target is a parsed database URL.
type Target struct {
	Kind Kind
	// DSN is what the driver is given: a file path with pragmas for SQLite,
	// the connection string for PostgreSQL.
	DSN string
	// Display is the URL with any password removed, for logs and errors.
	Display string
}

// Parse checks a database URL and says which engine it names. Accepted forms:
//
//	sqlite://strata.db          (relative to the working folder)
//	sqlite:///var/lib/strata.db (absolute)
//	postgres://user@host:5432/db?sslmode=disable (postgresql:// too)
func Parse(raw string) (Target, error) {
	if strings.TrimSpace(raw) == "" {
		return Target{}, fmt.Errorf("%w: empty (want sqlite://PATH or postgres://...)", ErrBadURL)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		shown := raw
		if i := strings.LastIndexByte(raw, '@'); i >= 0 { // user:password@host: keep the password out
			shown = "…" + raw[i:]
		}
		return Target{}, fmt.Errorf("%w: %s has no scheme (want sqlite://PATH or postgres://...)", ErrBadURL, quote(shown))
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		path, query, _ := strings.Cut(rest, "?")
		if path == "" || strings.HasSuffix(path, "/") {
			return Target{}, fmt.Errorf("%w: %s names no file", ErrBadURL, quote(raw))
		}
		if query != "" {
			return Target{}, fmt.Errorf("%w: %s: sqlite URLs take no parameters", ErrBadURL, quote(raw))
		}
		if strings.Contains(path, ":memory:") {
			return Target{}, fmt.Errorf("%w: %s: in-memory SQLite is not supported; name a file", ErrBadURL, quote(raw))
		}
		return Target{Kind: SQLite, DSN: sqliteDSN(filepath.Clean(path)), Display: "sqlite://" + path}, nil
	case "postgres", "postgresql":
		u, err := url.Parse(raw)
		if err != nil {
			// url.Error repeats the whole URL, password included: keep
			// only what is wrong with it.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return Target{}, fmt.Errorf("%w: %s://…: %s", ErrBadURL, quote(scheme), clip(err.Error()))
		}
		if _, err := pgx.ParseConfig(raw); err != nil {
			// pgx's message shows the connection string with the password
			// masked; it may still be long.
			return Target{}, fmt.Errorf("%w: %s: %s", ErrBadURL, quote(u.Redacted()), clip(err.Error()))
		}
		return Target{Kind: Postgres, DSN: raw, Display: u.Redacted()}, nil
	default:
		return Target{}, fmt.Errorf("%w: unsupported scheme %s (want sqlite:// or postgres://)", ErrBadURL, quote(scheme))
	}
}

// sqliteDSN turns a file path into a modernc DSN. WAL lets readers run beside
// the writer; synchronous(FULL) makes a commit durable before it is
// acknowledged; immediate transactions take the write lock up front so two
// writers queue on busy_timeout instead of failing with SQLITE_BUSY.
func sqliteDSN(path string) string {
	// busy_timeout comes first: switching to WAL itself needs the lock.
	return "file:" + path +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
}

// Open parses raw, opens the pool with the guide's primary settings and
// checks that the server answers within DefaultConnectTimeout (or ctx's
// deadline, whichever is sooner).
func Open(ctx context.Context, raw string) (*sql.DB, Target, error) {
	return OpenWith(ctx, raw, Options{})
}

// Options are Open's optional settings.
type Options struct {
	// Tracer, on PostgreSQL, is the pool's pgx query tracer (spans of its
	// statements); nil means none. SQLite's driver has no such hook.
	Tracer pgx.QueryTracer
}

// OpenWith is Open with opts.
func OpenWith(ctx context.Context, raw string, opts Options) (*sql.DB, Target, error) {
	t, err := Parse(raw)
	if err != nil {
		return nil, Target{}, err
	}
	var db *sql.DB
	switch t.Kind {
	case SQLite:
		if err := linked(sqliteDriver); err != nil {
			return nil, t, fmt.Errorf("%w (%s)", err, t.Display)
		}
		db, err = sql.Open(sqliteDriver, t.DSN)
		if err != nil {
			return nil, t, fmt.Errorf("database: open %s: %w", t.Display, err)
		}
		db.SetMaxOpenConns(sqliteMaxConns)
		db.SetMaxIdleConns(sqliteMaxConns)
	case Postgres:
		cfg, err := pgx.ParseConfig(t.DSN)
		if err != nil {
			return nil, t, fmt.Errorf("%w: %s: %v", ErrBadURL, t.Display, err)
		}
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = DefaultConnectTimeout
		}
		cfg.Tracer = opts.Tracer
		db = stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(PrimaryPoolSize + PrimaryMaxOverflow)
		db.SetMaxIdleConns(PrimaryPoolSize)
		db.SetConnMaxLifetime(PrimaryRecycle)
	}
	pingCtx, cancel := context.WithTimeout(ctx, DefaultConnectTimeout)
	defer cancel()
	if err := ping(pingCtx, db); err != nil {
		db.Close()
		return nil, t, fmt.Errorf("database: cannot reach %s: %w", t.Display, err)
	}
	return db, t, nil
}

// ping checks that db answers. A new SQLite connection switches the file
// to WAL, which needs the file's exclusive lock and answers SQLITE_BUSY
// at once, without waiting on busy_timeout, while another process (or
// pool) opening the same new file holds it: that is retried, with a short
// backoff, until ctx ends.
func ping(ctx context.Context, db *sql.DB) error {
	wait := 5 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || !sqliteBusy(err) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// sqliteBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED
// (extended codes included), through the driver's error's Code method, so
// that this package need not link the driver.
func sqliteBusy(err error) bool {
	var coded interface{ Code() int }
	if !errors.As(err, &coded) {
		return false
	}
	c := coded.Code() & 0xff // the primary result code
	return c == 5 || c == 6  // SQLITE_BUSY, SQLITE_LOCKED
}

// linked reports, as an ErrNoDriver error naming the import that fixes
// it, a database/sql driver this program does not register.
func linked(driver string) error {
	if slices.Contains(sql.Drivers(), driver) {
		return nil
	}
	return fmt.Errorf("%w: no %q database/sql driver in this program; import _ \"modernc.org/sqlite\" to open sqlite:// URLs", ErrNoDriver, driver)
}

// maxQuoted bounds how much of a URL an error repeats: a URL is a line,
// and a megabyte passed by mistake must not come back whole.
const maxQuoted = 120

// quote quotes s for an error message, cut to maxQuoted bytes on a rune
// boundary with its full length.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:runeCut(s, maxQuoted)]), len(s))
}

// clip cuts a message that may repeat the URL to a few lines' worth.
func clip(msg string) string {
	const max = 300
	if len(msg) <= max {
		return msg
	}
	return msg[:runeCut(msg, max)] + "…"
}

// runeCut returns the largest cut <= n at a rune boundary of s.
func runeCut(s string, n int) int {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}
