"""Shared fixtures: real services only.

`scripts/test` (or `eval "$(scripts/infra env)"`) exports the connection settings; a test that
needs a service and does not find them fails loudly instead of being skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run the suite with scripts/test, or "
            'eval "$(scripts/infra env)" after scripts/infra up'
        )
    return value


@pytest.fixture(scope="session")
def amqp_base_url() -> str:
    return require_env("ORDERMANAGER_RABBITMQ_URL")


@pytest.fixture(scope="session")
def rabbitmq_api() -> str:
    return require_env("OM_RABBITMQ_API")


@pytest.fixture
async def amqp_url(amqp_base_url: str, rabbitmq_api: str) -> AsyncIterator[str]:
    """A fresh RabbitMQ vhost for one test, so fixed queue names never collide; deleted after."""
    vhost = f"t-{uuid.uuid4().hex[:12]}"
    api = urlsplit(rabbitmq_api)
    auth = (api.username or "guest", api.password or "guest")
    base = urlunsplit((api.scheme, f"{api.hostname}:{api.port}", api.path, "", ""))
    async with httpx.AsyncClient(auth=auth, timeout=10) as http:
        r = await http.put(f"{base}/vhosts/{vhost}")
        r.raise_for_status()
        r = await http.put(
            f"{base}/permissions/{vhost}/{auth[0]}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        )
        r.raise_for_status()
        parts = urlsplit(amqp_base_url)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))
        await http.delete(f"{base}/vhosts/{vhost}")
