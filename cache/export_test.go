package cache

// SetDeaf makes c's bus drop every incoming message, as a subscription
// that silently stopped delivering would.
func SetDeaf[V any](c *Cache[V], deaf bool) { c.bus.deaf.Store(deaf) }
