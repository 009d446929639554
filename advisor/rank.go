package advisor

func rank(rs []Recommendation) {}
