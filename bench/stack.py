"""Starting what the benchmark measures: the platform on a throwaway MariaDB and Redis
behind nginx, and the two extra gateways it is compared with on the same machine:

- the naive gateway (``bench/naive_gateway.py``), the calibration baseline;
- the urllib3 gateway (``bench/urllib3_gateway.py``), the real gateway with its
  internal calls over urllib3's pool instead of ``common/keepalive.py``.

Both run under the real gateway's gunicorn settings.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from devtools.devservers import ManagedProcess, MariaDB, Redis, free_port, port_open, wait_until
from devtools.launcher import Platform, PlatformConfig, Ports, Service, gunicorn_argv

BENCH_DIR = Path(__file__).resolve().parent
ADMIN = {
    "email": "bench@bench.example.org",
    "username": "bench-admin",
    "password": "bench password that is long enough",
}


def start(workdir: Path) -> tuple[Platform, MariaDB, Redis]:
    mariadb = MariaDB(workdir / "mariadb").start()
    try:
        redis = Redis(workdir / "redis").start()
    except BaseException:
        mariadb.stop()
        raise
    config = PlatformConfig(
        ports=Ports(*(free_port() for _ in range(7))),
        run_dir=workdir / "platform",
        internal_api_key=secrets.token_urlsafe(40),
        jwt_secret_key=secrets.token_urlsafe(40),
        totp_encryption_key=secrets.token_urlsafe(40),
        fakturownia_api_token=secrets.token_urlsafe(20),
        courses_database_url=mariadb.create_database("bench_courses"),
        enrolments_database_url=mariadb.create_database("bench_enrolments"),
        learning_database_url=mariadb.create_database("bench_learning"),
        redis_url=redis.url,
        admin=ADMIN,
        environment="development",
        extra_env={
            "fakturownia-sandbox": {"SANDBOX_LATENCY": "1.0"},
            "gateway": {"AUTH_RATE_LIMIT": "100000/minute"},
        },
    )
    try:
        return Platform(config).start(require_nginx=True), mariadb, redis
    except BaseException:
        redis.stop()
        mariadb.stop()
        raise


def mint_tokens(platform: Platform, path: Path, count: int) -> Path:
    """``count`` access tokens, one per user, each with a live session, as login
    would issue them (written straight to the gateway's Redis: logging in ``count``
    users through argon2 would take minutes)."""
    from gateway import create_app
    from gateway.settings import GatewaySettings
    from gateway.testing import mint_access_token

    config = platform.config
    app = create_app(
        GatewaySettings(
            environment="development",
            jwt_secret_key=config.jwt_secret_key,
            redis_url=config.redis_url,
            internal_api_key=config.internal_api_key,
        )
    )
    path.write_text("\n".join(mint_access_token(app, f"bench-user-{n}") for n in range(count)))
    return path


def start_naive_gateway(platform: Platform, workdir: Path) -> tuple[ManagedProcess, int]:
    """The calibration gateway (bench/naive_gateway.py) under the real one's gunicorn settings."""
    config = platform.config
    env = {
        "JWT_SECRET_KEY": config.jwt_secret_key,
        "REDIS_URL": config.redis_url,
        "COURSES_URL": f"http://127.0.0.1:{config.ports.courses}",
        "INTERNAL_API_KEY": config.internal_api_key,
    }
    return _start_bench_gateway(platform, workdir, "naive-gateway", "naive_gateway", env)


def start_urllib3_gateway(platform: Platform, workdir: Path) -> tuple[ManagedProcess, int]:
    """The real gateway over urllib3 (bench/urllib3_gateway.py), with the real one's
    environment (as the launcher planned it) and gunicorn settings."""
    env = platform.service("gateway").env
    return _start_bench_gateway(platform, workdir, "urllib3-gateway", "urllib3_gateway", env)


def _start_bench_gateway(
    platform: Platform, workdir: Path, name: str, module: str, env: dict[str, str]
) -> tuple[ManagedProcess, int]:
    """``module:create_app()`` from bench/ on a free port; its process and the port."""
    port = free_port()
    service = Service(name, module, port, env=env, workers=platform.service("gateway").workers)
    argv = [*gunicorn_argv(service), "--pythonpath", str(BENCH_DIR)]
    child = ManagedProcess(name, argv, workdir / f"{name}.log", env={**os.environ, **env})

    def ready() -> bool:
        child.ensure_alive()
        return port_open(port)

    try:
        wait_until(ready, timeout=60, what=name)
    except BaseException:
        child.stop()
        raise
    return child, port
