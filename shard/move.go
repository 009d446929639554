package shard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Moving virtual shards between primaries (online resharding) is built
// from the pieces in this file and in preflight.go (checks before anything
// changes), verify.go (row-by-row comparison of source and target) and the
// mover. A move takes a range of virtual shards of a hash map from the
// shard that owns them to another one, table by table; every moving table
// is sharded by a bigint key column whose virtual shard is VirtualShardSQL
// of it.

// ErrBadMove is returned for a move that cannot be made as asked: an empty
// or out-of-range virtual-shard range, an unknown or identical target, no
// tables.
var ErrBadMove = errors.New("shard: bad move")

// Table is a table sharded by Key, a bigint column: a row lives on the
// shard that owns VirtualShard(Key). A move copies the rows of its virtual
// shards, with every column.
type Table struct {
	// Name is the table's name, unqualified (it is looked up in the
	// search_path of the connections, as the service's queries do).
	Name string `json:"name"`
	// Key is the shard-key column.
	Key string `json:"key"`
}

// VRange is an inclusive range of virtual shards, Lo to Hi.
type VRange struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

// ParseVRange reads "LO-HI" (or a single "N") as an inclusive range of
// virtual shards of a keyspace of n, checking both ends are in [0, n) and
// LO <= HI.
func ParseVRange(s string, n int) (VRange, error) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		hi = lo
	}
	a, errA := strconv.Atoi(lo)
	b, errB := strconv.Atoi(hi)
	if errA != nil || errB != nil {
		return VRange{}, fmt.Errorf("%w: virtual shards %s: want LO-HI, two whole numbers", ErrBadMove, strconv.Quote(clipText(s)))
	}
	r := VRange{Lo: a, Hi: b}
	return r, r.Check(n)
}

// clipText bounds user input quoted in an error.
func clipText(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// Check returns an error wrapping ErrBadMove unless 0 <= Lo <= Hi < n.
func (r VRange) Check(n int) error {
	if r.Lo < 0 || r.Hi >= n || r.Lo > r.Hi {
		return fmt.Errorf("%w: virtual shards %d-%d: want 0 <= LO <= HI < %d", ErrBadMove, r.Lo, r.Hi, n)
	}
	return nil
}

// Len is the number of virtual shards in r.
func (r VRange) Len() int { return r.Hi - r.Lo + 1 }

// String is "LO-HI".
func (r VRange) String() string { return strconv.Itoa(r.Lo) + "-" + strconv.Itoa(r.Hi) }

// SQL is a boolean SQL expression, true when the virtual shard of keyExpr
// (a keyspace of n) is in r. Like VirtualShardSQL it uses built-in
// immutable functions only, so it serves as a publication's row filter;
// keyExpr must come from code, never from a user.
func (r VRange) SQL(keyExpr string, n int) string {
	return fmt.Sprintf("(%s BETWEEN %d AND %d)", VirtualShardSQL(keyExpr, n), r.Lo, r.Hi)
}
