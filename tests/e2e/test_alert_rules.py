"""The backlog gauges in the running service, and the alert rules and dashboard that read them.

`deploy/prometheus/alerts.yml` is only worth something if every metric it names is one the
service exports (a renamed metric makes an alert silently never fire) and every rule says where
its runbook is; the same for every panel of `deploy/grafana/dashboards/order-manager.json`.
Checked against the real service's `/metrics` after it handled a signal — and while the
exchange sits on a create, the service's own gauges must show the signal in progress and its
intent `submitting`.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from order_manager.adapters.rabbitmq.signal_publisher import build_signal
from tests.e2e.test_intake_service import World, _executed, until, world

__all__ = ["world"]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "operations.md"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "order-manager.json"
COMPOSE = ROOT / "docker-compose.yml"
#: metrics Prometheus makes itself, not the service
PROMETHEUS_OWN = {"up"}
#: sample names of a family besides its own (a counter's TYPE line already names it `..._total`)
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum")}


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add("#" + re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names it selects on) for every metric named in a PromQL expression."""
    found = []
    for match in re.finditer(r"\b((?:om|bybit)_[a-z0-9_]+|up)\b(\{[^}]*\})?", expr):
        labels = set(re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", match.group(2) or ""))
        found.append((match.group(1), labels))
    return found


def exported(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """Sample names the exposition can carry, and the label names seen on each."""
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
            names.add(family)
            names.update(family + suffix for suffix in SUFFIXES.get(kind, ()))
        elif line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            labels.setdefault(name.split(" ")[0], set()).update(
                re.findall(r'([a-z_]+)="', rest.partition("}")[0])
            )
    return names, labels


def test_every_rule_is_complete_and_its_runbook_exists() -> None:
    runbook = anchors(RUNBOOK.read_text())
    seen = set()
    for rule in rules():
        assert rule["alert"] not in seen, f"{rule['alert']} twice"
        seen.add(rule["alert"])
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule
        assert rule["annotations"]["summary"], rule
        assert rule["annotations"]["runbook"] in runbook, (rule["alert"], sorted(runbook))
        assert selectors(rule["expr"]), rule
    assert len(seen) >= 10


def test_the_shipped_prometheus_scrapes_the_job_the_rules_name_and_loads_them() -> None:
    """docker-compose's Prometheus: its config and the rule file are mounted from the files
    tested here, it loads that rule file, and it scrapes the job `up{job=...}` selects."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    selected = {job for rule in rules() for job in re.findall(r'up\{job="([^"]+)"\}', rule["expr"])}
    assert selected and selected <= jobs, (selected, jobs)
    mounts = {
        target.partition(":")[0]: (ROOT / source).resolve()
        for source, _, target in (
            volume.partition(":")
            for volume in yaml.safe_load(COMPOSE.read_text())["services"]["prometheus"]["volumes"]
        )
    }
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    assert {mounts[path] for path in config["rule_files"]} == {RULES}


def test_the_shipped_grafana_provisions_the_datasource_and_dashboard_it_uses() -> None:
    """docker-compose's Grafana: the dashboard's panels use the provisioned datasource, the
    provider loads the folder the dashboard is mounted into, and every panel has a query."""
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {
        ds["uid"]
        for panel in dashboard["panels"]
        for ds in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
    }
    assert uids == {datasource["uid"]}
    assert all(panel["targets"] for panel in dashboard["panels"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "order-manager.yml").read_text()
    )["providers"][0]
    mounts = {
        target.partition(":")[0]: (ROOT / source).resolve()
        for source, _, target in (
            volume.partition(":")
            for volume in yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]["volumes"]
        )
    }
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent
    assert mounts["/etc/grafana/provisioning/datasources"] == GRAFANA / "provisioning" / (
        "datasources"
    )


async def metrics(world: World) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(f"http://127.0.0.1:{world.service.port}/metrics")
        r.raise_for_status()
        return r.text


def gauge(text: str, name: str, kind: str) -> float | None:
    match = re.search(rf'^{name}{{kind="{kind}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


@pytest.mark.e2e
async def test_the_service_exports_what_the_rules_read_and_its_gauges_see_a_stuck_intent(
    world: World,
) -> None:
    world.service.env["ORDERMANAGER_BACKLOG_SAMPLE_INTERVAL_SECONDS"] = "0.2"
    await world.service.start()
    done = build_signal(asset="BTCUSDT", side="buy", amount=Decimal("500"))
    await world.publisher.publish_signal(done)
    await _executed(world, done["signal_id"])

    text = await metrics(world)
    names, labels = exported(text)
    queries = [(rule["alert"], rule["expr"]) for rule in rules()] + panel_queries()
    for where, expr in queries:
        for metric, selected in selectors(expr):
            if metric in PROMETHEUS_OWN:
                continue
            assert metric in names, f"{where}: {metric} is not exported"
            if metric in labels:  # labelled samples exist: the selected labels must be theirs
                assert selected <= labels[metric], (where, metric, labels[metric])

    # the exchange sits on the next create before executing it (a stream event cannot settle
    # the intent either): the signal stays in progress with its intent `submitting`, and the
    # service's own gauges say so
    await world.add_fault(
        {
            "target": "rest",
            "endpoint": "/v5/order/create",
            "kind": "delay",
            "count": 1,
            "params": {"ms": 60000},
        }
    )
    held = build_signal(asset="ETHUSDT", side="buy", amount=Decimal("500"))
    await world.publisher.publish_signal(held)

    async def seen_waiting() -> bool:
        text = await metrics(world)
        return (
            gauge(text, "om_backlog_waiting", "signals_in_progress") == 1
            and gauge(text, "om_backlog_waiting", "intents_submitting") == 1
        )

    await until(seen_waiting, what="the held signal and its intent in the backlog gauges")
    await world.admin.delete("/sim/faults")  # the create goes through: nothing waits any more
    await _executed(world, held["signal_id"])

    async def drained() -> bool:
        text = await metrics(world)
        return all(
            gauge(text, "om_backlog_waiting", kind) == 0
            for kind in ("signals_in_progress", "intents_submitting", "outbox_unpublished")
        )

    await until(drained, what="the backlog gauges back at zero")
