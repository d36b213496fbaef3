"""Settings from the environment: defaults, overrides, one-line errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatsvc.settings import ENVIRONMENT, Settings, SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.database_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert (settings.pool_min_size, settings.pool_max_size) == (1, 10)
    assert settings.log_level == "INFO"
    assert settings.data_dir.is_absolute()


def test_every_variable_is_read() -> None:
    environ = {
        "DATABASE_URL": "postgresql://u@h/db",
        "CHATSVC_HOST": "0.0.0.0",
        "CHATSVC_PORT": "9000",
        "CHATSVC_DATA_DIR": "/srv/chatsvc",
        "CHATSVC_POOL_MIN_SIZE": "2",
        "CHATSVC_POOL_MAX_SIZE": "20",
        "CHATSVC_POOL_ACQUIRE_TIMEOUT": "1.5",
        "CHATSVC_STATEMENT_TIMEOUT": "3",
        "CHATSVC_BODY_TIMEOUT": "7",
        "CHATSVC_IDLE_TIMEOUT": "4",
        "CHATSVC_STATEMENT_CACHE_SIZE": "0",
        "CHATSVC_LOG_LEVEL": "debug",
        "CHATSVC_SSE_HEARTBEAT": "2.5",
        "CHATSVC_SHUTDOWN_GRACE": "12",
        "CHATSVC_SSE_MAX_STREAMS": "500",
        "CHATSVC_MAX_CONNECTIONS": "300",
    }
    assert set(environ) == set(ENVIRONMENT)
    settings = load_settings(environ)
    assert settings == Settings(
        database_url="postgresql://u@h/db", host="0.0.0.0", port=9000, data_dir=Path("/srv/chatsvc"),
        pool_min_size=2, pool_max_size=20, pool_acquire_timeout=1.5, statement_timeout=3, body_timeout=7, idle_timeout=4,
        statement_cache_size=0, log_level="DEBUG", sse_heartbeat=2.5, shutdown_grace=12, sse_max_streams=500,
        max_connections=300,
    )  # fmt: skip


def test_empty_variables_count_as_unset() -> None:
    assert load_settings({"CHATSVC_PORT": "", "DATABASE_URL": " "}) == load_settings({})


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings({"CHATSVC_PORT": "9000", "CHATSVC_HOST": "::1"}, port=9100, host=None)
    assert (settings.host, settings.port) == ("::1", 9100)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"CHATSVC_PORT": "eighty"}, "CHATSVC_PORT"),
        ({"CHATSVC_PORT": "70000"}, "CHATSVC_PORT"),
        ({"CHATSVC_POOL_MAX_SIZE": "0"}, "CHATSVC_POOL_MAX_SIZE"),
        ({"CHATSVC_POOL_MIN_SIZE": "5", "CHATSVC_POOL_MAX_SIZE": "2"}, "CHATSVC_POOL_MIN_SIZE"),
        ({"CHATSVC_POOL_ACQUIRE_TIMEOUT": "-1"}, "CHATSVC_POOL_ACQUIRE_TIMEOUT"),
        ({"CHATSVC_STATEMENT_TIMEOUT": "soon"}, "CHATSVC_STATEMENT_TIMEOUT"),
        ({"CHATSVC_BODY_TIMEOUT": "0"}, "CHATSVC_BODY_TIMEOUT"),
        ({"CHATSVC_LOG_LEVEL": "LOUD"}, "CHATSVC_LOG_LEVEL"),
        # The contract promises a comment at least every 15 s.
        ({"CHATSVC_SSE_HEARTBEAT": "16"}, "CHATSVC_SSE_HEARTBEAT"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(environ)
    message = str(error.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message
