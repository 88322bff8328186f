"""`make run`: the whole platform on this machine, on embedded defaults.

SQLite files under var/ for the SQL services (unless COURSES_DATABASE_URL /
ENROLMENTS_DATABASE_URL / LEARNING_DATABASE_URL point at MySQL; learning's uploads
go to var/media), the in-process MongoDB stand-in for
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
import sys
import time
from dataclasses import fields
from pathlib import Path

from devtools.devservers import ServerError, port_open
from devtools.launcher import DEV_CORS_ALLOWED_ORIGINS, Platform, PlatformConfig, Ports

ROOT = Path(__file__).resolve().parents[1]
# COURSE_PLATFORM_VAR moves the state (databases, mail, logs, dev secrets) elsewhere.
VAR = Path(os.environ.get("COURSE_PLATFORM_VAR") or ROOT / "var")


def dev_secrets() -> dict[str, str]:
    """Random keys made once per checkout, so restarts keep sessions and logins."""
    path = VAR / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "INTERNAL_API_KEY": secrets.token_urlsafe(48),
        "TOTP_ENCRYPTION_KEY": secrets.token_urlsafe(48),
        "FAKTUROWNIA_API_TOKEN": secrets.token_urlsafe(24),
        "ADMIN_EMAIL": "admin@course-platform.local",
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": secrets.token_urlsafe(16),
    }
    VAR.mkdir(exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def config_from_environment() -> PlatformConfig:
    env = os.environ
    keys = dev_secrets()
    return PlatformConfig(
        ports=Ports.from_base(int(env.get("PORT", "8080"))),
        run_dir=VAR,
        internal_api_key=keys["INTERNAL_API_KEY"],
        jwt_secret_key=keys["JWT_SECRET_KEY"],
        totp_encryption_key=keys["TOTP_ENCRYPTION_KEY"],
        fakturownia_api_token=keys["FAKTUROWNIA_API_TOKEN"],
        courses_database_url=env.get("COURSES_DATABASE_URL", f"sqlite:///{VAR / 'courses.db'}"),
        enrolments_database_url=env.get(
            "ENROLMENTS_DATABASE_URL", f"sqlite:///{VAR / 'enrolments.db'}"
        ),
        learning_database_url=env.get("LEARNING_DATABASE_URL", f"sqlite:///{VAR / 'learning.db'}"),
        mongo_url=env.get("MONGO_URL", ""),
        redis_url=env.get("REDIS_URL", ""),
        admin={
            key: env.get(f"ADMIN_{key.upper()}", keys[f"ADMIN_{key.upper()}"])
            for key in ("email", "username", "password")
        },
        frontend_url=env.get("FRONTEND_URL", ""),
        cors_allowed_origins=env.get("CORS_ALLOWED_ORIGINS", DEV_CORS_ALLOWED_ORIGINS),
    )


def main() -> int:
    config = config_from_environment()
    ports = config.ports
    busy = [
        f"{f.name}:{getattr(ports, f.name)}"
        for f in fields(ports)
        if port_open(getattr(ports, f.name))
    ]
    if busy:
        print(f"ports already in use: {', '.join(busy)} (set PORT=... to move)", file=sys.stderr)
        return 1
    platform = Platform(config)
    try:
        platform.start()
    except ServerError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    try:
        print_banner(platform, config)
        return supervise(platform)
    finally:
        platform.stop()
        print("stopped every process", flush=True)


def print_banner(platform: Platform, config: PlatformConfig) -> None:
    base = platform.url
    chain = "nginx → gateway" if platform.behind_nginx else "gateway (nginx not installed)"
    store = "Redis" if config.redis_url else "in-process store, single gateway process"
    print(
        f"""
Course Platform is running: {chain} → {", ".join(s.name for s in platform.services)}
  API base URL   {base}/api/            e.g. curl {base}/api/course/
  API docs       {base}/api/docs
  Captured mail  {VAR / "mail"}/*.eml
  Admin account  ADMIN_EMAIL/ADMIN_USERNAME/ADMIN_PASSWORD if set, else {VAR / "dev-secrets.json"}
  Gateway state  {store}
  Logs           {VAR}/*.log
Press Ctrl-C to stop.""",
        flush=True,
    )


def supervise(platform: Platform) -> int:
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stop["now"]:
        for child in platform.dead_children():
            print(
                f"{child.name} exited with code {child.process.returncode}; see {child.log_path}",
                file=sys.stderr,
                flush=True,
            )
            return 1
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
