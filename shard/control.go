package shard

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The control schema, in the main database.
const (
	// ControlSchema holds the shard map (table map, one row) and the
	// instances that follow it (table instances).
	ControlSchema = "strata_shard"
	// MapChannel is the NOTIFY channel on which Publish announces a new
	// map; the payload is the new epoch in decimal.
	MapChannel = "strata_shard_map"
)

// Defaults of FollowConfig.
const (
	// DefaultPoll is how often a Follower reads the map epoch whatever
	// LISTEN says, so a lost notification or a dropped LISTEN connection
	// delays a change by at most this much (issue 13: a change applied
	// within 2 s).
	DefaultPoll = time.Second
	// DefaultHeartbeat is how often a Follower records its applied epoch
	// and that it is alive.
	DefaultHeartbeat = 2 * time.Second
	// DefaultReconnect is the first wait before a lost LISTEN connection
	// is opened again; the wait doubles on each failure up to maxReconnect.
	DefaultReconnect = 250 * time.Millisecond
)

const (
	// maxReconnect caps the LISTEN reconnect backoff.
	maxReconnect = 10 * time.Second
	// opTimeout bounds each control query and each LISTEN connect.
	opTimeout = 5 * time.Second
	// closeTimeout bounds the goodbye on a LISTEN connection being closed.
	closeTimeout = time.Second
	// listenIdle is how long a LISTEN connection may stay silent before it
	// is pinged, so a half-open TCP connection is noticed and replaced.
	listenIdle = 30 * time.Second
	// installLockKey is the transaction-scoped advisory lock that
	// serialises Install across processes ("STRATASH" in ASCII).
	installLockKey = 0x5354524154415348
	// undefinedTable is PostgreSQL's SQLSTATE for a missing relation.
	undefinedTable = "42P01"
)

// ErrNoMap is returned when no map has been published yet (or the control
// schema is not installed).
var ErrNoMap = errors.New("shard: no map published")

// The control schema's statements. The map table holds exactly one row
// (key one = true), created by Install with epoch 0 and no body, so that
// Publish always has a row to lock.
const (
	sqlInstallLock  = `SELECT pg_advisory_xact_lock($1)`
	sqlCreateSchema = `CREATE SCHEMA IF NOT EXISTS strata_shard`
	sqlCreateMap    = `CREATE TABLE IF NOT EXISTS strata_shard.map (
		one boolean PRIMARY KEY DEFAULT true CHECK (one),
		epoch bigint NOT NULL,
		body jsonb,
		changed_at timestamptz NOT NULL DEFAULT now())`
	sqlSeedMap         = `INSERT INTO strata_shard.map (epoch) VALUES (0) ON CONFLICT DO NOTHING`
	sqlCreateInstances = `CREATE TABLE IF NOT EXISTS strata_shard.instances (
		id text PRIMARY KEY,
		host text NOT NULL,
		applied_epoch bigint NOT NULL,
		started_at timestamptz NOT NULL,
		heartbeat_at timestamptz NOT NULL)`

	sqlLoad        = `SELECT epoch, body FROM strata_shard.map`
	sqlLockMap     = `SELECT epoch, body FROM strata_shard.map FOR UPDATE`
	sqlUpdateMap   = `UPDATE strata_shard.map SET epoch = $1, body = $2, changed_at = now()`
	sqlNotify      = `SELECT pg_notify($1, $2)`
	sqlReloadNewer = `SELECT epoch, CASE WHEN epoch > $1 THEN body END FROM strata_shard.map`

	// sqlRegister (re)starts an instance; sqlHeartbeat keeps started_at,
	// and puts the row back if someone deleted it.
	sqlRegister = `INSERT INTO strata_shard.instances (id, host, applied_epoch, started_at, heartbeat_at)
		VALUES ($1, $2, $3, now(), now())
		ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, applied_epoch = EXCLUDED.applied_epoch,
			started_at = now(), heartbeat_at = now()`
	sqlHeartbeat = `INSERT INTO strata_shard.instances (id, host, applied_epoch, started_at, heartbeat_at)
		VALUES ($1, $2, $3, now(), now())
		ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, applied_epoch = EXCLUDED.applied_epoch,
			heartbeat_at = now()`
	sqlDeregister = `DELETE FROM strata_shard.instances WHERE id = $1`
	sqlInstances  = `SELECT id, host, applied_epoch, started_at, heartbeat_at FROM strata_shard.instances
		WHERE $1::float8 <= 0 OR heartbeat_at > now() - make_interval(secs => $1::float8)
		ORDER BY id`
)

// Install creates the control schema and its tables in the main database
// if they do not exist. It is idempotent, and safe when several processes
// run it at once: a transaction-scoped advisory lock serialises them.
func Install(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("shard: install: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if _, err := tx.ExecContext(ctx, sqlInstallLock, int64(installLockKey)); err != nil {
		return fmt.Errorf("shard: install: lock: %w", err)
	}
	for _, q := range [...]string{sqlCreateSchema, sqlCreateMap, sqlSeedMap, sqlCreateInstances, sqlCreateMoves, sqlMoveColumns} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("shard: install: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("shard: install: commit: %w", err)
	}
	return nil
}

// Load reads the current map. It returns ErrNoMap when none has been
// published, and an error wrapping ErrBadMap when the stored map does not
// decode or validate.
func Load(ctx context.Context, db *sql.DB) (*Map, error) {
	var epoch int64
	var body []byte
	err := db.QueryRowContext(ctx, sqlLoad).Scan(&epoch, &body)
	switch {
	case isUndefinedTable(err):
		return nil, fmt.Errorf("%w: the control schema %s is not installed", ErrNoMap, ControlSchema)
	case errors.Is(err, sql.ErrNoRows):
		return nil, ErrNoMap
	case err != nil:
		return nil, fmt.Errorf("shard: load map: %w", err)
	case body == nil:
		return nil, ErrNoMap
	}
	m, err := decodeMap(epoch, body)
	if err != nil {
		return nil, fmt.Errorf("shard: load map at epoch %d: %w", epoch, err)
	}
	return m, nil
}

// Publish makes m the current map, at the stored epoch plus one, and
// returns a copy of it carrying that epoch (m.Epoch is ignored). One
// transaction locks the map row, writes the map and notifies MapChannel, so
// concurrent publishers serialise and each gets an epoch of its own, and
// followers hear of the change only once it is committed. A map that does
// not validate gets an error wrapping ErrBadMap, and nothing is written.
func Publish(ctx context.Context, db *sql.DB, m *Map) (*Map, error) {
	return publish(ctx, db, m, false)
}

// LoadOrPublish returns the current map or, when none has been published
// yet, publishes m as the first one (epoch 1) and returns that. Processes
// starting at once agree: the map row is locked, so exactly one of them
// publishes and the others load its map. A stored map that does not decode
// is an error wrapping ErrBadMap; it is never overwritten.
func LoadOrPublish(ctx context.Context, db *sql.DB, m *Map) (*Map, error) {
	return publish(ctx, db, m, true)
}

func publish(ctx context.Context, db *sql.DB, m *Map, first bool) (*Map, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil map", ErrBadMap)
	}
	// Validate the very bytes that will be stored: the copy Publish
	// returns is decoded from them.
	c := *m
	c.Epoch = 0
	if _, _, err := encodeMap(&c); err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("shard: publish: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var prev int64
	var stored []byte
	switch err := tx.QueryRowContext(ctx, sqlLockMap).Scan(&prev, &stored); {
	case isUndefinedTable(err) || errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("shard: publish: the control schema %s is not installed (Install): %w", ControlSchema, err)
	case err != nil:
		return nil, fmt.Errorf("shard: publish: lock the map: %w", err)
	}
	if first && stored != nil {
		cur, err := decodeMap(prev, stored)
		if err != nil {
			return nil, fmt.Errorf("shard: load map at epoch %d: %w", prev, err)
		}
		return cur, nil
	}
	c.Epoch = prev + 1
	body, out, err := encodeMap(&c)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, sqlUpdateMap, c.Epoch, body); err != nil {
		return nil, fmt.Errorf("shard: publish: write epoch %d: %w", c.Epoch, err)
	}
	if _, err := tx.ExecContext(ctx, sqlNotify, MapChannel, strconv.FormatInt(c.Epoch, 10)); err != nil {
		return nil, fmt.Errorf("shard: publish: notify epoch %d: %w", c.Epoch, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("shard: publish: commit epoch %d: %w", c.Epoch, err)
	}
	return out, nil
}

// AddShard registers s, an empty primary, in the current map: a new map
// at the next epoch names it, and no virtual shard is its yet (a move
// gives it some). A name or URL already in the map is an error wrapping
// ErrBadMap.
func AddShard(ctx context.Context, db *sql.DB, s Shard) (*Map, error) {
	return UpdateMap(ctx, db, func(m *Map) error {
		for _, o := range m.Shards {
			if o.Name == s.Name || o.URL == s.URL {
				return fmt.Errorf("%w: shard %s is in the map already (as %s)", ErrBadMap, s.Name, o.Name)
			}
		}
		m.Shards = append(m.Shards, s)
		return nil
	})
}

// UpdateMap changes the current map with change (given a copy, at the
// stored epoch) and publishes the result at the next epoch, all in one
// transaction under the map row's lock, so no concurrent change is lost.
// An error from change, or a result that does not validate, writes
// nothing.
func UpdateMap(ctx context.Context, db *sql.DB, change func(m *Map) error) (*Map, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("shard: update map: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var epoch int64
	var body []byte
	switch err := tx.QueryRowContext(ctx, sqlLockMap).Scan(&epoch, &body); {
	case isUndefinedTable(err) || errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("%w: the control schema %s is not installed", ErrNoMap, ControlSchema)
	case err != nil:
		return nil, fmt.Errorf("shard: update map: lock the map: %w", err)
	case body == nil:
		return nil, ErrNoMap
	}
	m, err := decodeMap(epoch, body)
	if err != nil {
		return nil, fmt.Errorf("shard: update map at epoch %d: %w", epoch, err)
	}
	if err := change(m); err != nil {
		return nil, err
	}
	m.Epoch = epoch + 1
	text, out, err := encodeMap(m)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, sqlUpdateMap, m.Epoch, text); err != nil {
		return nil, fmt.Errorf("shard: update map: write epoch %d: %w", m.Epoch, err)
	}
	if _, err := tx.ExecContext(ctx, sqlNotify, MapChannel, strconv.FormatInt(m.Epoch, 10)); err != nil {
		return nil, fmt.Errorf("shard: update map: notify epoch %d: %w", m.Epoch, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("shard: update map: commit epoch %d: %w", m.Epoch, err)
	}
	return out, nil
}

// encodeMap returns m as stored (JSON text) and decoded back from it.
func encodeMap(m *Map) (string, *Map, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrBadMap, err)
	}
	out, err := decodeMap(m.Epoch, body)
	return string(body), out, err
}

// decodeMap decodes a stored map; the epoch column is authoritative.
func decodeMap(epoch int64, body []byte) (*Map, error) {
	m := new(Map)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMap, err)
	}
	m.Epoch = epoch
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == undefinedTable
}

// Instance is a service instance following the map, as its last heartbeat
// recorded it.
type Instance struct {
	// ID names the instance (FollowConfig.ID).
	ID string
	// Host is the instance's host name.
	Host string
	// AppliedEpoch is the epoch of the map the instance routes with.
	AppliedEpoch int64
	// StartedAt is when the instance started following, by the database's
	// clock.
	StartedAt time.Time
	// HeartbeatAt is the instance's last heartbeat, by the database's clock.
	HeartbeatAt time.Time
}

// Instances lists, by ID, the instances whose last heartbeat is at most
// liveWithin old by the database's clock (so instances' clocks need not
// agree); liveWithin <= 0 lists every instance ever registered. A few
// heartbeat intervals (3 × DefaultHeartbeat, say) tell a live instance from
// a dead one; a cutover waits until every live instance has applied an
// epoch.
func Instances(ctx context.Context, db *sql.DB, liveWithin time.Duration) ([]Instance, error) {
	rows, err := db.QueryContext(ctx, sqlInstances, liveWithin.Seconds())
	if err != nil {
		return nil, fmt.Errorf("shard: instances: %w", err)
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		var in Instance
		if err := rows.Scan(&in.ID, &in.Host, &in.AppliedEpoch, &in.StartedAt, &in.HeartbeatAt); err != nil {
			return nil, fmt.Errorf("shard: instances: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("shard: instances: %w", err)
	}
	return out, nil
}

// FollowConfig configures a Follower. The zero value means the defaults.
type FollowConfig struct {
	// ID names this instance in the instances table; "" means a random id.
	ID string
	// OnChange, if set, is called with the map loaded at start (from
	// Follow, with its ctx; an error fails Follow), then with the newest
	// map each time a newer epoch is found: one call at a time, in
	// increasing epoch order, from the follower's goroutine, with a
	// context cancelled by Close or after 5 s. Epochs published in quick
	// succession may be skipped: only the newest is offered, so a
	// coordinator that needs every instance on epoch N waits for it (see
	// Instances) before it publishes N+1.
	// The map is shared and must not be modified. An epoch counts as
	// applied (Current, the heartbeat) once OnChange has returned nil for
	// it; after an error the same map is offered again at the next poll or
	// notification. A router built from the first map applies the others:
	//
	//	OnChange: func(ctx context.Context, m *shard.Map) (err error) {
	//		if r == nil {
	//			r, err = shard.New(ctx, m, rcfg)
	//			return err
	//		}
	//		return r.Apply(ctx, m)
	//	}
	OnChange func(ctx context.Context, m *Map) error
	// Poll is how often the map epoch is read whatever LISTEN says;
	// 0 means DefaultPoll.
	Poll time.Duration
	// Heartbeat is how often the instance records its applied epoch;
	// 0 means DefaultHeartbeat. A newly applied epoch is recorded at once.
	Heartbeat time.Duration
	// Reconnect is the first wait before a lost LISTEN connection is
	// opened again, doubled on each failure up to 10 s; 0 means
	// DefaultReconnect.
	Reconnect time.Duration
	// Logger receives what the follower cannot return: failed reloads,
	// heartbeats and LISTEN connections (once per failure streak, and on
	// recovery), and applied maps. Nil means slog.Default().
	Logger *slog.Logger
}

func (c *FollowConfig) setDefaults() error {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Poll", &c.Poll, DefaultPoll},
		{"Heartbeat", &c.Heartbeat, DefaultHeartbeat},
		{"Reconnect", &c.Reconnect, DefaultReconnect},
	} {
		if *d.v < 0 {
			return fmt.Errorf("shard: FollowConfig.%s is negative (%v)", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.ID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		c.ID = hex.EncodeToString(b[:])
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Stats is a snapshot of a Follower's counters; counts are since Follow.
type Stats struct {
	// AppliedEpoch is the epoch of the map Current returns.
	AppliedEpoch int64
	// Applied counts maps applied (OnChange returned nil), the initial
	// one included.
	Applied int64
	// ApplyErrors counts maps OnChange returned an error for.
	ApplyErrors int64
	// Reloads counts reads of the map row after start, whatever started
	// them (poll, notification, new LISTEN connection).
	Reloads int64
	// ReloadErrors counts reloads that failed, found a map that does not
	// decode or validate, or found an epoch older than the applied one.
	ReloadErrors int64
	// Polls counts reloads started by the poll timer.
	Polls int64
	// Notifications counts notifications received on MapChannel.
	Notifications int64
	// ListenConnects counts LISTEN connections established (1 plus
	// reconnects).
	ListenConnects int64
	// ListenErrors counts LISTEN connections that failed to open or were
	// lost.
	ListenErrors int64
	// Listening reports whether a LISTEN connection is open now.
	Listening bool
	// Heartbeats counts writes of the instance row, registration included.
	Heartbeats int64
	// HeartbeatErrors counts failed writes of the instance row after
	// registration.
	HeartbeatErrors int64
}

// Follower keeps an instance's shard map current: it loads the map at
// start, then follows changes by LISTEN on MapChannel and by polling, and
// records the applied epoch with a heartbeat in the instances table. Its
// methods are safe for concurrent use.
type Follower struct {
	db     *sql.DB
	listen *pgx.ConnConfig // nil: poll only
	cfg    FollowConfig
	host   string

	cur  atomic.Pointer[Map]
	wake chan struct{} // capacity 1: a reload is wanted; sends never block, so wakes coalesce

	ctx       context.Context // cancelled by Close
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	// Failure streaks, for logging once per streak; each is owned by one
	// goroutine (run, run, listenLoop).
	reloadFailing, beatFailing, listenFailing bool

	reloads, reloadErrors, applyErrors, polls, notifications, applied atomic.Int64
	listenConnects, listenErrors, heartbeats, beatErrors              atomic.Int64
	listening                                                         atomic.Bool
}

// Follow loads the current map (ErrNoMap if there is none), registers the
// instance and follows changes until Close. url is the main database's URL
// for a dedicated LISTEN connection; "" follows by polling only. ctx
// bounds the start only: the follower runs until Close. The database
// handle must stay open until Close.
func Follow(ctx context.Context, db *sql.DB, url string, cfg FollowConfig) (*Follower, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	f := &Follower{db: db, cfg: cfg, wake: make(chan struct{}, 1)}
	if url != "" {
		lc, err := pgx.ParseConfig(url)
		if err != nil {
			return nil, fmt.Errorf("shard: follow: LISTEN URL: %w", err)
		}
		lc.RuntimeParams["application_name"] = listenAppName(cfg.ID)
		f.listen = lc
	}
	f.host, _ = os.Hostname() // "" if unknown
	// Registered before the map is read, as having applied no epoch: a
	// cutover that fences after this waits for the instance (it reads the
	// fence or a later map), and one that fenced before it is in the map
	// read below. Registered after, an instance could read the map before
	// a fence, escape a cutover's wait, and write to the old owner after
	// the flip.
	if _, err := db.ExecContext(ctx, sqlRegister, cfg.ID, f.host, 0); err != nil {
		return nil, fmt.Errorf("shard: follow: register instance %s: %w", cfg.ID, err)
	}
	m, err := f.start(ctx)
	if err != nil {
		f.deregister()
		return nil, err
	}
	if _, err := db.ExecContext(ctx, sqlHeartbeat, cfg.ID, f.host, m.Epoch); err != nil {
		f.deregister()
		return nil, fmt.Errorf("shard: follow: register instance %s: %w", cfg.ID, err)
	}
	f.heartbeats.Add(1)
	f.ctx, f.stop = context.WithCancel(context.Background())
	if f.listen != nil {
		f.wg.Go(f.listenLoop)
	}
	f.wg.Go(f.run)
	return f, nil
}

// start reads the map and applies it (OnChange).
func (f *Follower) start(ctx context.Context) (*Map, error) {
	m, err := Load(ctx, f.db)
	if err != nil {
		return nil, err
	}
	if f.cfg.OnChange != nil {
		if err := f.cfg.OnChange(ctx, m); err != nil {
			return nil, fmt.Errorf("shard: follow: apply epoch %d: %w", m.Epoch, err)
		}
	}
	f.cur.Store(m)
	f.applied.Add(1)
	return m, nil
}

// deregister removes the instance's row (best effort: a row left ages
// out by its heartbeat).
func (f *Follower) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_, _ = f.db.ExecContext(ctx, sqlDeregister, f.cfg.ID)
}

// listenAppName is the application_name of a follower's LISTEN connection,
// so that pg_stat_activity shows whose it is.
func listenAppName(id string) string { return "strata_shard follower " + id }

// ID returns the instance's id in the instances table.
func (f *Follower) ID() string { return f.cfg.ID }

// Current returns the applied map: the newest one OnChange has returned
// nil for. It never goes back to an older epoch. The map must not be modified.
func (f *Follower) Current() *Map { return f.cur.Load() }

// Stats returns a snapshot of the follower's counters.
func (f *Follower) Stats() Stats {
	return Stats{
		AppliedEpoch:    f.cur.Load().Epoch,
		Applied:         f.applied.Load(),
		ApplyErrors:     f.applyErrors.Load(),
		Reloads:         f.reloads.Load(),
		ReloadErrors:    f.reloadErrors.Load(),
		Polls:           f.polls.Load(),
		Notifications:   f.notifications.Load(),
		ListenConnects:  f.listenConnects.Load(),
		ListenErrors:    f.listenErrors.Load(),
		Listening:       f.listening.Load(),
		Heartbeats:      f.heartbeats.Load(),
		HeartbeatErrors: f.beatErrors.Load(),
	}
}

// Close stops following, waits for the follower's goroutines to end and
// removes the instance from the instances table (a crashed instance's row
// stays, and ages out of Instances by its heartbeat). Close is
// idempotent; its error says only that the row could not be removed.
func (f *Follower) Close() error {
	var err error
	f.closeOnce.Do(func() {
		f.stop()
		f.wg.Wait()
		// Leave the instances table, so that nobody waits for (or counts)
		// an instance that has stopped; a crash leaves the row, which
		// ages out by its heartbeat.
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if _, derr := f.db.ExecContext(ctx, sqlDeregister, f.cfg.ID); derr != nil {
			err = fmt.Errorf("shard: follow: deregister instance %s: %w", f.cfg.ID, derr)
		}
	})
	return err
}

// signal asks run for a reload.
func (f *Follower) signal() {
	select {
	case f.wake <- struct{}{}:
	default: // one is pending already
	}
}

// run reloads on each poll tick and each wake, and heartbeats, until Close.
// Reloads and heartbeats happen on this goroutine only, so maps are applied
// one at a time and in order.
func (f *Follower) run() {
	poll := time.NewTicker(f.cfg.Poll)
	defer poll.Stop()
	beat := time.NewTicker(f.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-poll.C:
			f.polls.Add(1)
			f.reload()
		case <-f.wake:
			f.reload()
		case <-beat.C:
			f.heartbeat()
		}
	}
}

// reload reads the map row, with its body only when the epoch is newer,
// and applies a newer map.
func (f *Follower) reload() {
	f.reloads.Add(1)
	cur := f.cur.Load()
	ctx, cancel := context.WithTimeout(f.ctx, opTimeout)
	defer cancel()
	var epoch int64
	var body []byte
	var m *Map
	err := f.db.QueryRowContext(ctx, sqlReloadNewer, cur.Epoch).Scan(&epoch, &body)
	switch {
	case err != nil:
		err = fmt.Errorf("shard: reload map: %w", err)
	case epoch < cur.Epoch:
		err = fmt.Errorf("shard: reload map: the stored epoch %d is older than the applied %d; keeping the applied map", epoch, cur.Epoch)
	case epoch > cur.Epoch:
		if m, err = decodeMap(epoch, body); err != nil {
			err = fmt.Errorf("shard: reload map at epoch %d: %w", epoch, err)
		}
	}
	if err != nil {
		if f.ctx.Err() != nil {
			return // closing
		}
		f.reloadErrors.Add(1)
		if !f.reloadFailing {
			f.cfg.Logger.Warn("shard: map reload failed; routing with the applied map", "applied_epoch", cur.Epoch, "err", err)
		}
		f.reloadFailing = true
		return
	}
	if f.reloadFailing {
		f.cfg.Logger.Info("shard: map reload works again", "stored_epoch", epoch)
		f.reloadFailing = false
	}
	if m != nil && f.offer(m) {
		f.cur.Store(m)
		f.applied.Add(1)
		f.cfg.Logger.Info("shard: map applied", "epoch", m.Epoch, "previous_epoch", cur.Epoch)
		f.heartbeat() // a cutover waits for this
	}
}

// offer hands m to OnChange and reports whether it was applied.
func (f *Follower) offer(m *Map) bool {
	if f.cfg.OnChange == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(f.ctx, opTimeout)
	defer cancel()
	err := f.cfg.OnChange(ctx, m)
	if err == nil {
		return true
	}
	if f.ctx.Err() == nil {
		f.applyErrors.Add(1)
		f.cfg.Logger.Warn("shard: map not applied; it is offered again at the next poll or notification",
			"epoch", m.Epoch, "applied_epoch", f.cur.Load().Epoch, "err", err)
	}
	return false
}

// heartbeat records the applied epoch and that the instance is alive.
func (f *Follower) heartbeat() {
	ctx, cancel := context.WithTimeout(f.ctx, opTimeout)
	defer cancel()
	_, err := f.db.ExecContext(ctx, sqlHeartbeat, f.cfg.ID, f.host, f.cur.Load().Epoch)
	if err != nil {
		if f.ctx.Err() != nil {
			return // closing
		}
		f.beatErrors.Add(1)
		if !f.beatFailing {
			f.cfg.Logger.Warn("shard: instance heartbeat failed", "id", f.cfg.ID, "err", err)
		}
		f.beatFailing = true
		return
	}
	f.heartbeats.Add(1)
	if f.beatFailing {
		f.cfg.Logger.Info("shard: instance heartbeat works again", "id", f.cfg.ID)
		f.beatFailing = false
	}
}

// listenLoop keeps a LISTEN connection open until Close, reopening it
// with jittered exponential backoff. Polling covers the gaps.
func (f *Follower) listenLoop() {
	wait := f.cfg.Reconnect
	for {
		connected, err := f.listenOnce()
		if f.ctx.Err() != nil {
			return
		}
		f.listenErrors.Add(1)
		if connected {
			wait = f.cfg.Reconnect
		}
		if !f.listenFailing {
			f.cfg.Logger.Warn("shard: LISTEN connection failed; following by polling until it is back",
				"channel", MapChannel, "poll", f.cfg.Poll, "err", err)
		}
		f.listenFailing = true
		t := time.NewTimer(jitter(wait))
		select {
		case <-f.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxReconnect)
	}
}

// jitter returns a wait between d/2 and d, so that instances that lost
// their connections together do not reconnect together.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + mrand.N(d/2)
}

// listenOnce opens a LISTEN connection and waits for notifications on it
// until it fails or Close; connected reports whether LISTEN succeeded.
func (f *Follower) listenOnce() (connected bool, err error) {
	ctx, cancel := context.WithTimeout(f.ctx, opTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, f.listen)
	if err != nil {
		return false, fmt.Errorf("shard: LISTEN connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{MapChannel}.Sanitize()); err != nil {
		return false, fmt.Errorf("shard: LISTEN: %w", err)
	}
	f.listenConnects.Add(1)
	f.listening.Store(true)
	defer f.listening.Store(false)
	if f.listenFailing {
		f.cfg.Logger.Info("shard: LISTEN connection back", "channel", MapChannel)
		f.listenFailing = false
	}
	// A change may have been published while nobody listened (before the
	// first connection, or between two).
	f.signal()
	for {
		wctx, cancel := context.WithTimeout(f.ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		idle := wctx.Err() != nil
		cancel()
		switch {
		case f.ctx.Err() != nil:
			return true, nil
		case err == nil:
			f.notifications.Add(1)
			if e, perr := strconv.ParseInt(n.Payload, 10, 64); perr != nil || e > f.cur.Load().Epoch {
				f.signal()
			}
		case idle && !conn.IsClosed():
			// Silent for listenIdle: make sure the server is still there.
			pctx, cancel := context.WithTimeout(f.ctx, opTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && f.ctx.Err() == nil {
				return true, fmt.Errorf("shard: LISTEN connection ping: %w", err)
			}
		default:
			return true, fmt.Errorf("shard: LISTEN connection: %w", err)
		}
	}
}
