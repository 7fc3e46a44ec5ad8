"""`GET /api/v1/orders` and `GET /api/v1/orders/{id}` on the real app and a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.integration.api.support import ApiHarness, seed_fill, seed_link, seed_order, seed_signal

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def seed_book(api: ApiHarness) -> dict[str, dict[str, str]]:
    """Seven orders across symbols, sides and statuses, one minute apart."""
    signal = await seed_signal(api.pool)
    rows = {
        "a": await seed_order(api.pool, created_at=at(0), status="filled", signal_id=signal),
        "b": await seed_order(api.pool, created_at=at(1), status="pending", side="Sell"),
        "c": await seed_order(api.pool, created_at=at(2), symbol="ETHUSDT", status="cancelled"),
        "d": await seed_order(api.pool, created_at=at(3), status="partially_filled"),
        "e": await seed_order(api.pool, created_at=at(4), symbol="ETHUSDT", side="Sell"),
        "f": await seed_order(api.pool, created_at=at(5), status="rejected"),
        "g": await seed_order(api.pool, created_at=at(6), is_dry_run=True),
    }
    rows["signal"] = {"id": signal}
    return rows


def ids(body: dict[str, object]) -> list[str]:
    items = body["items"]
    assert isinstance(items, list)
    return [str(item["id"]) for item in items]


async def test_without_or_with_a_wrong_key_every_route_answers_401(api: ApiHarness) -> None:
    for path in ("/api/v1/orders", "/api/v1/orders/x", "/api/v1/positions"):
        missing = await api.anonymous.get(path)
        wrong = await api.anonymous.get(path, headers={"X-API-Key": "nope"})
        assert missing.status_code == 401
        assert wrong.status_code == 401
        assert missing.json()["code"] == "UNAUTHORIZED"
        assert "missing" in missing.json()["error"]
        assert "invalid" in wrong.json()["error"]
    assert (await api.anonymous.post("/api/v1/sync", json={})).status_code == 401


async def test_the_default_list_is_newest_first_with_pagination(api: ApiHarness) -> None:
    rows = await seed_book(api)

    first = await api.client.get("/api/v1/orders", params={"page_size": 3})
    assert first.status_code == 200, first.text
    body = first.json()
    assert ids(body) == [rows[k]["id"] for k in ("g", "f", "e")]
    assert body["pagination"] == {"page": 1, "page_size": 3, "total_items": 7, "total_pages": 3}

    last = (await api.client.get("/api/v1/orders", params={"page_size": 3, "page": 3})).json()
    assert ids(last) == [rows["a"]["id"]]
    beyond = (await api.client.get("/api/v1/orders", params={"page_size": 3, "page": 9})).json()
    assert beyond["items"] == []
    assert beyond["pagination"]["total_items"] == 7


async def test_sorting_by_allow_listed_keys(api: ApiHarness) -> None:
    rows = await seed_book(api)
    oldest = (await api.client.get("/api/v1/orders", params={"sort": "created_at"})).json()
    assert ids(oldest) == [rows[k]["id"] for k in "abcdefg"]
    async with api.pool.acquire() as conn:  # touch "a" last: it becomes the latest update
        await conn.execute(
            "UPDATE orders SET status = 'filled' WHERE id = $1::uuid", rows["a"]["id"]
        )
    updated = (await api.client.get("/api/v1/orders", params={"sort": "-updated_at"})).json()
    assert ids(updated)[0] == rows["a"]["id"]
    by_symbol = (await api.client.get("/api/v1/orders", params={"sort": "symbol"})).json()
    symbols = [item["symbol"] for item in by_symbol["items"]]
    assert symbols == sorted(symbols)


async def test_filters_combine(api: ApiHarness) -> None:
    rows = await seed_book(api)

    async def query(**params: str) -> list[str]:
        response = await api.client.get("/api/v1/orders", params={"sort": "created_at", **params})
        assert response.status_code == 200, response.text
        return ids(response.json())

    assert await query(asset="ETHUSDT") == [rows["c"]["id"], rows["e"]["id"]]
    assert await query(status="filled,cancelled") == [rows["a"]["id"], rows["c"]["id"]]
    assert await query(status="active", dry_run="false") == [rows[k]["id"] for k in ("b", "d", "e")]
    assert await query(side="sell") == [rows["b"]["id"], rows["e"]["id"]]
    assert await query(side="Sell", asset="ETHUSDT") == [rows["e"]["id"]]
    assert await query(signal_id=rows["signal"]["id"]) == [rows["a"]["id"]]
    window = {"from": at(2).isoformat(), "to": at(4).isoformat()}
    assert await query(**window) == [rows["c"]["id"], rows["d"]["id"]]
    assert await query(dry_run="true") == [rows["g"]["id"]]


async def test_signal_filter_includes_orders_linked_by_amend(api: ApiHarness) -> None:
    creator = await seed_signal(api.pool)
    amender = await seed_signal(api.pool)
    order = await seed_order(api.pool, signal_id=creator)
    await seed_link(api.pool, creator, order["id"], "create")
    await seed_link(api.pool, amender, order["id"], "amend")
    listed = (await api.client.get("/api/v1/orders", params={"signal_id": amender})).json()
    assert ids(listed) == [order["id"]]


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"page_size": "501"}, "query page_size", "less than or equal to 500"),
        ({"page": "0"}, "query page", "greater than or equal to 1"),
        ({"sort": "price; DROP TABLE orders"}, "query sort", "unknown sort"),
        ({"status": "filled,done"}, "query status", "unknown status 'done'"),
        ({"side": "long"}, "query side", "unknown side"),
        ({"signal_id": "not-a-uuid"}, "query signal_id", "UUID"),
        ({"from": "2026-11-20T12:00:00"}, "query from", "timezone"),
        ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "query to", "later"),
        ({"from": "yesterday"}, "query from", "datetime"),
        ({"asset": "btc-usdt"}, "query asset", "upper-case"),
    ],
)
async def test_bad_parameters_answer_422_naming_the_parameter(
    api: ApiHarness, params: dict[str, str], field: str, fragment: str
) -> None:
    response = await api.client.get("/api/v1/orders", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["error"].startswith(field), body
    assert fragment in body["error"], body
    assert body["details"]["errors"][0]["field"] == field


async def test_one_order_by_each_of_its_three_ids_with_fills_and_links(api: ApiHarness) -> None:
    signal = await seed_signal(api.pool)
    order = await seed_order(
        api.pool,
        signal_id=signal,
        status="partially_filled",
        qty="0.010",
        cum_exec_qty="0.004",
        avg_price="60000.25",
    )
    await seed_link(api.pool, signal, order["id"], "create")
    first = await seed_fill(api.pool, order, "0.001", "60000.1")
    second = await seed_fill(api.pool, order, "0.003", "60000.3")

    bodies = []
    for ref in (order["id"], order["order_id"], order["order_link_id"]):
        response = await api.client.get(f"/api/v1/orders/{ref}")
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    assert bodies[0] == bodies[1] == bodies[2]
    body = bodies[0]
    assert body["id"] == order["id"]
    assert body["status"] == "partially_filled"
    assert body["qty"] == "0.010"  # exact, as a string
    assert body["cum_exec_qty"] == "0.004"
    assert body["avg_price"] == "60000.25"
    assert body["price"] == "60000.5"
    assert {f["exec_id"] for f in body["fills"]} == {first, second}
    assert sum(Decimal(f["exec_qty"]) for f in body["fills"]) == Decimal("0.004")
    assert all(isinstance(f["exec_price"], str) for f in body["fills"])
    assert body["links"] == [
        {
            "signal_id": signal,
            "relation": "create",
            "sequence": 0,
            "allocated_qty": "0.005",
            "created_at": body["links"][0]["created_at"],
        }
    ]


async def test_an_unknown_order_is_404_in_the_error_shape(api: ApiHarness) -> None:
    for ref in ("does-not-exist", "00000000-0000-0000-0000-000000000000"):
        response = await api.client.get(f"/api/v1/orders/{ref}")
        assert response.status_code == 404
        assert response.json() == {
            "error": f"no order with internal id, orderId or orderLinkId {ref!r}",
            "code": "ORDER_NOT_FOUND",
            "details": {"id": ref},
        }
