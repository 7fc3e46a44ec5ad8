"""`GET /api/v1/signals`, `GET /api/v1/signals/{id}` and the position endpoints on the real app
and database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.api.support import (
    ApiHarness,
    seed_link,
    seed_order,
    seed_position,
    seed_signal,
    seed_snapshots,
)

pytestmark = pytest.mark.integration


async def test_a_signal_with_its_outcome_reason_and_orders(api: ApiHarness) -> None:
    signal = await seed_signal(api.pool, status="executed")
    leg1 = await seed_order(api.pool, signal_id=signal)
    leg2 = await seed_order(api.pool, signal_id=signal)
    other = await seed_signal(api.pool)
    amended = await seed_order(api.pool, signal_id=other)
    await seed_link(api.pool, signal, amended["id"], "amend")

    response = await api.client.get(f"/api/v1/signals/{signal}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["signal_id"] == signal
    assert body["status"] == "executed"
    assert body["amount"] == "1000"
    assert body["confidence"] == "0.8"
    relations = {o["id"]: o["relation"] for o in body["orders"]}
    assert relations == {leg1["id"]: "create", leg2["id"]: "create", amended["id"]: "amend"}


async def test_a_rejected_signal_shows_its_reason(api: ApiHarness) -> None:
    signal = await seed_signal(
        api.pool,
        status="rejected",
        reason_code="insufficient_balance",
        reason_message="needs 520 USDT, 100 available",
    )
    body = (await api.client.get(f"/api/v1/signals/{signal}")).json()
    assert (body["status"], body["reason_code"], body["orders"]) == (
        "rejected",
        "insufficient_balance",
        [],
    )
    assert body["reason_message"] == "needs 520 USDT, 100 available"


async def test_unknown_and_malformed_signal_ids(api: ApiHarness) -> None:
    missing = await api.client.get(f"/api/v1/signals/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "SIGNAL_NOT_FOUND"
    malformed = await api.client.get("/api/v1/signals/abc")
    assert malformed.status_code == 422
    assert malformed.json()["error"].startswith("path signal_id")


T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


async def _signals(api: ApiHarness, **query: str) -> tuple[list[str], dict[str, int]]:
    response = await api.client.get("/api/v1/signals", params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    return [item["signal_id"] for item in body["items"]], body["pagination"]


async def test_signals_list_filters_sorts_and_pages(api: ApiHarness) -> None:
    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    executed = await seed_signal(api.pool, status="executed", received_at=at(0))
    stuck = await seed_signal(api.pool, status="processing", received_at=at(1))
    waiting = await seed_signal(api.pool, status="received", symbol="ETHUSDT", received_at=at(2))
    stale = await seed_signal(
        api.pool,
        status="rejected",
        reason_code="stale_signal",
        received_at=at(3),
        strategy_id="strat-b",
    )
    broke = await seed_signal(
        api.pool, status="failed", reason_code="exchange_unavailable", received_at=at(4)
    )
    paper = await seed_signal(api.pool, status="executed", received_at=at(5), is_dry_run=True)

    newest_first, page = await _signals(api)
    assert newest_first == [paper, broke, stale, waiting, stuck, executed]
    assert page == {"page": 1, "page_size": 50, "total_items": 6, "total_pages": 1}
    assert (await _signals(api, status="open"))[0] == [waiting, stuck]
    assert (await _signals(api, status="FAILED,rejected"))[0] == [broke, stale]
    assert (await _signals(api, reason="stale_signal,exchange_unavailable"))[0] == [broke, stale]
    assert (await _signals(api, asset="ETHUSDT"))[0] == [waiting]
    assert (await _signals(api, strategy_id="strat-b"))[0] == [stale]
    assert (await _signals(api, dry_run="true"))[0] == [paper]
    window = {"from": at(1).isoformat(), "to": at(3).isoformat()}
    assert (await _signals(api, **window))[0] == [waiting, stuck]  # from inclusive, to exclusive
    assert (await _signals(api, sort="received_at", page_size="2"))[0] == [executed, stuck]
    second, page = await _signals(api, sort="received_at", page_size="4", page="2")
    assert second == [broke, paper]
    assert page == {"page": 2, "page_size": 4, "total_items": 6, "total_pages": 2}
    past, page = await _signals(api, page="9")
    assert past == [] and page["total_items"] == 6  # a page past the end keeps the total
    # signals in progress have no completed_at: they come last in both directions
    by_completion, _ = await _signals(api, sort="-completed_at")
    assert by_completion[:4] == [paper, broke, stale, executed]
    assert set(by_completion[4:]) == {stuck, waiting}
    by_completion, _ = await _signals(api, sort="completed_at")
    assert by_completion[:4] == [executed, stale, broke, paper]
    assert set(by_completion[4:]) == {stuck, waiting}
    item = (await api.client.get("/api/v1/signals", params={"status": "failed"})).json()
    assert item["items"][0]["reason_code"] == "exchange_unavailable"
    assert "orders" not in item["items"][0]  # the list is a summary: GET /signals/{id} has them


async def test_signals_list_refuses_bad_filters_precisely(api: ApiHarness) -> None:
    cases = {
        "status=done": "query status: unknown status 'done'",
        "reason=Stale-Signal": "query reason: 'Stale-Signal' is not a reason code",
        "asset=btc": "query asset: must be a symbol",
        "sort=amount": "query sort: unknown sort 'amount'",
        "from=2026-11-29T08:00:00": "query from: timestamp needs a timezone offset",
        "page_size=501": "page_size",
    }
    for query, message in cases.items():
        response = await api.client.get(f"/api/v1/signals?{query}")
        assert response.status_code == 422, (query, response.text)
        assert message in response.json()["error"], (query, response.json())


async def test_positions_list_skips_flat_books_unless_asked(api: ApiHarness) -> None:
    await seed_position(api.pool, symbol="BTCUSDT", side="Buy", size="0.015", avg="60000.1")
    await seed_position(api.pool, symbol="ETHUSDT", side="None", size="0", avg="0")

    open_only = (await api.client.get("/api/v1/positions")).json()["items"]
    assert [(p["symbol"], p["side"], p["size"]) for p in open_only] == [("BTCUSDT", "Buy", "0.015")]
    assert open_only[0]["avg_entry_price"] == "60000.1"
    assert open_only[0]["realized_pnl"] == "1.5"
    everything = (await api.client.get("/api/v1/positions", params={"include_flat": "true"})).json()
    assert [p["symbol"] for p in everything["items"]] == ["BTCUSDT", "ETHUSDT"]


async def test_a_hedge_mode_asset_has_two_books(api: ApiHarness) -> None:
    await seed_position(
        api.pool, symbol="BTCUSDT", side="Buy", size="0.02", avg="60000", position_idx=1
    )
    await seed_position(
        api.pool, symbol="BTCUSDT", side="Sell", size="0.01", avg="61000", position_idx=2
    )
    body = (await api.client.get("/api/v1/positions/BTCUSDT")).json()
    assert body["asset"] == "BTCUSDT"
    assert [(p["position_idx"], p["side"], p["size"]) for p in body["items"]] == [
        (1, "Buy", "0.02"),
        (2, "Sell", "0.01"),
    ]
    missing = await api.client.get("/api/v1/positions/SOLUSDT")
    assert missing.status_code == 404
    assert missing.json()["code"] == "POSITION_NOT_FOUND"
    bad = await api.client.get("/api/v1/positions/btc")
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("path asset")


async def test_position_history_is_newest_first_and_paginated(api: ApiHarness) -> None:
    t0 = datetime(2026, 11, 27, tzinfo=UTC)
    times = [t0 + timedelta(minutes=5 * i) for i in range(5)]
    await seed_snapshots(api.pool, "BTCUSDT", times)
    await seed_snapshots(api.pool, "ETHUSDT", times[:1])

    page = (
        await api.client.get("/api/v1/positions/BTCUSDT/history", params={"page_size": 2})
    ).json()
    assert [s["size"] for s in page["items"]] == ["0.005", "0.004"]
    assert page["pagination"] == {"page": 1, "page_size": 2, "total_items": 5, "total_pages": 3}
    window = {"from": times[1].isoformat(), "to": times[3].isoformat()}
    ranged = (await api.client.get("/api/v1/positions/BTCUSDT/history", params=window)).json()
    assert [s["size"] for s in ranged["items"]] == ["0.003", "0.002"]
    bad = await api.client.get(
        "/api/v1/positions/BTCUSDT/history", params={"from": "2026-11-27T00:00:00"}
    )
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("query from")
