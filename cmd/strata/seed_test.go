package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-dev/strata/storefront"
)

// TestSeedBounds: every count flag of seed is refused outside its documented
// range with exit code 2 and a message naming the flag and the bound, before
// any database is touched; the bounds themselves are accepted.
func TestSeedBounds(t *testing.T) {
	// Validation passes, so the run reaches the database and fails there
	// (exit 1): the value was accepted without seeding anything.
	unreachable := "postgres://strata@127.0.0.1:1/x?sslmode=disable"
	db := "sqlite://" + filepath.Join(t.TempDir(), "s.db")
	users, products, actions := fmt.Sprint(storefront.MaxSeedUsers), fmt.Sprint(storefront.MaxSeedProducts), fmt.Sprint(storefront.MaxSeedActions)
	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		// The reported crash: makeslice with 10^14 users.
		{"users far too many", []string{"--users", "99999999999999"}, 2, "--users must be at most " + users + ", got 99999999999999"},
		// One past the maximum is refused.
		{"users one too many", []string{"--users", fmt.Sprint(storefront.MaxSeedUsers + 1)}, 2, "--users must be at most " + users},
		// Zero users cannot take an action.
		{"zero users", []string{"--users", "0"}, 2, "--users must be at least 1, got 0 (want 1 to " + users + ")"},
		// A negative count is refused, not taken as zero.
		{"negative users", []string{"--users", "-5"}, 2, "--users must be at least 1, got -5"},
		// Products have their own, lower, maximum.
		{"products too many", []string{"--products", fmt.Sprint(storefront.MaxSeedProducts + 1)}, 2, "--products must be at most " + products},
		// Zero products leave nothing to act on.
		{"zero products", []string{"--products", "0"}, 2, "--products must be at least 1"},
		// --actions had no upper bound at all.
		{"actions too many", []string{"--actions", "1000000000000"}, 2, "--actions must be at most " + actions + ", got 1000000000000"},
		// Negative actions name the range.
		{"negative actions", []string{"--actions", "-1"}, 2, "--actions must not be negative, got -1 (want 0 to " + actions + ")"},
		// Past int64, the flag parser refuses it, still as a usage error.
		{"users past int64", []string{"--users", "99999999999999999999999"}, 2, "--users"},
		// Of two bad flags, the message is always about the same one.
		{"two bad flags", []string{"--products", "0", "--users", "0"}, 2, "--users must be at least 1"},
		// A bad count is refused before the database is opened.
		{"bad count, unreachable db", []string{"--users", "0", "--db", unreachable}, 2, "--users"},
		// The maxima are accepted (the run then fails on the database).
		{"maxima accepted", []string{"--users", users, "--products", products, "--actions", actions, "--db", unreachable}, 1, "cannot reach"},
		// Zero actions is a valid seed.
		{"zero actions", []string{"--users", "2", "--products", "2", "--actions", "0", "--db", db}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"seed"}, c.args...)...)
			if code != c.code || !strings.Contains(errOut, c.want) {
				t.Fatalf("strata seed %v: exit %d, want %d; stderr lacks %q?\nstdout: %s\nstderr: %s", c.args, code, c.code, c.want, out, errOut)
			}
			if c.code == 2 && strings.Contains(errOut, "panic") {
				t.Fatalf("strata seed %v panicked: %s", c.args, errOut)
			}
		})
	}
}
