"""The error taxonomy: one table, mapped from retCode and HTTP status."""

from __future__ import annotations

from pathlib import Path

import pytest

from order_manager.adapters.bybit import errors
from order_manager.adapters.bybit.errors import ErrorKind, classify, error_from_response

DOC = Path(__file__).resolve().parents[3] / "docs" / "bybit_errors.md"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (10000, ErrorKind.RETRYABLE),
        (10016, ErrorKind.RETRYABLE),
        (10006, ErrorKind.RATE_LIMITED),
        (10002, ErrorKind.CLOCK_SKEW),
        (110072, ErrorKind.ALREADY_EXISTS),
        (110004, ErrorKind.INSUFFICIENT_FUNDS),
        (110007, ErrorKind.INSUFFICIENT_FUNDS),
        (110012, ErrorKind.INSUFFICIENT_FUNDS),
        (110044, ErrorKind.INSUFFICIENT_FUNDS),
        (110045, ErrorKind.INSUFFICIENT_FUNDS),
        (170131, ErrorKind.INSUFFICIENT_FUNDS),
        (10001, ErrorKind.INVALID_REQUEST),
        (110003, ErrorKind.INVALID_REQUEST),
        (110017, ErrorKind.INVALID_REQUEST),
        (110094, ErrorKind.INVALID_REQUEST),
        (170136, ErrorKind.INVALID_REQUEST),
        (110001, ErrorKind.NOT_FOUND),
        (170213, ErrorKind.NOT_FOUND),
        (10003, ErrorKind.AUTH),
        (10004, ErrorKind.AUTH),
        (10005, ErrorKind.AUTH),
        (10007, ErrorKind.AUTH),
        (10010, ErrorKind.AUTH),
        (999_999, ErrorKind.REJECTED),
    ],
)
def test_ret_codes_are_classified(code: int, kind: ErrorKind) -> None:
    assert classify(code, 200) is kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (None, ErrorKind.RETRYABLE),
        (500, ErrorKind.RETRYABLE),
        (502, ErrorKind.RETRYABLE),
        (503, ErrorKind.RETRYABLE),
        (429, ErrorKind.RATE_LIMITED),
        (403, ErrorKind.RATE_LIMITED),
        (401, ErrorKind.AUTH),
        (404, ErrorKind.INVALID_REQUEST),
        (418, ErrorKind.REJECTED),
    ],
)
def test_http_statuses_without_ret_code_are_classified(status: int | None, kind: ErrorKind) -> None:
    assert classify(None, status) is kind
    assert classify(0, status) is kind


def test_ret_code_wins_over_http_status() -> None:
    assert classify(110007, 500) is ErrorKind.INSUFFICIENT_FUNDS


def test_error_from_response_builds_the_typed_exception() -> None:
    err = error_from_response(
        endpoint="/v5/order/create",
        ret_code=10006,
        ret_msg="Too many visits!",
        http_status=200,
        reset_at_ms=123,
    )
    assert isinstance(err, errors.RateLimitedError)
    assert err.reset_at_ms == 123
    assert "retCode=10006" in str(err) and "/v5/order/create" in str(err)
    auth = error_from_response(endpoint="/x", ret_code=10004, ret_msg="error sign", http_status=200)
    assert isinstance(auth, errors.AuthError) and auth.ret_msg == "error sign"
    assert isinstance(
        error_from_response(endpoint="/x", ret_code=None, ret_msg="", http_status=502),
        errors.RetryableError,
    )
    dup = error_from_response(endpoint="/x", ret_code=110072, ret_msg="dup", http_status=200)
    assert isinstance(dup, errors.OrderAlreadyExistsError)


def test_docs_table_is_generated_from_the_code() -> None:
    assert DOC.read_text() == errors.render_markdown()
    for code in errors.RET_CODES:
        assert f"| {code} |" in DOC.read_text()
