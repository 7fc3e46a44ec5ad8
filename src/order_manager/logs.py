"""Structured logging: JSON lines for machines, a readable console on a terminal.

Every line carries `timestamp` (ISO 8601, UTC), `level`, `event`, `logger` and, when one is
bound, `trace_id`. The trace id lives in a context variable (`bind_trace_id` /
`trace_context`), so it follows a signal through every `await` of the task that handles it
without being passed around by hand.

Secrets never reach a log line: `redact_secrets` runs last before rendering and masks the value
of any key that names a secret (api_key, secret, sign, signature, password, authorization,
X-BAPI-SIGN, X-API-Key, ...), at any nesting depth, every `SecretStr`, the password part of any
URL, and `key=value` pairs for those names inside free text. Records from the standard
`logging` module (uvicorn, aio-pika, asyncpg) go through the same processors, so they are JSON
and redacted too.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "**********"

# Compared after lower-casing and turning '-' into '_'.
_SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "api_secret",
        "secret",
        "sign",
        "signature",
        "password",
        "passwd",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "token",
        "access_token",
        "refresh_token",
        "x_bapi_sign",
        "x_bapi_api_key",
        "x_api_key",
    }
)
_SECRET_SUFFIXES = ("_secret", "_password", "_api_key", "_token", "_apikey")
_SECRET_NAMES_RE = "|".join(
    sorted((re.escape(k).replace("_", "[-_]?") for k in _SECRET_KEYS), key=len, reverse=True)
)
# key=value or "key": "value" inside free text (query strings, headers dumped as text, JSON).
_INLINE_SECRET = re.compile(
    rf"""(?ix)
    (?P<key>\b(?:{_SECRET_NAMES_RE})\b["']?\s*[=:]\s*["']?)
    (?P<value>(?:Bearer\s+)?[^\s&"',;}}]+)
    """
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?P<at>@)")


def is_secret_key(key: object) -> bool:
    """True when a mapping key names a secret (case, '-' and '_' ignored)."""
    if not isinstance(key, str):
        return False
    norm = key.strip().lower().replace("-", "_")
    return norm in _SECRET_KEYS or norm.endswith(_SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    """Mask URL passwords and `secret_name=value` pairs inside a string."""
    text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}\g<at>", text)
    return _INLINE_SECRET.sub(rf"\g<key>{REDACTED}", text)


def redact_value(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with every secret masked (mappings, sequences, strings, SecretStr)."""
    if depth > 12:
        return value
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret_key(k) else redact_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(redact_value(v, depth + 1) for v in value)
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets anywhere in the event (keys, nested values, text)."""
    for key in list(event_dict):
        event_dict[key] = REDACTED if is_secret_key(key) else redact_value(event_dict[key])
    return event_dict


# ------------------------------------------------------------------------------- trace ids


def new_trace_id() -> str:
    return uuid.uuid4().hex


def bind_trace_id(trace_id: str | None = None) -> str:
    """Bind `trace_id` (a new one when None) to the current context; returns it."""
    trace_id = trace_id or new_trace_id()
    structlog.contextvars.bind_contextvars(trace_id=trace_id)
    return trace_id


def current_trace_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("trace_id")
    return value if isinstance(value, str) else None


@contextmanager
def trace_context(trace_id: str | None = None) -> Iterator[str]:
    """Bind a trace id for the duration of a block, restoring the previous one after."""
    tokens = structlog.contextvars.bind_contextvars(trace_id=trace_id or new_trace_id())
    try:
        yield str(structlog.contextvars.get_contextvars()["trace_id"])
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


# ------------------------------------------------------------------------------- configuration


def _rename_event_key(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("logger", event_dict.pop("logger_name", None) or "order_manager")
    return event_dict


def shared_processors() -> list[Processor]:
    """Processors applied to structlog and standard-library records alike, before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _rename_event_key,
        redact_secrets,
    ]


def configure_logging(
    level: str = "INFO",
    fmt: str = "auto",
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and the standard `logging` root once for the process.

    `fmt` is `json`, `console`, or `auto` (console when `stream` is a terminal, else JSON).
    """
    stream = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=True)
        if console
        else structlog.processors.JSONRenderer(default=str)
    )
    processors = shared_processors()
    if console:
        # The console renderer prints exceptions itself from exc_info; keep the traceback text.
        processors = [p for p in processors if p is not structlog.processors.format_exc_info]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        # filter_by_level first: a disabled debug call is dropped before the timestamp, the
        # redaction and the rest run (measured ~40 µs per filtered call on the hot path).
        processors=[
            structlog.stdlib.filter_by_level,
            *processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str = "order_manager", **initial: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **initial)
    return logger


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's `log_config`: keep its loggers but let them propagate to our root handler."""
    loggers: MutableMapping[str, Any] = {
        name: {"handlers": [], "propagate": True, "level": "INFO"}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    return {"version": 1, "disable_existing_loggers": False, "loggers": dict(loggers)}
