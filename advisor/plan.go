package advisor

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Node is one node of a PostgreSQL plan, as EXPLAIN (FORMAT JSON, VERBOSE)
// prints it. Fields that EXPLAIN omits for a node type are zero. The Actual
// fields are set only by EXPLAIN ANALYZE.
type Node struct {
	Type               string `json:"Node Type"`
	Relation           string `json:"Relation Name"`
	Schema             string `json:"Schema"`
	Alias              string `json:"Alias"`
	IndexName          string `json:"Index Name"`
	ParentRelationship string `json:"Parent Relationship"`
	SubplanName        string `json:"Subplan Name"`
	JoinType           string `json:"Join Type"`
	// ParallelAware marks a node run by parallel workers: its estimated
	// rows are per process (the leader and WorkersPlanned of the Gather
	// above it).
	ParallelAware  bool     `json:"Parallel Aware"`
	WorkersPlanned float64  `json:"Workers Planned"`
	StartupCost    float64  `json:"Startup Cost"`
	TotalCost      float64  `json:"Total Cost"`
	PlanRows       float64  `json:"Plan Rows"`
	PlanWidth      float64  `json:"Plan Width"`
	Output         []string `json:"Output"`
	Filter         string   `json:"Filter"`
	IndexCond      string   `json:"Index Cond"`
	RecheckCond    string   `json:"Recheck Cond"`
	JoinFilter     string   `json:"Join Filter"`
	HashCond       string   `json:"Hash Cond"`
	MergeCond      string   `json:"Merge Cond"`
	SortKey        []string `json:"Sort Key"`
	GroupKey       []string `json:"Group Key"`

	ActualRows          float64 `json:"Actual Rows"`
	ActualLoops         float64 `json:"Actual Loops"`
	RowsRemovedByFilter float64 `json:"Rows Removed by Filter"`
	RowsRemovedByJoin   float64 `json:"Rows Removed by Join Filter"`
	SortMethod          string  `json:"Sort Method"`
	SortSpaceType       string  `json:"Sort Space Type"`
	HashBatches         float64 `json:"Hash Batches"`
	OriginalHashBatches float64 `json:"Original Hash Batches"`

	Plans []*Node `json:"Plans"`
}

// Plan is a query's plan: the root node and, after EXPLAIN ANALYZE, the
// measured execution time.
type Plan struct {
	Root *Node
	// Analyzed reports whether the plan comes from EXPLAIN ANALYZE, so the
	// Actual fields of its nodes are set.
	Analyzed bool
	// ExecutionMs is the server's execution time (EXPLAIN ANALYZE only).
	ExecutionMs float64
}

// Cost is the planner's total cost of the plan.
func (p *Plan) Cost() float64 { return p.Root.TotalCost }

// maxPlanBytes bounds the EXPLAIN output the decoder accepts; a plan larger
// than this is not one the advisor can reason about line by line anyway.
const maxPlanBytes = 16 << 20

// errBadPlan is returned for EXPLAIN output that is not one JSON plan.
var errBadPlan = errors.New("advisor: not an EXPLAIN (FORMAT JSON) plan")

// ParsePlan decodes the output of EXPLAIN (FORMAT JSON), with or without
// ANALYZE and VERBOSE: a JSON array holding one object with a "Plan" key.
func ParsePlan(b []byte) (*Plan, error) {
	if len(b) > maxPlanBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", errBadPlan, len(b), maxPlanBytes)
	}
	var doc []struct {
		Plan          *Node    `json:"Plan"`
		ExecutionTime *float64 `json:"Execution Time"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadPlan, err)
	}
	if len(doc) != 1 || doc[0].Plan == nil {
		return nil, fmt.Errorf("%w: want one object with a \"Plan\" key, got %d", errBadPlan, len(doc))
	}
	p := &Plan{Root: doc[0].Plan}
	if doc[0].ExecutionTime != nil {
		p.Analyzed = true
		p.ExecutionMs = *doc[0].ExecutionTime
	}
	if err := p.Root.check(0); err != nil {
		return nil, err
	}
	return p, nil
}

// maxPlanDepth bounds recursion over a decoded plan.
const maxPlanDepth = 200

func (n *Node) check(depth int) error {
	if n == nil {
		return fmt.Errorf("%w: a null node", errBadPlan)
	}
	if depth > maxPlanDepth {
		return fmt.Errorf("%w: nested deeper than %d nodes", errBadPlan, maxPlanDepth)
	}
	if n.Type == "" {
		return fmt.Errorf("%w: a node without \"Node Type\"", errBadPlan)
	}
	for _, c := range n.Plans {
		if err := c.check(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// Walk calls fn for n and every node below it, parents first, with the
// node's parent (nil for the root).
func (n *Node) Walk(fn func(node, parent *Node)) {
	var walk func(node, parent *Node)
	walk = func(node, parent *Node) {
		fn(node, parent)
		for _, c := range node.Plans {
			walk(c, node)
		}
	}
	walk(n, nil)
}

// Loops is the number of times the node ran (1 when not analyzed).
func (n *Node) Loops() float64 {
	if n.ActualLoops > 0 {
		return n.ActualLoops
	}
	return 1
}

// isScan reports whether the node reads a table.
func (n *Node) isScan() bool { return n.Relation != "" }
