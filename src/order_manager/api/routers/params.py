"""Query-parameter checks shared by the routers, with precise 422 messages.

FastAPI already validates types and ranges (its errors are mapped by `api.errors`); the checks
here cover what a type cannot say (allow-listed values, aware timestamps, from < to) and answer
in the same shape: `{"error", "code": "VALIDATION_ERROR", "details": {"errors": [...]}}` with
the parameter named.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import NoReturn

from order_manager.api import schemas
from order_manager.api.errors import ApiError

ASSET_PATTERN = r"^[A-Z0-9]{1,40}$"
_ASSET = re.compile(ASSET_PATTERN)


def invalid(parameter: str, message: str, where: str = "query") -> NoReturn:
    field = f"{where} {parameter}"
    raise ApiError(
        422,
        "VALIDATION_ERROR",
        f"{field}: {message}",
        {"errors": [{"field": field, "message": message, "type": "value_error"}]},
    )


def aware(parameter: str, value: datetime | None) -> datetime | None:
    """Timestamps must carry their offset (`...Z` or `+00:00`): a naive one is ambiguous."""
    if value is not None and value.utcoffset() is None:
        invalid(parameter, "timestamp needs a timezone offset, e.g. 2026-11-28T12:00:00Z")
    return value


def time_range(
    start: datetime | None, end: datetime | None, names: tuple[str, str] = ("from", "to")
) -> None:
    aware(names[0], start)
    aware(names[1], end)
    if start is not None and end is not None and start >= end:
        invalid(names[1], f"must be later than '{names[0]}'")


def asset(value: str, where: str = "path") -> str:
    if not _ASSET.match(value):
        invalid(
            "asset", "must be a symbol of 1-40 upper-case letters or digits, e.g. BTCUSDT", where
        )
    return value


def total_pages(total: int, page_size: int) -> int:
    return (total + page_size - 1) // page_size


def statuses(
    raw: str | None, known: Collection[str], shorthands: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """`status=a,b` (comma-separated, case-insensitive), each a ``known`` status or a
    shorthand standing for several; duplicates dropped, order kept."""
    if raw is None:
        return ()
    out: list[str] = []
    for part in raw.split(","):
        value = part.strip().lower()
        if value in shorthands:
            out.extend(shorthands[value])
        elif value in known:
            out.append(value)
        else:
            allowed = ", ".join([*sorted(known), *shorthands])
            invalid("status", f"unknown status {part.strip()!r}; allowed: {allowed}")
    return tuple(dict.fromkeys(out))


def pagination(page: int, page_size: int, total: int) -> schemas.Pagination:
    return schemas.Pagination(
        page=page, page_size=page_size, total_items=total, total_pages=total_pages(total, page_size)
    )
