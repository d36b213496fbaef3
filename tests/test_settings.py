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


KEY_A = "server-key-a-0123456789abcdefghijklmnop"
KEY_B = "server-key-b-0123456789abcdefghijklmnop"
SECRET = "token-secret-0123456789abcdefghijklmnop"


def test_every_variable_is_read() -> None:
    environ = {
        "DATABASE_URL": "postgresql://u@h/db",
        "CHATSVC_EVENTS_DATABASE_URL": "postgresql://u@direct/db",
        "CHATSVC_MIGRATIONS_DATABASE_URL": "postgresql://u@direct:5433/db",
        "CHATSVC_REPLICA_DATABASE_URL": "postgresql://u@standby/db",
        "CHATSVC_REPLICA_WAIT": "0.5",
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
        "CHATSVC_AUTH": "OFF",
        "CHATSVC_SERVER_KEYS": f" {KEY_A} ,{KEY_B}",
        "CHATSVC_JWT_SECRETS": SECRET,
        "CHATSVC_JWT_AUDIENCE": "chat.example",
        "CHATSVC_USER_WRITE_RATE": "2.5",
        "CHATSVC_USER_WRITE_BURST": "7",
    }
    assert set(environ) == set(ENVIRONMENT)
    settings = load_settings(environ)
    assert settings == Settings(
        database_url="postgresql://u@h/db", events_database_url="postgresql://u@direct/db",
        migrations_database_url="postgresql://u@direct:5433/db", replica_database_url="postgresql://u@standby/db",
        replica_wait=0.5, host="0.0.0.0", port=9000, data_dir=Path("/srv/chatsvc"),
        pool_min_size=2, pool_max_size=20, pool_acquire_timeout=1.5, statement_timeout=3, body_timeout=7, idle_timeout=4,
        statement_cache_size=0, log_level="DEBUG", sse_heartbeat=2.5, shutdown_grace=12, sse_max_streams=500,
        max_connections=300, auth="off", server_keys=(KEY_A, KEY_B), jwt_secrets=(SECRET,),
        jwt_audience="chat.example", user_write_rate=2.5, user_write_burst=7,
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
        ({"CHATSVC_AUTH": "maybe"}, "CHATSVC_AUTH"),
        ({"CHATSVC_USER_WRITE_RATE": "0"}, "CHATSVC_USER_WRITE_RATE"),
        ({"CHATSVC_USER_WRITE_BURST": "0"}, "CHATSVC_USER_WRITE_BURST"),
        # Without DATABASE_URL the service runs its own PostgreSQL: no other URL means anything.
        ({"CHATSVC_EVENTS_DATABASE_URL": "postgresql://u@h/db"}, "CHATSVC_EVENTS_DATABASE_URL"),
        ({"CHATSVC_MIGRATIONS_DATABASE_URL": "postgresql://u@h/db"}, "CHATSVC_MIGRATIONS_DATABASE_URL"),
        ({"CHATSVC_REPLICA_DATABASE_URL": "postgresql://u@h/db"}, "CHATSVC_REPLICA_DATABASE_URL"),
        ({"CHATSVC_REPLICA_WAIT": "-1"}, "CHATSVC_REPLICA_WAIT"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(environ)
    message = str(error.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


# Credentials too short or with a space are refused, and the refusal never shows them.
SHORT_KEY = "short-key-0123456789"  # 20 characters
SHORT_SECRET = "short-secret-0123456789"
PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo-----END PUBLIC KEY-----"


@pytest.mark.parametrize(
    ("environ", "variable", "value"),
    [
        ({"CHATSVC_SERVER_KEYS": SHORT_KEY}, "CHATSVC_SERVER_KEYS", SHORT_KEY),
        ({"CHATSVC_SERVER_KEYS": f"{KEY_A},{SHORT_KEY}"}, "CHATSVC_SERVER_KEYS", SHORT_KEY),
        ({"CHATSVC_SERVER_KEYS": f"{KEY_A} with a space"}, "CHATSVC_SERVER_KEYS", "with a space"),
        ({"CHATSVC_JWT_SECRETS": SHORT_SECRET}, "CHATSVC_JWT_SECRETS", SHORT_SECRET),
        ({"CHATSVC_JWT_SECRETS": f"{SECRET},{SHORT_SECRET}"}, "CHATSVC_JWT_SECRETS", SHORT_SECRET),
        # A public key is no HMAC secret (PyJWT refuses it too, but only at the first token).
        ({"CHATSVC_JWT_SECRETS": PUBLIC_KEY}, "CHATSVC_JWT_SECRETS", "MIIBIjANBgkq"),
        (
            {"CHATSVC_JWT_SECRETS": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 someone@example"},
            "CHATSVC_JWT_SECRETS",
            "AAAAB3",
        ),
    ],
)
def test_a_bad_credential_fails_naming_the_variable_and_not_showing_it(
    environ: dict[str, str], variable: str, value: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(environ)
    message = str(error.value)
    assert message.startswith(f"{variable}: ") and "\n" not in message
    assert value not in message and "0123456789" not in message, message


def test_several_keys_and_secrets_are_read_for_rotation() -> None:
    settings = load_settings(
        {"CHATSVC_SERVER_KEYS": f"{KEY_A},{KEY_B},", "CHATSVC_JWT_SECRETS": f"{SECRET}, {KEY_A}"}
    )
    assert settings.server_keys == (KEY_A, KEY_B) and settings.jwt_secrets == (SECRET, KEY_A)


def test_the_readme_configuration_table_lists_every_variable() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    listed = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert listed - {"TEST_DATABASE_URL"} == set(ENVIRONMENT)
