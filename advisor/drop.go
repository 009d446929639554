package advisor

// dropAdvice finds indexes to drop: unused ones and duplicates.
func dropAdvice(cat *Catalog) []Recommendation { return nil }
