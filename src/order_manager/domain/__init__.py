"""Pure domain of the Order Manager: no I/O, no asyncio, no clock, Decimal only.

Modules (each documents its public API in its own docstring):

- ``enums``       shared vocabulary: Side, OrderType, TimeInForce, Category, PositionMode.
- ``money``       exact Decimal helpers: strict parsing, rounding to a step, basis points.
- ``instruments`` ``Instrument`` (tick size, qty step, limits) and price/qty rounding rules.
- ``rejections``  ``RejectCode`` and ``Rejection``: every machine-readable refusal reason.
- ``signals``     parse and validate a raw trading-signal message into ``TradingSignal``
                  or a ``SignalRejection`` (with ``dead_letter`` to route malformed input).
- ``orders``      the order state machine: Bybit statuses mapped to ours, ``apply_update`` /
                  ``apply_execution`` that are idempotent and order-insensitive, domain events.
- ``positions``   positions from fills (one-way and hedge), average entry, realised and
                  unrealised PnL, drift comparison.
- ``market``      ``MarketSnapshot``: the fresh book the planner prices from.
- ``account``     ``AccountState`` / ``OpenOrder``: balances, positions, live orders, limits state.
- ``plans``       ``Plan`` and its actions (Place / Amend / Cancel / Reject), signal-order links,
                  deterministic ``order_link_id``.
- ``planner``     ``plan(...)``: signal + account + instrument + fresh market -> ``Plan``;
                  ``PlannerConfig``; ``stale_orders``.
- ``risk``        ``check(...)``: plan + account + limits -> approved / adjusted / rejected;
                  ``RiskLimits``.

Design decisions behind the rules: ``docs/decisions.md``.

Time is always passed in (``now`` parameters, timezone-aware UTC); nothing here reads the clock.
"""
