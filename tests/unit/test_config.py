"""Configuration: defaults, derived exchange URLs, .env handling, precise errors, no secret leaks.

The last group runs the real `order-manager config-check` command in a subprocess to prove the
contract operators see: a bad value exits with code 2 and names the variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from order_manager.config import (
    DEV_API_KEY,
    SIM_API_SECRET,
    BybitEnvironment,
    ConfigError,
    Settings,
    load_settings,
    redact_url,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_dotenv_from_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's .env in the checkout must not change what these tests see."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORDERMANAGER_ENV_FILE", raising=False)


LIVE_KEYS = {
    "ORDERMANAGER_API_KEY": "a-long-enough-operator-key",
    "ORDERMANAGER_BYBIT_API_KEY": "bybit-key-123",
    "ORDERMANAGER_BYBIT_API_SECRET": "bybit-secret-456",
}


def problems_of(environ: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    return dict(info.value.problems)


def test_defaults_run_against_the_simulator(tmp_path: Path) -> None:
    s = load_settings(env_file=None, environ={"ORDERMANAGER_ENV_FILE": str(_empty(tmp_path))})
    assert s.port == 4600
    assert s.bybit_environment is BybitEnvironment.SIM
    assert s.effective_api_key == DEV_API_KEY
    assert s.rest_url == "http://127.0.0.1:8900"
    assert s.ws_private_url == "ws://127.0.0.1:8900/v5/private"
    assert s.ws_public_url == "ws://127.0.0.1:8900/v5/public/linear"
    assert s.enable_balance_check is True
    assert s.dry_run is False
    assert s.signal_max_age_seconds == 60
    assert s.bybit_api_secret is not None
    assert s.bybit_api_secret.get_secret_value() == SIM_API_SECRET


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


def test_explicit_environ_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERMANAGER_PORT", "1234")
    assert load_settings(environ={}).port == 4600
    assert load_settings().port == 1234


@pytest.mark.parametrize(
    ("environment", "rest", "private", "public"),
    [
        (
            "mainnet",
            "https://api.bybit.com",
            "wss://stream.bybit.com/v5/private",
            "wss://stream.bybit.com/v5/public/linear",
        ),
        (
            "testnet",
            "https://api-testnet.bybit.com",
            "wss://stream-testnet.bybit.com/v5/private",
            "wss://stream-testnet.bybit.com/v5/public/linear",
        ),
        (
            "DEMO",
            "https://api-demo.bybit.com",
            "wss://stream-demo.bybit.com/v5/private",
            "wss://stream.bybit.com/v5/public/linear",
        ),
    ],
)
def test_exchange_urls_follow_the_environment(
    environment: str, rest: str, private: str, public: str
) -> None:
    s = load_settings(environ={"ORDERMANAGER_BYBIT_ENVIRONMENT": environment, **LIVE_KEYS})
    assert (s.rest_url, s.ws_private_url, s.ws_public_url) == (rest, private, public)


def test_explicit_urls_and_sim_port_override_the_derived_ones() -> None:
    s = load_settings(
        environ={
            "ORDERMANAGER_BYBIT_SIM_PORT": "9100",
            "ORDERMANAGER_CATEGORY": "spot",
            "ORDERMANAGER_BYBIT_WS_PRIVATE_URL": "ws://10.0.0.1:1/v5/private",
        }
    )
    assert s.rest_url == "http://127.0.0.1:9100"
    assert s.ws_public_url == "ws://127.0.0.1:9100/v5/public/spot"
    assert s.ws_private_url == "ws://10.0.0.1:1/v5/private"
    s = load_settings(environ={"ORDERMANAGER_BYBIT_REST_URL": "http://example.test:81/"})
    assert s.rest_url == "http://example.test:81"


def test_money_is_decimal_exactly_as_written() -> None:
    s = load_settings(
        environ={
            "ORDERMANAGER_MAX_ORDER_SIZE_USDT": "1000.10",
            "ORDERMANAGER_MAX_ORDER_SIZE_RATIO": "0.333333333333333333333",
        }
    )
    assert s.max_order_size_usdt == Decimal("1000.10")
    assert isinstance(s.max_order_size_usdt, Decimal)
    assert s.max_order_size_ratio == Decimal("0.333333333333333333333")


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text("ORDERMANAGER_PORT=4700\nORDERMANAGER_DRY_RUN=true\n")
    s = load_settings(env_file=env_file, environ={"ORDERMANAGER_PORT": "4800"})
    assert s.port == 4800
    assert s.dry_run is True


def test_empty_value_means_default() -> None:
    assert load_settings(environ={"ORDERMANAGER_PORT": ""}).port == 4600


@pytest.mark.parametrize(
    ("variable", "value", "rule_fragment"),
    [
        ("ORDERMANAGER_PORT", "abc", "valid integer"),
        ("ORDERMANAGER_PORT", "70000", "less than or equal to 65535"),
        ("ORDERMANAGER_DRY_RUN", "maybe", "valid boolean"),
        ("ORDERMANAGER_ENABLE_BALANCE_CHECK", "2", "valid boolean"),
        ("ORDERMANAGER_MAX_ORDER_SIZE_USDT", "-5", "greater than 0"),
        ("ORDERMANAGER_MAX_ORDER_SIZE_USDT", "NaN", "finite"),
        ("ORDERMANAGER_MAX_ORDER_SIZE_RATIO", "1.5", "less than or equal to 1"),
        ("ORDERMANAGER_SELL_AMOUNT_UNIT", "coins", "'quote' or 'base'"),
        ("ORDERMANAGER_WARMUP_SIGNALS", "skip", "'execute', 'dry_run' or 'ignore'"),
        ("ORDERMANAGER_EVENT_SOURCE", "kafka", "'bybit_ws' or 'ws_gateway'"),
        ("ORDERMANAGER_BYBIT_ENVIRONMENT", "prod", "'mainnet', 'testnet', 'demo' or 'sim'"),
        ("ORDERMANAGER_POSITION_SNAPSHOT_INTERVAL", "0", "greater than or equal to 1"),
        ("ORDERMANAGER_BYBIT_API_RETRY_MAX_ATTEMPTS", "0", "greater than or equal to 1"),
        ("ORDERMANAGER_BYBIT_API_RETRY_MULTIPLIER", "0.5", "greater than or equal to 1"),
        ("ORDERMANAGER_DATABASE_URL", "mysql://h/db", "scheme postgresql or postgres"),
        ("ORDERMANAGER_RABBITMQ_URL", "http://h/", "scheme amqp or amqps"),
        ("ORDERMANAGER_ORDER_LINK_ID_PREFIX", "too-long-prefix", "match pattern"),
        ("ORDERMANAGER_API_KEY", "   ", "must not be empty"),
        ("ORDERMANAGER_LOG_LEVEL", "loud", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("ORDERMANAGER_DRYRUN", "true", "did you mean ORDERMANAGER_DRY_RUN"),
    ],
)
def test_each_bad_value_names_its_variable_and_rule(
    variable: str, value: str, rule_fragment: str
) -> None:
    problems = problems_of({variable: value})
    assert variable in problems, problems
    assert rule_fragment in problems[variable]


@pytest.mark.parametrize(
    ("environ", "variable", "rule_fragment"),
    [
        ({"ORDERMANAGER_BYBIT_ENVIRONMENT": "mainnet"}, "ORDERMANAGER_API_KEY", "required"),
        (
            {"ORDERMANAGER_BYBIT_ENVIRONMENT": "testnet", "ORDERMANAGER_API_KEY": "short"},
            "ORDERMANAGER_API_KEY",
            "at least 16 characters",
        ),
        (
            {"ORDERMANAGER_BYBIT_ENVIRONMENT": "demo", "ORDERMANAGER_API_KEY": DEV_API_KEY},
            "ORDERMANAGER_API_KEY",
            "not the development key",
        ),
        (
            {"ORDERMANAGER_BYBIT_ENVIRONMENT": "mainnet"},
            "ORDERMANAGER_BYBIT_API_SECRET",
            "required when ORDERMANAGER_BYBIT_ENVIRONMENT is mainnet",
        ),
        (
            {"ORDERMANAGER_DATABASE_POOL_MIN_SIZE": "20"},
            "ORDERMANAGER_DATABASE_POOL_MIN_SIZE",
            "must not exceed ORDERMANAGER_DATABASE_POOL_MAX_SIZE",
        ),
        (
            {"ORDERMANAGER_BYBIT_API_RETRY_MAX_DELAY": "0.1"},
            "ORDERMANAGER_BYBIT_API_RETRY_MAX_DELAY",
            "at least ORDERMANAGER_BYBIT_API_RETRY_BASE_DELAY",
        ),
        (
            {"ORDERMANAGER_MAX_ORDER_SIZE_USDT": "60000"},
            "ORDERMANAGER_MAX_ORDER_SIZE_USDT",
            "must not exceed ORDERMANAGER_MAX_POSITION_SIZE_USDT",
        ),
        (
            {"ORDERMANAGER_EVENT_SOURCE": "ws_gateway"},
            "ORDERMANAGER_WS_GATEWAY_API_KEY",
            "required when ORDERMANAGER_EVENT_SOURCE is ws_gateway",
        ),
    ],
)
def test_cross_field_rules_name_the_variable(
    environ: dict[str, str], variable: str, rule_fragment: str
) -> None:
    problems = problems_of(environ)
    assert variable in problems, problems
    assert rule_fragment in problems[variable]


def test_live_exchange_in_dry_run_needs_no_bybit_keys() -> None:
    s = load_settings(
        environ={
            "ORDERMANAGER_BYBIT_ENVIRONMENT": "mainnet",
            "ORDERMANAGER_DRY_RUN": "1",
            "ORDERMANAGER_API_KEY": LIVE_KEYS["ORDERMANAGER_API_KEY"],
        }
    )
    assert s.bybit_api_key is None
    assert s.dry_run is True


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of({"ORDERMANAGER_PORT": "x", "ORDERMANAGER_DRY_RUN": "x"})
    assert set(problems) == {"ORDERMANAGER_PORT", "ORDERMANAGER_DRY_RUN"}


def test_missing_env_file_named_explicitly_is_an_error(tmp_path: Path) -> None:
    problems = problems_of({"ORDERMANAGER_ENV_FILE": str(tmp_path / "nope.env")})
    assert "does not exist" in problems["ORDERMANAGER_ENV_FILE"]


SECRETS = {
    "ORDERMANAGER_API_KEY": "operator-key-0123456789",
    "ORDERMANAGER_BYBIT_API_KEY": "bybitkey-abcdef",
    "ORDERMANAGER_BYBIT_API_SECRET": "bybitsecret-ghijkl",
    "ORDERMANAGER_WS_GATEWAY_API_KEY": "gatewaykey-mnopqr",
    "ORDERMANAGER_DATABASE_URL": "postgresql://om:dbpass-stuvwx@127.0.0.1:5432/om",
    "ORDERMANAGER_RABBITMQ_URL": "amqp://u:mqpass-yz0123@127.0.0.1:5672/",
}
SECRET_VALUES = ["operator-key-0123456789", "bybitkey-abcdef", "bybitsecret-ghijkl"]
SECRET_VALUES += ["gatewaykey-mnopqr", "dbpass-stuvwx", "mqpass-yz0123"]


def test_secrets_never_appear_in_repr_or_redacted_dict() -> None:
    s = load_settings(environ=SECRETS)
    assert s.effective_api_key == SECRETS["ORDERMANAGER_API_KEY"]
    shown = repr(s) + str(s) + json.dumps(s.redacted_dict(), default=str)
    for secret in SECRET_VALUES:
        assert secret not in shown
    assert s.redacted_dict()["database_url"] == "postgresql://om:***@127.0.0.1:5432/om"


def test_error_messages_do_not_echo_secret_values() -> None:
    problems = problems_of(
        {
            "ORDERMANAGER_DATABASE_URL": "mysql://om:topsecret-pw@h/db",
            "ORDERMANAGER_API_KEY": "   ",
        }
    )
    assert "topsecret-pw" not in json.dumps(problems)


def test_redact_url_keeps_everything_but_the_password() -> None:
    assert (
        redact_url("amqp://guest:guest@127.0.0.1:5672/vh") == "amqp://guest:***@127.0.0.1:5672/vh"
    )
    assert redact_url("http://127.0.0.1:8900") == "http://127.0.0.1:8900"


def test_env_example_lists_every_variable_with_its_default() -> None:
    import re

    text = (ROOT / ".env.example").read_text()
    pairs = dict(re.findall(r"^#? ?(ORDERMANAGER_[A-Z0-9_]+)=(.*)$", text, flags=re.M))
    pairs.pop("ORDERMANAGER_ENV_FILE", None)
    expected = {f"ORDERMANAGER_{name.upper()}" for name in Settings.model_fields}
    assert set(pairs) == expected
    from_example = load_settings(environ=pairs).redacted_dict()
    defaults = load_settings(environ={}).redacted_dict()
    assert from_example == defaults


# ------------------------------------------------------------------ the CLI contract


def _cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERMANAGER_")}
    script = Path(sys.executable).parent / "order-manager"
    return subprocess.run(
        [str(script), *args],
        env={**clean, **env},
        cwd=tmp_path,  # no .env from the checkout
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ORDERMANAGER_PORT", "not-a-port"),
        ("ORDERMANAGER_DRY_RUN", "perhaps"),
        ("ORDERMANAGER_MAX_TOTAL_EXPOSURE_USDT", "-1"),
        ("ORDERMANAGER_BYBIT_ENVIRONMENT", "production"),
        ("ORDERMANAGER_SIGNAL_MAX_AGE_SECONDS", "0"),
    ],
)
def test_config_check_exits_2_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = _cli(tmp_path, {variable: value}, "config-check")
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_prints_the_effective_config_without_secrets(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ORDERMANAGER_PORT=4711\n")
    result = _cli(tmp_path, SECRETS, "config-check", "--json")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["port"] == 4711  # read from .env in the working directory
    assert values["api_key"] == "**********"
    for secret in SECRET_VALUES:
        assert secret not in result.stdout + result.stderr


def test_settings_map_onto_the_domain_planner_and_risk_parameters() -> None:
    from datetime import timedelta

    from order_manager.config import Settings
    from order_manager.domain.planner import PendingLimitPolicy

    s = Settings(
        max_order_size_usdt=Decimal("2500"),
        max_daily_volume_usdt=Decimal("0"),
        allow_short=False,
        market_data_max_age_seconds=2.5,
        pending_limits_on_market_signal=PendingLimitPolicy.CANCEL,
        risk_fee_rate=Decimal("0.0006"),
    )
    planner = s.planner_config()
    risk = s.risk_limits()
    assert planner.max_order_notional == Decimal("2500")
    assert planner.allow_short is False
    assert planner.market_data_max_age == timedelta(seconds=2.5)
    assert planner.pending_limits_on_market is PendingLimitPolicy.CANCEL
    assert risk.max_order_notional == Decimal("2500")
    assert risk.max_daily_volume is None  # 0 means "no limit"
    assert risk.fee_rate == Decimal("0.0006")


def test_simulator_streams_follow_an_explicit_rest_url() -> None:
    from order_manager.config import Settings

    s = Settings(bybit_rest_url="http://127.0.0.1:34567")
    assert s.ws_private_url == "ws://127.0.0.1:34567/v5/private"
    assert s.ws_public_url == "ws://127.0.0.1:34567/v5/public/linear"


def test_the_service_processor_gets_every_planner_and_risk_setting() -> None:
    """The running service's processor is configured through the one mapping above: a setting
    the bootstrap forgot would be silently ignored (this once dropped ten planner settings,
    e.g. ORDERMANAGER_CANCEL_OPPOSITE_ORDERS and the default stop-loss)."""
    from order_manager.bootstrap import processor_config
    from order_manager.config import Settings

    s = Settings(
        cancel_opposite_orders=False,
        min_confidence=Decimal("0.3"),
        default_stop_loss_pct=Decimal("2"),
        risk_fee_rate=Decimal("0.0006"),
        max_daily_volume_usdt=Decimal("5000"),
    )
    config = processor_config(s)
    assert config.planner == s.planner_config()
    assert config.limits == s.risk_limits()
    assert config.planner.cancel_opposite_orders is False
    assert config.planner.min_confidence == Decimal("0.3")
    assert config.planner.default_stop_loss_pct == Decimal("2")
    assert config.limits.fee_rate == Decimal("0.0006")
    assert config.limits.max_daily_volume == Decimal("5000")


def test_the_account_source_reaches_the_processor() -> None:
    from order_manager.bootstrap import processor_config
    from order_manager.config import Settings
    from order_manager.services.processor import AccountSource

    assert processor_config(Settings()).account_source is AccountSource.EXCHANGE
    config = processor_config(Settings(account_source="store", account_store_wait_ms=40))
    assert config.account_source is AccountSource.STORE
    assert config.store_wait == 0.04
    with pytest.raises(ValueError, match="account_source"):
        Settings(account_source="cache")


def test_the_service_wiring_passes_stream_and_intake_settings_through() -> None:
    """Settings that only the bootstrap reads (WebSocket heartbeats, the future-skew check)."""
    from datetime import timedelta

    from order_manager.bootstrap import bybit_client_config, intake_config
    from order_manager.config import Settings

    s = Settings(
        ws_ping_interval_seconds=7.0,
        ws_reconnect_max_delay_seconds=3.0,
        signal_max_future_skew_seconds=1.5,
    )
    client = bybit_client_config(s)
    assert (client.websocket.ping_interval, client.websocket.reconnect_max_delay) == (7.0, 3.0)
    assert intake_config(s).max_future_skew == timedelta(seconds=1.5)


def test_every_setting_is_read_somewhere() -> None:
    """A setting no code reads is a promise in .env.example that the service silently breaks
    (three were, until this test). Every field must be read as an attribute somewhere in
    `order_manager` (`settings.x`, `self.x`, `s.x`)."""
    import re
    from pathlib import Path

    from order_manager.config import Settings

    package = Path(__file__).resolve().parents[2] / "src" / "order_manager"
    source = "\n".join(path.read_text() for path in package.rglob("*.py"))
    unread = [name for name in Settings.model_fields if not re.search(rf"\.{name}\b", source)]
    assert unread == []


def test_the_configured_category_is_the_signals_default_and_is_watched() -> None:
    from order_manager.bootstrap import intake_config, processor_config
    from order_manager.config import Settings
    from order_manager.domain.enums import Category

    s = Settings(category=Category.INVERSE)
    assert processor_config(s).default_category is Category.INVERSE
    assert intake_config(s).default_category is Category.INVERSE
    assert s.traded_categories == (Category.INVERSE, Category.LINEAR, Category.SPOT)
    assert Settings().traded_categories == (Category.LINEAR, Category.SPOT)


def test_a_zero_order_size_ratio_turns_the_limit_off() -> None:
    from order_manager.config import Settings

    assert Settings(max_order_size_ratio=Decimal("0")).risk_limits().max_order_size_ratio is None
    assert Settings().risk_limits().max_order_size_ratio == Decimal("0.5")
