package upstream

// NewWithHook is New with a hook told of every breaker state change, in
// order, for tests that wait for one instead of sleeping.
func NewWithHook(name, baseURL string, cfg Config, changed func(from, to State)) (*Client, error) {
	return newClient(name, baseURL, cfg, changed)
}
