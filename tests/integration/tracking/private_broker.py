"""A private RabbitMQ node for tests that must stop the broker.

The shared development broker is never stopped. This starts a second node (same
`rabbitmq-server` binary and environment variables as `scripts/infra`) on free ports of its own,
with its own epmd port, Erlang cookie home and data directory under a temporary directory.
`stop_app()` / `start_app()` take the AMQP listener down and bring it back (the Erlang node and
the durable data stay), which is what a broker outage looks like to a client. `shutdown()`
stops the node and its epmd and is safe to call twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from tests.helpers import free_port

RMQ_BIN = Path("/usr/lib/rabbitmq/bin")


class PrivateRabbitMQ:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"om-test-{self.amqp_port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"
        self._started = False

    def _env(self) -> dict[str, str]:
        d = self.dir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env |= {
            "HOME": str(d / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
        }
        return env

    def _ctl(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [str(RMQ_BIN / "rabbitmqctl"), "-q", *args],
            env=self._env(),
            cwd=self.dir,
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        d = self.dir
        for sub in ("home", "mnesia", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "enabled_plugins").write_text("[].\n")
        (d / "advanced.config").write_text("[].\n")
        (d / "rabbitmq-env.conf").write_text("")
        (d / "rabbitmq.conf").write_text(
            "loopback_users = none\n"
            "default_user = guest\n"
            "default_pass = guest\n"
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            "disk_free_limit.absolute = 50MB\n"
        )
        self._started = True
        subprocess.run(
            [str(RMQ_BIN / "rabbitmq-server"), "-detached"],
            env=self._env(),
            cwd=d,
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._ctl("wait", str(d / "rabbitmq.pid"), "--timeout", "90")

    def stop_app(self) -> None:
        """Stop the broker application: the AMQP port closes, every connection is dropped."""
        self._ctl("stop_app")

    def start_app(self) -> None:
        self._ctl("start_app")
        self._ctl("await_startup", "--timeout", "60")

    def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        pid_file = self.dir / "rabbitmq.pid"
        pid = int(pid_file.read_text().strip()) if pid_file.is_file() else None
        try:
            self._ctl("shutdown", timeout=60)
        except (subprocess.SubprocessError, OSError):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(
            ["epmd", "-port", str(self.epmd_port), "-kill"],
            env=self._env(),
            capture_output=True,
            check=False,
            timeout=30,
        )
