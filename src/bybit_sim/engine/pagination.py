"""Bybit-style cursor pagination over lists sorted newest first."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar
from urllib.parse import parse_qs, quote, unquote

from bybit_sim.engine.errors import params_error

T = TypeVar("T")


def encode_cursor(kind: str, key: int) -> str:
    """An opaque cursor, already percent-encoded as Bybit returns them
    (`page_args%3D<key>%26kind%3D<kind>%26`)."""
    return quote(f"page_args={key}&kind={kind}&", safe="")


def decode_cursor(cursor: str, kind: str) -> int:
    """Accepts the cursor as returned, or decoded once more or less by the client's HTTP stack."""
    text = cursor
    for _ in range(3):
        if "page_args=" in text:
            break
        text = unquote(text)
    fields = parse_qs(text)
    try:
        if fields.get("kind", [kind])[0] != kind:
            raise ValueError(kind)
        return int(fields["page_args"][0])
    except (KeyError, ValueError, IndexError):
        raise params_error("params error: cursor invalid") from None


def paginate(
    items: list[T], key: Callable[[T], int], limit: int, cursor: str, kind: str
) -> tuple[list[T], str]:
    """`items` sorted by `key` descending; the cursor carries the last key returned, so pages
    stay stable while newer items arrive. Returns (page, nextPageCursor or "")."""
    if cursor:
        after = decode_cursor(cursor, kind)
        items = [i for i in items if key(i) < after]
    page = items[:limit]
    next_cursor = encode_cursor(kind, key(page[-1])) if len(items) > limit else ""
    return page, next_cursor


def paginate_desc(
    items: Iterable[T],
    key: Callable[[T], int],
    keep: Callable[[T], bool],
    limit: int,
    cursor: str,
    kind: str,
) -> tuple[list[T], str]:
    """Like `paginate` for an iterable already in descending key order: it is consumed only
    up to one item past the page, so a page near the top of a long history costs little."""
    after = decode_cursor(cursor, kind) if cursor else None
    page: list[T] = []
    more = False
    for item in items:
        if after is not None and key(item) >= after:
            continue
        if not keep(item):
            continue
        if len(page) == limit:
            more = True
            break
        page.append(item)
    return page, encode_cursor(kind, key(page[-1])) if more else ""
