"""order-query: the order read model (query API, projector, rebuild)."""
