"""order-command: the write side of orders (commands, event log, outbox, relay)."""
