package database

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the SQLite driver, which package database does not link
)

func TestParse(t *testing.T) {
	cases := []struct {
		in      string
		kind    Kind
		display string
		err     string // substring of the error; "" means success
	}{
		// Relative and absolute SQLite paths.
		{"sqlite://strata.db", SQLite, "sqlite://strata.db", ""},
		{"sqlite:///var/lib/strata.db", SQLite, "sqlite:///var/lib/strata.db", ""},
		{"SQLITE://x.db", SQLite, "sqlite://x.db", ""},
		// PostgreSQL under both scheme names; the password never shows.
		{"postgres://u:secret@127.0.0.1:5432/db?sslmode=disable", Postgres, "postgres://u:xxxxx@127.0.0.1:5432/db?sslmode=disable", ""},
		{"postgresql://u@localhost/db", Postgres, "postgresql://u@localhost/db", ""},
		// Bad input, each with an error that names the problem.
		{"", "", "", "empty"},
		{"   ", "", "", "empty"},
		{"strata.db", "", "", "no scheme"},
		{"u:secret@h:5432/db", "", "", `"…@h:5432/db" has no scheme`}, // the password never shows
		{"mysql://h/db", "", "", `unsupported scheme "mysql"`},
		{"sqlite://", "", "", "names no file"},
		{"sqlite://dir/", "", "", "names no file"},
		{"sqlite://x.db?mode=ro", "", "", "take no parameters"},
		{"sqlite://:memory:", "", "", "in-memory"},
		{"postgres://u@h:notaport/db", "", "", "bad URL"},
		{"postgres://u@h/db?sslmode=bogus", "", "", "bad URL"},
		// a bad port with a password: the error must not carry the password
		{"postgres://u:secret@h:bad/db", "", "", "invalid port"},
		{"postgres://u:secret@h/db?sslmode=bogus", "", "", "bad URL"},
		// a huge URL is quoted in part, with its length
		{"sqlite://" + strings.Repeat("d/", 50_000), "", "", "(100009 bytes)"},
		{strings.Repeat("x", 100_000), "", "", "(100000 bytes)"},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if c.err != "" {
			if err == nil || !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%.80q) err = %.300v, want ErrBadURL mentioning %q", c.in, err, c.err)
			}
			if err != nil && (strings.Contains(err.Error(), "secret") || len(err.Error()) > 600) {
				t.Errorf("Parse(%.80q) err = %.300v: leaks the password or is %d bytes long", c.in, err, len(err.Error()))
			}
			continue
		}
		if err != nil || got.Kind != c.kind || got.Display != c.display {
			t.Errorf("Parse(%q) = %+v, %v; want kind %s display %q", c.in, got, err, c.kind, c.display)
		}
		if strings.Contains(got.Display, "secret") {
			t.Errorf("Parse(%q) leaks the password in %q", c.in, got.Display)
		}
	}
}

// FuzzParse: Parse never panics, and anything it accepts names an engine
// and hides the password.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"sqlite://a.db", "postgres://u:pw@h:1/d?sslmode=disable", "", "x", "sqlite://", "postgres://%zz", "postgres://[::1]:5432/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("Parse(%q): error %v is not ErrBadURL", s, err)
			}
			return
		}
		if tg.Kind != SQLite && tg.Kind != Postgres || tg.DSN == "" || tg.Display == "" {
			t.Fatalf("Parse(%q) = %+v", s, tg)
		}
	})
}

func TestOpenSQLiteSettings(t *testing.T) {
	db, tg, err := Open(context.Background(), "sqlite://"+t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if tg.Kind != SQLite {
		t.Fatalf("kind %s", tg.Kind)
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "synchronous": "2", "busy_timeout": "10000"} {
		var got string
		if err := db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q (%v), want %q", pragma, got, err, want)
		}
	}
}

// TestUnlinkedDriver: without the driver, Open's error says which import
// is missing instead of database/sql's "unknown driver".
func TestUnlinkedDriver(t *testing.T) {
	err := linked("no-such-driver")
	if !errors.Is(err, ErrNoDriver) || !strings.Contains(err.Error(), "modernc.org/sqlite") {
		t.Fatalf("err = %v, want ErrNoDriver naming the import", err)
	}
	if err := linked(sqliteDriver); err != nil {
		t.Fatalf("the test links the SQLite driver, yet: %v", err)
	}
}

type codedErr int

func (c codedErr) Error() string { return fmt.Sprintf("sqlite error %d", int(c)) }
func (c codedErr) Code() int     { return int(c) }

// TestSQLiteBusy: SQLite's busy and locked results, extended codes
// included, are told apart from other errors without linking the driver.
func TestSQLiteBusy(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{codedErr(5), true},                           // SQLITE_BUSY
		{fmt.Errorf("ping: %w", codedErr(517)), true}, // SQLITE_BUSY_SNAPSHOT, wrapped
		{codedErr(6), true},                           // SQLITE_LOCKED
		{codedErr(1), false},                          // SQLITE_ERROR
		{errors.New("database is locked"), false},     // no code: not guessed from the text
	} {
		if got := sqliteBusy(c.err); got != c.want {
			t.Errorf("sqliteBusy(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
