package storefront

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/database"
	"github.com/strata-dev/strata/internal/spans"
	"github.com/strata-dev/strata/replica"
)

// DefaultPopularityRefresh is how old the popularity ranking behind
// recommendation fallbacks may grow before one background query recomputes
// it (Strata's choice; the guide gives no number). Popularity moves slowly; recomputing it per request would scan every
// action on every cold user's request.
const DefaultPopularityRefresh = time.Minute

// Config holds the store's optional settings; the zero value means the
// documented defaults.
type Config struct {
	// PopularityRefresh is how often the popularity ranking is recomputed;
	// 0 means DefaultPopularityRefresh.
	PopularityRefresh time.Duration
	// Logger receives background errors; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Replicas, when set, are PostgreSQL streaming replicas of the
	// primary: Open then routes reads to them and writes to the primary
	// through a replica.Router (stage 2's read/write split), with
	// read-your-writes for callers that carry a write's token.
	Replicas []string
	// Registerer receives the router's metrics (including strata_db_* for
	// every pool); nil means none. Without replicas it is unused.
	Registerer prometheus.Registerer
	// Shards, when set, are the URLs of PostgreSQL primaries to shard users
	// and their actions over (stage 5): Open's url is then the main
	// database, which keeps the shard map, the products and the global id
	// allocators. The first Open publishes a hash map over Shards (named
	// ShardName(i)); later ones follow the stored map, which must name
	// every URL given here.
	Shards []string
	// Hedge turns on hedged reads in the replica routers (those of
	// Replicas, and of each shard's replicas); the zero value leaves them
	// off. See package replica.
	Hedge replica.Hedge
	// Recorder, if set, receives every query the store runs with its
	// arguments, so the query advisor can bind a normalised statement's
	// parameters to real values (advisor.Sampler is one; it keeps a sample
	// per query text now and then, without blocking).
	Recorder QueryRecorder
	// TracerProvider, when set, makes spans of the store's database calls
	// under a request's span: the replica and shard routers' choices and
	// every statement on PostgreSQL (see trace.go). Nil means off.
	TracerProvider trace.TracerProvider
}

// QueryRecorder receives the queries a Store runs, with their arguments.
// Record must not block.
type QueryRecorder interface {
	Record(query string, args ...any)
}

// Store reads and writes the storefront's data through database/sql. One
// set of queries serves SQLite and PostgreSQL; dialect.go holds the few
// differences. A Store is safe for concurrent use.
type Store struct {
	db     *sql.DB
	ownsDB bool
	router *replica.Router // nil: every query on db
	shards *sharding       // nil: not sharded
	rec    QueryRecorder   // nil: queries are not recorded
	d      dialect
	now    func() time.Time
	log    *slog.Logger
	pop    *popularity
	// warnings throttles warnings about a condition that lasts.
	warnings throttle
}

// Open connects to the database at url ("sqlite://PATH", relative to the
// working folder, "sqlite:///ABSOLUTE/PATH", or a "postgres://" URL),
// applies pending schema migrations and returns a Store that owns the pool.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	if len(cfg.Shards) > 0 {
		return openSharded(ctx, url, cfg)
	}
	if len(cfg.Replicas) > 0 {
		return openReplicated(ctx, url, cfg)
	}
	db, target, err := database.OpenWith(ctx, url, database.Options{Tracer: spans.SQL(cfg.TracerProvider)})
	if err != nil {
		return nil, err
	}
	s, err := New(ctx, db, Kind(target.Kind), cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.ownsDB = true
	return s, nil
}

// Kind names the database engine a Store runs on.
type Kind string

// The engines the storefront runs on.
const (
	SQLite   Kind = "sqlite"   // the embedded default (pure Go, no cgo)
	Postgres Kind = "postgres" // production, with replicas and shards
)

// New returns a Store over an open pool of the given kind and applies
// pending migrations. The caller keeps ownership of db.
func New(ctx context.Context, db *sql.DB, kind Kind, cfg Config) (*Store, error) {
	d, err := dialectFor(database.Kind(kind))
	if err != nil {
		return nil, err
	}
	if cfg.PopularityRefresh < 0 {
		return nil, fmt.Errorf("storefront: PopularityRefresh is negative (%v)", cfg.PopularityRefresh)
	}
	if cfg.PopularityRefresh == 0 {
		cfg.PopularityRefresh = DefaultPopularityRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := migrate(ctx, db, d); err != nil {
		return nil, err
	}
	s := &Store{db: db, d: d, now: cfg.Now, log: cfg.Logger, rec: cfg.Recorder}
	s.pop = newPopularity(s, cfg.PopularityRefresh)
	return s, nil
}

// Close waits for background work and closes the pool if the Store opened it.
func (s *Store) Close() error {
	s.pop.close()
	err := s.closeSharding()
	if s.router != nil {
		return errors.Join(err, s.router.Close())
	}
	if s.ownsDB {
		return errors.Join(err, s.db.Close())
	}
	return err
}

// DB returns the primary's pool (the main database's, when sharded), for
// metrics and tools.
func (s *Store) DB() *sql.DB { return s.db }

// Kind says which engine the store runs on.
func (s *Store) Kind() Kind { return Kind(s.d.kind) }

// Ping checks that the store can serve: that the database answers or,
// with replicas, that the primary or at least one replica does (reads go
// on while the primary is down; [Store.Degraded] says what is missing).
// Sharded, the main database must answer (it has the products) and at
// least one shard must serve; a shard that is down fails only its own
// users, which Degraded reports.
func (s *Store) Ping(ctx context.Context) error {
	var err error
	if s.shards != nil {
		if err := s.db.PingContext(ctx); err != nil {
			return fmt.Errorf("storefront: ping: the main database does not answer: %w", err)
		}
		return s.pingShards()
	}
	if s.router != nil {
		err = s.router.PrimaryErr() // known down: do not wait for a connect to fail
	}
	if err == nil {
		if err = s.db.PingContext(ctx); err == nil {
			return nil
		}
	}
	if s.router != nil {
		for _, st := range s.router.Status() {
			if st.Serving {
				return nil
			}
		}
		return fmt.Errorf("storefront: ping: neither the primary nor any replica answers: %w", err)
	}
	return fmt.Errorf("storefront: ping: %w", err)
}

// Degraded lists the parts of the store that are down while it still
// serves, one short sentence each: the primary (writes fail) or replicas
// (their reads go elsewhere). Nil means everything is up.
func (s *Store) Degraded(ctx context.Context) []string {
	if s.shards != nil {
		return s.shardedDegraded()
	}
	if s.router == nil {
		return nil
	}
	var out []string
	if err := s.router.PrimaryErr(); err != nil {
		out = append(out, "primary: unavailable, writes answer 503 ("+clipReport(err.Error())+")")
	}
	for _, st := range s.router.Status() {
		if !st.Serving {
			out = append(out, "replica "+st.Name+": not serving reads ("+clipReport(st.Reason)+")")
		}
	}
	return out
}

// stamp is the store's notion of now, at the microsecond precision both
// engines keep, so a value read back equals the value written.
func (s *Store) stamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

const userColumns = `id, email, name, region, created_at, updated_at, version`

const productColumns = `id, title, description, category, price_cents, stock, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanUser(r scanner) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.Email, &u.Name, &u.Region, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, &u.Version)
	return u, err
}

func scanProduct(r scanner) (Product, error) {
	var p Product
	err := r.Scan(&p.ID, &p.Title, &p.Description, &p.Category, &p.PriceCents, &p.Stock, timeCol{&p.UpdatedAt})
	return p, err
}

func checkID(field string, id int64) error {
	if id <= 0 {
		return fieldErr(field, "must be a positive integer, got %d", id)
	}
	return nil
}

// GetUser returns the user with the given id, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id int64) (User, error) {
	if err := checkID("id", id); err != nil {
		return User{}, err
	}
	var u User
	err := s.readUser(replica.WithKeys(ctx, userKey(id)), id, func(ctx context.Context, q querier) (err error) {
		u, err = scanUser(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, &NotFoundError{Kind: "user", ID: id}
	}
	if err != nil {
		return User{}, fmt.Errorf("storefront: get user %d: %w", id, err)
	}
	return u, nil
}

// CreateUser validates and inserts a user. The email is stored lower-case;
// a taken email is a *FieldError wrapping ErrConflict.
func (s *Store) CreateUser(ctx context.Context, n NewUser) (User, error) {
	n, err := n.normalize()
	if err != nil {
		return User{}, err
	}
	if s.shards != nil {
		return s.createShardedUser(ctx, n)
	}
	now := s.d.timeArg(s.stamp())
	var u User
	tok, err := s.write(ctx, 0, func(ctx context.Context, q querier) (err error) {
		u, err = scanUser(q.QueryRowContext(ctx,
			`INSERT INTO users (email, name, region, created_at, updated_at, version)
			 VALUES ($1, $2, $3, $4, $4, 1) RETURNING `+userColumns,
			n.Email, n.Name, n.Region, now))
		return err
	})
	if err != nil {
		if s.d.emailTaken(err) {
			return User{}, &FieldError{Field: "email", Msg: fmt.Sprintf("%q is already taken", n.Email), Err: ErrConflict}
		}
		return User{}, fmt.Errorf("storefront: create user: %w", err)
	}
	s.mark(ctx, s.router, tok, userKey(u.ID)) // its id was not known before the insert
	return u, nil
}

// UpdateUser applies the non-nil fields of p, bumps the version and returns
// the new row. An unknown id is ErrNotFound; a taken email ErrConflict.
func (s *Store) UpdateUser(ctx context.Context, id int64, p UserPatch) (User, error) {
	if err := checkID("id", id); err != nil {
		return User{}, err
	}
	p, err := p.normalize()
	if err != nil {
		return User{}, err
	}
	if s.shards != nil && p.Email != nil {
		return s.updateShardedEmail(ctx, id, p)
	}
	var u User
	_, err = s.write(replica.WithKeys(ctx, userKey(id)), id, func(ctx context.Context, q querier) (err error) {
		u, err = scanUser(q.QueryRowContext(ctx,
			`UPDATE users SET
				email = COALESCE($2, email),
				name = COALESCE($3, name),
				region = COALESCE($4, region),
				updated_at = $5,
				version = version + 1
			 WHERE id = $1 RETURNING `+userColumns,
			id, p.Email, p.Name, p.Region, s.d.timeArg(s.stamp())))
		return err
	})
	return s.updated(u, id, p, err)
}

// updated turns UpdateUser's write error into the error it returns.
func (s *Store) updated(u User, id int64, p UserPatch, err error) (User, error) {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return User{}, &NotFoundError{Kind: "user", ID: id}
	case err != nil && s.d.emailTaken(err):
		return User{}, &FieldError{Field: "email", Msg: fmt.Sprintf("%q is already taken", *p.Email), Err: ErrConflict}
	case err != nil:
		return User{}, fmt.Errorf("storefront: update user %d: %w", id, err)
	}
	return u, nil
}

// RecordAction stores that user userID did kind with product productID.
// An unknown user is ErrNotFound; an unknown product is a *FieldError on
// "product_id" wrapping ErrNotFound.
func (s *Store) RecordAction(ctx context.Context, userID, productID int64, kind ActionKind) (Action, error) {
	if err := checkID("id", userID); err != nil {
		return Action{}, err
	}
	if err := checkID("product_id", productID); err != nil {
		return Action{}, err
	}
	if !kind.Valid() {
		return Action{}, fieldErr("kind", "must be one of view, cart, purchase; got %s", quoteValue(string(kind)))
	}
	a := Action{UserID: userID, ProductID: productID, Kind: kind, CreatedAt: s.stamp()}
	if s.shards != nil {
		return s.recordShardedAction(ctx, a)
	}
	_, err := s.write(replica.WithKeys(ctx, actionsTag(userID)), userID, func(ctx context.Context, q querier) error {
		return q.QueryRowContext(ctx,
			`INSERT INTO user_actions (user_id, product_id, kind, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			userID, productID, string(kind), s.d.timeArg(a.CreatedAt)).Scan(&a.ID)
	})
	if err != nil && s.d.foreignKeyViolation(err) {
		return Action{}, s.missingReference(ctx, userID, productID)
	}
	if err != nil {
		return Action{}, fmt.Errorf("storefront: record action: %w", err)
	}
	return a, nil
}

// missingReference finds which side of a failed action insert is missing.
func (s *Store) missingReference(ctx context.Context, userID, productID int64) error {
	if _, err := s.GetUser(ctx, userID); err != nil {
		return err
	}
	if _, err := s.GetProduct(ctx, productID); errors.Is(err, ErrNotFound) {
		return &FieldError{Field: "product_id", Msg: fmt.Sprintf("names product %d, which does not exist", productID), Err: ErrNotFound}
	} else if err != nil {
		return err
	}
	return fmt.Errorf("storefront: record action: foreign key violation for user %d, product %d", userID, productID)
}

// GetProduct returns the product with the given id, or ErrNotFound.
func (s *Store) GetProduct(ctx context.Context, id int64) (Product, error) {
	if err := checkID("id", id); err != nil {
		return Product{}, err
	}
	var p Product
	err := s.read(ctx, func(ctx context.Context, q querier) (err error) {
		p, err = scanProduct(q.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, &NotFoundError{Kind: "product", ID: id}
	}
	if err != nil {
		return Product{}, fmt.Errorf("storefront: get product %d: %w", id, err)
	}
	return p, nil
}

// productsByID returns the products with the given ids in the order of ids,
// skipping ids that do not exist.
func (s *Store) productsByID(ctx context.Context, ids []int64) ([]Product, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	found, err := readRows(ctx, s, scanProduct, `SELECT `+productColumns+` FROM products WHERE id IN (`+placeholders(1, len(ids))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("storefront: products by id: %w", err)
	}
	byID := make(map[int64]Product, len(found))
	for _, p := range found {
		byID[p.ID] = p
	}
	out := make([]Product, 0, len(ids))
	for _, id := range ids {
		if p, ok := byID[id]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// placeholders returns "$from, $from+1, ..." n times.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}

// checkLimit validates a list limit.
func checkLimit(limit int) error {
	if limit < 1 || limit > MaxLimit {
		return fieldErr("limit", "must be between 1 and %d, got %d", MaxLimit, limit)
	}
	return nil
}

// querier is where a query runs: the one pool, or the connection the
// replica router chose.
type querier = replica.Querier

// readUser runs fn where reads of user userID's rows (the user, their
// actions) go: on a sharded store, the shard that owns the user; else as
// read.
func (s *Store) readUser(ctx context.Context, userID int64, fn func(ctx context.Context, q querier) error) error {
	if s.shards != nil {
		return s.shards.router.Read(ctx, userID, s.recorded(fn))
	}
	return s.read(ctx, fn)
}

// read runs fn where reads go: a replica chosen by the router, or the one
// pool (the main database, when sharded: products). fn may run more than
// once and must start afresh each time.
func (s *Store) read(ctx context.Context, fn func(ctx context.Context, q querier) error) error {
	fn = s.recorded(fn)
	if s.router == nil {
		return fn(ctx, s.db)
	}
	return s.router.Read(ctx, fn)
}

// recorded makes fn's queries known to the store's QueryRecorder.
func (s *Store) recorded(fn func(ctx context.Context, q querier) error) func(ctx context.Context, q querier) error {
	if s.rec == nil {
		return fn
	}
	return func(ctx context.Context, q querier) error { return fn(ctx, recordingQuerier{q, s.rec}) }
}

// recordingQuerier passes each query to a QueryRecorder, then runs it.
type recordingQuerier struct {
	q   querier
	rec QueryRecorder
}

func (r recordingQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r.rec.Record(query, args...)
	return r.q.ExecContext(ctx, query, args...)
}

func (r recordingQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r.rec.Record(query, args...)
	return r.q.QueryContext(ctx, query, args...)
}

func (r recordingQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	r.rec.Record(query, args...)
	return r.q.QueryRowContext(ctx, query, args...)
}

// write runs fn on the primary (of the shard that owns userID, when
// sharded; else userID is unused). With replicas, the write's token goes to
// the context's token sink (see withTokenSink), so the caller's next reads
// can see it, and marks the keys the context names (replica.WithKeys), so
// that reads of those entities see it with no token at all; write also
// returns it, for keys known only after the write (a new row's id; see
// mark). Without replicas the token is zero.
func (s *Store) write(ctx context.Context, userID int64, fn func(ctx context.Context, q querier) error) (replica.Token, error) {
	fn = s.recorded(fn)
	r := s.routerFor(userID)
	var tok replica.Token
	var err error
	switch {
	case s.shards != nil:
		tok, err = s.shards.router.Write(ctx, userID, fn)
	case r != nil:
		tok, err = r.Write(ctx, fn)
	default:
		return 0, fn(ctx, s.db)
	}
	if errors.Is(err, replica.ErrNoMark) {
		// The write committed and has its token; only the per-key marks
		// failed, so other routers sharing them may not see it at once.
		s.warnings.warn(s.log, "storefront: write committed without its per-key read-your-writes marks", "err", err)
		err = nil
	}
	if errors.Is(err, replica.ErrNoToken) {
		// The write committed but its position was not read: the primary's
		// current position, read now, is past it and serves as well. If
		// that fails too, say so, but do not fail a committed write.
		if p, perr := r.Position(ctx); perr == nil {
			tok = p
			s.mark(ctx, r, tok, replica.KeysFrom(ctx)...) // Write marks only with a token of its own
		} else {
			s.warnings.warn(s.log, "storefront: write committed without a read-your-writes token", "err", err)
		}
		err = nil
	}
	if err != nil {
		return 0, err
	}
	if sink, ok := ctx.Value(tokenSinkKey{}).(*replica.Token); ok && tok > *sink {
		*sink = tok
	}
	return tok, nil
}

// mark records tok, a committed write's token, as the newest write to
// keys, so that reads naming one of them (replica.WithKeys) see it with
// no token from the client. A failure is logged (throttled): the write
// stands, and only reads on a lagging replica may miss it.
func (s *Store) mark(ctx context.Context, r *replica.Router, tok replica.Token, keys ...string) {
	if r == nil || tok == 0 || len(keys) == 0 {
		return
	}
	if err := r.Mark(ctx, tok, keys...); err != nil {
		s.warnings.warn(s.log, "storefront: write committed without its per-key read-your-writes marks", "err", err)
	}
}

// readRows runs a read query and scans every row, afresh on each attempt.
func readRows[T any](ctx context.Context, s *Store, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := s.read(ctx, func(ctx context.Context, q querier) (err error) {
		out, err = queryRows(ctx, q, scan, query, args...)
		return err
	})
	return out, err
}

// queryRows runs query on q and scans every row.
func queryRows[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := scanRows(ctx, q, func(rows scanner) error {
		v, err := scan(rows)
		out = append(out, v)
		return err
	}, query, args...)
	return out, err
}

// scanRows runs query on q and calls fn for every row.
func scanRows(ctx context.Context, q querier, fn func(scanner) error, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

type tokenSinkKey struct{}

// withTokenSink returns a context in which the store's writes record their
// read-your-writes token in *sink (the newest one wins). The HTTP handler
// uses it to hand the token back to the client.
func withTokenSink(ctx context.Context, sink *replica.Token) context.Context {
	return context.WithValue(ctx, tokenSinkKey{}, sink)
}

// openReplicated opens a replica router over the primary at url and
// cfg.Replicas, and a Store over it.
func openReplicated(ctx context.Context, url string, cfg Config) (*Store, error) {
	rcfg := replica.Config{Primary: url, Registerer: cfg.Registerer, Logger: cfg.Logger, Hedge: cfg.Hedge, TracerProvider: cfg.TracerProvider}
	for _, u := range cfg.Replicas {
		rcfg.Replicas = append(rcfg.Replicas, replica.Replica{URL: u})
	}
	r, err := replica.Open(ctx, rcfg)
	if err != nil {
		return nil, err
	}
	if err := r.Primary().PingContext(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("storefront: cannot reach the primary: %w", err)
	}
	s, err := New(ctx, r.Primary(), Postgres, cfg)
	if err != nil {
		r.Close()
		return nil, err
	}
	s.router = r
	return s, nil
}

// Router returns the replica router, or nil when the store has no replicas.
func (s *Store) Router() *replica.Router { return s.router }
