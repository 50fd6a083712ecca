"""Framework-free core: events, the append-only store, projections and use cases."""
