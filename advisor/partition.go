package advisor

// partitionAdvice proposes partitioning for tables past the seed's rule.
func partitionAdvice(qs []*Query, cat *Catalog, cfg Config) []Recommendation { return nil }
