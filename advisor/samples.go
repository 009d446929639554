package advisor

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A service can record samples of its own queries with their real
// arguments (a Sampler), and the advisor then binds a normalised
// statement's parameters from them rather than from pg_stats: the values
// the service really sends, and the constants its text holds (which
// pg_stat_statements replaces with $n too), so that a constant predicate
// such as status = 'pending' becomes a partial index's WHERE.

// SamplesTable is the table a Sampler writes and the advisor reads: the
// latest arguments of each query text.
const SamplesTable = "strata_query_samples"

// samplesDDL creates SamplesTable.
const samplesDDL = `CREATE TABLE IF NOT EXISTS ` + SamplesTable + ` (
	query      text        PRIMARY KEY,
	params     text[]      NOT NULL,
	sampled_at timestamptz NOT NULL
)`

// DefaultSampleEvery is how often a Sampler records each query text at
// most, when SamplerConfig.Every is zero.
const DefaultSampleEvery = time.Minute

// DefaultSampleQueue is how many samples wait to be written, at most,
// when SamplerConfig.Queue is zero; past it samples are dropped.
const DefaultSampleQueue = 256

// SamplerConfig tunes a Sampler. The zero value means the defaults.
type SamplerConfig struct {
	// Every is the least time between two samples of one query text
	// (default DefaultSampleEvery).
	Every time.Duration
	// Queue bounds the samples waiting to be written (default
	// DefaultSampleQueue).
	Queue int
	// Logger receives write errors (default slog.Default()).
	Logger *slog.Logger
}

// Sampler records samples of a service's queries into SamplesTable, in
// the background: Record never blocks and never fails the caller's query.
// It is safe for concurrent use.
type Sampler struct {
	db      *sql.DB
	cfg     SamplerConfig
	mu      sync.Mutex
	last    map[string]time.Time // query text → when last sampled
	queue   chan sample
	dropped atomic.Int64
	done    chan struct{}
	stop    sync.Once
}

type sample struct {
	query  string
	params []string
}

// NewSampler creates SamplesTable if needed and starts the writer. Close
// stops it.
func NewSampler(ctx context.Context, db *sql.DB, cfg SamplerConfig) (*Sampler, error) {
	if cfg.Every < 0 || cfg.Queue < 0 {
		return nil, fmt.Errorf("advisor: sampler: Every (%v) and Queue (%d) must not be negative", cfg.Every, cfg.Queue)
	}
	if cfg.Every == 0 {
		cfg.Every = DefaultSampleEvery
	}
	if cfg.Queue == 0 {
		cfg.Queue = DefaultSampleQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if _, err := db.ExecContext(ctx, samplesDDL); err != nil {
		return nil, fmt.Errorf("advisor: sampler: create %s: %w", SamplesTable, err)
	}
	s := &Sampler{db: db, cfg: cfg, last: map[string]time.Time{}, queue: make(chan sample, cfg.Queue), done: make(chan struct{})}
	go s.write()
	return s, nil
}

// Record samples a query and its arguments, at most once per
// SamplerConfig.Every for each text. Arguments it cannot spell as
// PostgreSQL text (a []byte, a nil) make the sample unusable, so it is
// not recorded.
func (s *Sampler) Record(query string, args ...any) {
	now := time.Now()
	s.mu.Lock()
	if t, ok := s.last[query]; ok && now.Sub(t) < s.cfg.Every {
		s.mu.Unlock()
		return
	}
	s.last[query] = now
	s.mu.Unlock()
	params := make([]string, len(args))
	for i, a := range args {
		v, ok := paramText(a)
		if !ok {
			return
		}
		params[i] = v
	}
	select {
	case s.queue <- sample{query, params}:
	default:
		s.dropped.Add(1)
	}
}

// Dropped is how many samples were dropped because the queue was full.
func (s *Sampler) Dropped() int64 { return s.dropped.Load() }

// Close writes the samples queued and stops the writer. It is idempotent.
func (s *Sampler) Close() error {
	s.stop.Do(func() { close(s.queue) })
	<-s.done
	return nil
}

// sampleWriteTimeout bounds one sample's write.
const sampleWriteTimeout = 5 * time.Second

func (s *Sampler) write() {
	defer close(s.done)
	const upsert = `INSERT INTO ` + SamplesTable + ` (query, params, sampled_at) VALUES ($1, $2, now())
		ON CONFLICT (query) DO UPDATE SET params = excluded.params, sampled_at = excluded.sampled_at`
	for smp := range s.queue {
		ctx, cancel := context.WithTimeout(context.Background(), sampleWriteTimeout)
		_, err := s.db.ExecContext(ctx, upsert, smp.query, smp.params)
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("advisor: sampler: write a sample", "err", err)
		}
	}
}

// paramText spells an argument as PostgreSQL's text input would read it.
func paramText(a any) (string, bool) {
	switch v := a.(type) {
	case string:
		return v, true
	case int:
		return strconv.Itoa(v), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	case time.Time:
		return v.Format(time.RFC3339Nano), true
	case []int64:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = strconv.FormatInt(x, 10)
		}
		return "{" + strings.Join(parts, ",") + "}", true
	case []string:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(x) + `"`
		}
		return "{" + strings.Join(parts, ",") + "}", true
	case fmt.Stringer:
		return v.String(), true
	}
	return "", false
}

// slot is one placeholder of a statement's shape: a parameter ($n) or,
// in a recorded text, a literal constant.
type slot struct {
	param   int    // n of $n, or 0 for a literal
	literal string // the literal's value (unquoted)
}

// shape reduces a statement to the text pg_stat_statements would keep for
// it, with every parameter and constant as "?", and the placeholders in
// order. A recorded query and pg_stat_statements' entry for it have the
// same shape; the slots then pair up position by position.
func shape(text string) (string, []slot) {
	var b strings.Builder
	var slots []slot
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\'':
			j := skipQuoted(text, i)
			if j <= i || text[j] != '\'' { // unterminated: the rest is the literal
				j = len(text)
			}
			slots = append(slots, slot{literal: strings.ReplaceAll(text[i+1:j], "''", "'")})
			b.WriteByte('?')
			i = j + 1
		case c == '$' && i+1 < len(text) && isDigit(text[i+1]):
			j := i + 1
			for j < len(text) && isDigit(text[j]) {
				j++
			}
			n, _ := strconv.Atoi(text[i+1 : j])
			slots = append(slots, slot{param: n})
			b.WriteByte('?')
			i = j
		case isDigit(c) && (i == 0 || !isIdentByte(text[i-1])):
			j := i
			for j < len(text) && (isDigit(text[j]) || text[j] == '.') {
				j++
			}
			if j < len(text) && isIdentByte(text[j]) { // part of a word after all
				b.WriteString(text[i:j])
				i = j
				continue
			}
			slots = append(slots, slot{literal: text[i:j]})
			b.WriteByte('?')
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), slots
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// samples is the recorded samples by shape: the slots' values, and which
// of them were constants in the service's text.
type samples map[string]struct {
	values []string
	consts []bool
}

// loadSamples reads SamplesTable, if the database has one.
func loadSamples(ctx context.Context, db querier, cat *Catalog) (samples, error) {
	if cat.Table(SamplesTable) == nil {
		return nil, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT query, params::text FROM `+SamplesTable)
	if err != nil {
		return nil, fmt.Errorf("advisor: read %s: %w", SamplesTable, err)
	}
	out := samples{}
	for rows.Next() {
		var text, params string
		if err := rows.Scan(&text, &params); err != nil {
			rows.Close()
			return nil, fmt.Errorf("advisor: read %s: %w", SamplesTable, err)
		}
		args := parseArray(params)
		key, slots := shape(text)
		e := out[key]
		e.values, e.consts = make([]string, len(slots)), make([]bool, len(slots))
		ok := true
		for i, sl := range slots {
			switch {
			case sl.param == 0:
				e.values[i], e.consts[i] = sl.literal, true
			case sl.param <= len(args):
				e.values[i] = args[sl.param-1]
			default:
				ok = false
			}
		}
		if ok {
			out[key] = e
		}
	}
	return out, closeRows(rows, "read "+SamplesTable)
}

// bind returns values for the n parameters of a pg_stat_statements text
// from a matching sample, and the constants the service's text held, by
// parameter number; ok is false without a match.
func (ss samples) bind(text string, n int) (vals []string, consts map[int]string, ok bool) {
	key, slots := shape(text)
	e, found := ss[key]
	if !found || len(e.values) != len(slots) {
		return nil, nil, false
	}
	vals = make([]string, n)
	set := make([]bool, n)
	consts = map[int]string{}
	for i, sl := range slots {
		if sl.param < 1 || sl.param > n {
			return nil, nil, false
		}
		vals[sl.param-1], set[sl.param-1] = e.values[i], true
		if e.consts[i] {
			consts[sl.param] = e.values[i]
		}
	}
	for _, s := range set {
		if !s {
			return nil, nil, false
		}
	}
	return vals, consts, true
}
