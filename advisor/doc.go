// Package advisor reads a PostgreSQL database's workload from
// pg_stat_statements and advises what to change: indexes to create, proved
// with HypoPG's hypothetical indexes and, on request, by a real build;
// indexes to drop; query rewrites; partitioning. Every recommendation
// carries an estimated improvement, an effort and a risk, and all are
// ranked by impact against effort.
package advisor
