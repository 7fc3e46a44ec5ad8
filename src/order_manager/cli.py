"""Command line entry point (`order-manager`).

    order-manager run            check the schema is current, serve the API and the service
    order-manager migrate        upgrade the database to the newest revision
                 migrate --revision REV | migrate downgrade REV | migrate current | migrate sql
    order-manager config-check   validate the configuration, print it with secrets masked
    order-manager send-signal    publish trading signal(s) to model-service.trading_signals
    order-manager dlq list       show what the signals' dead-letter queue holds (keeps it all)
                  dlq replay     deliver chosen dead-lettered signals again (FR-019 retry)
                  dlq discard    remove chosen dead letters, each saved to a file first
    order-manager version

Exit codes: 0 success, 1 runtime failure (database unreachable, schema not current, ...),
2 invalid configuration or usage (the message names the `ORDERMANAGER_*` variable).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, NoReturn

import typer

from order_manager.cli_dlq import dlq_app
from order_manager.cli_support import EXIT_CONFIG, EXIT_FAILURE
from order_manager.cli_support import fail as _fail
from order_manager.cli_support import settings as _settings
from order_manager.config import Settings, redact_url
from order_manager.domain.money import parse_decimal
from order_manager.services.events import iso

app = typer.Typer(help="Order Manager for Bybit V5.", no_args_is_help=True, add_completion=False)
migrate_app = typer.Typer(
    help="Database schema migrations (default: upgrade to the newest revision).",
    invoke_without_command=True,
    add_completion=False,
)
app.add_typer(migrate_app, name="migrate")
app.add_typer(dlq_app, name="dlq")


def _migration_errors() -> tuple[type[Exception], ...]:
    """What a migration command reports as a failure (imported lazily: alembic and SQLAlchemy
    take a second to import, and config-check must stay fast)."""
    import alembic.util
    import asyncpg
    import sqlalchemy.exc

    return (
        OSError,
        ValueError,
        asyncpg.PostgresError,
        sqlalchemy.exc.SQLAlchemyError,
        alembic.util.CommandError,
    )


def _database_url(override: str | None) -> str:
    return override or _settings().database_url


DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL (default: ORDERMANAGER_DATABASE_URL).",
        show_default=False,
    ),
]


@app.command()
def version() -> None:
    """Print the version."""
    from order_manager.api.app import service_version

    typer.echo(service_version())


@app.command("config-check")
def config_check(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Validate the configuration and print the effective values (secrets masked)."""
    settings = _settings()
    values = settings.redacted_dict()
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    for name, value in values.items():
        label = name if name.startswith("effective_") else f"ORDERMANAGER_{name.upper()}"
        typer.echo(f"{label}={'' if value is None else value}")
    typer.echo("# configuration OK", err=True)


@migrate_app.callback()
def migrate(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
    database_url: DatabaseUrlOption = None,
) -> None:
    """Upgrade the database schema (to the newest revision unless --revision is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from order_manager.adapters.postgres import migrate as migrations

    dsn = _database_url(database_url)
    try:
        migrations.upgrade(dsn, revision)
        current = asyncio.run(migrations.current_revision(dsn))
    except _migration_errors() as exc:
        _fail(f"migration failed on {redact_url(dsn)}: {exc}", EXIT_FAILURE)
    typer.echo(f"database {redact_url(dsn)} at revision {current}")


@migrate_app.command("downgrade")
def migrate_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; `base` drops everything.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revert the schema to REVISION."""
    from order_manager.adapters.postgres import migrate as migrations

    dsn = _database_url(database_url)
    try:
        migrations.downgrade(dsn, revision)
        current = asyncio.run(migrations.current_revision(dsn))
    except _migration_errors() as exc:
        _fail(f"downgrade failed on {redact_url(dsn)}: {exc}", EXIT_FAILURE)
    typer.echo(f"database {redact_url(dsn)} at revision {current or 'base'}")


@migrate_app.command("current")
def migrate_current(database_url: DatabaseUrlOption = None) -> None:
    """Print the database's revision and the newest one this code knows."""
    from order_manager.adapters.postgres import migrate as migrations

    dsn = _database_url(database_url)
    current = asyncio.run(migrations.current_revision(dsn))
    typer.echo(f"current: {current or 'base'}  head: {migrations.head_revision()}")


@migrate_app.command("sql")
def migrate_sql(
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
) -> None:
    """Print the SQL of an upgrade without touching a database."""
    from order_manager.adapters.postgres import migrate as migrations

    typer.echo(migrations.upgrade_sql(revision))


def _check_schema(settings: Settings, auto_migrate: bool) -> None:
    from order_manager.adapters.postgres import migrate as migrations

    dsn = settings.database_url
    try:
        if auto_migrate:
            migrations.upgrade(dsn)
        current = asyncio.run(migrations.current_revision(dsn))
    except _migration_errors() as exc:
        _fail(f"PostgreSQL at {redact_url(dsn)} unreachable: {exc}", EXIT_FAILURE)
    head = migrations.head_revision()
    if current != head:
        _fail(
            f"database schema is at {current or 'base'}, this code needs {head}: "
            "run `order-manager migrate` (or start with --migrate)",
            EXIT_FAILURE,
        )


@app.command()
def run(
    auto_migrate: Annotated[
        bool, typer.Option("--migrate", help="Upgrade the schema before starting.")
    ] = False,
) -> None:
    """Run the service: REST API on ORDERMANAGER_HOST:ORDERMANAGER_PORT plus every component.

    SIGTERM or Ctrl-C stops it gracefully (in-flight requests finish, components stop)."""
    import uvicorn

    from order_manager.bootstrap import add_service, build_container
    from order_manager.logs import configure_logging, uvicorn_log_config

    settings = _settings()
    configure_logging(settings.log_level.value, settings.log_format.value)
    _check_schema(settings, auto_migrate)
    container = build_container(settings)
    add_service(container)  # signals → orders, tracking + outbox, API + reconciliation
    config = uvicorn.Config(
        container.app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        log_config=uvicorn_log_config(),
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        # uvicorn could not start (port in use, or start-up failed; the log says why).
        sys.exit(EXIT_FAILURE)


# ------------------------------------------------------------------------------ send-signal
#
# Every field of the signal contract (messages.md §1) has an option. Values are checked in two
# steps: each option is parsed on its own (numbers as exact decimal text through the domain's
# ``parse_decimal``, never float; timestamps as ISO 8601 with an offset; JSON objects with their
# numbers kept as Decimal), then the finished message goes through the intake's own
# ``parse_signal``. Anything it refuses is a usage error (exit 2) that names the option which
# carried the value, so send-signal never publishes a message the service would dead-letter.

#: metadata key -> the dedicated option that sets it (names the option in error messages).
_METADATA_OPTIONS: dict[str, str] = {
    "order_type": "--order-type",
    "limit_price": "--limit-price",
    "time_in_force": "--time-in-force",
    "reduce_only": "--reduce-only",
    "post_only": "--post-only",
    "stop_loss": "--stop-loss",
    "take_profit": "--take-profit",
    "category": "--category",
    "position_idx": "--position-idx",
    "max_slippage_bps": "--max-slippage-bps",
    "expires_at": "--expires-at",
    "urgency": "--urgency",
}
#: top-level field -> the option that sets it.
_FIELD_OPTIONS: dict[str, str] = {
    "signal_id": "--signal-id",
    "signal_type": "--side",
    "asset": "--asset",
    "amount": "--amount",
    "amount_unit": "--amount-unit",
    "confidence": "--confidence",
    "timestamp": "--timestamp",
    "strategy_id": "--strategy-id",
    "model_version": "--model-version",
    "is_warmup": "--warmup",
    "market_data_snapshot": "--market-data-snapshot",
    "trace_id": "--trace-id",
}
_POSITION_IDX = {"0": 0, "1": 1, "2": 2}
_SIGNAL = "Signal"
_METADATA = "Signal metadata"
_DELIVERY = "Delivery"


def _usage_error(option: str, message: str) -> NoReturn:
    _fail(f"{option}: {message}", EXIT_CONFIG)


def _decimal(option: str, text: str) -> Decimal:
    """An exact Decimal from the option's text (``0.05``, ``1e3``); no float on the way."""
    try:
        return parse_decimal(text)
    except ValueError as exc:
        _usage_error(option, f"expected a decimal number such as 0.05 ({exc})")


def _decimal_option(option: str, text: str | None) -> Decimal | None:
    return None if text is None else _decimal(option, text)


def _timestamp_option(option: str, text: str | None) -> datetime | None:
    """An aware datetime from ISO 8601 text that carries a timezone (``Z`` or ``+HH:MM``)."""
    if text is None:
        return None
    hint = "an ISO 8601 timestamp with a timezone, e.g. 2026-11-28T18:30:00Z"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        _usage_error(option, f"expected {hint}, got {text!r}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        _usage_error(option, f"{text!r} has no timezone; expected {hint}")
    return parsed.astimezone(UTC)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _json_object_option(option: str, text: str | None) -> dict[str, Any] | None:
    """A JSON object from the option's text; its fractional numbers are parsed straight to
    Decimal (and written back digit for digit), NaN/Infinity are refused."""
    if text is None:
        return None
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as exc:
        _usage_error(option, f"not valid JSON ({exc})")
    if not isinstance(value, dict):
        _usage_error(option, f"expected a JSON object {{...}}, got {type(value).__name__}")
    return value


def _position_idx_option(text: str | None) -> int | None:
    if text is None:
        return None
    if text.strip() not in _POSITION_IDX:
        _usage_error(
            "--position-idx",
            f"expected 0 (one-way), 1 (hedge long) or 2 (hedge short), got {text!r}",
        )
    return _POSITION_IDX[text.strip()]


def _option_for(field_path: str, metadata_json_keys: Collection[str]) -> str:
    """The option that carried the value at ``field_path`` (``metadata.limit_price``, ...)."""
    top, _, rest = field_path.partition(".")
    if top == "metadata":
        key = rest.partition(".")[0]
        if not key or key in metadata_json_keys:
            return "--metadata-json"
        return _METADATA_OPTIONS.get(key, "--metadata-json")
    return _FIELD_OPTIONS.get(top, "send-signal")


def _check_contract(body: bytes, metadata_json_keys: Collection[str]) -> None:
    """Refuse (exit 2) a message the intake's parser would refuse, naming the option."""
    from order_manager.domain.signals import SignalRejection, parse_signal

    parsed = parse_signal(body)
    if isinstance(parsed, SignalRejection):
        field_path = str(parsed.details.get("field", ""))
        _usage_error(_option_for(field_path, metadata_json_keys), parsed.message)
    if parsed.notes:  # the service would set these parts aside; a person typed them: say so
        _usage_error("--market-data-snapshot", "; ".join(parsed.notes))


@app.command("send-signal")
def send_signal(
    asset: Annotated[
        str,
        typer.Option("--asset", help="asset: Bybit symbol, e.g. BTCUSDT.", rich_help_panel=_SIGNAL),
    ],
    side: Annotated[
        str, typer.Option("--side", help="signal_type: buy or sell.", rich_help_panel=_SIGNAL)
    ],
    amount: Annotated[
        str,
        typer.Option(
            "--amount",
            help="amount, exact decimal text (quote currency unless --amount-unit base).",
            rich_help_panel=_SIGNAL,
        ),
    ],
    confidence: Annotated[
        str, typer.Option("--confidence", help="confidence, 0..1.", rich_help_panel=_SIGNAL)
    ] = "0.8",
    amount_unit: Annotated[
        str | None,
        typer.Option("--amount-unit", help="amount_unit: quote | base.", rich_help_panel=_SIGNAL),
    ] = None,
    strategy_id: Annotated[
        str, typer.Option("--strategy-id", help="strategy_id.", rich_help_panel=_SIGNAL)
    ] = "cli",
    model_version: Annotated[
        str | None,
        typer.Option(
            "--model-version", help="model_version (default null).", rich_help_panel=_SIGNAL
        ),
    ] = None,
    signal_id: Annotated[
        str | None,
        typer.Option(
            "--signal-id",
            help="signal_id, a UUID (default: a new one per signal; repeated with --count it "
            "sends duplicates).",
            rich_help_panel=_SIGNAL,
        ),
    ] = None,
    trace_id: Annotated[
        str | None,
        typer.Option("--trace-id", help="trace_id (default: generated).", rich_help_panel=_SIGNAL),
    ] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(
            "--timestamp",
            help="timestamp, ISO 8601 with a timezone, e.g. 2026-11-28T18:30:00Z (default: now). "
            "An old one exercises the stale-signal refusal.",
            rich_help_panel=_SIGNAL,
        ),
    ] = None,
    warmup: Annotated[
        bool, typer.Option("--warmup", help="is_warmup = true.", rich_help_panel=_SIGNAL)
    ] = False,
    market_data_snapshot: Annotated[
        str | None,
        typer.Option(
            "--market-data-snapshot",
            help="market_data_snapshot as a JSON object, numbers kept exact, e.g. "
            '\'{"price": 64250.5, "spread": 0.5, "orderbook_depth": {"bid_depth": 152.3, '
            '"ask_depth": 140.9}}\' (price = mid price, spread = absolute ask - bid).',
            rich_help_panel=_SIGNAL,
        ),
    ] = None,
    order_type: Annotated[
        str | None,
        typer.Option(
            "--order-type", help="metadata.order_type: market | limit.", rich_help_panel=_METADATA
        ),
    ] = None,
    limit_price: Annotated[
        str | None,
        typer.Option(
            "--limit-price", help="metadata.limit_price, decimal > 0.", rich_help_panel=_METADATA
        ),
    ] = None,
    time_in_force: Annotated[
        str | None,
        typer.Option(
            "--time-in-force",
            help="metadata.time_in_force: GTC | IOC | FOK | PostOnly.",
            rich_help_panel=_METADATA,
        ),
    ] = None,
    reduce_only: Annotated[
        bool | None,
        typer.Option(
            "--reduce-only/--no-reduce-only",
            help="metadata.reduce_only = true / false (default: key absent).",
            show_default=False,
            rich_help_panel=_METADATA,
        ),
    ] = None,
    post_only: Annotated[
        bool | None,
        typer.Option(
            "--post-only/--no-post-only",
            help="metadata.post_only = true / false (default: key absent).",
            show_default=False,
            rich_help_panel=_METADATA,
        ),
    ] = None,
    stop_loss: Annotated[
        str | None,
        typer.Option(
            "--stop-loss", help="metadata.stop_loss price, decimal > 0.", rich_help_panel=_METADATA
        ),
    ] = None,
    take_profit: Annotated[
        str | None,
        typer.Option(
            "--take-profit",
            help="metadata.take_profit price, decimal > 0.",
            rich_help_panel=_METADATA,
        ),
    ] = None,
    category: Annotated[
        str | None,
        typer.Option(
            "--category",
            help="metadata.category: linear | spot | inverse (default: the service's).",
            rich_help_panel=_METADATA,
        ),
    ] = None,
    position_idx: Annotated[
        str | None,
        typer.Option(
            "--position-idx",
            help="metadata.position_idx: 0 one-way, 1 hedge long, 2 hedge short.",
            rich_help_panel=_METADATA,
        ),
    ] = None,
    max_slippage_bps: Annotated[
        str | None,
        typer.Option(
            "--max-slippage-bps",
            help="metadata.max_slippage_bps, decimal >= 0.",
            rich_help_panel=_METADATA,
        ),
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option(
            "--expires-at",
            help="metadata.expires_at, ISO 8601 with a timezone, e.g. 2026-11-28T18:30:00Z "
            "(sent as UTC).",
            rich_help_panel=_METADATA,
        ),
    ] = None,
    urgency: Annotated[
        str | None,
        typer.Option(
            "--urgency",
            help="metadata.urgency, free text (low | normal | high recognised).",
            rich_help_panel=_METADATA,
        ),
    ] = None,
    metadata_json: Annotated[
        str | None,
        typer.Option(
            "--metadata-json",
            help="More metadata keys as a JSON object, numbers kept exact, e.g. "
            '\'{"reasoning": "breakout", "risk_score": 0.3}\'. A key may not also be set by '
            "its own option.",
            rich_help_panel=_METADATA,
        ),
    ] = None,
    count: Annotated[
        int,
        typer.Option("--count", min=1, help="How many signals to send.", rich_help_panel=_DELIVERY),
    ] = 1,
    rabbitmq_url: Annotated[
        str | None,
        typer.Option(
            "--rabbitmq-url",
            help="Default: ORDERMANAGER_RABBITMQ_URL.",
            show_default=False,
            rich_help_panel=_DELIVERY,
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            help="Default: ORDERMANAGER_SIGNALS_QUEUE.",
            show_default=False,
            rich_help_panel=_DELIVERY,
        ),
    ] = None,
    print_only: Annotated[
        bool,
        typer.Option(
            "--print", help="Print the JSON instead of publishing it.", rich_help_panel=_DELIVERY
        ),
    ] = False,
) -> None:
    """Publish trading signal(s) exactly as the model service does (persistent, confirmed).

    Every field of the signal contract (messages.md §1) has an option; numbers are sent as
    exact JSON numbers. A value the service's parser would refuse exits 2 naming the option.
    Prints one line per signal: its signal_id and trace_id (or the JSON with --print)."""
    from order_manager.adapters.rabbitmq.signal_publisher import (
        build_signal,
        encode_signal,
        publish_signals,
    )

    amount_value = _decimal("--amount", amount)
    confidence_value = _decimal("--confidence", confidence)
    if signal_id is not None:
        try:
            signal_id = str(uuid.UUID(signal_id))
        except ValueError:
            _usage_error("--signal-id", f"expected a UUID, got {signal_id!r}")
    sent_at = _timestamp_option("--timestamp", timestamp)
    expiry = _timestamp_option("--expires-at", expires_at)
    snapshot = _json_object_option("--market-data-snapshot", market_data_snapshot)
    extra_metadata = _json_object_option("--metadata-json", metadata_json) or {}
    given: dict[str, object] = {
        key: value
        for key, value in (
            ("order_type", order_type.lower() if order_type is not None else None),
            ("limit_price", _decimal_option("--limit-price", limit_price)),
            ("time_in_force", time_in_force),
            ("reduce_only", reduce_only),
            ("post_only", post_only),
            ("stop_loss", _decimal_option("--stop-loss", stop_loss)),
            ("take_profit", _decimal_option("--take-profit", take_profit)),
            ("category", category.lower() if category is not None else None),
            ("position_idx", _position_idx_option(position_idx)),
            ("max_slippage_bps", _decimal_option("--max-slippage-bps", max_slippage_bps)),
            ("expires_at", iso(expiry)),
            ("urgency", urgency),
        )
        if value is not None
    }
    clashes = sorted(set(given) & set(extra_metadata))
    if clashes:
        _usage_error(
            "--metadata-json",
            "keys also set by their own options: "
            + ", ".join(f"{key} ({_METADATA_OPTIONS[key]})" for key in clashes),
        )
    metadata = {**extra_metadata, **given}
    signals = [
        build_signal(
            asset=asset,
            side=side,
            amount=amount_value,
            confidence=confidence_value,
            strategy_id=strategy_id,
            signal_id=signal_id,
            timestamp=sent_at,
            is_warmup=warmup,
            amount_unit=amount_unit,
            trace_id=trace_id,
            metadata=metadata,
            market_data_snapshot=snapshot,
            model_version=model_version,
        )
        for _ in range(count)
    ]
    bodies = [encode_signal(signal) for signal in signals]
    for body in bodies:
        _check_contract(body, extra_metadata.keys())
    if print_only:
        for body in bodies:
            typer.echo(body.decode())
        return
    settings = None if rabbitmq_url and queue else _settings()
    url = rabbitmq_url or (settings.rabbitmq_url if settings else "")
    target = queue or (settings.signals_queue if settings else "")
    try:
        asyncio.run(publish_signals(url, target, signals))
    except (OSError, ConnectionError) as exc:
        _fail(f"RabbitMQ at {redact_url(url)} unreachable: {exc}", EXIT_FAILURE)
    for signal in signals:
        typer.echo(f"sent signal_id={signal['signal_id']} trace_id={signal['trace_id']}")


def main() -> None:
    app()
