package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/cache"
)

// TestServeConfigErrors: a bad config file is refused with exit 2 and a
// message that names the file, the line and the key in the user's terms:
// no Go type names, no flag the user never gave, no megabyte echoed back.
func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	huge := strings.Repeat("x", 900_000)
	for _, c := range []struct {
		name, body string
		want       []string // each in the output
		not        []string // none in the output
	}{
		// the wrong type for a nested key names it and the line, without Go's struct type
		{"cache not a mapping", "db: sqlite://x.db\ncache: yes\n", []string{"cfg.yaml:2: cache: want a mapping", "enabled, redis"}, []string{"struct", "unmarshal"}},
		// a bool that is not one
		{"enabled a string", "cache:\n  enabled: maybe\n", []string{":2: cache.enabled: want true or false", `"maybe"`}, []string{"*bool"}},
		// an address from the file is blamed on the file, not on --addr
		{"bad addr in file", "addr: nowhere\n", []string{"cfg.yaml:1 (key addr)", `"nowhere"`}, []string{"--addr"}},
		// a Redis URL from the file is blamed on the file
		{"bad redis in file", "cache:\n  redis: ftp://x\n", []string{"cfg.yaml:2 (key cache.redis)"}, []string{"--redis"}},
		// a nested unknown key gets its full name
		{"unknown nested key", "cache:\n  ttl: 5\n", []string{":2: unknown key \"cache.ttl\""}, nil},
		// a huge value is quoted in part, with its length
		{"huge addr", "addr: " + huge + "\n", []string{"(key addr)", "(900000 bytes)"}, []string{huge[:1000]}},
		// a list of replicas with a number in it
		{"replica not a string", "replicas: [[1]]\n", []string{"replicas[0]: want a string, got a list"}, nil},
		// one shard written as a string rather than a list
		{"shards not a list", "shards: postgres://a@h/x\n", []string{"cfg.yaml:1: shards: want a list of strings, got the string"}, nil},
		// a key given twice
		{"duplicate key", "db: a\ndb: b\n", []string{"db"}, nil},
		// a bad peak in the file is blamed on the file, with its position in the list
		{"bad warm peak in file", "cache:\n  enabled: true\n  warm_peaks: ['19:00', '19:00 Mars/Olympus']\n", []string{"cfg.yaml:3 (key cache.warm_peaks) (peak 2)", `unknown time zone "Mars/Olympus"`}, []string{"--warm-peak"}},
		// a bad lead in the file is blamed on the file
		{"bad warm lead in file", "cache:\n  warm_lead: soon\n", []string{"cfg.yaml:2 (key cache.warm_lead)", `"soon": not a duration`}, []string{"--warm-lead"}},
		// a bad search tier in the file is blamed on the file, with its position in the list
		{"bad search tier in file", "search_tiers: ['search=8', 'autocomplete=0']\n", []string{"cfg.yaml:1 (key search_tiers): storefront: bad search tier 2", `got "0"`}, []string{"--search-tier"}},
		// search tiers written as one string rather than a list
		{"search tiers not a list", "search_tiers: search=8\n", []string{"cfg.yaml:1: search_tiers: want a list of strings"}, nil},
		// not YAML at all
		{"not yaml", "db: [\n", []string{"not valid YAML"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "cfg.yaml")
			if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			code := run(context.Background(), []string{"serve", "--config", path}, &out, &out)
			if code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, bounded(out.String()))
			}
			if out.Len() > 4096 {
				t.Fatalf("the error is %d bytes long", out.Len())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range c.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("output contains %q:\n%s", bounded(n), out.String())
				}
			}
		})
	}
}

// TestServeURLErrors: an error about a database or Redis URL names the
// flag or config line that holds it, and never shows its password.
func TestServeURLErrors(t *testing.T) {
	dir := t.TempDir()
	lite := "sqlite://" + filepath.Join(dir, "x.db")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		// replicas behind a SQLite primary: the primary is what is wrong
		{"sqlite primary with replicas", []string{"--db", lite, "--replica", "postgres://a@127.0.0.1/x"}, "--db: sqlite://"},
		// a bad replica URL is blamed on --replica, not on --db
		{"bad replica URL", []string{"--db", "postgres://a@127.0.0.1/x", "--replica", "mysql://h/x"}, "--replica (replica 1): database: bad URL"},
		// a replica that is not PostgreSQL
		{"sqlite replica", []string{"--db", "postgres://a@127.0.0.1/x", "--replica", lite}, "--replica (replica 1): sqlite://"},
		// a bad port next to a password: the password stays out of the message
		{"db password", []string{"--db", "postgres://u:secret@h:bad/db"}, "--db: database: bad URL"},
		{"redis password", []string{"--db", lite, "--redis", "redis://u:secret@h:bad/0"}, "--redis"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...), &out, &out)
			if code != 2 || !strings.Contains(out.String(), c.want) || strings.Contains(out.String(), "secret") {
				t.Fatalf("exit %d, want 2 with %q and no password:\n%s", code, c.want, out.String())
			}
		})
	}
}

// TestServeWarmPeakErrors: a bad --warm-peak or --warm-lead is a usage
// error (exit 2) that names the flag and the bad entry.
func TestServeWarmPeakErrors(t *testing.T) {
	lite := "sqlite://" + filepath.Join(t.TempDir(), "x.db")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		// an hour out of range, in the second of two peaks
		{"bad hour", []string{"--cache", "--warm-peak", "19:00", "--warm-peak", "25:00"}, `--warm-peak (peak 2): cache: peak "25:00": hour 25 is past 23`},
		// not a peak at all
		{"not a peak", []string{"--cache", "--warm-peak", "tonight"}, `--warm-peak (peak 1): cache: peak "tonight": want "HH:MM"`},
		// an unknown zone
		{"bad zone", []string{"--cache", "--warm-peak", "19:00 Europe/Atlantis"}, `unknown time zone "Europe/Atlantis"`},
		// peaks with the cache off: nothing to warm
		{"no cache", []string{"--warm-peak", "19:00"}, "--warm-peak: the peaks warm the cache, which is off"},
		// a lead that is not a duration
		{"bad lead", []string{"--cache", "--warm-lead", "half an hour"}, `--warm-lead "half an hour": not a duration`},
		// a lead that is not ahead
		{"negative lead", []string{"--cache", "--warm-lead", "-5m"}, `--warm-lead "-5m": must be positive`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0", "--db", lite}, c.args...), &out, &out)
			if code != 2 || !strings.Contains(out.String(), c.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, c.want, out.String())
			}
		})
	}
}

// TestServeSearchTierErrors: a bad --search-tier is a usage error (exit
// 2) that names the flag, the spec and what is wrong with it.
func TestServeSearchTierErrors(t *testing.T) {
	lite := "sqlite://" + filepath.Join(t.TempDir(), "x.db")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		// a tier that does not exist, second of two
		{"unknown tier", []string{"--search-tier", "search=8", "--search-tier", "checkout=2"}, `--search-tier: storefront: bad search tier 2, "checkout=2": unknown tier "checkout"`},
		// no limit
		{"no limit", []string{"--search-tier", "autocomplete"}, `want NAME=MAX_IN_FLIGHT[/BUDGET]`},
		// a limit of none
		{"zero limit", []string{"--search-tier", "facets=0"}, `between 1 and 10000, got "0"`},
		// a budget past a request's own bound
		{"long budget", []string{"--search-tier", "search=8/1m"}, `the budget must be a duration between 1ms and 10s, such as 50ms, got "1m"`},
		// a tier set twice
		{"twice", []string{"--search-tier", "search=8", "--search-tier", "search=9"}, "the search tier is set twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0", "--db", lite}, c.args...), &out, &out)
			if code != 2 || !strings.Contains(out.String(), c.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, c.want, out.String())
			}
		})
	}
}

// TestServeSearchTiers: --search-tier reaches the handler's tiers, and
// the config file's search_tiers too, the flags' list replacing the
// file's whole: strata_search_max_in_flight says each tier's limit.
func TestServeSearchTiers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfg, []byte("search_tiers: ['facets=3', 'search=40/300ms']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want map[string]string // tier: its limit
	}{
		// the flag: autocomplete changed, the others at their defaults
		{"flag", []string{"--search-tier", "autocomplete=3/20ms"}, map[string]string{"search": "16", "autocomplete": "3", "facets": "4"}},
		// the file
		{"file", []string{"--config", cfg}, map[string]string{"search": "40", "autocomplete": "8", "facets": "3"}},
		// the flag wins over the whole list of the file
		{"flag over file", []string{"--config", cfg, "--search-tier", "autocomplete=2"}, map[string]string{"search": "16", "autocomplete": "2", "facets": "4"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServe(t, append([]string{"--db", "sqlite://" + filepath.Join(t.TempDir(), "x.db")}, c.args...)...)
			resp, err := http.Get(s.base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			for tier, limit := range c.want {
				if line := `strata_search_max_in_flight{tier="` + tier + `"} ` + limit; !strings.Contains(string(raw), line+"\n") {
					t.Errorf("/metrics lacks %q", line)
				}
			}
		})
	}
}

// TestWarmSchedule: good peaks and lead reach the cache config, in order.
func TestWarmSchedule(t *testing.T) {
	where := map[string]string{"warm-peak": "--warm-peak", "warm-lead": "--warm-lead"}
	peaks, lead, err := warmSchedule([]string{"19:00 Europe/London", "2026-12-24T18:00:00Z"}, "45m", true, where)
	if err != nil || lead != 45*time.Minute || len(peaks) != 2 || peaks[0].String() != "19:00 Europe/London" || peaks[1].String() != "2026-12-24T18:00:00Z" {
		t.Fatalf("warmSchedule = %v, %v, %v", peaks, lead, err)
	}
	if peaks, lead, err := warmSchedule(nil, cache.DefaultPeakLead.String(), false, where); err != nil || peaks != nil || lead != cache.DefaultPeakLead {
		t.Fatalf("no peaks, cache off: %v, %v, %v", peaks, lead, err)
	}
}
