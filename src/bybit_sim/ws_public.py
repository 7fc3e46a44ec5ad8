"""Simulator ws public routes. Placeholder until the streams work lands."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes on the simulator's application."""
    del app
