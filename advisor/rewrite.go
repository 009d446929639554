package advisor

import "context"

// rewriteAdvice suggests query rewrites from the text and the plan.
func (s *session) rewriteAdvice(ctx context.Context) []Recommendation { return nil }
