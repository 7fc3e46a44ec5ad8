"""`order-manager send-signal` publishes contract-shaped, persistent signals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import aio_pika
import pytest

from order_manager.adapters.rabbitmq.connection import ensure_queue
from order_manager.domain.enums import Category, OrderType, PositionIdx, TimeInForce
from order_manager.domain.signals import TradingSignal, Urgency, parse_signal
from tests.integration.intake.conftest import SIGNALS_QUEUE, run_cli


async def _cli(*args: str, amqp_url: str) -> tuple[int, str, str]:
    return await run_cli(*args, amqp_url=amqp_url)


async def test_send_signal_publishes_n_persistent_signals(amqp_url: str) -> None:
    code, out, err = await _cli(
        "send-signal",
        "--asset",
        "ethusdt",
        "--side",
        "sell",
        "--amount",
        "0.05",
        "--amount-unit",
        "base",
        "--confidence",
        "0.65",
        "--order-type",
        "limit",
        "--limit-price",
        "3120.55",
        "--category",
        "linear",
        "--warmup",
        "--count",
        "3",
        amqp_url=amqp_url,
    )
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("sent ")]
    assert len(lines) == 3
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(SIGNALS_QUEUE, passive=True)
        signals: list[TradingSignal] = []
        for _ in range(3):
            message = await queue.get(timeout=5)
            assert message is not None
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            parsed = parse_signal(message.body)
            assert isinstance(parsed, TradingSignal), parsed
            signals.append(parsed)
            await message.ack()
    assert len({s.signal_id for s in signals}) == 3
    for signal in signals:
        assert signal.asset == "ETHUSDT"
        assert signal.signal_type.value == "sell"
        assert signal.amount == Decimal("0.05")
        assert signal.amount_unit is not None and signal.amount_unit.value == "base"
        assert signal.confidence == Decimal("0.65")
        assert signal.is_warmup is True
        assert signal.metadata.limit_price == Decimal("3120.55")
        assert signal.metadata.order_type is not None
        assert signal.metadata.order_type.value == "Limit"
        assert f"signal_id={signal.signal_id}" in out


async def test_send_signal_rejects_a_bad_amount(amqp_url: str) -> None:
    code, _, err = await _cli(
        "send-signal", "--asset", "BTCUSDT", "--side", "buy", "--amount", "lots", amqp_url=amqp_url
    )
    assert code == 2
    assert "--amount" in err


async def _receive_one(amqp_url: str) -> bytes:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(SIGNALS_QUEUE, passive=True)
        message = await queue.get(timeout=5)
        assert message is not None
        await message.ack()
        assert await queue.get(fail=False) is None  # exactly one was published
        return message.body


async def test_send_signal_sends_every_contract_field(amqp_url: str) -> None:
    signal_id = "6f2c8a1e-0b5e-4f1f-9c3e-2a7b9e1d4c55"
    code, out, err = await _cli(
        "send-signal",
        *("--asset", "BTCUSDT", "--side", "buy", "--amount", "1000.50", "--confidence", "0.82"),
        *("--amount-unit", "quote", "--strategy-id", "momentum_v1", "--model-version", "v12"),
        *("--signal-id", signal_id, "--trace-id", "a1b2c3d4"),
        *("--timestamp", "2026-11-23T10:15:30.123456Z", "--warmup"),
        "--market-data-snapshot",
        '{"price": 64250.5, "spread": 0.50, "volume_24h": 1250000000.0, "volatility": 0.021,'
        ' "orderbook_depth": {"bid_depth": 152.3, "ask_depth": 140.9},'
        ' "technical_indicators": null}',
        *("--order-type", "Limit", "--limit-price", "64000.10", "--time-in-force", "PostOnly"),
        *("--reduce-only", "--no-post-only", "--stop-loss", "60000", "--take-profit", "7.0e4"),
        *("--category", "linear", "--position-idx", "2", "--max-slippage-bps", "12.5"),
        *("--expires-at", "2026-11-23T11:15:30+01:00", "--urgency", "high"),
        *("--metadata-json", '{"reasoning": "breakout", "risk_score": 0.30}'),
        amqp_url=amqp_url,
    )
    assert code == 0, err
    sent = [line for line in out.splitlines() if line.startswith("sent ")]
    assert sent == [f"sent signal_id={signal_id} trace_id=a1b2c3d4"]
    body = await _receive_one(amqp_url)

    # Numbers travel as JSON numbers with the exact digits given (never through float).
    text = body.decode()
    for fragment in (
        '"amount":1000.50',
        '"confidence":0.82',
        '"limit_price":64000.10',
        '"take_profit":70000',
        '"spread":0.50',
        '"volume_24h":1250000000.0',
        '"risk_score":0.30',
        '"position_idx":2',
    ):
        assert fragment in text, (fragment, text)
    assert json.loads(body, parse_float=Decimal) == {
        "signal_id": signal_id,
        "signal_type": "buy",
        "asset": "BTCUSDT",
        "amount": Decimal("1000.50"),
        "amount_unit": "quote",
        "confidence": Decimal("0.82"),
        "timestamp": "2026-11-23T10:15:30.123456Z",
        "strategy_id": "momentum_v1",
        "model_version": "v12",
        "is_warmup": True,
        "market_data_snapshot": {
            "price": Decimal("64250.5"),
            "spread": Decimal("0.50"),
            "volume_24h": Decimal("1250000000.0"),
            "volatility": Decimal("0.021"),
            "orderbook_depth": {"bid_depth": Decimal("152.3"), "ask_depth": Decimal("140.9")},
            "technical_indicators": None,
        },
        "metadata": {
            "reasoning": "breakout",
            "risk_score": Decimal("0.30"),
            "order_type": "limit",
            "limit_price": Decimal("64000.10"),
            "time_in_force": "PostOnly",
            "reduce_only": True,
            "post_only": False,
            "stop_loss": 60000,
            "take_profit": 70000,
            "category": "linear",
            "position_idx": 2,
            "max_slippage_bps": Decimal("12.5"),
            "expires_at": "2026-11-23T10:15:30Z",
            "urgency": "high",
        },
        "trace_id": "a1b2c3d4",
    }

    signal = parse_signal(body)
    assert isinstance(signal, TradingSignal), signal
    assert signal.signal_id == signal_id
    assert signal.amount == Decimal("1000.50")
    assert signal.confidence == Decimal("0.82")
    assert signal.timestamp == datetime(2026, 11, 23, 10, 15, 30, 123456, tzinfo=UTC)
    assert signal.strategy_id == "momentum_v1"
    assert signal.model_version == "v12"
    assert signal.is_warmup is True
    assert signal.trace_id == "a1b2c3d4"
    snapshot = signal.market_data_snapshot
    assert snapshot is not None
    assert (snapshot.price, snapshot.spread) == (Decimal("64250.5"), Decimal("0.50"))
    assert (snapshot.bid_depth, snapshot.ask_depth) == (Decimal("152.3"), Decimal("140.9"))
    meta = signal.metadata
    assert meta.order_type is OrderType.LIMIT
    assert meta.limit_price == Decimal("64000.10")
    assert meta.time_in_force is TimeInForce.POST_ONLY
    assert (meta.reduce_only, meta.post_only) == (True, False)
    assert (meta.stop_loss, meta.take_profit) == (Decimal("60000"), Decimal("70000"))
    assert meta.category is Category.LINEAR
    assert meta.position_idx is PositionIdx.HEDGE_SHORT
    assert meta.max_slippage_bps == Decimal("12.5")
    assert meta.expires_at == datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)
    assert meta.urgency is Urgency.HIGH
    assert meta.raw["reasoning"] == "breakout"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--expires-at", "yesterday"), "--expires-at"),
        (("--expires-at", "2026-11-23T11:15:30"), "--expires-at"),  # no timezone
        (("--position-idx", "7"), "--position-idx"),
        (("--stop-loss", "-5"), "--stop-loss"),
        (("--limit-price", "1.5e", "--order-type", "limit"), "--limit-price"),
        (("--market-data-snapshot", '{"price": 0}'), "--market-data-snapshot"),
        (("--limit-price", "5", "--metadata-json", '{"limit_price": 6}'), "--metadata-json"),
    ],
)
async def test_send_signal_refuses_a_bad_value_and_publishes_nothing(
    amqp_url: str, args: tuple[str, ...], option: str
) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await ensure_queue(connection, SIGNALS_QUEUE)
        code, out, err = await _cli(
            "send-signal",
            "--asset",
            "BTCUSDT",
            "--side",
            "buy",
            "--amount",
            "100",
            *args,
            amqp_url=amqp_url,
        )
        assert code == 2, (out, err)
        assert err.startswith(f"order-manager: {option}: "), err
        assert "sent " not in out
        channel = await connection.channel()
        queue = await channel.declare_queue(SIGNALS_QUEUE, passive=True)
        assert await queue.get(fail=False) is None
