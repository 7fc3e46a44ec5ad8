"""`order-manager send-signal` publishes contract-shaped, persistent signals."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal

import aio_pika

from order_manager.domain.signals import TradingSignal, parse_signal
from tests.integration.intake.conftest import SIGNALS_QUEUE


async def _cli(*args: str, amqp_url: str) -> tuple[int, str, str]:
    env = {**os.environ, "ORDERMANAGER_RABBITMQ_URL": amqp_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from order_manager.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


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
