"""Start the whole platform as real processes: what `make run` and the
end-to-end tests share.

Every service runs under gunicorn (gthread workers) with its settings in the
environment; nginx, when installed, fronts the gateway with the production
template. Databases and Redis are given as URLs: the caller decides whether
they are embedded (SQLite, mongomock, in-process store) or real servers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from devtools.devservers import (
    ManagedProcess,
    ServerError,
    find_binary,
    free_port,
    port_open,
    render_nginx_config,
    wait_until,
)

BIN = Path(sys.executable).parent
# A front-end dev server (e.g. `npm run dev` on port 3000) may call a local run's API.
DEV_CORS_ALLOWED_ORIGINS = "http://localhost:3000,http://127.0.0.1:3000"


@dataclass
class Ports:
    http: int
    gateway: int
    users: int
    courses: int
    enrolments: int
    fakturownia: int
    smtp: int
    # Last and optional, so a caller that lists the first seven ports still works: 0 means
    # any free port.
    learning: int = 0

    def __post_init__(self) -> None:
        if not self.learning:
            self.learning = free_port()

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(*(base + offset for offset in range(len(fields(cls)))))

    @classmethod
    def free(cls) -> Ports:
        """Free loopback ports for every process (tests)."""
        return cls(*(free_port() for _ in fields(cls)))


@dataclass
class PlatformConfig:
    ports: Ports
    run_dir: Path
    internal_api_key: str
    jwt_secret_key: str
    totp_encryption_key: str
    fakturownia_api_token: str
    courses_database_url: str
    enrolments_database_url: str
    # Empty: a SQLite file in the run dir.
    learning_database_url: str = ""
    mongo_url: str = ""
    redis_url: str = ""
    admin: dict[str, str] = field(default_factory=dict)
    environment: str = "development"
    frontend_url: str = ""
    cors_allowed_origins: str = DEV_CORS_ALLOWED_ORIGINS
    workers: int = 2
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Service:
    name: str
    module: str
    port: int
    env: dict[str, str]
    workers: int = 2
    migrate: bool = False


def importable(module: str) -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", f"from {module} import create_app"], capture_output=True
    )
    return probe.returncode == 0


def plan(config: PlatformConfig) -> list[Service]:
    ports = config.ports
    mail = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(ports.smtp)}
    base = {
        "ENVIRONMENT": config.environment,
        "INTERNAL_API_KEY": config.internal_api_key,
        "LOG_LEVEL": "INFO",
    }
    urls = {
        "USERS_URL": f"http://127.0.0.1:{ports.users}",
        "COURSES_URL": f"http://127.0.0.1:{ports.courses}",
        "ENROLMENTS_URL": f"http://127.0.0.1:{ports.enrolments}",
    }
    admin = {f"ADMIN_{key.upper()}": value for key, value in config.admin.items()}
    workers = config.workers
    services = [
        Service(
            "fakturownia-sandbox",
            "fakturownia_sandbox",
            ports.fakturownia,
            workers=1,
            env={"FAKTUROWNIA_API_TOKEN": config.fakturownia_api_token},
        ),
        Service(
            "courses",
            "courses",
            ports.courses,
            workers=workers,
            migrate=True,
            env={**base, "DATABASE_URL": config.courses_database_url},
        ),
        # The in-process MongoDB stand-in lives in one process, so one worker without MONGO_URL.
        Service(
            "users",
            "users",
            ports.users,
            workers=workers if config.mongo_url else 1,
            env={
                **base,
                **mail,
                **admin,
                "MONGO_URL": config.mongo_url,
                "TOTP_ENCRYPTION_KEY": config.totp_encryption_key,
                "FRONTEND_URL": config.frontend_url or f"http://127.0.0.1:{ports.http}",
            },
        ),
        Service(
            "enrolments",
            "enrolments",
            ports.enrolments,
            workers=workers,
            migrate=True,
            env={
                **base,
                **mail,
                **urls,
                "DATABASE_URL": config.enrolments_database_url,
                "FAKTUROWNIA_URL": f"http://127.0.0.1:{ports.fakturownia}",
                "FAKTUROWNIA_API_TOKEN": config.fakturownia_api_token,
                "FAKTUROWNIA_SELLER_NAME": "Course Platform",
                "RUN_WORKERS": "true",
            },
        ),
        Service(
            "learning",
            "learning",
            ports.learning,
            workers=workers,
            migrate=True,
            env={
                **base,
                "DATABASE_URL": config.learning_database_url
                or f"sqlite:///{config.run_dir / 'learning.db'}",
                "COURSES_URL": urls["COURSES_URL"],
                "ENROLMENTS_URL": urls["ENROLMENTS_URL"],
                "MEDIA_DIR": str(config.run_dir / "media"),
            },
        ),
        # Without Redis the gateway's store is in-process: one worker, or limits would not hold.
        Service(
            "gateway",
            "gateway",
            ports.gateway,
            workers=workers if config.redis_url else 1,
            env={
                **base,
                **urls,
                "LEARNING_URL": f"http://127.0.0.1:{ports.learning}",
                "JWT_SECRET_KEY": config.jwt_secret_key,
                "REDIS_URL": config.redis_url,
                "COOKIE_SECURE": "false",
                "CORS_ALLOWED_ORIGINS": config.cors_allowed_origins,
            },
        ),
    ]
    for service in services:
        service.env.update(config.extra_env.get(service.name, {}))
    return [service for service in services if importable(service.module)]


def gunicorn_argv(service: Service) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "-k",
        "gthread",
        "--threads",
        "8",
        "-w",
        str(service.workers),
        "-b",
        f"127.0.0.1:{service.port}",
        "--graceful-timeout",
        "5",
        f"{service.module}:create_app()",
    ]


class Platform:
    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.children: list[ManagedProcess] = []
        self.services: list[Service] = []
        self.behind_nginx = False

    @property
    def url(self) -> str:
        port = self.config.ports.http if self.behind_nginx else self.config.ports.gateway
        return f"http://127.0.0.1:{port}"

    def start(self, *, smtp_sink: bool = True, require_nginx: bool = False) -> Platform:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if smtp_sink:
                self._spawn(
                    "smtp-sink",
                    [
                        sys.executable,
                        "-m",
                        "devtools.smtp_sink",
                        "--port",
                        str(self.config.ports.smtp),
                        "--dir",
                        str(self.config.run_dir / "mail"),
                    ],
                )
            self.services = plan(self.config)
            for service in self.services:
                if service.migrate:
                    self._migrate(service)
                self._spawn(service.name, gunicorn_argv(service), service.env)
            for service in self.services:
                self._wait_ready(service)
            self._start_nginx(require_nginx)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, service: Service) -> None:
        child = self.child(service.name)

        def ready() -> bool:
            child.ensure_alive()
            return port_open(service.port)

        wait_until(ready, timeout=60, what=service.name)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.children.append(
            ManagedProcess(
                name,
                argv,
                self.config.run_dir / f"{name}.log",
                env=full_env,
                cwd=self.config.run_dir,
            )
        )

    def _migrate(self, service: Service) -> None:
        result = subprocess.run(
            [str(BIN / "flask"), "--app", service.module, "db", "upgrade"],
            env={**os.environ, **service.env},
            capture_output=True,
            text=True,
            cwd=self.config.run_dir,
        )
        if result.returncode != 0:
            raise ServerError(f"migrations of {service.name} failed:\n{result.stderr[-3000:]}")

    def _start_nginx(self, required: bool) -> None:
        try:
            nginx = find_binary("nginx")
        except ServerError:
            if required:
                raise
            return
        workdir = self.config.run_dir / "nginx"
        workdir.mkdir(parents=True, exist_ok=True)
        config = render_nginx_config(
            listen=f"127.0.0.1:{self.config.ports.http}",
            gateway=f"127.0.0.1:{self.config.ports.gateway}",
            workdir=workdir,
        )
        self._spawn("nginx", [nginx, "-p", str(workdir), "-c", str(config)])
        wait_until(lambda: port_open(self.config.ports.http), timeout=15, what="nginx")
        self.behind_nginx = True

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.name == name)

    def child(self, name: str) -> ManagedProcess:
        return next(child for child in self.children if child.name == name)

    def dead_children(self) -> list[ManagedProcess]:
        return [child for child in self.children if not child.alive()]

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
