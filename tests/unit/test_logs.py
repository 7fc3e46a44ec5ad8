"""Logging: JSON lines with timestamp/level/event/trace_id, and secrets never rendered."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from order_manager.logs import (
    REDACTED,
    bind_trace_id,
    configure_logging,
    current_trace_id,
    get_logger,
    is_secret_key,
    redact_text,
    redact_value,
    trace_context,
)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    yield stream
    configure_logging("INFO", "json")


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_line_has_timestamp_level_event_and_trace_id(log_lines: io.StringIO) -> None:
    with trace_context("trace-123"):
        get_logger("test").info("order placed", symbol="BTCUSDT")
    (entry,) = lines(log_lines)
    assert entry["event"] == "order placed"
    assert entry["level"] == "info"
    assert entry["trace_id"] == "trace-123"
    assert entry["symbol"] == "BTCUSDT"
    stamp = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
    offset = stamp.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0


def test_trace_context_restores_the_previous_trace_id() -> None:
    bind_trace_id("outer")
    with trace_context("inner") as inner:
        assert inner == "inner"
        assert current_trace_id() == "inner"
    assert current_trace_id() == "outer"
    with trace_context() as generated:
        assert len(generated) == 32
    assert current_trace_id() == "outer"


async def test_trace_ids_do_not_leak_between_tasks() -> None:
    a_bound, b_bound = asyncio.Event(), asyncio.Event()

    async def handle(trace_id: str, mine: asyncio.Event, other: asyncio.Event) -> str | None:
        bind_trace_id(trace_id)
        mine.set()
        await other.wait()  # both tasks have bound their id before either reads it back
        return current_trace_id()

    results = await asyncio.gather(
        asyncio.create_task(handle("a", a_bound, b_bound)),
        asyncio.create_task(handle("b", b_bound, a_bound)),
    )
    assert results == ["a", "b"]


def test_secret_keys_are_masked_at_any_depth(log_lines: io.StringIO) -> None:
    get_logger("test").info(
        "exchange call",
        api_key="k-123456",
        headers={
            "X-BAPI-API-KEY": "k-abcdef",
            "X-BAPI-SIGN": "sig-7890ab",
            "X-Api-Key": "om-key-cdef01",
            "Authorization": "Bearer tok-234567",
            "Content-Type": "application/json",
        },
        nested=[{"password": "pw-345678"}, {"bybit_api_secret": "sec-456789"}],
        credentials=SecretStr("ss-567890"),
        signal_id="6f2c8a1e",
    )
    (entry,) = lines(log_lines)
    text = json.dumps(entry)
    for secret in ("k-123456", "k-abcdef", "sig-7890ab", "om-key-cdef01", "tok-234567"):
        assert secret not in text
    for secret in ("pw-345678", "sec-456789", "ss-567890"):
        assert secret not in text
    assert entry["headers"]["Content-Type"] == "application/json"
    assert entry["headers"]["X-BAPI-SIGN"] == REDACTED
    assert entry["signal_id"] == "6f2c8a1e"  # 'sign' must not match 'signal_id'


def test_secrets_inside_text_and_urls_are_masked(log_lines: io.StringIO) -> None:
    get_logger("test").warning(
        "connect failed",
        url="amqp://guest:pw-aaaaaa@127.0.0.1:5672/",
        query="api_key=qk-bbbbbb&symbol=BTCUSDT&sign=qs-cccccc",
        body='{"apiKey": "bk-dddddd", "qty": "0.01"}',
    )
    (entry,) = lines(log_lines)
    text = json.dumps(entry)
    for secret in ("pw-aaaaaa", "qk-bbbbbb", "qs-cccccc", "bk-dddddd"):
        assert secret not in text
    assert entry["url"] == f"amqp://guest:{REDACTED}@127.0.0.1:5672/"
    assert "symbol=BTCUSDT" in entry["query"]
    assert '"qty": "0.01"' in entry["body"]


def test_standard_library_records_are_json_and_redacted(log_lines: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").warning("dsn %s", "postgresql://om:pw-eeeeee@db/x")
    (entry,) = lines(log_lines)
    assert entry["logger"] == "uvicorn.error"
    assert entry["level"] == "warning"
    assert "pw-eeeeee" not in entry["event"]


def test_exceptions_are_rendered_with_the_traceback(log_lines: io.StringIO) -> None:
    try:
        raise ValueError("bad thing")
    except ValueError:
        get_logger("test").exception("failed", password="pw-ffffff")
    (entry,) = lines(log_lines)
    assert "ValueError: bad thing" in entry["exception"]
    assert entry["password"] == REDACTED


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("API-KEY", True),
        ("x-bapi-sign", True),
        ("X-BAPI-API-KEY", True),
        ("x-api-key", True),
        ("signature", True),
        ("sign", True),
        ("ws_gateway_api_key", True),
        ("bybit_api_secret", True),
        ("db_password", True),
        ("signal_id", False),
        ("signal_type", False),
        ("symbol", False),
        ("keyword", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


secret_values = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=40)
secret_keys = st.sampled_from(
    ["api_key", "X-BAPI-SIGN", "x-api-key", "password", "Authorization", "bybit_api_secret"]
)


@given(key=secret_keys, value=secret_values, depth=st.integers(min_value=0, max_value=5))
def test_redaction_property_value_under_secret_key_never_survives(
    key: str, value: str, depth: int
) -> None:
    data: Any = {key: value}
    for level in range(depth):
        data = {"level": level, "items": [data]}
    assert value not in json.dumps(redact_value(data))


@given(user=st.from_regex(r"[a-z]{1,8}", fullmatch=True), password=secret_values)
def test_redaction_property_url_passwords_never_survive(user: str, password: str) -> None:
    text = f"connecting to postgresql://{user}:{password}@127.0.0.1:5432/db now"
    redacted = redact_text(text)
    assert password not in redacted
    assert f"postgresql://{user}:{REDACTED}@127.0.0.1:5432/db now" in redacted
