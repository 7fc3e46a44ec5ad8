"""Ports: the interfaces the services depend on. Adapters implement them structurally.

One module per concern, each owned by the work that needs it:

- `uow`       — the unit of work: one database transaction with every repository in it, so a
               state change and its outbox event commit together (or not at all).
- `signals`   — signal intake records (FR-019 dedupe state).
- `orders`    — order intents, exchange answers, signal↔order links, audit.
- `outbox`    — transactional outbox writer and the relay's reader.
- `tracking`  — executions, positions, snapshots applied from exchange events.
- `messaging` — the signal source / dead-letter queue and the event publisher.
- `exchange`  — what the services need from an exchange (live Bybit or the paper exchange).
"""
