"""The class deployment's files agree with the code: deploy/compose.yaml names real settings and
runs the real worker, deploy/nginx.conf keeps event streams open over both webs, docs/deploy.md
names every class setting with its real default, and ``python -m app.deploy`` answers --help.

Docker is not needed: the files are parsed and checked against ``app.config.Settings``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose.yaml"
NGINX = ROOT / "deploy" / "nginx.conf"
DOCS = ROOT / "docs" / "deploy.md"

WEBS = ("web1", "web2")
WORKERS = ("worker1", "worker2")
APP_SERVICES = (*WEBS, *WORKERS)
# What a class deployment adds to the settings (docs/deploy.md's table must name each).
CLASS_SETTINGS = (
    "runner",
    "database_url",
    "broker_url",
    "runs_queue_name",
    "runs_lease_seconds",
    "runs_max_attempts",
    "store_retry_seconds",
    "store_retry_after_seconds",
)
FIELDS = Settings.model_fields


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def nginx() -> str:
    # Comments out, so a directive only counts where nginx reads it.
    return re.sub(r"#[^\n]*", "", NGINX.read_text())


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of compose's two forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def block(text: str, opening: str) -> str:
    """The body of the ``{ ... }`` block whose head matches the regex ``opening``."""
    match = re.search(opening + r"\s*\{", text)
    assert match, f"no block {opening!r} in {NGINX.name}"
    depth, start = 1, match.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    raise AssertionError(f"block {opening!r} is not closed")


def seconds(value: str) -> float:
    """An nginx time (``90``, ``30s``, ``5m``, ``1h``) in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match, f"not an nginx time: {value!r}"
    number, unit = match.groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit or "s"]


def nginx_size(value: str) -> int:
    """An nginx size (``512``, ``64k``, ``24m``) in bytes."""
    match = re.fullmatch(r"(\d+)([kKmMgG])?", value)
    assert match, f"not an nginx size: {value!r}"
    number, unit = match.groups()
    return int(number) * {"k": 1024, "m": 1024**2, "g": 1024**3}.get((unit or "").lower(), 1)


# -- deploy/compose.yaml -------------------------------------------------------------------------


def test_compose_has_two_webs_two_workers_redis_postgres_and_the_proxy(
    services: dict[str, Any],
) -> None:
    assert set(services) >= {*APP_SERVICES, "redis", "postgres", "proxy"}


def test_every_explorer_variable_in_compose_is_a_real_setting() -> None:
    named = set(re.findall(r"\bEXPLORER_([A-Z0-9_]+)", COMPOSE.read_text()))
    assert named, "compose.yaml sets no EXPLORER_* variable"
    unknown = sorted(f"EXPLORER_{n}" for n in named if n.lower() not in FIELDS)
    assert not unknown, f"not fields of app.config.Settings: {unknown}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_build_the_repo_image_and_share_the_store_and_broker(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    build = service["build"]
    context = COMPOSE.parent / (build["context"] if isinstance(build, dict) else build)
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    assert (context / dockerfile).resolve() == ROOT / "Dockerfile"
    env = environment(service)
    assert env["EXPLORER_RUNNER"] == "celery"
    assert env["EXPLORER_DATABASE_URL"] == (
        "postgresql+psycopg://explorer:explorer@postgres:5432/explorer"
    )
    assert env["EXPLORER_BROKER_URL"] == "redis://redis:6379/0"
    assert env["EXPLORER_HOST"] == "0.0.0.0"
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Every process must agree on these, or a sweeper would judge by other rules than the rest.
    shared = {k: v for k, v in env.items() if k.startswith("EXPLORER_") and k != "EXPLORER_PORT"}
    assert shared == {
        k: v
        for k, v in environment(services["web1"]).items()
        if k.startswith("EXPLORER_") and k != "EXPLORER_PORT"
    }


@pytest.mark.parametrize("name", WORKERS)
def test_workers_run_the_celery_app_one_run_per_process_with_unique_names(
    services: dict[str, Any], name: str
) -> None:
    command = services[name]["command"]
    argv = command.split() if isinstance(command, str) else [str(a) for a in command]
    assert argv[:4] == ["celery", "-A", "app.jobs.celery", "worker"]
    assert argv[argv.index("--pool") + 1] == "solo"
    assert argv[argv.index("-n") + 1] == f"{name}@%h"
    assert {"--without-gossip", "--without-mingle"} <= set(argv)


def test_the_image_has_what_a_worker_imports() -> None:
    # The same image serves as a web and as a worker: Celery, its Redis client, psycopg.
    recipe = (ROOT / "Dockerfile").read_text() + (ROOT / "pyproject.toml").read_text()
    for package in ("celery", "redis", "psycopg"):
        assert package in recipe, f"neither the Dockerfile nor pyproject.toml installs {package}"


@pytest.mark.parametrize("name", WEBS)
def test_webs_check_healthz_on_their_port_and_publish_nothing(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    port = environment(service).get("EXPLORER_PORT", "8000")
    assert f":{port}/healthz" in " ".join(map(str, service["healthcheck"]["test"]))
    assert "ports" not in service, "webs are reached through the proxy only"


def test_redis_keeps_nothing_and_postgres_keeps_a_named_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    redis_cmd = [str(a) for a in services["redis"]["command"]]
    assert services["redis"]["image"].startswith("redis:7")
    assert redis_cmd[redis_cmd.index("--save") + 1] == ""
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "no"
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:15")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "the store's data is in a named volume"


def test_the_proxy_mounts_deploy_nginx_conf_on_port_8000(services: dict[str, Any]) -> None:
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx")
    source, target = proxy["volumes"][0].split(":")[:2]
    assert (COMPOSE.parent / source).resolve() == NGINX
    assert target == "/etc/nginx/nginx.conf"
    assert any(str(p).startswith("8000:") for p in proxy["ports"])
    assert {"web1", "web2"} <= set(proxy["depends_on"])


# -- deploy/nginx.conf ---------------------------------------------------------------------------


def test_the_upstream_lists_both_webs_on_their_port(nginx: str, services: dict[str, Any]) -> None:
    upstream = block(nginx, r"upstream\s+(\w+)")
    for name in WEBS:
        port = environment(services[name]).get("EXPLORER_PORT", "8000")
        assert re.search(rf"^\s*server\s+{name}:{port}\b", upstream, re.MULTILINE), name
    named = re.search(r"upstream\s+(\w+)", nginx)
    assert named
    # Both locations (the event streams and the rest) send to that upstream.
    assert block(nginx, r"\bserver").count(f"proxy_pass http://{named.group(1)};") >= 2


def test_event_streams_are_unbuffered_and_held_open(nginx: str) -> None:
    head = re.search(r"location\s+~\s+(\S+)\s*\{", nginx)
    assert head, "no regex location for the event streams"
    path = re.compile(head.group(1))
    assert path.match("/api/runs/3c7a3a84ef28/events")
    assert not path.match("/api/runs/3c7a3a84ef28/events/more")
    assert not path.match("/api/runs/3c7a3a84ef28")
    events = block(nginx, r"location\s+~\s+" + re.escape(head.group(1)))
    assert re.search(r"proxy_buffering\s+off;", events)
    read = re.search(r"proxy_read_timeout\s+(\w+);", events)
    assert read and seconds(read.group(1)) >= 10 * Settings().stream_heartbeat_seconds


def test_streams_use_http_1_1_without_a_connection_header(nginx: str) -> None:
    assert re.search(r"proxy_http_version\s+1\.1;", nginx)
    assert re.search(r'proxy_set_header\s+Connection\s+"";', nginx)


def test_a_dead_web_is_skipped_on_error_and_timeout(nginx: str) -> None:
    match = re.search(r"proxy_next_upstream\s+([^;]+);", nginx)
    assert match and {"error", "timeout"} <= set(match.group(1).split())
    assert "non_idempotent" not in match.group(1), "a POST must never reach two webs"


def test_the_body_limit_lets_the_largest_upload_through_to_the_app(nginx: str) -> None:
    defaults = Settings()
    largest = max(defaults.max_checkpoint_bytes, defaults.max_upload_bytes, defaults.max_json_bytes)
    match = re.search(r"client_max_body_size\s+(\w+);", nginx)
    assert match and nginx_size(match.group(1)) > largest


def test_the_client_address_is_overwritten_never_appended(nginx: str) -> None:
    # The webs trust X-Forwarded-For from the proxy: a client must not choose its own address.
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$remote_addr;", nginx)
    assert "$proxy_add_x_forwarded_for" not in nginx


# -- python -m app.deploy and docs/deploy.md -----------------------------------------------------


def test_app_deploy_help_names_webs_and_workers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.deploy", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--webs" in done.stdout and "--workers" in done.stdout


def test_deploy_doc_names_every_class_setting() -> None:
    text = DOCS.read_text()
    for name in CLASS_SETTINGS:
        assert name in FIELDS, name
        assert f"`{name}`" in text and f"EXPLORER_{name.upper()}" in text, name


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_deploy_doc_settings_table_gives_the_real_defaults() -> None:
    rows = re.findall(
        r"^\| `(\w+)` \(`EXPLORER_(\w+)`\) \| `([^`]+)`", DOCS.read_text(), re.MULTILINE
    )
    assert {name for name, _, _ in rows} >= set(CLASS_SETTINGS) - {"database_url"}
    for name, env, default in rows:
        assert name in FIELDS, name
        assert env == name.upper(), name
        if name != "data_dir":  # a path, shown relative to the repo
            assert default == _shown(FIELDS[name].default), name
