"""What every `order-manager` command shares: exit codes, failing with a message, settings."""

from __future__ import annotations

from typing import NoReturn

import typer

from order_manager.config import ConfigError, Settings, load_settings

EXIT_FAILURE = 1
EXIT_CONFIG = 2


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"order-manager: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    """The configuration, or exit 2 naming every bad ``ORDERMANAGER_*`` variable."""
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
