"""Real servers started on free loopback ports with throwaway data dirs.

Used by the pytest plugin and by the local runner (``make run``). A missing
server binary is an error, never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


class ServerError(RuntimeError):
    pass


def find_binary(*names: str) -> str:
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return found
    raise ServerError(
        f"none of {', '.join(names)} is installed; run `make install-system` "
        "(or apt-get install mariadb-server redis-server nginx)"
    )


_SERVER_PORTS_FROM = 10_000


def free_port() -> int:
    """A loopback port nothing listens on, below the kernel's ephemeral range.

    A port from inside that range can be taken between our choice and the server's
    bind by the local end of any outgoing connection, or be connected to itself by a
    readiness probe (TCP self-connect): a server that never started looks up."""
    low = _ephemeral_range()[0]
    if low - _SERVER_PORTS_FROM < 1000:  # an unusual range: let the kernel choose
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = random.randrange(_SERVER_PORTS_FROM, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerError("no free loopback port below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def wait_until(probe: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if probe():
                return
        time.sleep(0.05)
    raise ServerError(f"{what} did not become ready within {timeout:.0f}s")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ManagedProcess:
    """A child process that is stopped (TERM, then KILL) when we are done."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, **popen: object) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, **popen
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def ensure_alive(self) -> None:
        if not self.alive():
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise ServerError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: the crash the durability tests simulate."""
        if self.alive():
            self.process.kill()
            self.process.wait(10)


class MariaDB:
    """A private mariadbd: its own datadir, socket and port, root without password."""

    def __init__(self, workdir: Path | None = None, port: int | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="mariadb-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.socket = self.workdir / "mysqld.sock"
        self._process: ManagedProcess | None = None

    def start(self) -> MariaDB:
        mariadbd = find_binary("mariadbd", "mysqld")
        install_db = find_binary("mariadb-install-db", "mysql_install_db")
        datadir = self.workdir / "data"
        if not datadir.exists():
            subprocess.run(
                [
                    install_db,
                    "--no-defaults",
                    f"--datadir={datadir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--user=root" if os.geteuid() == 0 else f"--user={os.getlogin()}",
                ],
                check=True,
                capture_output=True,
            )
        argv = [
            mariadbd,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket}",
            f"--pid-file={self.workdir / 'mysqld.pid'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-doublewrite=0",
            "--max-connections=500",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        self._process = ManagedProcess("mariadb", argv, self.workdir / "mariadb.log")
        wait_until(self._ready, timeout=60, what="MariaDB")
        return self

    def _ready(self) -> bool:
        assert self._process is not None
        self._process.ensure_alive()
        return port_open(self.port) and self.socket.exists()

    def execute(self, *statements: str) -> None:
        import pymysql

        connection = pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", password="", autocommit=True
        )
        try:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        """(Re)create an empty database and return its SQLAlchemy URL."""
        self.execute(
            f"DROP DATABASE IF EXISTS `{name}`",
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        )
        return self.url(name)

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def stop(self) -> None:
        if self._process:
            self._process.stop(timeout=30)

    def kill(self) -> None:
        if self._process:
            self._process.kill()


class Redis:
    def __init__(
        self, workdir: Path | None = None, port: int | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="redis-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        argv = [
            find_binary("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            *self.extra_args,
        ]
        self._process = ManagedProcess("redis", argv, self.workdir / "redis.log")
        wait_until(self._ready, timeout=20, what="Redis")
        return self

    def _ready(self) -> bool:
        assert self._process is not None
        self._process.ensure_alive()
        return port_open(self.port)

    def stop(self) -> None:
        if self._process:
            self._process.stop()


NGINX_TEMPLATE = REPO_ROOT / "nginx" / "nginx.conf.template"


def render_nginx_config(
    *, listen: str, gateway: str, workdir: Path, template: Path = NGINX_TEMPLATE
) -> Path:
    """The same template as production, with ports and paths filled in.

    Started as root (the CI VM), nginx's workers would drop to ``nobody``, who may not
    even reach this private workdir: every request body or answer too big for nginx's
    memory buffers (an upload, a download) would fail on its temp file. So the workers
    stay the invoking user, as they do in the image (which runs nginx unprivileged)."""
    config = template.read_text()
    replacements = {
        "${NGINX_LISTEN}": listen,
        "${GATEWAY_UPSTREAM}": gateway,
        "${NGINX_PREFIX}": str(workdir),
        "${NGINX_PID}": str(workdir / "nginx.pid"),
        "${NGINX_USER_DIRECTIVE}": "user root;" if os.geteuid() == 0 else "",
        "${NGINX_ACCESS_LOG}": str(workdir / "access.log"),
        "${NGINX_ERROR_LOG}": str(workdir / "error.log"),
        "${NGINX_DAEMON}": "off",
    }
    for key, value in replacements.items():
        config = config.replace(key, value)
    for sub in ("client_body", "proxy"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    path = workdir / "nginx.conf"
    path.write_text(config)
    return path


class Nginx:
    def __init__(self, gateway: str, workdir: Path | None = None, port: int | None = None):
        self.gateway = gateway
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="nginx-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        config = render_nginx_config(
            listen=f"127.0.0.1:{self.port}", gateway=self.gateway, workdir=self.workdir
        )
        argv = [find_binary("nginx"), "-p", str(self.workdir), "-c", str(config)]
        check = subprocess.run([*argv, "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise ServerError(f"nginx config is invalid:\n{check.stderr}")
        self._process = ManagedProcess("nginx", argv, self.workdir / "nginx.out")
        wait_until(self._ready, timeout=20, what="nginx")
        return self

    def _ready(self) -> bool:
        assert self._process is not None
        self._process.ensure_alive()
        return port_open(self.port)

    def stop(self) -> None:
        if self._process:
            self._process.stop()
