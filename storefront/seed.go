package storefront

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/strata-dev/strata/internal/database"
)

// SeedWindow is how far back seeded actions reach (their timestamps are
// spread over the last 90 days).
const SeedWindow = 90 * 24 * time.Hour

// Shape of the generated data.
const (
	seedZipfS          = 1.1  // Zipf exponent of product popularity
	seedFavouriteShare = 0.5  // share of a user's actions in their favourite category
	seedViewShare      = 0.80 // share of actions that are views
	seedCartShare      = 0.12 // share that are add-to-carts; the rest are purchases
	sqliteSeedBatch    = 200  // rows per multi-row INSERT on SQLite
)

// The largest counts [Seed] accepts, a hundred times the sizes of the
// guide's stage 1 to 2 boundary (100k users, 10k products, 1M actions).
// The generator keeps about 8 bytes a user and 32 a product in memory, and
// writes every row in one transaction: at the maxima that is about 110 MB
// and, on PostgreSQL, some 15 minutes.
const (
	MaxSeedUsers    = 10_000_000
	MaxSeedProducts = 1_000_000
	MaxSeedActions  = 100_000_000
)

// Errors of [Seed].
var (
	// ErrNotEmpty: the tables already hold rows and Reset is not set.
	ErrNotEmpty = errors.New("storefront: database already holds data")
	// ErrBadSeed: a count of the SeedConfig is out of range.
	ErrBadSeed = errors.New("storefront: bad seed config")
)

// SeedConfig says how much data [Seed] generates.
type SeedConfig struct {
	// Users and Products are 1 to MaxSeedUsers and 1 to MaxSeedProducts;
	// Actions is 0 to MaxSeedActions.
	Users, Products, Actions int
	// RandSeed makes the data reproducible: the same seed and counts give
	// the same rows (timestamps are relative to Now).
	RandSeed int64
	// Now is the end of the action window; zero means time.Now().
	Now time.Time
	// Reset deletes the existing users, products and actions first, in the
	// same transaction as the new rows: a failed seed keeps the old data.
	Reset bool
	// Progress, if set, is called after each batch with rows written so far
	// and the total.
	Progress func(done, total int64)
}

// SeedStats reports what [Seed] wrote.
type SeedStats struct {
	Users    int           // users written
	Products int           // products written
	Actions  int           // actions written
	Elapsed  time.Duration // wall time of the whole seed, statistics included
}

// Seed fills an empty database with realistic, deterministic data: products
// in a score of categories with Zipf-distributed popularity, users spread
// over regions each with a favourite category, and actions skewed to
// popular products and to each user's favourite category, timestamped over
// the last SeedWindow. PostgreSQL is written with COPY, SQLite with
// multi-row INSERTs; either way in one transaction, so a failure leaves the
// database as it was.
func Seed(ctx context.Context, s *Store, cfg SeedConfig) (SeedStats, error) {
	if err := cfg.check(); err != nil {
		return SeedStats{}, err
	}
	if cfg.Now.IsZero() {
		cfg.Now = s.now()
	}
	var dests []seedDest
	if s.d.kind == database.Postgres {
		dests = s.pgSeedDests(cfg)
	}
	if err := s.checkNotServing(ctx); err != nil {
		return SeedStats{}, err
	}
	if !cfg.Reset {
		if err := s.checkEmpty(ctx, dests); err != nil {
			return SeedStats{}, err
		}
	}
	start := time.Now()
	var err error
	if s.d.kind == database.Postgres {
		total := int64(cfg.Users + cfg.Products + cfg.Actions)
		if s.shards != nil {
			total += int64(cfg.Users) // the email directory too
		}
		var done int64
		err = seedPostgres(ctx, cfg, dests, func(n int) {
			if done += int64(n); cfg.Progress != nil {
				cfg.Progress(done, total)
			}
		})
	} else {
		err = seedSQLite(ctx, s.db, newGenerator(cfg), s.resetSQL())
	}
	s.pop.invalidate()
	s.afterSeed()
	if err != nil {
		return SeedStats{}, fmt.Errorf("storefront: seed: %w", err)
	}
	// Fresh statistics help the planner; the rows are committed either way,
	// so a failure here is only worth a warning.
	if s.d.kind == database.SQLite {
		dests = []seedDest{{db: s.db}}
	}
	for _, d := range dests {
		stats := `VACUUM ANALYZE users, products, user_actions` // VACUUM also sets the visibility map
		switch {
		case s.d.kind == database.SQLite:
			stats = `ANALYZE`
		case d.shard:
			stats = `VACUUM ANALYZE users, user_actions`
		case s.shards != nil:
			stats = `VACUUM ANALYZE products, user_emails`
		}
		if _, err := d.db.ExecContext(ctx, stats); err != nil {
			s.log.Warn("storefront: seed: statistics not updated", "where", d.name, "err", err)
		}
	}
	return SeedStats{Users: cfg.Users, Products: cfg.Products, Actions: cfg.Actions, Elapsed: time.Since(start)}, nil
}

// checkEmpty returns ErrNotEmpty if the store (any of dests, on
// PostgreSQL) holds users, products or actions.
func (s *Store) checkEmpty(ctx context.Context, dests []seedDest) error {
	if len(dests) == 0 {
		dests = []seedDest{{db: s.db}}
	}
	var total int64
	for _, d := range dests {
		q := `SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM products) + (SELECT COUNT(*) FROM user_actions)`
		switch {
		case d.shard:
			q = `SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM user_actions)`
		case s.shards != nil:
			q = `SELECT (SELECT COUNT(*) FROM products) + (SELECT COUNT(*) FROM user_emails)`
		}
		var n int64
		if err := d.db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			if d.name != "" {
				err = fmt.Errorf("%s: %w", d.name, err)
			}
			return fmt.Errorf("storefront: seed: %w", err)
		}
		total += n
	}
	if total > 0 {
		return fmt.Errorf("%w (%d rows); seed an empty database or reset it", ErrNotEmpty, total)
	}
	return nil
}

// check refuses counts out of their documented ranges, with ErrBadSeed.
func (cfg SeedConfig) check() error {
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{
		{"Users", cfg.Users, 1, MaxSeedUsers},
		{"Products", cfg.Products, 1, MaxSeedProducts},
		{"Actions", cfg.Actions, 0, MaxSeedActions},
	} {
		if c.v < c.lo || c.v > c.hi {
			return fmt.Errorf("%w: %s must be between %d and %d, got %d", ErrBadSeed, c.name, c.lo, c.hi, c.v)
		}
	}
	return nil
}

// resetSQL deletes every user, product and action (SeedConfig.Reset).
func (s *Store) resetSQL() string {
	if s.d.kind == database.Postgres {
		return `TRUNCATE user_actions, users, products RESTART IDENTITY`
	}
	return `DELETE FROM user_actions; DELETE FROM users; DELETE FROM products;`
}

var seedCategories = []struct {
	name  string
	nouns []string
	uses  []string
}{
	{"books", []string{"novel", "cookbook", "atlas", "biography", "notebook"}, []string{"long evenings", "curious readers", "the commute"}},
	{"electronics", []string{"headphones", "speaker", "charger", "keyboard", "monitor"}, []string{"the home office", "travel", "gaming"}},
	{"kitchen", []string{"skillet", "kettle", "knife", "blender", "teapot"}, []string{"weeknight dinners", "baking", "brunch"}},
	{"garden", []string{"trowel", "planter", "hose", "pruner", "birdhouse"}, []string{"the balcony", "raised beds", "spring planting"}},
	{"toys", []string{"puzzle", "robot", "kite", "train", "blocks"}, []string{"rainy days", "young builders", "the playroom"}},
	{"sports", []string{"racket", "yoga mat", "dumbbell", "helmet", "jersey"}, []string{"morning runs", "the gym", "weekend leagues"}},
	{"beauty", []string{"serum", "lotion", "brush", "palette", "cleanser"}, []string{"daily care", "dry skin", "travel kits"}},
	{"grocery", []string{"coffee", "olive oil", "granola", "tea", "chocolate"}, []string{"the pantry", "breakfast", "gifting"}},
	{"clothing", []string{"jacket", "sweater", "scarf", "shirt", "raincoat"}, []string{"cold mornings", "the office", "layering"}},
	{"shoes", []string{"sneaker", "boot", "sandal", "loafer", "trail shoe"}, []string{"city walks", "hiking", "summer"}},
	{"music", []string{"guitar", "ukulele", "metronome", "vinyl", "microphone"}, []string{"practice", "the studio", "beginners"}},
	{"tools", []string{"drill", "wrench", "toolbox", "level", "saw"}, []string{"home repairs", "the workshop", "weekend projects"}},
	{"office", []string{"desk lamp", "stapler", "planner", "pen", "chair"}, []string{"focused work", "students", "the home office"}},
	{"pets", []string{"leash", "cat tree", "dog bed", "feeder", "chew toy"}, []string{"happy pets", "puppies", "indoor cats"}},
	{"outdoors", []string{"tent", "lantern", "backpack", "sleeping bag", "stove"}, []string{"camping", "long hikes", "festivals"}},
	{"games", []string{"board game", "card game", "controller", "chess set", "dice"}, []string{"game night", "families", "two players"}},
}

var (
	seedAdjectives = []string{"compact", "classic", "wireless", "organic", "premium", "vintage", "portable", "ergonomic", "handmade", "waterproof", "lightweight", "deluxe", "eco", "smart", "rustic", "modern"}
	seedBrands     = []string{"Acme", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Hooli", "Vandelay"}
	seedFirst      = []string{"Ada", "Alan", "Grace", "Linus", "Ken", "Barbara", "Edsger", "Margaret", "Dennis", "Frances", "John", "Radia", "Tim", "Sophie", "Guido", "Rob"}
	seedLast       = []string{"Lovelace", "Turing", "Hopper", "Torvalds", "Thompson", "Liskov", "Dijkstra", "Hamilton", "Ritchie", "Allen", "Backus", "Perlman", "Berners-Lee", "Wilson", "Rossum", "Pike"}
	seedRegions    = []struct {
		name  string
		share float64
	}{{"us-east", 0.40}, {"eu-west", 0.25}, {"us-west", 0.20}, {"ap-south", 0.15}}
)

// generator produces the rows of one seed run, deterministically.
type generator struct {
	cfg        SeedConfig
	r          *rand.Rand
	category   []int     // category index of product id-1
	byPop      []int64   // product ids, most popular first
	catByPop   [][]int64 // per category, product ids most popular first
	globalZipf *rand.Zipf
	catZipf    []*rand.Zipf
	favourite  []int // favourite category of user id-1
	done       int64
	total      int64
}

func newGenerator(cfg SeedConfig) *generator {
	r := rand.New(rand.NewSource(cfg.RandSeed))
	g := &generator{cfg: cfg, r: r, total: int64(cfg.Users + cfg.Products + cfg.Actions)}
	g.category = make([]int, cfg.Products)
	for i := range g.category {
		g.category[i] = r.Intn(len(seedCategories))
	}
	g.catByPop = make([][]int64, len(seedCategories))
	for _, i := range r.Perm(cfg.Products) {
		id := int64(i + 1)
		g.byPop = append(g.byPop, id)
		c := g.category[i]
		g.catByPop[c] = append(g.catByPop[c], id)
	}
	g.globalZipf = rand.NewZipf(r, seedZipfS, 1, uint64(cfg.Products-1))
	g.catZipf = make([]*rand.Zipf, len(seedCategories))
	for c, ids := range g.catByPop {
		if len(ids) > 0 {
			g.catZipf[c] = rand.NewZipf(r, seedZipfS, 1, uint64(len(ids)-1))
		}
	}
	g.favourite = make([]int, cfg.Users)
	for i := range g.favourite {
		g.favourite[i] = r.Intn(len(seedCategories))
	}
	return g
}

func (g *generator) progress(n int) {
	g.done += int64(n)
	if g.cfg.Progress != nil {
		g.cfg.Progress(g.done, g.total)
	}
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.Intn(len(s))] }

func (g *generator) user(id int64) []any {
	r := g.r
	first, last := pick(r, seedFirst), pick(r, seedLast)
	x, region := r.Float64(), seedRegions[len(seedRegions)-1].name
	for _, reg := range seedRegions {
		if x < reg.share {
			region = reg.name
			break
		}
		x -= reg.share
	}
	created := g.cfg.Now.Add(-SeedWindow - time.Duration(r.Int63n(int64(365*24*time.Hour)))).UTC().Truncate(time.Microsecond)
	email := strings.ToLower(fmt.Sprintf("%s.%s.%d@example.com", first, strings.ReplaceAll(last, "-", ""), id))
	return []any{id, email, first + " " + last, region, created, created, int64(1)}
}

func (g *generator) product(id int64) []any {
	r := g.r
	c := seedCategories[g.category[id-1]]
	adj, noun := pick(r, seedAdjectives), pick(r, c.nouns)
	title := fmt.Sprintf("%s %s %s %d", pick(r, seedBrands), adj, noun, 100+r.Intn(900))
	desc := fmt.Sprintf("A %s %s made for %s. %s %s, rated highly by %s fans.",
		pick(r, seedAdjectives), noun, pick(r, c.uses), upperFirst(pick(r, seedAdjectives)), c.name, c.name)
	price := int64(math.Min(500000, math.Max(99, math.Exp(7.5+r.NormFloat64()))))
	updated := g.cfg.Now.Add(-time.Duration(r.Int63n(int64(SeedWindow)))).UTC().Truncate(time.Microsecond)
	return []any{id, title, desc, c.name, price, int64(r.Intn(500)), updated}
}

func (g *generator) action(id int64) []any {
	r := g.r
	user := int64(r.Intn(g.cfg.Users)) + 1
	var product int64
	if fav := g.favourite[user-1]; g.catZipf[fav] != nil && r.Float64() < seedFavouriteShare {
		product = g.catByPop[fav][g.catZipf[fav].Uint64()]
	} else {
		product = g.byPop[g.globalZipf.Uint64()]
	}
	kind := Purchase
	switch x := r.Float64(); {
	case x < seedViewShare:
		kind = View
	case x < seedViewShare+seedCartShare:
		kind = Cart
	}
	at := g.cfg.Now.Add(-time.Duration(r.Int63n(int64(SeedWindow)))).UTC().Truncate(time.Microsecond)
	return []any{id, user, product, string(kind), at}
}

func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

type seedTable struct {
	name    string
	columns []string
	rows    int
	row     func(id int64) []any
	times   []int // indexes of time columns (bound as integers on SQLite)
}

func (g *generator) tables() []seedTable {
	return []seedTable{
		{"products", []string{"id", "title", "description", "category", "price_cents", "stock", "updated_at"}, g.cfg.Products, g.product, []int{6}},
		{"users", []string{"id", "email", "name", "region", "created_at", "updated_at", "version"}, g.cfg.Users, g.user, []int{4, 5}},
		{"user_actions", []string{"id", "user_id", "product_id", "kind", "created_at"}, g.cfg.Actions, g.action, []int{4}},
	}
}

// seedCopy is one COPY of a seed: the rows of the generator's table from
// that keep accepts (nil: all), shaped by shape (nil: as they are), into
// table into's columns.
type seedCopy struct {
	from, into string
	columns    []string
	keep       func(row []any) bool
	shape      func(row []any) []any
}

// seedDest is one PostgreSQL database's share of a seed: what it resets,
// the copies it receives, and the statements that end it (sequences moved
// past the new ids).
type seedDest struct {
	name   string // for errors: "" on one database, else "main database" or "shard NAME"
	shard  bool   // a shard's database (users and actions only)
	db     *sql.DB
	reset  string
	copies []seedCopy
	after  []string
}

// pgSeedDests is where a seed's rows go: the one database, or, on a
// sharded store, the products and the email directory to the main
// database and each user and their actions to the user's shard.
func (s *Store) pgSeedDests(cfg SeedConfig) []seedDest {
	all := func(t seedTable) seedCopy { return seedCopy{from: t.name, into: t.name, columns: t.columns} }
	tables := newGenerator(SeedConfig{Users: 1, Products: 1}).tables()
	if s.shards == nil {
		d := seedDest{db: s.db, reset: s.resetSQL()}
		for _, t := range tables {
			d.copies = append(d.copies, all(t))
			d.after = append(d.after, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', 'id'), GREATEST(1, (SELECT COALESCE(MAX(id), 0) FROM %s)))`, t.name, t.name))
		}
		return []seedDest{d}
	}
	byName := map[string]seedTable{}
	for _, t := range tables {
		byName[t.name] = t
	}
	block := s.shards.idBlock
	actionBlocks := (int64(cfg.Actions) + block - 1) / block * block
	dests := []seedDest{{
		name:  "main database",
		db:    s.db,
		reset: `TRUNCATE user_actions, users, products, user_emails RESTART IDENTITY`,
		copies: []seedCopy{all(byName["products"]), {
			from: "users", into: "user_emails", columns: []string{"email", "user_id"},
			shape: func(row []any) []any { return []any{row[1], row[0]} },
		}},
		after: []string{
			`SELECT setval(pg_get_serial_sequence('products', 'id'), GREATEST(1, (SELECT COALESCE(MAX(id), 0) FROM products)))`,
			fmt.Sprintf(`SELECT setval('user_ids', %d)`, cfg.Users),
			fmt.Sprintf(`SELECT setval('action_ids', %d, false)`, actionBlocks+block),
		},
	}}
	m := s.shards.router.Map()
	for i, t := range s.shards.router.Shards() {
		mine := func(key any) bool { return m.Owner(key.(int64)) == i }
		users, actions := all(byName["users"]), all(byName["user_actions"])
		users.keep = func(row []any) bool { return mine(row[0]) }
		actions.keep = func(row []any) bool { return mine(row[1]) }
		dests = append(dests, seedDest{
			name:   "shard " + t.Name,
			shard:  true,
			db:     t.DB.Primary(),
			reset:  `TRUNCATE user_actions, users`,
			copies: []seedCopy{users, actions},
		})
	}
	return dests
}

// seedPostgres writes a seed into dests, each in a transaction of its own
// that commits only once every database has its rows; so a failure leaves
// them all as they were, except for a failure between the commits
// themselves, which names the databases already committed.
func seedPostgres(ctx context.Context, cfg SeedConfig, dests []seedDest, progress func(int)) error {
	var committed []string
	err := inTxs(ctx, dests, &committed, func(txs []pgx.Tx) error {
		named := func(d seedDest, err error) error {
			if d.name != "" {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			return err
		}
		for i, d := range dests {
			if err := seedInto(ctx, txs[i], cfg, d, progress); err != nil {
				return named(d, err)
			}
		}
		// Sequences are not transactional: they move only once every
		// database has its rows, just before the commits.
		for i, d := range dests {
			for _, q := range d.after {
				if _, err := txs[i].Exec(ctx, q); err != nil {
					return named(d, fmt.Errorf("advance id sequences: %w", err))
				}
			}
		}
		return nil
	})
	if err != nil && len(committed) > 0 {
		return fmt.Errorf("%w; but %s had already committed its rows: seed again with Reset", err, strings.Join(committed, ", "))
	}
	return err
}

// inTxs opens a transaction on each of dests (pgx's own, for COPY), runs
// fn with them, and commits them, last first, if fn succeeds; committed
// collects the names of the destinations that committed.
func inTxs(ctx context.Context, dests []seedDest, committed *[]string, fn func([]pgx.Tx) error) error {
	var open func(i int, txs []pgx.Tx) error
	open = func(i int, txs []pgx.Tx) error {
		if i == len(dests) {
			return fn(txs)
		}
		conn, err := dests[i].db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(dc any) error {
			tx, err := dc.(*stdlib.Conn).Conn().Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
			if err := open(i+1, append(txs, tx)); err != nil {
				return err
			}
			if err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("commit %s: %w", dests[i].name, err)
			}
			*committed = append(*committed, dests[i].name)
			return nil
		})
	}
	return open(0, nil)
}

// seedInto writes one destination's share in tx: a fresh generator runs
// through the tables in order (every row is generated, to keep the random
// stream the same, and only the kept ones are written), and stops after
// the last table the destination copies.
func seedInto(ctx context.Context, tx pgx.Tx, cfg SeedConfig, d seedDest, progress func(int)) error {
	if cfg.Reset {
		if _, err := tx.Exec(ctx, d.reset); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
	}
	// The generator's rows satisfy the foreign keys by construction
	// (TestSeed checks it), so a superuser skips the per-row checks, as
	// pg_restore --disable-triggers does: they are 60 % of the time.
	var super bool
	if err := tx.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil {
		return err
	}
	if super {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
	}
	g := newGenerator(cfg)
	left := len(d.copies)
	for _, t := range g.tables() {
		if left == 0 {
			break
		}
		i := slices.IndexFunc(d.copies, func(c seedCopy) bool { return c.from == t.name })
		if i < 0 {
			for id := int64(1); id <= int64(t.rows); id++ {
				t.row(id) // keep the random stream in step
			}
			continue
		}
		left--
		c := d.copies[i]
		var id, copied int64
		src := pgx.CopyFromFunc(func() ([]any, error) {
			for id < int64(t.rows) {
				id++
				row := t.row(id)
				if c.keep != nil && !c.keep(row) {
					continue
				}
				if copied++; copied%10000 == 0 {
					progress(10000)
				}
				if c.shape != nil {
					row = c.shape(row)
				}
				return row, nil
			}
			return nil, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.into}, c.columns, src); err != nil {
			return fmt.Errorf("copy %s: %w", c.into, err)
		}
		progress(int(copied % 10000))
	}
	return nil
}

func seedSQLite(ctx context.Context, db *sql.DB, g *generator, reset string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A large page cache keeps the growing indexes in memory instead of
	// spilling pages to the WAL mid-transaction; it is reset afterwards.
	if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -262144`); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA cache_size = -2000`) //nolint:errcheck // best effort
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if g.cfg.Reset {
		if _, err := tx.ExecContext(ctx, reset); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
	}
	for _, t := range g.tables() {
		one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(t.columns)), ",") + ")"
		prefix := "INSERT INTO " + t.name + " (" + strings.Join(t.columns, ", ") + ") VALUES "
		full, err := tx.PrepareContext(ctx, prefix+strings.TrimSuffix(strings.Repeat(one+",", sqliteSeedBatch), ","))
		if err != nil {
			return fmt.Errorf("prepare %s: %w", t.name, err)
		}
		args := make([]any, 0, sqliteSeedBatch*len(t.columns))
		flush := func(n int, stmt *sql.Stmt) error {
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("insert %s: %w", t.name, err)
			}
			args = args[:0]
			g.progress(n)
			return nil
		}
		n := 0
		for id := int64(1); id <= int64(t.rows); id++ {
			row := t.row(id)
			for _, i := range t.times {
				row[i] = row[i].(time.Time).UnixMicro()
			}
			args = append(args, row...)
			if n++; n == sqliteSeedBatch {
				if err := flush(n, full); err != nil {
					return err
				}
				n = 0
			}
		}
		full.Close()
		if n > 0 {
			rest, err := tx.PrepareContext(ctx, prefix+strings.TrimSuffix(strings.Repeat(one+",", n), ","))
			if err != nil {
				return fmt.Errorf("prepare %s: %w", t.name, err)
			}
			err = flush(n, rest)
			rest.Close()
			if err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}
