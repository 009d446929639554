package advisor

import (
	"fmt"
	"math"
)

// largeTableRows is the table size, in the planner's row estimate, from
// which a sequential scan is worth reporting: below it a scan reads a few
// hundred pages at most and usually beats an index.
const largeTableRows = 10_000

// misestimateFactor is how far (either way) a node's actual rows may be from
// the planner's estimate before the estimate is reported as wrong: at 10×
// the planner is choosing joins and scans for a different query.
const misestimateFactor = 10

// nestedLoopMinOuterRows is the outer-side row count from which a nested
// loop's inner side counts as running "many times".
const nestedLoopMinOuterRows = 1_000

// nestedLoopMinWork is the outer rows × inner cost (planner cost units) from
// which a nested loop is reported: about ten sequential scans of a
// 10,000-page table.
const nestedLoopMinWork = 100_000

// planFindings lists what the plans show: large sequential scans, rows
// examined against returned, spills, nested loops over large inputs,
// mis-estimates. The order is the queries' order, then each query's
// findings by kind, then plan order.
func planFindings(qs []*Query, cat *Catalog) []Finding {
	var out []Finding
	for _, q := range qs {
		p := q.Plan()
		if p == nil || p.Root == nil {
			continue
		}
		out = append(out, seqScanFindings(q.ID, p, cat)...)
		if f, ok := examinedFinding(q.ID, p, cat); ok {
			out = append(out, f)
		}
		out = append(out, spillFindings(q.ID, p)...)
		out = append(out, nestedLoopFindings(q.ID, p)...)
		if f, ok := misestimateFinding(q.ID, p); ok {
			out = append(out, f)
		}
	}
	return out
}

// seqScanFindings reports each sequential scan of a table of at least
// largeTableRows rows, once per table.
func seqScanFindings(id int64, p *Plan, cat *Catalog) []Finding {
	var out []Finding
	seen := map[string]bool{}
	walkGather(p.Root, func(n, gather *Node) {
		if n.Type != "Seq Scan" || seen[n.Relation] {
			return
		}
		t := cat.Table(n.Relation)
		if t == nil || t.Rows < largeTableRows {
			return
		}
		seen[n.Relation] = true
		filter := n.Filter
		if filter == "" {
			filter = "none"
		}
		out = append(out, Finding{QueryID: id, Kind: "seq_scan", Table: n.Relation, Detail: fmt.Sprintf(
			"Seq Scan on %s reads all %.0f rows (estimated %.0f kept, filter %s), cost %.0f of the plan's %.0f",
			n.Relation, t.Rows, returnedRows(n, false, gather), filter, n.TotalCost, p.Root.TotalCost)})
	})
	return out
}

// leaderShareDrop is how much less of a parallel plan's work the leader
// does for each worker it has: PostgreSQL's 0.3 (costsize.c,
// get_parallel_divisor).
const leaderShareDrop = 0.3

// parallelDivisor is what PostgreSQL divides a parallel-aware node's row
// estimate by, so that the estimate is one process's share, given the
// workers planned for the Gather above it. It is get_parallel_divisor of
// src/backend/optimizer/path/costsize.c, with parallel_leader_participation
// on (the default):
//
//	divisor = workers
//	leader_contribution = 1.0 − 0.3 × workers
//	if leader_contribution > 0: divisor += leader_contribution
//
// so 1 worker gives 1.7, 2 give 2.4, 3 give 3.1, and from 4 on the leader
// adds nothing (4 give 4).
func parallelDivisor(workers float64) float64 {
	divisor := workers
	if leader := 1 - leaderShareDrop*workers; leader > 0 {
		divisor += leader
	}
	return divisor
}

// parallelFactor is what node n's estimated rows are multiplied by to count
// every process's rows: the parallel divisor of gather, the nearest Gather
// or Gather Merge above n, when n is parallel aware; else 1.
func parallelFactor(n, gather *Node) float64 {
	if !n.ParallelAware || gather == nil {
		return 1
	}
	return parallelDivisor(gather.WorkersPlanned)
}

// isGatherNode reports whether n gathers the rows of parallel workers.
func isGatherNode(n *Node) bool { return n.Type == "Gather" || n.Type == "Gather Merge" }

// walkGather calls fn for n and every node below it, parents first, with
// the nearest Gather or Gather Merge above the node (nil when none).
func walkGather(n *Node, fn func(node, gather *Node)) {
	var walk func(node, gather *Node)
	walk = func(node, gather *Node) {
		fn(node, gather)
		if isGatherNode(node) {
			gather = node
		}
		for _, c := range node.Plans {
			walk(c, gather)
		}
	}
	walk(n, nil)
}

// examined is the rows scan node n of table t (nil when unknown) reads,
// the one count the findings, the rewrite rule and the partitioning rule
// share; gather is the nearest Gather or Gather Merge above n, or nil.
//
//   - analyzed: (Actual Rows + Rows Removed by Filter) × loops. For a
//     parallel node the actual rows are per process and the loops count
//     the processes, so this is the total already;
//   - estimated, a Seq Scan: the table's rows (all of them, parallel or
//     not);
//   - estimated, any other scan: Plan Rows × loops, times the parallel
//     divisor when the node is parallel aware (its estimate is one
//     process's share).
func examined(n *Node, t *Table, analyzed bool, gather *Node) float64 {
	switch {
	case analyzed:
		return (n.ActualRows + n.RowsRemovedByFilter) * n.Loops()
	case n.Type == "Seq Scan" && t != nil:
		return t.Rows
	default:
		return n.PlanRows * n.Loops() * parallelFactor(n, gather)
	}
}

// returnedRows is the rows node n passes on, over all its loops and
// processes: actual when analyzed, else estimated (see examined for
// gather).
func returnedRows(n *Node, analyzed bool, gather *Node) float64 {
	if analyzed {
		return n.ActualRows * n.Loops()
	}
	return n.PlanRows * n.Loops() * parallelFactor(n, gather)
}

// gatherAbove is the nearest Gather or Gather Merge above node n in p,
// or nil.
func gatherAbove(p *Plan, n *Node) *Node {
	var found *Node
	walkGather(p.Root, func(node, gather *Node) {
		if node == n {
			found = gather
		}
	})
	return found
}

// planScanExamined is the rows scan node n of plan p reads (see examined).
func planScanExamined(n *Node, p *Plan, cat *Catalog) float64 {
	return examined(n, cat.Table(n.Relation), p.Analyzed, gatherAbove(p, n))
}

// planExamined sums the rows read by the plan's scans (see examined), and
// names the scan that reads most.
func planExamined(p *Plan, cat *Catalog) (total float64, top *Node) {
	best := -1.0
	walkGather(p.Root, func(n, gather *Node) {
		if !n.isScan() {
			return
		}
		e := examined(n, cat.Table(n.Relation), p.Analyzed, gather)
		total += e
		if e > best {
			best, top = e, n
		}
	})
	return total, top
}

// planReturned is the rows the plan returns (the root's actual rows, analyzed,
// else its estimate), at least 1 so that a ratio is defined.
func planReturned(p *Plan) float64 {
	r := p.Root.PlanRows
	if p.Analyzed {
		r = p.Root.ActualRows * p.Root.Loops()
	}
	return math.Max(r, 1)
}

// examinedFinding reports a plan that reads more than RewriteExaminedRatio
// rows per row it returns.
func examinedFinding(id int64, p *Plan, cat *Catalog) (Finding, bool) {
	ex, top := planExamined(p, cat)
	ret := planReturned(p)
	if top == nil || ex <= RewriteExaminedRatio*ret {
		return Finding{}, false
	}
	return Finding{QueryID: id, Kind: "examined_ratio", Table: top.Relation, Detail: fmt.Sprintf(
		"examines %.0f rows to return %.0f (%.0f×, over the %d× bar); %s on %s reads %.0f",
		ex, ret, ex/ret, RewriteExaminedRatio, top.Type, top.Relation, planScanExamined(top, p, cat))}, true
}

// spillFindings reports, for an analyzed plan, sorts that went to disk and
// hashes that needed more than one batch.
func spillFindings(id int64, p *Plan) []Finding {
	if !p.Analyzed {
		return nil
	}
	var out []Finding
	p.Root.Walk(func(n, _ *Node) {
		switch {
		case n.SortSpaceType == "Disk" || n.SortMethod == "external merge" || n.SortMethod == "external sort":
			out = append(out, Finding{QueryID: id, Kind: "spill", Table: n.Relation, Detail: fmt.Sprintf(
				"%s of %.0f rows spills to disk (method %s, space %s): raise work_mem or sort fewer rows",
				n.Type, n.ActualRows*n.Loops(), n.SortMethod, n.SortSpaceType)})
		case n.HashBatches > 1:
			out = append(out, Finding{QueryID: id, Kind: "spill", Table: n.Relation, Detail: fmt.Sprintf(
				"%s of %.0f rows needs %.0f batches (planned %.0f): it spills to disk; raise work_mem or hash fewer rows",
				n.Type, n.ActualRows*n.Loops(), n.HashBatches, n.OriginalHashBatches)})
		}
	})
	return out
}

// nestedLoopFindings reports nested loops whose inner side runs at least
// nestedLoopMinOuterRows times with outer rows × inner cost of at least
// nestedLoopMinWork.
func nestedLoopFindings(id int64, p *Plan) []Finding {
	var out []Finding
	p.Root.Walk(func(n, _ *Node) {
		if n.Type != "Nested Loop" || len(n.Plans) < 2 {
			return
		}
		outer, inner := n.Plans[0], n.Plans[1]
		rows := outer.PlanRows
		if p.Analyzed {
			rows = outer.ActualRows * outer.Loops()
		}
		work := rows * inner.TotalCost
		if rows < nestedLoopMinOuterRows || work < nestedLoopMinWork {
			return
		}
		out = append(out, Finding{QueryID: id, Kind: "nested_loop", Table: inner.Relation, Detail: fmt.Sprintf(
			"Nested Loop runs its inner %s%s %.0f times at cost %.1f each (%.0f in all, plan %.0f)",
			inner.Type, rwOnRelation(inner), rows, inner.TotalCost, work, p.Root.TotalCost)})
	})
	return out
}

// rwOnRelation is " on <table>" for a scan node, else "".
func rwOnRelation(n *Node) string {
	if n.Relation == "" {
		return ""
	}
	return " on " + n.Relation
}

// misestimateFinding reports, for an analyzed plan, the node whose actual
// rows are furthest from the estimate when that is misestimateFactor or
// more, and how many other nodes are that far off. Nodes that never ran
// are skipped, and so are nodes below a Limit that returned fewer rows than
// estimated (the Limit stopped them early).
func misestimateFinding(id int64, p *Plan) (Finding, bool) {
	if !p.Analyzed {
		return Finding{}, false
	}
	var worst *Node
	var worstF float64
	n := 0
	underLimit := map[*Node]bool{}
	p.Root.Walk(func(node, parent *Node) {
		if parent != nil && (parent.Type == "Limit" || underLimit[parent]) {
			underLimit[node] = true
		}
		if node.ActualLoops == 0 || underLimit[node] && node.ActualRows < node.PlanRows {
			return
		}
		f := nodeMisestimate(node)
		if f < misestimateFactor {
			return
		}
		n++
		if f > worstF {
			worst, worstF = node, f
		}
	})
	if worst == nil {
		return Finding{}, false
	}
	d := fmt.Sprintf("%s%s: estimated %.0f rows, actually %.0f per loop (%.0f× off)",
		worst.Type, rwOnRelation(worst), worst.PlanRows, worst.ActualRows, worstF)
	if n > 1 {
		d += fmt.Sprintf("; %d other nodes %d× or more off", n-1, misestimateFactor)
	}
	return Finding{QueryID: id, Kind: "misestimate", Table: worst.Relation, Detail: d + ": run ANALYZE, or raise the columns' statistics target"}, true
}

// nodeMisestimate is the factor between a node's actual and estimated rows per
// loop, either way (at least 1); both are floored at 1 row.
func nodeMisestimate(n *Node) float64 {
	a, e := math.Max(n.ActualRows, 1), math.Max(n.PlanRows, 1)
	return math.Max(a/e, e/a)
}
