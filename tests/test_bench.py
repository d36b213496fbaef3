"""bench/run.py's targets: --check judges what the README's ratio table promises.

Only the judging is tested here (the benchmark itself runs by hand, never in
the tests): every target names a value the benchmark measures, and a value on
the wrong side of its bound is reported.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).parents[1]


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_run", module)
    spec.loader.exec_module(module)
    return module


def a_run(rps: float, p50: float, p99: float) -> dict[str, Any]:
    """One run's measurements as the benchmark records them, every scenario alike."""
    run = bench()
    names = [
        *run.SCENARIOS,
        "get_chat_workers2",
        "post_message_workers2",
        "get_chat_auth_off",
        "get_chat_server",
        "get_chat_server_again",
        "post_message_auth_off",
        "get_chat_auth_off_again",
        "post_message_auth_off_again",
        "get_chat_again",
        "post_message_again",
        "list_chats_empty",
        "list_chats_empty_again",
        "list_chats_unread_1m_again",
        "ceiling_http",
        "ceiling_pgbench",
        *(f"{route}_auth_off" for route in (*run.READ_ROUTES, *run.WRITE_ROUTES)),
    ]
    results = {name: {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": 0} for name in names}
    results["ceiling_http"]["rps"] = rps * 2  # every route at 0.50 of it
    deletes = {"10000_messages_ms": 5.0, "100000_messages_ms": 45.0}
    sse = {"p50_ms": 1.0, "p99_ms": 50.0, "deliveries": 10, "expected": 10}
    return {"results": results, "delete_chat": deletes, "sse": sse, "ratios": run.ratios(results, deletes)}


def test_every_target_names_a_value_the_benchmark_measures() -> None:
    run = bench()
    values = run.judged([a_run(1000, 2, 4)], {"change_after_first_minute": 0.01})
    assert set(run.TARGETS) <= set(values), set(run.TARGETS) - set(values)
    assert run.missed(values) == []


def test_a_value_past_its_target_is_reported_by_name() -> None:
    run = bench()
    slow_tail = run.judged([a_run(1000, 2, 9)], {"change_after_first_minute": -0.2})
    assert run.missed(slow_tail) == [
        "get_chat p99 / p50: 4.50, target <= 4",
        "get_chat_big p99 / p50: 4.50, target <= 4",
        "history p99 / p50: 4.50, target <= 4",
        "history_deep p99 / p50: 4.50, target <= 4",
        "history_after p99 / p50: 4.50, target <= 4",
        "get_message p99 / p50: 4.50, target <= 4",
        "members p99 / p50: 4.50, target <= 4",
        "list_chats_unread_1m p99 / p50: 4.50, target <= 4",
        "list_chats_by_activity p99 / p50: 4.50, target <= 4",
        "soak: RSS change after the first minute, %: 20.00, target <= 10",
    ]
    below = run.judged([a_run(1000, 2, 4)], {})
    below["get_chat / ceiling_http"] = 0.49
    below["members / ceiling_http"] = 0.34
    below["create_chat / ceiling_http"] = 0.29
    assert run.missed(below) == [
        "get_chat / ceiling_http: 0.49, target >= 0.5",
        "members / ceiling_http: 0.34, target >= 0.35",
        "create_chat / ceiling_http: 0.29, target >= 0.3",
    ]


def test_the_profile_summary_counts_each_sample_where_its_innermost_frame_is(tmp_path: Path) -> None:
    """bench/profile_summary.py, which makes bench/profiles/README.md's table."""
    spec = importlib.util.spec_from_file_location("profile_summary", ROOT / "bench" / "profile_summary.py")
    assert spec is not None and spec.loader is not None
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    loop = "main (chatsvc/__main__.py:152);run (chatsvc/workers.py:53)"
    profile = tmp_path / "run1-get_chat.txt"
    profile.write_text(
        f"{loop} 5\n"  # in the loop's own C code
        f"{loop};StreamWriter._writelines (aiohttp/http_writer.py:116) 3\n"
        f"{loop};observe (chatsvc/observe.py:58) 2\n"
        f"{loop};observe (chatsvc/observe.py:58);Connection._do_execute (asyncpg/connection.py:2069) 4\n"
        f"{loop};MutexValue.inc (prometheus_client/values.py:28) 1\n"
        " 1\n"  # no Python frame at all
    )
    total, columns = summary.summary(profile)
    assert total == 16
    assert dict(columns) == {"uvloop's loop": 5, "aiohttp": 3, "chatsvc": 2, "asyncpg": 4, "the rest": 2}
