package advisor

import "context"

func (s *session) verify(ctx context.Context, r *Report) error { return nil }
