"""Safe by default (contract v3, Callers): generated credentials in embedded mode, the
refusal with DATABASE_URL and none, CHATSVC_AUTH=off, and `chatsvc token`, as a user runs them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from chatsvc import generated_credentials
from chatsvc.generated_credentials import FILE_NAME
from tests import credentials
from tests.credentials import JWT_SECRET, SERVER_KEY, bearer
from tests.served import CHATSVC, call, environment, serving, stop


def without_credentials(**variables: str) -> dict[str, str]:
    """A served process's environment with neither CHATSVC_SERVER_KEYS nor CHATSVC_JWT_SECRETS."""
    env = environment()
    for variable in credentials.ENVIRONMENT:
        del env[variable]
    return env | variables


def chatsvc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHATSVC, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def stored(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_embedded_mode_generates_credentials_once_keeps_them_private_and_logs_where_not_what(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = without_credentials(CHATSVC_DATA_DIR=str(data_dir))
    path = data_dir / FILE_NAME
    with serving(env) as (base, process):
        status = path.stat()
        assert stat.S_IMODE(status.st_mode) == 0o600
        # The service's own user, even under root, where the data directory
        # itself belongs to the embedded PostgreSQL's system user.
        assert status.st_uid == os.geteuid()
        kept = stored(path)
        assert set(kept) == {"CHATSVC_SERVER_KEYS", "CHATSVC_JWT_SECRETS"}
        server_key, secret = kept["CHATSVC_SERVER_KEYS"], kept["CHATSVC_JWT_SECRETS"]
        assert len(server_key) >= 32 and len(secret) >= 32 and server_key != secret
        assert call("GET", f"{base}/chats/", headers=bearer(server_key))[0] == 200
        assert call("GET", f"{base}/chats/", headers={})[0] == 401
        assert call("GET", f"{base}/chats/", headers=bearer(SERVER_KEY))[0] == 401  # not the tests' key
        # `chatsvc token` signs with the generated secret, and the service accepts it.
        token = chatsvc(env, "token", "alice")
        assert token.returncode == 0, token.stderr
        assert call("GET", f"{base}/chats/", headers=bearer(token.stdout.strip()))[0] == 200
        first_output = stop(process)
    # Said where they are, never what they are.
    assert f"generated a server key and a token secret; they are kept in {path}" in first_output
    with serving(env) as (base, process):  # a later start keeps them
        assert stored(path) == kept
        assert call("GET", f"{base}/chats/", headers=bearer(server_key))[0] == 200
        assert call("GET", f"{base}/chats/", headers=bearer(token.stdout.strip()))[0] == 200
        second_output = stop(process)
    assert f"using the server key and token secret kept in {path}" in second_output
    for output in (first_output, second_output, token.stderr):
        assert server_key not in output and secret not in output
        assert server_key[:12] not in output and secret[:12] not in output


def test_with_database_url_and_no_credential_the_service_refuses_to_start_in_one_line(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    env = without_credentials(DATABASE_URL=make_database(), CHATSVC_DATA_DIR=str(tmp_path / "data"))
    refused = chatsvc(env, "serve", "--port", "1")
    assert refused.returncode != 0 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    for named in ("DATABASE_URL", "CHATSVC_SERVER_KEYS", "CHATSVC_JWT_SECRETS", "CHATSVC_AUTH=off"):
        assert named in refused.stderr
    assert not (tmp_path / "data").exists()  # nothing generated for a deployment with its own database
    # Either variable alone is enough to start: the server only, or users only.
    with serving(env | {"CHATSVC_SERVER_KEYS": SERVER_KEY}) as (base, _):
        assert call("GET", f"{base}/chats/", headers=bearer(SERVER_KEY))[0] == 200
        assert call("GET", f"{base}/chats/", headers=credentials.user("alice"))[0] == 401
    with serving(env | {"CHATSVC_JWT_SECRETS": JWT_SECRET}) as (base, _):
        assert call("GET", f"{base}/chats/", headers=credentials.user("alice"))[0] == 200
        assert call("GET", f"{base}/chats/", headers=bearer(SERVER_KEY))[0] == 401


def test_auth_off_warns_at_start_and_every_request_is_the_server(make_database: Callable[[], str]) -> None:
    env = without_credentials(DATABASE_URL=make_database(), CHATSVC_AUTH="off")
    with serving(env) as (base, process):
        status, chat = call("POST", f"{base}/chats/", {"title": "no credential"}, headers={})
        assert status == 201
        assert call("DELETE", f"{base}/chats/{chat['id']}", headers=bearer("anything at all"))[0] == 204
        output = stop(process)
    warnings = [line for line in map(json.loads, output.splitlines()) if line["level"] == "WARNING"]
    assert [line["message"] for line in warnings if "CHATSVC_AUTH=off" in line["message"]], output


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHATSVC_SERVER_KEYS", "a-key-of-31-characters-01234567"),
        ("CHATSVC_SERVER_KEYS", f"{SERVER_KEY},short-secret-value"),
        ("CHATSVC_JWT_SECRETS", "a-secret-of-31-characters-01234"),
    ],
)
def test_a_bad_credential_stops_start_up_naming_the_variable_never_the_value(
    variable: str, value: str, tmp_path: Path
) -> None:
    env = without_credentials(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", **{variable: value})
    refused = chatsvc(env, "serve", "--port", "1")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert refused.stderr.startswith(f"chatsvc: {variable}: ")
    assert (
        value not in refused.stderr and "short-secret" not in refused.stderr and "01234" not in refused.stderr
    )


# -- chatsvc token ----------------------------------------------------------------------


def claims_of(token: str, secret: str = JWT_SECRET, **options: object) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, secret, algorithms=["HS256"], **options)  # type: ignore[arg-type]
    return decoded


def test_token_signs_with_the_first_configured_secret_for_the_ttl_with_the_audience() -> None:
    env = environment(CHATSVC_JWT_SECRETS=f"{JWT_SECRET},{SERVER_KEY}", DATABASE_URL="postgresql://unused/db")
    before = int(time.time())
    printed = chatsvc(env, "token", "alice", "--ttl", "90")
    assert printed.returncode == 0, printed.stderr
    claims = claims_of(printed.stdout.strip())
    assert claims["sub"] == "alice" and "aud" not in claims
    assert isinstance(claims["exp"], int) and before + 90 <= claims["exp"] <= int(time.time()) + 90
    default = claims_of(chatsvc(env, "token", "bob").stdout.strip())
    assert isinstance(default["exp"], int) and default["exp"] - int(time.time()) in range(3590, 3601)
    aimed = chatsvc(env | {"CHATSVC_JWT_AUDIENCE": "chat.example"}, "token", "carol").stdout.strip()
    assert claims_of(aimed, audience="chat.example")["aud"] == "chat.example"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("token", "al ice"), "USER must be 1 to 255 visible ASCII characters"),
        (("token", "é"), "USER must be 1 to 255 visible ASCII characters"),
        (("token", "a" * 256), "USER must be 1 to 255 visible ASCII characters"),
        (("token", "alice", "--ttl", "0"), "--ttl must be at least 1"),
    ],
)
def test_token_refuses_a_bad_user_or_ttl(args: tuple[str, ...], says: str) -> None:
    refused = chatsvc(environment(DATABASE_URL="postgresql://unused/db"), *args)
    assert refused.returncode != 0 and refused.stdout == "" and says in refused.stderr


def test_token_without_a_secret_says_which_variable(tmp_path: Path) -> None:
    only_keys = environment(DATABASE_URL="postgresql://unused/db", CHATSVC_JWT_SECRETS="")
    refused = chatsvc(only_keys, "token", "alice")
    assert refused.returncode != 0 and "CHATSVC_JWT_SECRETS" in refused.stderr and refused.stdout == ""
    nothing = without_credentials(DATABASE_URL="postgresql://unused/db")
    assert "CHATSVC_SERVER_KEYS" in chatsvc(nothing, "token", "alice").stderr  # the same refusal as serve


def test_token_in_embedded_mode_generates_the_credentials_serve_then_uses(tmp_path: Path) -> None:
    env = without_credentials(CHATSVC_DATA_DIR=str(tmp_path / "data"))
    printed = chatsvc(env, "token", "alice")
    assert printed.returncode == 0, printed.stderr
    secret = stored(tmp_path / "data" / FILE_NAME)["CHATSVC_JWT_SECRETS"]
    assert claims_of(printed.stdout.strip(), secret)["sub"] == "alice"
    again = chatsvc(env, "token", "bob")
    assert claims_of(again.stdout.strip(), secret)["sub"] == "bob"  # the same secret, not a new one


# -- the file ---------------------------------------------------------------------------


def test_a_file_others_may_read_or_that_is_malformed_is_refused_not_used(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = without_credentials(CHATSVC_DATA_DIR=str(data_dir))
    assert chatsvc(env, "token", "alice").returncode == 0
    path = data_dir / FILE_NAME
    path.chmod(0o640)
    refused = chatsvc(env, "token", "alice")
    assert refused.returncode != 0 and "chmod 600" in refused.stderr and str(path) in refused.stderr
    kept = stored(path)
    path.chmod(0o600)
    path.write_text(f"CHATSVC_SERVER_KEYS={kept['CHATSVC_SERVER_KEYS']}\nCHATSVC_JWT_SECRETS=short\n")
    refused = chatsvc(env, "token", "alice")
    assert refused.returncode != 0 and "delete it to generate new ones" in refused.stderr
    assert kept["CHATSVC_SERVER_KEYS"] not in refused.stderr
    path.unlink()
    assert chatsvc(env, "token", "alice").returncode == 0  # a new pair
    assert stored(path) != kept


def test_a_process_that_loses_the_race_to_create_the_file_uses_the_winners(tmp_path: Path) -> None:
    first = generated_credentials.load_or_generate(tmp_path)
    assert generated_credentials._create(tmp_path / FILE_NAME, "x" * 40, "y" * 40) is False
    assert generated_credentials.load_or_generate(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # nothing left aside
