"""`scripts/infra` is idempotent and leaves nothing behind.

Runs a second, private PostgreSQL + RabbitMQ pair under a temporary state directory on ports of
its own (31432 / 31672 (+1, +2) / 31369 by default, override with OM_INFRA_TEST_*_PORT), so it
never touches the services the rest of the suite uses. The defaults sit below Linux's ephemeral
range (32768-60999): this test starts its nodes mid-suite, after thousands of outgoing
connections, and a fixed port inside that range was once found taken by one of them
(RabbitMQ's management listener failed with eaddrinuse). Whatever happens, the teardown runs
`scripts/infra down` and removes the data.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "scripts" / "infra"
PG_PORT = int(os.environ.get("OM_INFRA_TEST_PG_PORT", "31432"))
AMQP_PORT = int(os.environ.get("OM_INFRA_TEST_AMQP_PORT", "31672"))
EPMD_PORT = int(os.environ.get("OM_INFRA_TEST_EPMD_PORT", "31369"))


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def processes_mentioning(*needles: str) -> list[str]:
    """Command lines of running processes that contain any of `needles`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if any(needle in cmdline for needle in needles):
            found.append(f"{entry.name}: {cmdline}")
    return found


class Infra:
    def __init__(self, state: Path) -> None:
        self.state = state
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OM_", "ORDERMANAGER_"))}
        env |= {
            "OM_STATE_DIR": str(state),
            "OM_PG_PORT": str(PG_PORT),
            "OM_AMQP_PORT": str(AMQP_PORT),
            "OM_EPMD_PORT": str(EPMD_PORT),
            "OM_PG_FAST": "1",
        }
        self.env = env

    def __call__(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(INFRA), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )


@pytest.fixture
def infra(tmp_path: Path) -> Iterator[Infra]:
    for port in (PG_PORT, AMQP_PORT, EPMD_PORT):
        if port_open(port):
            pytest.fail(f"port {port} is already in use; set OM_INFRA_TEST_*_PORT")
    state = tmp_path / "state"
    runner = Infra(state)
    try:
        yield runner
    finally:
        runner("down")
        link = state / "postgres"
        if link.is_symlink():  # data outside the state dir (unprivileged user's reach)
            shutil.rmtree(os.readlink(link), ignore_errors=True)


def test_up_twice_status_env_down(infra: Infra) -> None:
    first = infra("up")
    assert first.returncode == 0, first.stderr
    assert port_open(PG_PORT) and port_open(AMQP_PORT)
    data_dir = os.path.realpath(infra.state / "postgres")

    second = infra("up")
    assert second.returncode == 0, second.stderr
    assert "postgres already running" in second.stderr
    assert "rabbitmq already running" in second.stderr
    assert "starting" not in second.stderr  # nothing was started twice
    assert len(processes_mentioning(f"-D {data_dir}")) == 1

    status = infra("status")
    assert status.returncode == 0
    assert f"postgres: running on 127.0.0.1:{PG_PORT}" in status.stdout
    assert f"rabbitmq: running as om-{AMQP_PORT}@localhost" in status.stdout

    env = infra("env")
    assert (
        f"ORDERMANAGER_DATABASE_URL='postgresql://om:om@127.0.0.1:{PG_PORT}/order_manager'"
        in env.stdout
    )
    assert f"ORDERMANAGER_RABBITMQ_URL='amqp://guest:guest@127.0.0.1:{AMQP_PORT}/'" in env.stdout

    down = infra("down")
    assert down.returncode == 0, down.stderr
    assert processes_mentioning(data_dir, f"om-{AMQP_PORT}@") == []
    for port in (PG_PORT, AMQP_PORT, AMQP_PORT + 1, AMQP_PORT + 2, EPMD_PORT):
        assert not port_open(port), f"port {port} still open after down"

    stopped = infra("status")
    assert stopped.returncode == 3
    assert "postgres: stopped" in stopped.stdout
    assert "rabbitmq: stopped" in stopped.stdout
    again = infra("down")  # down twice is harmless
    assert again.returncode == 0
