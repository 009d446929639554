package shard

import (
	"fmt"
	"math"
	"math/bits"
)

// hashInit is lookup3's initial a, b and c for a 4-byte key, as
// PostgreSQL's hash_bytes_uint32 sets them (src/common/hashfn.c):
// 0x9e3779b9 (the golden ratio) + sizeof(uint32) + 3923095 (PostgreSQL's
// fixed seed).
const hashInit uint32 = 0x9e3779b9 + 4 + 3923095

// nonNegative clears the sign bit of a hash, so that the modulo that
// follows is non-negative in Go and in SQL alike.
const nonNegative = math.MaxInt32

// Hash returns PostgreSQL's hashint8(key): the int4 that
// `SELECT hashint8(key::bigint)` returns, computed in Go. It is
// hashint8 of src/backend/access/hash/hashfunc.c (the high half of the key
// folded into the low half, complemented for a negative key) followed by
// hash_bytes_uint32 of src/common/hashfn.c (lookup3's final mix).
func Hash(key int64) int32 {
	// lohalf ^= (val >= 0) ? hihalf : ~hihalf; key>>63 is all ones for a
	// negative key, so the xor with it is the complement.
	k := uint32(key) ^ uint32(key>>32) ^ uint32(key>>63)
	a, b, c := hashInit+k, hashInit, hashInit
	// lookup3's final(a, b, c), line for line; the rotation counts are the
	// algorithm's own and stay literal so this can be read against hashfn.c.
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return int32(c)
}

// VirtualShard returns the virtual shard, 0 to n-1, of key (for example a
// user id): the keyspace function,
//
//	(hashint8(key) & 2147483647) % n
//
// where hashint8 is PostgreSQL's own hash of a bigint (Hash computes it in
// Go bit for bit) and VirtualShardSQL writes the same expression in SQL, so
// the service and the database always agree on where a key lives.
//
// hashint8 is the support function of PostgreSQL's built-in int8 hash
// operator class, the one hash partitioning, hash indexes and hash joins
// use. It was chosen because it is
//
//   - built in and IMMUTABLE (pg_proc.provolatile = 'i'), so publication row
//     filters, CHECK constraints, index expressions and verification queries
//     can evaluate it inside the database, where user-defined functions are
//     not allowed;
//   - stable: hash indexes and hash partitions store its values on disk, so
//     PostgreSQL cannot change it between releases without breaking
//     pg_upgrade;
//   - cheap: one fold and Bob Jenkins' lookup3 final mix, a few ns in Go,
//     with no allocation.
//
// Like hashint8, it folds the key to 32 bits before mixing (so that int2,
// int4 and int8 hash alike for equal values): keys that differ only in
// their high 32 bits can share a virtual shard (1 and 1<<32 do). Real key
// sets spread evenly all the same; it is what PostgreSQL itself does.
//
// n must be at least 1 (n == 0 panics with an integer division by zero).
func VirtualShard(key int64, n int) int {
	return int(Hash(key)&nonNegative) % n
}

// VirtualShardSQL returns a PostgreSQL expression that computes
// VirtualShard(key, n) from expr, an SQL expression of an integer type (a
// column name, a parameter such as $1, or any bigint expression): for
// VirtualShardSQL("user_id", 1000),
//
//	((hashint8((user_id)::bigint) & 2147483647) % 1000)
//
// It uses built-in immutable functions and operators only, so it is allowed
// in publication row filters, CHECK constraints and index expressions. Its
// type is integer and its value is in [0, n). expr is inserted as given,
// not quoted: it must come from code, never from a user. It panics if n is
// less than 1, as VirtualShard would.
func VirtualShardSQL(expr string, n int) string {
	if n < 1 {
		panic(fmt.Sprintf("shard: VirtualShardSQL: %d virtual shards, want at least 1", n))
	}
	return fmt.Sprintf("((hashint8((%s)::bigint) & %d) %% %d)", expr, nonNegative, n)
}
