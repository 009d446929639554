package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/database"
)

// Pool defaults. The primary's size, overflow and recycle are the ones
// package database uses for a single primary; the rest are the guide's.
const (
	PrimaryAcquireTimeout = 500 * time.Millisecond // guide, Connection Pooling: primary pool acquire 0.5 s
	ReplicaPoolSize       = 30                     // guide, Connection Pooling: replica pool_size 30
	ReplicaMaxOverflow    = 10                     // guide, Connection Pooling: replica max_overflow 10
	ReplicaRecycle        = 30 * time.Minute       // guide, Connection Pooling: replica pool_recycle 1800 s
	ReplicaAcquireTimeout = 100 * time.Millisecond // guide, Connection Pooling: replica acquire 0.1 s (fast fail)
)

// maxReplicas bounds Config.Replicas: a read's tried set is a 64-bit mask.
const maxReplicas = 64

// Router defaults that the guide leaves open.
const (
	DefaultLagBound      = time.Second            // Strata: a replica further behind than this gets no reads
	DefaultCheckInterval = 500 * time.Millisecond // Strata: active health and lag check period
	DefaultFallbackShare = 0.5                    // Strata: at most half of the reads of a second may fall back to the primary
	DefaultFreshWait     = 100 * time.Millisecond // Strata: how long a read-your-writes read waits for a replica to catch up
	// DefaultPrimaryLatencyBound: guide, Monitoring: query time p95 warning at 100 ms.
	DefaultPrimaryLatencyBound = 100 * time.Millisecond
	readmitChecks              = 2                    // consecutive good checks before a replica gets reads again
	latencyWeight              = 0.1                  // weight of the newest sample in the latency moving average
	latencyEdge                = 0.5                  // a replica is faster only at under half the other's latency
	fallbackWindow             = time.Second          // the window the fallback share is measured over
	freshPoll                  = 2 * time.Millisecond // how often a read-your-writes read re-reads the replay position
	primaryBusyShare           = 0.75                 // guide, Monitoring: pool utilisation warning at 75 %; past it the primary is under pressure
	latencyBusyShare           = primaryBusyShare / 3 // the primary's latency counts as pressure only while this share of its pool (25 %) is in use
	markTTLFactor              = 3                    // default MarkTTL in LagBounds, unless LagBound + CheckInterval + FreshWait is longer
	primaryProbes              = 4                    // probes of a primary known to be down per CheckInterval
	openCheckTimeout           = 5 * time.Second      // Open's wait for each server's identity and first check (database.DefaultConnectTimeout)
)

// ErrBadConfig is returned (wrapped) for a configuration the router cannot
// use; the message names the field.
var ErrBadConfig = errors.New("replica: bad config")

// Pool sizes one database/sql pool. database/sql has no overflow: the pool
// may open Size+Overflow connections (SetMaxOpenConns) and keeps Size of
// them idle (SetMaxIdleConns), so the overflow connections are closed when
// they fall idle, as the guide's overflow is. Recycle is
// SetConnMaxLifetime. AcquireTimeout is enforced by the router, which
// bounds the wait for a connection (not the query) with it.
type Pool struct {
	Size, Overflow int
	Recycle        time.Duration
	AcquireTimeout time.Duration
}

// Replica names one replica.
type Replica struct {
	// URL is its postgres:// URL.
	URL string
	// Name labels it in metrics and status; default "replica<N>" (from 1).
	Name string
	// Region is an optional label; reads prefer replicas in Config.Region
	// while one of them is healthy.
	Region string
}

// Config configures a Router. The zero value of every field but Primary
// means the default documented on it.
type Config struct {
	// Primary is the primary's postgres:// URL (required).
	Primary string
	// Replicas may be empty: every read then goes to the primary.
	Replicas []Replica
	// Region is this instance's region; "" means no preference.
	Region string

	// PrimaryPool defaults to size 50, overflow 20, recycle 1 h, acquire
	// 0.5 s; ReplicaPool to 30, 10, 30 min and 0.1 s (the guide's).
	PrimaryPool, ReplicaPool Pool

	// LagBound: a replica further behind the primary than this is ejected,
	// and re-admitted once it is within half of it again. Default 1 s.
	LagBound time.Duration
	// CheckInterval is the period of the active health and lag check.
	// Default 500 ms.
	CheckInterval time.Duration
	// FallbackShare caps the share of reads, over each second, that may
	// fall back to the primary because no replica could serve them, while
	// the primary is under pressure: while it has headroom every such read
	// falls back. Past the cap such reads fail with ErrFallbackCapped.
	// Default 0.5; 1 lets every read fall back; a negative value lets none,
	// whatever the primary's load.
	FallbackShare float64
	// PrimaryLatencyBound: the primary is under pressure while 75 % or
	// more of its pool (size + overflow) is in use, or while the moving
	// average of its call time is past this bound and 25 % or more of its
	// pool is in use (a slow primary this router hardly uses is not one
	// its fallback reads overload). Default 100 ms; negative means only
	// the pool counts.
	PrimaryLatencyBound time.Duration
	// FreshWait is how long a read carrying a write's token waits for a
	// replica to replay it before it reads from the primary. Default 100 ms.
	FreshWait time.Duration

	// Marks keeps the per-key write marks of WithKeys; nil means a
	// MemMarks of DefaultMaxMarks entries, private to this router. Share
	// one implementation between routers (instances) to give
	// read-your-writes per key across them.
	Marks KeyMarks
	// MarkTTL is how long a key's mark is kept after a write. It must be
	// at least LagBound + CheckInterval + FreshWait: a replica still
	// serving may be LagBound plus a check behind, and a read naming the
	// key may then wait FreshWait for it. Default 3 × LagBound, or that
	// sum when it is longer.
	MarkTTL time.Duration

	// Hedge turns on hedged reads and tunes them; the zero value leaves
	// them off. See the package doc.
	Hedge Hedge

	// Registerer receives the router's metrics; nil means none. Close
	// unregisters them.
	Registerer prometheus.Registerer
	// Logger receives ejections, re-admissions and, at Open, replicas that
	// do not answer; nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, makes spans under a caller's span (see
	// trace.go): replica.Read with the pool chosen and why it fell back,
	// replica.token_wait, replica.Write, replica.Position, and one span
	// per SQL statement. Nil means off.
	TracerProvider trace.TracerProvider

	clock clock // nil: the wall clock; tests set a fake one
}

func (c *Config) resolve() error {
	if c.Primary == "" {
		return fmt.Errorf("%w: Primary: empty (want a postgres:// URL)", ErrBadConfig)
	}
	if err := c.PrimaryPool.resolve("PrimaryPool", database.PrimaryPoolSize, database.PrimaryMaxOverflow, database.PrimaryRecycle, PrimaryAcquireTimeout); err != nil {
		return err
	}
	if err := c.ReplicaPool.resolve("ReplicaPool", ReplicaPoolSize, ReplicaMaxOverflow, ReplicaRecycle, ReplicaAcquireTimeout); err != nil {
		return err
	}
	if err := c.resolveTimes(); err != nil {
		return err
	}
	switch {
	case c.FallbackShare == 0:
		c.FallbackShare = DefaultFallbackShare
	case c.FallbackShare > 1:
		return fmt.Errorf("%w: FallbackShare: %v is more than 1", ErrBadConfig, c.FallbackShare)
	}
	if err := c.resolveReplicas(); err != nil {
		return err
	}
	if err := c.Hedge.resolve(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.Marks == nil {
		c.Marks = newMemMarks(DefaultMaxMarks, c.clock)
	}
	return nil
}

// resolve applies a pool's defaults and refuses negative values.
func (p *Pool) resolve(name string, size, overflow int, recycle, acquire time.Duration) error {
	if p.Size < 0 || p.Overflow < 0 || p.Recycle < 0 || p.AcquireTimeout < 0 {
		return fmt.Errorf("%w: %s: negative size, overflow or duration", ErrBadConfig, name)
	}
	if p.Size == 0 {
		p.Size = size
	}
	if p.Overflow == 0 {
		p.Overflow = overflow
	}
	if p.Recycle == 0 {
		p.Recycle = recycle
	}
	if p.AcquireTimeout == 0 {
		p.AcquireTimeout = acquire
	}
	return nil
}

// resolveTimes applies the durations' defaults and checks how they relate.
func (c *Config) resolveTimes() error {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"LagBound", &c.LagBound, DefaultLagBound}, {"CheckInterval", &c.CheckInterval, DefaultCheckInterval},
		{"FreshWait", &c.FreshWait, DefaultFreshWait}, {"MarkTTL", &c.MarkTTL, -1}} {
		if *d.v < 0 {
			return fmt.Errorf("%w: %s: negative (%v)", ErrBadConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	// A serving replica may be LagBound plus a check behind, and a read
	// naming a key waits up to FreshWait for it: a mark must outlive both.
	minTTL := c.LagBound + c.CheckInterval + c.FreshWait
	if c.MarkTTL < 0 { // its default depends on the others
		c.MarkTTL = max(markTTLFactor*c.LagBound, minTTL)
	}
	if c.CheckInterval >= c.LagBound {
		return fmt.Errorf("%w: CheckInterval (%v) must be shorter than LagBound (%v), or lag past the bound goes unseen", ErrBadConfig, c.CheckInterval, c.LagBound)
	}
	if c.MarkTTL < minTTL {
		return fmt.Errorf("%w: MarkTTL (%v) must be at least LagBound + CheckInterval + FreshWait (%v + %v + %v = %v): a key's mark must outlive the lag a serving replica may have, a check, and a read's wait for it",
			ErrBadConfig, c.MarkTTL, c.LagBound, c.CheckInterval, c.FreshWait, minTTL)
	}
	if c.PrimaryLatencyBound == 0 {
		c.PrimaryLatencyBound = DefaultPrimaryLatencyBound
	}
	return nil
}

// resolveReplicas names the replicas and refuses empty URLs and taken names.
func (c *Config) resolveReplicas() error {
	if len(c.Replicas) > maxReplicas {
		return fmt.Errorf("%w: Replicas: %d; at most %d", ErrBadConfig, len(c.Replicas), maxReplicas)
	}
	seen := map[string]bool{}
	for i := range c.Replicas {
		r := &c.Replicas[i]
		if r.URL == "" {
			return fmt.Errorf("%w: Replicas[%d].URL: empty", ErrBadConfig, i)
		}
		if r.Name == "" {
			r.Name = fmt.Sprintf("replica%d", i+1)
		}
		if r.Name == "primary" || seen[r.Name] {
			return fmt.Errorf("%w: Replicas[%d].Name: %q is taken", ErrBadConfig, i, r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}
