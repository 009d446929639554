package storefront

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strata-dev/strata/internal/database"
	"github.com/strata-dev/strata/internal/spans"
	"github.com/strata-dev/strata/replica"
	"github.com/strata-dev/strata/shard"
)

// Stage 5: the store sharded by user id. The main database (Open's url)
// keeps the shard map (package shard's control schema), the reference data
// every shard shares (products) and the global allocators and email
// directory (directoryMigrations); each shard keeps its users and their
// actions (shardMigrations). A user's reads and writes go to the one shard
// that owns the user's id; recommendations, which read other users'
// purchases, fan out over every shard within the stage-3 budget for
// non-critical work and fall back to popular products for the shards that
// did not answer in time.

// actionIDBlock is how many action ids an instance takes from the main
// database's allocator at once (the allocator's increment, fixed when it
// is created), so that recording an action costs the main database one
// round trip per actionIDBlock actions, not one each (the hi/lo scheme;
// Strata's choice). Ids stay unique across instances and shards, though
// not in time order across instances.
const actionIDBlock = 1000

// emailClaimGrace is how long an email claimed in the directory by a
// CreateUser or UpdateUser that has not (yet) written its user is held for
// it. After that, a claim whose user does not have the email is stale (its
// writer failed or died between the two databases) and the next user to
// ask for the email takes it over.
const emailClaimGrace = time.Minute

// knownProductsMax bounds the set of product ids a sharded store has seen
// exist (products are never deleted while serving), so that recording an
// action checks its product in the main database once, not on every write.
const knownProductsMax = 100_000

// ErrInUse is returned by Seed on a sharded store that other instances
// are serving: they hold blocks of action ids and a view of the catalogue
// that a seed would invalidate under them. Stop them, seed, start them.
var ErrInUse = errors.New("storefront: the store is being served")

// liveWithin is how recent an instance's heartbeat must be for Seed to
// count it as serving: three heartbeats.
const liveWithin = 3 * shard.DefaultHeartbeat

// ErrBadShards is returned by Open for a sharded configuration it cannot
// use: no PostgreSQL main database, a shard given twice, a shard that is
// the main database, a shard the stored map does not name.
var ErrBadShards = errors.New("storefront: bad shard configuration")

// sharding is a sharded store's state.
type sharding struct {
	router *shard.Router
	follow *shard.Follower

	migratedMu sync.Mutex
	migrated   map[string]bool // shard URLs whose schema is current

	idSem           chan struct{} // one holder: the action ids in hand and their refill
	idBlock         int64         // ids per block: the allocator's own increment
	nextID, blockTo int64         // the action ids in hand: [nextID, blockTo)

	knownMu sync.Mutex
	known   map[int64]bool // products seen to exist
}

// ShardName is the name Open gives the i-th shard (from 0) of the map it
// publishes when the main database has none.
func ShardName(i int) string { return "shard" + strconv.Itoa(i+1) }

// openSharded opens the main database at url, publishes the first shard
// map (cfg.Shards, named ShardName(i)) unless one exists, and follows it.
func openSharded(ctx context.Context, url string, cfg Config) (*Store, error) {
	if len(cfg.Replicas) > 0 {
		return nil, fmt.Errorf("%w: replicas of the main database are not used with shards; give each shard's replicas in the shard map", ErrBadShards)
	}
	main, err := database.Parse(url)
	if err != nil {
		return nil, err
	}
	if main.Kind != database.Postgres {
		return nil, fmt.Errorf("%w: sharding needs PostgreSQL for the main database, got %s", ErrBadShards, main.Display)
	}
	var specs []shard.Shard
	for i, u := range cfg.Shards {
		t, err := database.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("shard %d: %w", i+1, err)
		}
		switch {
		case t.Kind != database.Postgres:
			return nil, fmt.Errorf("%w: shard %s is not PostgreSQL", ErrBadShards, t.Display)
		case u == url:
			return nil, fmt.Errorf("%w: shard %s is the main database; a shard needs a database of its own", ErrBadShards, t.Display)
		case slices.Contains(cfg.Shards[:i], u):
			return nil, fmt.Errorf("%w: shard %s is given twice", ErrBadShards, t.Display)
		}
		specs = append(specs, shard.Shard{Name: ShardName(i), URL: u})
	}
	db, _, err := database.OpenWith(ctx, url, database.Options{Tracer: spans.SQL(cfg.TracerProvider)})
	if err != nil {
		return nil, err
	}
	s, err := New(ctx, db, Postgres, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.ownsDB = true
	s.shards = &sharding{migrated: map[string]bool{}, known: map[int64]bool{}, idSem: make(chan struct{}, 1)}
	if err := s.startSharding(ctx, url, specs, cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// startSharding installs the main database's part, agrees on the map and
// starts following it.
func (s *Store) startSharding(ctx context.Context, url string, specs []shard.Shard, cfg Config) error {
	if err := migrateSchema(ctx, s.db, s.d, directorySchema); err != nil {
		return err
	}
	// A main database that holds an unsharded store's users would hide
	// them, and hand their ids out again.
	var users, actions bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users), EXISTS (SELECT 1 FROM user_actions)`).Scan(&users, &actions); err != nil {
		return fmt.Errorf("storefront: check the main database: %w", err)
	}
	if users || actions {
		return fmt.Errorf("%w: the main database %s holds the users and actions of an unsharded store; moving them onto shards is not supported: start from an empty main database (and seed it), or serve it unsharded", ErrBadShards, display(url))
	}
	// The block size is the allocator's own, whatever this build's
	// constant: instances of two builds must not hand out the same ids.
	if err := s.db.QueryRowContext(ctx, `SELECT seqincrement FROM pg_sequence WHERE seqrelid = 'action_ids'::regclass`).Scan(&s.shards.idBlock); err != nil {
		return fmt.Errorf("storefront: read the action id allocator: %w", err)
	}
	if err := shard.Install(ctx, s.db); err != nil {
		return err
	}
	first, err := shard.NewHashMap(specs, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadShards, err)
	}
	m, err := shard.LoadOrPublish(ctx, s.db, first)
	if err != nil {
		return err
	}
	for _, sp := range specs {
		if !slices.ContainsFunc(m.Shards, func(x shard.Shard) bool { return x.URL == sp.URL }) {
			return fmt.Errorf("%w: shard %s is not in the shard map of the main database (epoch %d: %s); the map, not the flags, says where users live",
				ErrBadShards, display(sp.URL), m.Epoch, mapShards(m))
		}
	}
	rcfg := shard.Config{Registerer: cfg.Registerer, Logger: s.log, Replica: replica.Config{Hedge: cfg.Hedge}, TracerProvider: cfg.TracerProvider}
	follow, err := shard.Follow(ctx, s.db, url, shard.FollowConfig{
		Logger: s.log,
		OnChange: func(ctx context.Context, m *shard.Map) error {
			for _, sh := range m.Shards {
				if err := s.migrateShard(ctx, sh); err != nil {
					return err
				}
			}
			if s.shards.router == nil {
				r, err := shard.New(ctx, m, rcfg)
				if err != nil {
					return err
				}
				s.shards.router = r
				return nil
			}
			return s.shards.router.Apply(ctx, m)
		},
	})
	if err != nil {
		return err
	}
	s.shards.follow = follow
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(shard.NewFollowerMetrics(follow)); err != nil {
			return fmt.Errorf("storefront: register shard map metrics: %w", err)
		}
	}
	return nil
}

// ShardTables are the storefront's sharded tables and their shard keys,
// as a move of virtual shards copies them (shard.PlanMove).
var ShardTables = []shard.Table{{Name: "users", Key: "id"}, {Name: "user_actions", Key: "user_id"}}

// PrepareShard creates (or brings up to date) a shard's schema in db: the
// Prepare hook of a move onto a new primary (shard.MoveConfig).
func PrepareShard(ctx context.Context, db *sql.DB) error {
	d, err := dialectFor(database.Postgres)
	if err != nil {
		return err
	}
	return migrateSchema(ctx, db, d, shardSchema)
}

// migrateShard brings the schema of shard sh up to date, once per URL.
func (s *Store) migrateShard(ctx context.Context, sh shard.Shard) error {
	sd := s.shards
	sd.migratedMu.Lock()
	defer sd.migratedMu.Unlock()
	if sd.migrated[sh.URL] {
		return nil
	}
	db, _, err := database.Open(ctx, sh.URL)
	if err != nil {
		return &shard.Error{Shard: sh.Name, Err: err}
	}
	defer db.Close()
	if err := migrateSchema(ctx, db, s.d, shardSchema); err != nil {
		return &shard.Error{Shard: sh.Name, Err: fmt.Errorf("%w (a shard needs an empty database or one a sharded store made)", err)}
	}
	sd.migrated[sh.URL] = true
	return nil
}

// display is url without its password.
func display(url string) string {
	if t, err := database.Parse(url); err == nil {
		return t.Display
	}
	return "(unparsable URL)"
}

// mapShards lists a map's shards as "name=url, ...", passwords removed.
func mapShards(m *shard.Map) string {
	var b strings.Builder
	for i, sh := range m.Shards {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(sh.Name + "=" + display(sh.URL))
	}
	return b.String()
}

// Shards returns the shard router of a sharded store, or nil.
func (s *Store) Shards() *shard.Router {
	if s.shards == nil {
		return nil
	}
	return s.shards.router
}

// closeSharding stops following the map and closes the shards' pools.
func (s *Store) closeSharding() error {
	if s.shards == nil {
		return nil
	}
	var errs []error
	if s.shards.follow != nil {
		errs = append(errs, s.shards.follow.Close())
	}
	if s.shards.router != nil {
		errs = append(errs, s.shards.router.Close())
	}
	return errors.Join(errs...)
}

// checkNotServing returns ErrInUse if instances other than this one
// follow the sharded store's map (see liveWithin).
func (s *Store) checkNotServing(ctx context.Context) error {
	if s.shards == nil {
		return nil
	}
	ins, err := shard.Instances(ctx, s.db, liveWithin)
	if err != nil {
		return fmt.Errorf("storefront: seed: %w", err)
	}
	var others []string
	for _, in := range ins {
		if in.ID != s.shards.follow.ID() {
			others = append(others, in.ID+" on "+in.Host)
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("%w by %d other instance(s) (%s); stop them before seeding", ErrInUse, len(others), strings.Join(first(others, 5), ", "))
	}
	return nil
}

// nextActionID hands out the next action id of the block in hand, taking
// a new block from the main database's allocator when it runs out.
func (s *Store) nextActionID(ctx context.Context) (int64, error) {
	sd := s.shards
	select { // the refill is a round trip: wait for it within ctx only
	case sd.idSem <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("storefront: allocate an action id: %w", ctx.Err())
	}
	defer func() { <-sd.idSem }()
	if sd.nextID == sd.blockTo {
		var top int64 // the block is (top - idBlock, top]
		if err := s.db.QueryRowContext(ctx, `SELECT nextval('action_ids')`).Scan(&top); err != nil {
			return 0, fmt.Errorf("storefront: allocate action ids in the main database: %w", err)
		}
		sd.nextID, sd.blockTo = top-sd.idBlock+1, top+1
	}
	id := sd.nextID
	sd.nextID++
	return id, nil
}

// checkProduct returns nil if product id exists, a *FieldError on
// "product_id" wrapping ErrNotFound if it does not. On a sharded store,
// which cannot rely on a foreign key across databases, it is checked
// before an action is written.
func (s *Store) checkProduct(ctx context.Context, id int64) error {
	sd := s.shards
	sd.knownMu.Lock()
	known := sd.known[id]
	sd.knownMu.Unlock()
	if known {
		return nil
	}
	var one int
	err := s.read(ctx, func(ctx context.Context, q querier) error {
		return q.QueryRowContext(ctx, `SELECT 1 FROM products WHERE id = $1`, id).Scan(&one)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return &FieldError{Field: "product_id", Msg: fmt.Sprintf("names product %d, which does not exist", id), Err: ErrNotFound}
	}
	if err != nil {
		return fmt.Errorf("storefront: check product %d: %w", id, err)
	}
	sd.knownMu.Lock()
	if len(sd.known) >= knownProductsMax {
		clear(sd.known)
	}
	sd.known[id] = true
	sd.knownMu.Unlock()
	return nil
}

// afterSeed forgets what a seed may have made wrong: the products known
// to exist (the catalogue was replaced) and the action ids in hand (the
// allocator was moved past the seeded ids).
func (s *Store) afterSeed() {
	if s.shards == nil {
		return
	}
	s.shards.knownMu.Lock()
	clear(s.shards.known)
	s.shards.knownMu.Unlock()
	s.shards.idSem <- struct{}{}
	s.shards.nextID, s.shards.blockTo = 0, 0
	<-s.shards.idSem
}

// claimEmail reserves email for user id in the main database's directory,
// so that no user on any shard can take it meanwhile. id 0 asks for a new
// user id, which it returns. A claim held by another user is ErrConflict,
// unless it is stale (older than emailClaimGrace and that user's shard
// does not give them the email): then it is taken over. claimed reports
// whether this call made the claim (false: id already held it).
func (s *Store) claimEmail(ctx context.Context, email string, id int64) (_ int64, claimed bool, err error) {
	conflict := &FieldError{Field: "email", Msg: fmt.Sprintf("%q is already taken", email), Err: ErrConflict}
	got, err := s.insertClaim(ctx, email, id)
	if err == nil {
		return got, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("storefront: claim email in the main database: %w", err)
	}
	// Taken: by this very user, by a live user, or by a stale claim.
	var holder int64
	var stale bool
	err = s.db.QueryRowContext(ctx, `SELECT user_id, claimed_at < now() - make_interval(secs => $2) FROM user_emails WHERE email = $1`,
		email, emailClaimGrace.Seconds()).Scan(&holder, &stale)
	switch {
	case errors.Is(err, sql.ErrNoRows): // released meanwhile: try once more
		return s.claimAgain(ctx, email, id, conflict)
	case err != nil:
		return 0, false, fmt.Errorf("storefront: read email claim in the main database: %w", err)
	case id != 0 && holder == id:
		// Ours already: renew it, so that no one takes it over as stale
		// while this change is written.
		if _, err := s.db.ExecContext(ctx, `UPDATE user_emails SET claimed_at = now() WHERE email = $1 AND user_id = $2`, email, id); err != nil {
			return 0, false, fmt.Errorf("storefront: renew an email claim in the main database: %w", err)
		}
		return id, false, nil
	case !stale:
		return 0, false, conflict
	}
	// Ask the holder's shard itself, on its primary: a lagging replica
	// could miss a user who has the email.
	target := s.shards.router.For(holder)
	var has string
	err = target.DB.Primary().QueryRowContext(ctx, `SELECT email FROM users WHERE id = $1`, holder).Scan(&has)
	switch {
	case err == nil && has == email:
		return 0, false, conflict
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return 0, false, fmt.Errorf("storefront: check the holder of an email claim: %w", &shard.Error{Shard: target.Name, Err: err})
	}
	// Stale: take it over, unless someone renewed or took it first.
	newID := `nextval('user_ids')`
	args := []any{email, holder, emailClaimGrace.Seconds()}
	if id != 0 {
		newID = `$4`
		args = append(args, id)
	}
	err = s.db.QueryRowContext(ctx, `UPDATE user_emails SET user_id = `+newID+`, claimed_at = now()
		WHERE email = $1 AND user_id = $2 AND claimed_at < now() - make_interval(secs => $3)
		RETURNING user_id`, args...).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, conflict
	}
	if err != nil {
		return 0, false, fmt.Errorf("storefront: take over a stale email claim: %w", err)
	}
	s.log.Info("storefront: took over a stale email claim", "user", got, "was", holder)
	return got, true, nil
}

// insertClaim claims a free email for id (0: a new user id) and returns
// the id; sql.ErrNoRows means the email is claimed already.
func (s *Store) insertClaim(ctx context.Context, email string, id int64) (int64, error) {
	newID, args := `nextval('user_ids')`, []any{email}
	if id != 0 {
		newID, args = `$2`, append(args, id)
	}
	var got int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO user_emails (email, user_id) VALUES ($1, `+newID+`)
		ON CONFLICT (email) DO NOTHING RETURNING user_id`, args...).Scan(&got)
	return got, err
}

// claimAgain retries a claim whose holder released it between our insert
// and our look at it; a second race is reported as a conflict.
func (s *Store) claimAgain(ctx context.Context, email string, id int64, conflict error) (int64, bool, error) {
	got, err := s.insertClaim(ctx, email, id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, conflict
	case err != nil:
		return 0, false, fmt.Errorf("storefront: claim email in the main database: %w", err)
	}
	return got, true, nil
}

// dropClaim drops user id's claim of email, made for a write that failed.
func (s *Store) dropClaim(ctx context.Context, id int64, email string) {
	s.unclaim(ctx, id, `DELETE FROM user_emails WHERE user_id = $1 AND email = $2`, email)
}

func (s *Store) unclaim(ctx context.Context, id int64, query, email string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, query, id, email); err != nil {
		s.warnings.warn(s.log, "storefront: an email claim was left in the directory (it goes stale and is reused)", "user", id, "err", err)
	}
}

// createShardedUser claims the email and a new id in the main database,
// then writes the user on the shard that owns the id.
func (s *Store) createShardedUser(ctx context.Context, n NewUser) (User, error) {
	id, _, err := s.claimEmail(ctx, n.Email, 0)
	if err != nil {
		return User{}, err
	}
	now := s.stamp()
	var u User
	tok, err := s.write(ctx, id, func(ctx context.Context, q querier) (err error) {
		u, err = scanUser(q.QueryRowContext(ctx,
			`INSERT INTO users (id, email, name, region, created_at, updated_at, version)
			 VALUES ($1, $2, $3, $4, $5, $5, 1) RETURNING `+userColumns,
			id, n.Email, n.Name, n.Region, now))
		return err
	})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			// Refused for certain, so the claim goes; after any other
			// error the write may have committed, and the claim stays (if
			// the user is not there, it goes stale and is taken over).
			s.dropClaim(ctx, id, n.Email)
		}
		if s.d.emailTaken(err) {
			return User{}, &FieldError{Field: "email", Msg: fmt.Sprintf("%q is already taken", n.Email), Err: ErrConflict}
		}
		return User{}, fmt.Errorf("storefront: create user: %w", err)
	}
	s.mark(ctx, s.routerFor(id), tok, userKey(id))
	return u, nil
}

// recordShardedAction writes a validated action on the shard of its user,
// with an id from the block in hand, after checking its product in the
// main database (once per product: see checkProduct).
func (s *Store) recordShardedAction(ctx context.Context, a Action) (Action, error) {
	if err := s.checkProduct(ctx, a.ProductID); err != nil {
		if errors.Is(err, ErrNotFound) { // an unknown user is reported first, as on one database
			if _, uerr := s.GetUser(ctx, a.UserID); uerr != nil {
				return Action{}, uerr
			}
		}
		return Action{}, err
	}
	id, err := s.nextActionID(ctx)
	if err != nil {
		return Action{}, err
	}
	_, err = s.write(replica.WithKeys(ctx, actionsTag(a.UserID)), a.UserID, func(ctx context.Context, q querier) error {
		_, err := q.ExecContext(ctx,
			`INSERT INTO user_actions (id, user_id, product_id, kind, created_at) VALUES ($1, $2, $3, $4, $5)`,
			id, a.UserID, a.ProductID, string(a.Kind), a.CreatedAt)
		return err
	})
	if err != nil && s.d.foreignKeyViolation(err) {
		return Action{}, &NotFoundError{Kind: "user", ID: a.UserID}
	}
	if err != nil {
		return Action{}, fmt.Errorf("storefront: record action: %w", err)
	}
	a.ID = id
	return a, nil
}

// ownedSQL is a condition keeping the rows whose column col (a user id)
// belongs, by the map, to the shard the query runs on: the virtual shards
// it owns are the query's argument $param (eachShard passes them). A shard
// can hold rows it does not own: those of virtual shards being copied to
// it, and, after a move, those its new owner has until cleanup deletes
// them; a fan-out that counted them would count them twice. "" when the
// map has no virtual shards (a range map), and no argument is passed.
func (s *Store) ownedSQL(col string, param int) string {
	m := s.shards.router.Map()
	if m.Kind != shard.KindHash {
		return ""
	}
	return fmt.Sprintf(" AND %s = ANY($%d::int[])", shard.VirtualShardSQL(col, len(m.Owners)), param)
}

// ownedBy lists the virtual shards the map gives the shard named name.
func ownedBy(m *shard.Map, name string) []int32 {
	i := slices.IndexFunc(m.Shards, func(sh shard.Shard) bool { return sh.Name == name })
	var out []int32
	for v, o := range m.Owners {
		if o == i {
			out = append(out, int32(v))
		}
	}
	return out
}

// eachShard runs a read query on every shard at once, within the router's
// fan-out deadline (timeout 0) or timeout, and hands each shard's rows to
// merge, one shard at a time. Shards that fail or do not answer in time
// are in the Result's Failed, and their rows are never merged, not even if
// they arrive late; that alone is not an error.
func eachShard[T any](ctx context.Context, s *Store, timeout time.Duration, scan func(scanner) (T, error), query string, args []any, merge func([]T)) (shard.Result, error) {
	var mu sync.Mutex
	done := false
	merged := map[string]bool{}
	m := s.shards.router.Map()
	fn := func(ctx context.Context, t *shard.Target) error {
		qargs := args
		if m.Kind == shard.KindHash { // the query filters with ownedSQL: its last argument
			qargs = append(slices.Clone(args), ownedBy(m, t.Name))
		}
		var part []T
		err := t.DB.Read(ctx, s.recorded(func(ctx context.Context, q querier) (err error) {
			part, err = queryRows(ctx, q, scan, query, qargs...)
			return err
		}))
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if done {
			return context.DeadlineExceeded // too late: the caller has moved on
		}
		merge(part)
		merged[t.Name] = true
		return nil
	}
	var res shard.Result
	var err error
	if timeout > 0 {
		res, err = s.shards.router.EachWithin(ctx, timeout, fn)
	} else {
		res, err = s.shards.router.Each(ctx, fn)
	}
	mu.Lock()
	done = true
	mu.Unlock()
	// A shard whose rows were merged just as the deadline passed answered.
	for name := range merged {
		if _, ok := res.Failed[name]; ok {
			delete(res.Failed, name)
			res.Answered = append(res.Answered, name)
		}
	}
	if err != nil && !errors.Is(err, shard.ErrPartial) {
		return res, err
	}
	return res, nil
}

// updateShardedEmail is UpdateUser with a new email on a sharded store: the
// email is claimed in the main database's directory first; the shard's
// write returns the email it replaced, whose claim alone is then dropped
// (so that two changes racing each other cannot drop the claim of the
// email that won).
func (s *Store) updateShardedEmail(ctx context.Context, id int64, p UserPatch) (User, error) {
	_, claimed, err := s.claimEmail(ctx, *p.Email, id)
	if errors.Is(err, ErrConflict) {
		if _, uerr := s.GetUser(ctx, id); uerr != nil {
			return User{}, uerr // an unknown user is reported first, as on one database
		}
	}
	if err != nil {
		return User{}, err
	}
	var u User
	var old string
	_, err = s.write(replica.WithKeys(ctx, userKey(id)), id, func(ctx context.Context, q querier) error {
		return q.QueryRowContext(ctx,
			`WITH old AS (SELECT id, email FROM users WHERE id = $1 FOR UPDATE)
			 UPDATE users u SET
				email = $2,
				name = COALESCE($3, u.name),
				region = COALESCE($4, u.region),
				updated_at = $5,
				version = u.version + 1
			 FROM old WHERE u.id = old.id RETURNING old.email, `+prefixed("u.", userColumns),
			id, *p.Email, p.Name, p.Region, s.stamp()).Scan(&old,
			&u.ID, &u.Email, &u.Name, &u.Region, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, &u.Version)
	})
	switch {
	case err == nil && old != u.Email:
		s.dropClaim(ctx, id, old)
	case err != nil && claimed && (errors.Is(err, sql.ErrNoRows) || s.d.emailTaken(err)):
		s.dropClaim(ctx, id, *p.Email) // refused for certain
	}
	return s.updated(u, id, p, err)
}

// routerFor returns the replica router that serves user id's rows, or nil
// when the store has none (one database, no replicas).
func (s *Store) routerFor(userID int64) *replica.Router {
	if s.shards != nil {
		return s.shards.router.For(userID).DB
	}
	return s.router
}

// replicatedFor returns the replica router whose replicas serve user
// userID's rows (0: the main database's data, products and search), or nil
// when those rows have no replicas, so that read-your-writes tokens and
// cache fills know which primary's WAL position counts.
func (s *Store) replicatedFor(userID int64) *replica.Router {
	if s.shards == nil {
		return s.router
	}
	if userID == 0 {
		return nil // the main database has no replicas when sharded
	}
	m := s.shards.router.Map()
	if len(m.Shards[m.Owner(userID)].Replicas) == 0 {
		return nil
	}
	return s.shards.router.For(userID).DB
}

// pingShards returns nil if at least one shard serves (its primary, or a
// replica for reads), as its router's health checks last saw it.
func (s *Store) pingShards() error {
	for _, t := range s.shards.router.Shards() {
		if t.DB.PrimaryErr() == nil {
			return nil
		}
		for _, st := range t.DB.Status() {
			if st.Serving {
				return nil
			}
		}
	}
	return errors.New("storefront: ping: no shard serves: every shard's primary is down, and no replica serves")
}

// shardedDegraded lists the shards that do not serve, one sentence each.
func (s *Store) shardedDegraded() []string {
	var out []string
	for _, t := range s.shards.router.Shards() {
		if err := t.DB.PrimaryErr(); err != nil {
			serving := false
			for _, st := range t.DB.Status() {
				serving = serving || st.Serving
			}
			what := "its users' requests answer 503"
			if serving {
				what = "writes of its users answer 503, reads go to its replicas"
			}
			out = append(out, "shard "+t.Name+": primary unavailable, "+what+" ("+clipReport(err.Error())+")")
		}
	}
	return out
}
