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
	p.Root.Walk(func(n, _ *Node) {
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
			n.Relation, t.Rows, n.PlanRows, filter, n.TotalCost, p.Root.TotalCost)})
	})
	return out
}

// planScanExamined is the rows a scan node reads: analyzed, (actual rows + rows
// removed by the filter) × loops; otherwise, for a sequential scan, the
// table's rows, and for any other scan its estimated rows.
func planScanExamined(n *Node, p *Plan, cat *Catalog) float64 {
	if p.Analyzed {
		return (n.ActualRows + n.RowsRemovedByFilter) * n.Loops()
	}
	if n.Type == "Seq Scan" {
		if t := cat.Table(n.Relation); t != nil {
			return t.Rows
		}
	}
	return n.PlanRows
}

// planExamined sums the rows read by the plan's scans, and names the scan that
// reads most.
func planExamined(p *Plan, cat *Catalog) (total float64, top *Node) {
	best := -1.0
	p.Root.Walk(func(n, _ *Node) {
		if !n.isScan() {
			return
		}
		e := planScanExamined(n, p, cat)
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
