package advisor

import (
	"math"
	"sort"
)

// weight is the divisor of a level of effort (1, 2, 4) or risk (1, 1.5,
// 2) in the ranking, so a low-effort, low-risk change of the same impact
// ranks first. An unknown level counts as high.
func weight(level string, risk bool) float64 {
	switch {
	case level == Low:
		return 1
	case level == Medium && risk:
		return 1.5
	case level == Medium:
		return 2
	case risk:
		return 2
	}
	return 4
}

// rank sets each recommendation's Score, impact over effort and risk, and
// sorts them best first. Impact is the estimated improvement applied to the
// share of the workload's time it touches: the helped queries' total time,
// or for a dropped index the time of the writes to its table.
func (s *session) rank(rs []Recommendation) {
	total := 0.0
	byID := map[int64]*Query{}
	for _, q := range s.all {
		total += q.TotalMs
		byID[q.ID] = q
	}
	writes := s.writeRows()
	for i := range rs {
		r := &rs[i]
		touched := 0.0
		for _, id := range r.Queries {
			if q := byID[id]; q != nil {
				touched += q.TotalMs
			}
		}
		if r.Kind == KindDropIndex {
			touched = writes[r.Table].ms
		}
		share := 0.0
		if total > 0 {
			share = touched / total
		}
		w := weight(r.Effort, false) * weight(r.Risk, true)
		r.Score = math.Round(1000*r.EstimatedImprovementPct*share/w) / 1000
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Score != rs[j].Score {
			return rs[i].Score > rs[j].Score
		}
		return rs[i].SizeBytes > rs[j].SizeBytes
	})
}
