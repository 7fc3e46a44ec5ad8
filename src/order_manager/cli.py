"""Command line entry point (`order-manager`).

    order-manager run            check the schema is current, serve the API and the service
    order-manager migrate        upgrade the database to the newest revision
                 migrate --revision REV | migrate downgrade REV | migrate current | migrate sql
    order-manager config-check   validate the configuration, print it with secrets masked
    order-manager send-signal    publish trading signal(s) to model-service.trading_signals
    order-manager version

Exit codes: 0 success, 1 runtime failure (database unreachable, schema not current, ...),
2 invalid configuration or usage (the message names the `ORDERMANAGER_*` variable).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, NoReturn

import typer

from order_manager.config import ConfigError, Settings, load_settings, redact_url

EXIT_FAILURE = 1
EXIT_CONFIG = 2

app = typer.Typer(help="Order Manager for Bybit V5.", no_args_is_help=True, add_completion=False)
migrate_app = typer.Typer(
    help="Database schema migrations (default: upgrade to the newest revision).",
    invoke_without_command=True,
    add_completion=False,
)
app.add_typer(migrate_app, name="migrate")


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


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"order-manager: {message}", err=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)


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


@app.command("send-signal")
def send_signal(
    asset: Annotated[str, typer.Option("--asset", help="Bybit symbol, e.g. BTCUSDT.")],
    side: Annotated[str, typer.Option("--side", help="buy or sell.")],
    amount: Annotated[str, typer.Option("--amount", help="Amount (quote unless --amount-unit).")],
    confidence: Annotated[str, typer.Option("--confidence", help="0..1.")] = "0.8",
    order_type: Annotated[
        str | None, typer.Option("--order-type", help="metadata.order_type: market | limit.")
    ] = None,
    limit_price: Annotated[
        str | None, typer.Option("--limit-price", help="metadata.limit_price.")
    ] = None,
    time_in_force: Annotated[
        str | None, typer.Option("--time-in-force", help="GTC | IOC | FOK | PostOnly.")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="metadata.category: linear | spot | inverse.")
    ] = None,
    amount_unit: Annotated[
        str | None, typer.Option("--amount-unit", help="quote (default) | base.")
    ] = None,
    reduce_only: Annotated[
        bool, typer.Option("--reduce-only", help="metadata.reduce_only = true.")
    ] = False,
    urgency: Annotated[str | None, typer.Option("--urgency", help="metadata.urgency.")] = None,
    warmup: Annotated[bool, typer.Option("--warmup", help="is_warmup = true.")] = False,
    strategy_id: Annotated[str, typer.Option("--strategy-id")] = "cli",
    signal_id: Annotated[
        str | None,
        typer.Option("--signal-id", help="Fixed signal_id (repeated with --count: duplicates)."),
    ] = None,
    trace_id: Annotated[str | None, typer.Option("--trace-id")] = None,
    count: Annotated[int, typer.Option("--count", min=1, help="How many signals to send.")] = 1,
    rabbitmq_url: Annotated[
        str | None,
        typer.Option(
            "--rabbitmq-url", help="Default: ORDERMANAGER_RABBITMQ_URL.", show_default=False
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option("--queue", help="Default: ORDERMANAGER_SIGNALS_QUEUE.", show_default=False),
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the JSON instead of publishing it.")
    ] = False,
) -> None:
    """Publish trading signal(s) exactly as the model service does (persistent, confirmed).

    Prints one line per signal: its signal_id and trace_id (or the JSON with --print)."""
    from decimal import Decimal, InvalidOperation

    from order_manager.adapters.rabbitmq.signal_publisher import (
        build_signal,
        encode_signal,
        publish_signals,
    )

    try:
        amount_value, confidence_value = Decimal(amount), Decimal(confidence)
        limit_value = None if limit_price is None else Decimal(limit_price)
    except InvalidOperation:
        _fail("--amount, --confidence and --limit-price must be decimal numbers", EXIT_CONFIG)
    metadata: dict[str, object] = {}
    for key, value in (
        ("order_type", order_type),
        ("limit_price", limit_value),
        ("time_in_force", time_in_force),
        ("category", category),
        ("urgency", urgency),
    ):
        if value is not None:
            metadata[key] = value
    if reduce_only:
        metadata["reduce_only"] = True
    signals = [
        build_signal(
            asset=asset,
            side=side,
            amount=amount_value,
            confidence=confidence_value,
            strategy_id=strategy_id,
            signal_id=signal_id,
            is_warmup=warmup,
            amount_unit=amount_unit,
            trace_id=trace_id,
            metadata=metadata,
        )
        for _ in range(count)
    ]
    if print_only:
        for signal in signals:
            typer.echo(encode_signal(signal).decode())
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
