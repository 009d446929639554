package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/internal/database"
	"github.com/strata-dev/strata/internal/sqlstats"
	"github.com/strata-dev/strata/shard"
	"github.com/strata-dev/strata/storefront"
)

// demoDatabase is the sharded stage's main database on the Postgres
// server; its shards are demoDatabase_shard<N>, one on each shard's
// server. A sharded store needs databases of its own: the shard map lives
// in a fixed schema of the main database, not in the search path.
const demoDatabase = "strata_demo"

// shardedStage creates the sharded stage's databases where they are
// missing, seeds the storefront into them (replacing an earlier run's
// data) and returns the stage that serves it: stage 5, users and their
// actions on the shard that owns their id, no cache (as the replica
// stage, so that the figures are the databases').
func (j *journey) shardedStage(ctx context.Context) (stage, func(), error) {
	cfg := j.cfg
	name := cfg.dbName
	if name == "" {
		name = demoDatabase
	}
	mainURL, err := ensureDatabase(ctx, cfg.Postgres, name)
	if err != nil {
		return stage{}, func() {}, err
	}
	var shardURLs, where []string
	for i, u := range cfg.Shards {
		su, err := ensureDatabase(ctx, u, fmt.Sprintf("%s_shard%d", name, i+1))
		if err != nil {
			return stage{}, func() {}, err
		}
		shardURLs = append(shardURLs, su)
		where = append(where, storefront.ShardName(i)+": "+place(su))
	}
	if err := j.resetOtherMap(ctx, mainURL, shardURLs); err != nil {
		return stage{}, func() {}, err
	}
	reg := storefront.NewRegistry()
	s, err := storefront.Open(ctx, mainURL, storefront.Config{Shards: shardURLs, Registerer: reg, Logger: j.log})
	if err != nil {
		return stage{}, func() {}, err
	}
	closeStore := func() { s.Close() }
	// The main pool's strata_db_*, labelled shard="main" beside the
	// shards' pools (as strata serve does), for one set of label names.
	main := sqlstats.New(map[string]*sql.DB{"primary": s.DB()})
	if err := prometheus.WrapRegistererWith(prometheus.Labels{"shard": "main"}, reg).Register(main); err != nil {
		return stage{}, closeStore, fmt.Errorf("demo: %w", err)
	}
	if err := j.seed(ctx, s, fmt.Sprintf("PostgreSQL sharded over %d primaries", len(shardURLs)), true); err != nil {
		return stage{}, closeStore, err
	}
	fmt.Fprintf(j.out, "  main database %s\n  %s\n", place(mainURL), strings.Join(where, "\n  "))
	n := len(shardURLs)
	return stage{name: fmt.Sprintf("stage 5: sharded by user id over %d primaries, no cache", n),
		short: fmt.Sprintf("stage 5 (%d shards)", n), store: s, reg: reg}, closeStore, nil
}

// resetOtherMap drops the shard map of the demo's main database at
// mainURL when it does not name exactly shards (an earlier run was given
// other servers), so that Open publishes a map over these; the data is
// reseeded anyway. A map over the same shards is kept.
func (j *journey) resetOtherMap(ctx context.Context, mainURL string, shards []string) error {
	db, err := sql.Open("pgx", mainURL)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer db.Close()
	m, err := shard.Load(ctx, db)
	var was string
	switch {
	case errors.Is(err, shard.ErrNoMap):
		return nil
	case errors.Is(err, shard.ErrBadMap):
		was = "does not decode"
	case err != nil:
		return fmt.Errorf("demo: read the shard map of %s: %w", place(mainURL), err)
	default:
		var urls, names []string
		for _, sh := range m.Shards {
			urls = append(urls, sh.URL)
			names = append(names, sh.Name+": "+place(sh.URL))
		}
		slices.Sort(urls)
		if slices.Equal(urls, slices.Sorted(slices.Values(shards))) {
			return nil
		}
		was = "names other shards (" + strings.Join(names, ", ") + ")"
	}
	if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{shard.ControlSchema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("demo: drop the shard map of %s: %w", place(mainURL), err)
	}
	fmt.Fprintf(j.out, "the shard map in %s %s, from an earlier run: dropped, to publish one over these\n", place(mainURL), was)
	return nil
}

// ensureDatabase creates the database name on the server of serverURL
// unless it exists, and returns serverURL with its database replaced by
// name (and no search_path: a sharded store's tables are in the database's
// default schema).
func ensureDatabase(ctx context.Context, serverURL, name string) (string, error) {
	u, err := inDatabase(serverURL, name)
	if err != nil {
		return "", err
	}
	admin, _, err := database.Open(ctx, serverURL)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	var exists bool
	if err := admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("demo: look for database %s on %s: %w", name, redacted(serverURL), err)
	}
	if exists {
		return u, nil
	}
	// CREATE DATABASE cannot run in a transaction: a statement of its own.
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P04" { // duplicate_database
		err = nil // another run created it meanwhile
	}
	if err != nil {
		return "", fmt.Errorf("demo: create database %s on %s: %w", name, redacted(serverURL), err)
	}
	return u, nil
}

// inDatabase is the PostgreSQL URL u with its database replaced by name and
// any search_path parameter removed.
func inDatabase(u, name string) (string, error) {
	t, err := database.Parse(u)
	if err != nil {
		return "", err
	}
	if t.Kind != database.Postgres {
		return "", fmt.Errorf("%w: %s is not PostgreSQL; the sharded stage needs PostgreSQL servers", ErrBadConfig, t.Display)
	}
	p, err := url.Parse(u)
	if err != nil { // database.Parse has parsed it; its error would show the password
		return "", fmt.Errorf("%w: %s does not parse as a URL", ErrBadConfig, t.Display)
	}
	p.Path, p.RawPath = "/"+name, ""
	if q := p.Query(); q.Has("search_path") {
		q.Del("search_path")
		p.RawQuery = q.Encode()
	}
	return p.String(), nil
}

// place is "database on host:port", for messages.
func place(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return redacted(u)
	}
	return strings.TrimPrefix(p.Path, "/") + " on " + p.Host
}

// shardsOf returns the shards of s's map, in its order, with nothing
// measured yet; nil when s is not sharded.
func shardsOf(s *storefront.Store) []Shard {
	if s == nil || s.Shards() == nil {
		return nil
	}
	var out []Shard
	for _, t := range s.Shards().Shards() {
		out = append(out, Shard{Name: t.Name})
	}
	return out
}

// countUsers sets each of shards' Users to the users stored on that
// shard's primary.
func countUsers(ctx context.Context, s *storefront.Store, shards []Shard) error {
	for _, t := range s.Shards().Shards() {
		i := slices.IndexFunc(shards, func(sh Shard) bool { return sh.Name == t.Name })
		if i < 0 {
			return fmt.Errorf("demo: shard %s joined the map while the stage ran", t.Name)
		}
		if err := t.DB.Primary().QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&shards[i].Users); err != nil {
			return fmt.Errorf("demo: count the users on shard %s: %w", t.Name, err)
		}
	}
	return nil
}
