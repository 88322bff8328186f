"""`make run`: the whole platform on this machine, on embedded defaults.

SQLite files under var/ for the SQL services (unless COURSES_DATABASE_URL /
ENROLMENTS_DATABASE_URL point at MySQL), the in-process MongoDB stand-in for
users (unless MONGO_URL is set), an in-process gateway store (unless REDIS_URL
is set), a local SMTP sink writing var/mail/*.eml, the Fakturownia stand-in,
every service under gunicorn, and nginx in front when it is installed.
Ctrl-C stops everything; a child that dies is reported and stops the run.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "common"))

from common.devservers import (  # noqa: E402
    ManagedProcess,
    ServerError,
    find_binary,
    port_open,
    render_nginx_config,
    wait_until,
)

VAR = ROOT / "var"
RUN = VAR / "run"
BIN = Path(sys.executable).parent


@dataclass
class Service:
    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    migrate: bool = False


def dev_secrets() -> dict[str, str]:
    """Random keys made once per checkout, so restarts keep sessions and logins."""
    path = VAR / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    values = {
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "INTERNAL_API_KEY": secrets.token_urlsafe(48),
        "TOTP_ENCRYPTION_KEY": secrets.token_urlsafe(48),
        "FAKTUROWNIA_API_TOKEN": secrets.token_urlsafe(24),
        "ADMIN_EMAIL": "admin@course-platform.local",
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": secrets.token_urlsafe(12),
    }
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def importable(module: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"from {module} import create_app"], capture_output=True)
    return probe.returncode == 0


def plan(ports: dict[str, int], keys: dict[str, str]) -> list[Service]:
    env = os.environ
    mail = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(ports["smtp"])}
    common = {"ENVIRONMENT": "development", "INTERNAL_API_KEY": keys["INTERNAL_API_KEY"]}
    urls = {
        "USERS_URL": f"http://127.0.0.1:{ports['users']}",
        "COURSES_URL": f"http://127.0.0.1:{ports['courses']}",
        "ENROLMENTS_URL": f"http://127.0.0.1:{ports['enrolments']}",
    }
    mongo = env.get("MONGO_URL", "")
    redis = env.get("REDIS_URL", "")
    services = [
        Service(
            "fakturownia-sandbox",
            "fakturownia_sandbox",
            ports["fakturownia"],
            workers=1,
            env={"FAKTUROWNIA_API_TOKEN": keys["FAKTUROWNIA_API_TOKEN"]},
        ),
        Service(
            "courses",
            "courses",
            ports["courses"],
            migrate=True,
            env={
                **common,
                "DATABASE_URL": env.get("COURSES_DATABASE_URL", f"sqlite:///{VAR / 'courses.db'}"),
            },
        ),
        Service(
            "users",
            "users",
            ports["users"],
            workers=2 if mongo else 1,
            env={
                **common,
                **mail,
                "MONGO_URL": mongo,
                "TOTP_ENCRYPTION_KEY": keys["TOTP_ENCRYPTION_KEY"],
                "FRONTEND_URL": env.get("FRONTEND_URL", f"http://127.0.0.1:{ports['http']}"),
                "ADMIN_EMAIL": env.get("ADMIN_EMAIL", keys["ADMIN_EMAIL"]),
                "ADMIN_USERNAME": env.get("ADMIN_USERNAME", keys["ADMIN_USERNAME"]),
                "ADMIN_PASSWORD": env.get("ADMIN_PASSWORD", keys["ADMIN_PASSWORD"]),
            },
        ),
        Service(
            "enrolments",
            "enrolments",
            ports["enrolments"],
            migrate=True,
            env={
                **common,
                **mail,
                **urls,
                "DATABASE_URL": env.get(
                    "ENROLMENTS_DATABASE_URL", f"sqlite:///{VAR / 'enrolments.db'}"
                ),
                "FAKTUROWNIA_URL": f"http://127.0.0.1:{ports['fakturownia']}",
                "FAKTUROWNIA_API_TOKEN": keys["FAKTUROWNIA_API_TOKEN"],
                "FAKTUROWNIA_SELLER_NAME": "Course Platform (local)",
                "RUN_WORKERS": "true",
            },
        ),
        Service(
            "gateway",
            "gateway",
            ports["gateway"],
            workers=2 if redis else 1,
            env={
                **common,
                **urls,
                "JWT_SECRET_KEY": keys["JWT_SECRET_KEY"],
                "REDIS_URL": redis,
                "COOKIE_SECURE": "false",
            },
        ),
    ]
    return [service for service in services if importable(service.module)]


def gunicorn_argv(service: Service) -> list[str]:
    factory = (
        f"{service.module}.app:create_app()"
        if service.module != "fakturownia_sandbox"
        else "fakturownia_sandbox:create_app()"
    )
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
        factory,
    ]


def migrate(service: Service) -> None:
    env = {**os.environ, **service.env}
    result = subprocess.run(
        [str(BIN / "flask"), "--app", service.module, "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise ServerError(f"migrations of {service.name} failed:\n{result.stderr[-3000:]}")


def start_nginx(ports: dict[str, int]) -> ManagedProcess | None:
    try:
        nginx = find_binary("nginx")
    except ServerError:
        return None
    workdir = RUN / "nginx"
    workdir.mkdir(parents=True, exist_ok=True)
    config = render_nginx_config(
        listen=f"127.0.0.1:{ports['http']}",
        gateway=f"127.0.0.1:{ports['gateway']}",
        workdir=workdir,
    )
    process = ManagedProcess(
        "nginx", [nginx, "-p", str(workdir), "-c", str(config)], RUN / "nginx.log"
    )
    wait_until(lambda: port_open(ports["http"]), timeout=15, what="nginx")
    return process


def main() -> int:
    base = int(os.environ.get("PORT", "8080"))
    ports = {
        "http": base,
        "gateway": base + 1,
        "users": base + 2,
        "courses": base + 3,
        "enrolments": base + 4,
        "fakturownia": base + 5,
        "smtp": base + 6,
    }
    busy = [f"{name}:{port}" for name, port in ports.items() if port_open(port)]
    if busy:
        print(f"ports already in use: {', '.join(busy)} (set PORT=... to move)", file=sys.stderr)
        return 1
    RUN.mkdir(parents=True, exist_ok=True)
    keys = dev_secrets()
    children: list[ManagedProcess] = []
    sys.path.insert(0, str(ROOT / "common"))
    children.append(
        ManagedProcess(
            "smtp-sink",
            [
                sys.executable,
                "-m",
                "common.smtp_sink",
                "--port",
                str(ports["smtp"]),
                "--dir",
                str(VAR / "mail"),
            ],
            RUN / "smtp-sink.log",
        )
    )
    try:
        services = plan(ports, keys)
        for service in services:
            if service.migrate:
                migrate(service)
            env = {**os.environ, **service.env, "PYTHONUNBUFFERED": "1"}
            children.append(
                ManagedProcess(
                    service.name,
                    gunicorn_argv(service),
                    RUN / f"{service.name}.log",
                    env=env,
                    cwd=ROOT,
                )
            )
        for service, child in zip(services, children[1:], strict=True):
            wait_until(
                lambda s=service, c=child: c.ensure_alive() or port_open(s.port),
                timeout=60,
                what=service.name,
            )
        nginx = start_nginx(ports)
        if nginx:
            children.append(nginx)
        entry = ports["http"] if nginx else ports["gateway"]
        print_banner(entry, nginx is not None, services)
        return supervise(children)
    except ServerError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            child.stop()
        print("stopped every process", flush=True)


def print_banner(port: int, behind_nginx: bool, services: list[Service]) -> None:
    base = f"http://127.0.0.1:{port}"
    print(
        f"""
Course Platform is running ({"nginx → " if behind_nginx else ""}gateway → services)
  API base URL   {base}/api/            e.g. curl {base}/api/course/
  API docs       {base}/api/docs
  Captured mail  {VAR / "mail"}/*.eml
  Admin account  from ADMIN_EMAIL/ADMIN_USERNAME/ADMIN_PASSWORD, else {VAR / "dev-secrets.json"}
  Logs           {RUN}/*.log
  Services       {", ".join(s.name for s in services)}
Press Ctrl-C to stop.""",
        flush=True,
    )


def supervise(children: list[ManagedProcess]) -> int:
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stop["now"]:
        for child in children:
            if not child.alive():
                print(
                    f"{child.name} exited with code {child.process.returncode}; "
                    f"see {child.log_path}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
