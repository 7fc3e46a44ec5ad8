"""`order-manager dlq`: look into the signals' dead-letter queue and deliver signals again.

    order-manager dlq list   [--limit 50] [--json]
    order-manager dlq replay (--reason CODE ... | --signal-id ID ... | --all)
                             [--include-stale] [--limit 1000] [--dry-run]
    order-manager dlq discard (--reason CODE ... | --signal-id ID ... | --all-malformed)
                              --save FILE [--limit 1000] [--dry-run]

A signal whose attempt ended ``failed`` (exchange unavailable, outcome unknown, our own error)
is dead-lettered with its reason and retried by delivering it again (FR-019: a failed signal
may be retried; its write-ahead intents are resumed by orderLinkId, never doubled). ``replay``
does that delivery. What it takes by default, and why:

* ``--all`` means every *failed signal*; a malformed message (``invalid_json``,
  ``missing_field``, ...) would only be dead-lettered again with the same reason, so it is
  replayed only when named (``--reason missing_field`` or ``--signal-id``).
* A signal older than ``ORDERMANAGER_SIGNAL_MAX_AGE_SECONDS`` would be refused
  ``stale_signal`` on arrival, and replaying an old trading decision is rarely what anyone
  wants: stale ones stay in the queue unless ``--include-stale``.
* ``--dry-run`` shows what would be replayed and touches nothing.

Everything not replayed stays in the dead-letter queue, in its order.

``discard`` removes what nobody will replay — typically malformed messages once the model
service's owners have them — and loses nothing doing it: ``--save FILE`` is required, each
removed message is appended to FILE as one JSON line (reason, error, signal id, trace id, the
body as text and, exactly, as base64) and synced to disk *before* the broker is told to drop
it. ``--all-malformed`` takes every malformed message; a failed signal is discarded only when
named (``--reason`` or ``--signal-id``), since it may still be worth a replay.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Annotated, TextIO

import typer

from order_manager.adapters.rabbitmq.dead_letter_queue import DeadLetter, discard, peek, replay
from order_manager.cli_support import EXIT_FAILURE, fail, settings
from order_manager.config import redact_url

dlq_app = typer.Typer(
    help="The signals' dead-letter queue: list it, deliver chosen signals again, discard.",
    no_args_is_help=True,
    add_completion=False,
)

LimitOption = Annotated[int, typer.Option("--limit", min=1, help="How many messages to read.")]


def _line(letter: DeadLetter, now: datetime, max_age: float) -> str:
    age = letter.age_seconds(now)
    when = "age ?" if age is None else f"age {age:.0f}s{' (stale)' if age > max_age else ''}"
    kind = "failed signal" if letter.is_failed_signal else "malformed"
    return (
        f"{letter.position:>4}  {letter.reason or '?':<26} {kind:<13} "
        f"signal_id={letter.signal_id or '-'} asset={letter.asset or '-'} {when} "
        f"failed_at={letter.failed_at or '-'} trace_id={letter.trace_id or '-'}\n"
        f"      {(letter.error or '')[:200]}"
    )


@dlq_app.command("list")
def list_(
    limit: LimitOption = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show the first messages of the dead-letter queue (nothing is removed)."""
    config = settings()
    try:
        letters = asyncio.run(peek(config.rabbitmq_url, config.signals_dlq, limit=limit))
    except (OSError, ConnectionError) as exc:
        fail(f"RabbitMQ at {redact_url(config.rabbitmq_url)} unreachable: {exc}", EXIT_FAILURE)
    now = datetime.now(UTC)
    for letter in letters:
        if as_json:
            typer.echo(json.dumps(letter.as_json(now)))
        else:
            typer.echo(_line(letter, now, config.signal_max_age_seconds))
    if not as_json:
        typer.echo(f"{len(letters)} message(s) shown from {config.signals_dlq} (none removed)")


def _signal_ids(texts: list[str] | None) -> set[str]:
    ids: set[str] = set()
    for text in texts or ():
        try:
            ids.add(str(uuid.UUID(text)))
        except ValueError:
            fail(f"--signal-id: expected a UUID, got {text!r}", 2)
    return ids


@dlq_app.command("replay")
def replay_(
    reason: Annotated[
        list[str] | None, typer.Option("--reason", help="Replay dead letters with this reason.")
    ] = None,
    signal_id: Annotated[
        list[str] | None, typer.Option("--signal-id", help="Replay this signal (a UUID).")
    ] = None,
    all_failed: Annotated[
        bool, typer.Option("--all", help="Replay every failed signal (not malformed messages).")
    ] = False,
    include_stale: Annotated[
        bool,
        typer.Option("--include-stale", help="Also signals older than the maximum signal age."),
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many to read.")] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be replayed; change nothing.")
    ] = False,
) -> None:
    """Deliver chosen dead-lettered signals to the signals queue again."""
    reasons = set(reason or ())
    ids = _signal_ids(signal_id)
    if not (reasons or ids or all_failed):
        fail("say what to replay: --reason CODE, --signal-id ID or --all", 2)
    config = settings()
    now = datetime.now(UTC)
    max_age = config.signal_max_age_seconds

    def wanted(letter: DeadLetter) -> bool:
        named = letter.reason in reasons or letter.signal_id in ids
        return named or (all_failed and letter.is_failed_signal)

    def fresh(letter: DeadLetter) -> bool:
        age = letter.age_seconds(now)
        return age is None or age <= max_age

    def chosen(letter: DeadLetter) -> bool:
        return wanted(letter) and (include_stale or fresh(letter))

    try:
        report = asyncio.run(
            replay(
                config.rabbitmq_url,
                config.signals_dlq,
                target=config.signals_queue,
                select=(lambda _: False) if dry_run else chosen,
                limit=limit,
            )
        )
    except (OSError, ConnectionError) as exc:
        fail(f"RabbitMQ at {redact_url(config.rabbitmq_url)} unreachable: {exc}", EXIT_FAILURE)
    done = [letter for letter in report.kept if chosen(letter)] if dry_run else report.replayed
    verb = "would replay" if dry_run else "replayed"
    for letter in done:
        typer.echo(f"{verb}: {_line(letter, now, max_age)}")
    for letter in report.kept:
        if wanted(letter) and not include_stale and not fresh(letter):
            typer.echo(f"kept, stale (--include-stale replays it): {_line(letter, now, max_age)}")
    kept = len(report.kept) - (len(done) if dry_run else 0)
    typer.echo(f"{len(done)} {verb} to {config.signals_queue}; {kept} kept in {config.signals_dlq}")


@dlq_app.command("discard")
def discard_(
    save: Annotated[
        str | None,
        typer.Option("--save", help="Append each discarded message to this file (JSON lines)."),
    ] = None,
    reason: Annotated[
        list[str] | None, typer.Option("--reason", help="Discard dead letters with this reason.")
    ] = None,
    signal_id: Annotated[
        list[str] | None, typer.Option("--signal-id", help="Discard this signal (a UUID).")
    ] = None,
    all_malformed: Annotated[
        bool, typer.Option("--all-malformed", help="Discard every malformed message.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many to read.")] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be discarded; change nothing.")
    ] = False,
) -> None:
    """Remove chosen dead letters, each saved to a file first."""
    reasons = set(reason or ())
    ids = _signal_ids(signal_id)
    if not (reasons or ids or all_malformed):
        fail("say what to discard: --reason CODE, --signal-id ID or --all-malformed", 2)
    if save is None and not dry_run:
        fail("--save FILE is required: every discarded message is kept there", 2)
    config = settings()
    now = datetime.now(UTC)

    def chosen(letter: DeadLetter) -> bool:
        named = letter.reason in reasons or letter.signal_id in ids
        return named or (all_malformed and not letter.is_failed_signal)

    with contextlib.ExitStack() as stack:
        archive_file: TextIO | None = None
        if save is not None and not dry_run:
            try:  # open (and so check) the file before anything leaves the queue
                archive_file = stack.enter_context(open(save, "a", encoding="utf-8"))
            except OSError as exc:
                fail(f"--save {save}: {exc}", EXIT_FAILURE)

        def archive(letter: DeadLetter) -> None:
            assert archive_file is not None, "a dry run discards nothing"
            record = letter.as_json(now) | {
                "queue": config.signals_dlq,
                "discarded_at": datetime.now(UTC).isoformat(),
                "body_base64": base64.b64encode(letter.body).decode("ascii"),
            }
            archive_file.write(json.dumps(record) + "\n")
            archive_file.flush()
            os.fsync(archive_file.fileno())  # on disk before the broker drops the message

        try:
            report = asyncio.run(
                discard(
                    config.rabbitmq_url,
                    config.signals_dlq,
                    select=(lambda _: False) if dry_run else chosen,
                    archive=archive,
                    limit=limit,
                )
            )
        except (OSError, ConnectionError) as exc:
            fail(f"RabbitMQ at {redact_url(config.rabbitmq_url)} unreachable: {exc}", EXIT_FAILURE)
    done = [letter for letter in report.kept if chosen(letter)] if dry_run else report.replayed
    verb = "would discard" if dry_run else "discarded"
    for letter in done:
        typer.echo(f"{verb}: {_line(letter, now, config.signal_max_age_seconds)}")
    kept = len(report.kept) - (len(done) if dry_run else 0)
    saved = "" if dry_run else f" (saved to {save})"
    typer.echo(f"{len(done)} {verb}{saved}; {kept} kept in {config.signals_dlq}")
