"""The test tooling's own promises: what it says when a server is missing, where ports come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools import devservers
from devtools.devservers import MariaDB, Redis, ServerError, free_port


@pytest.mark.parametrize(("server", "binary"), [(MariaDB, "mariadbd"), (Redis, "redis-server")])
def test_a_missing_server_binary_is_a_server_error_that_says_what_to_install(
    server, binary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(devservers, "SBIN_DIRS", ())
    with pytest.raises(ServerError, match=binary) as missing:
        server(tmp_path / "data").start()
    assert "is installed; run `make install-system`" in str(missing.value)


def test_server_ports_come_from_below_the_ephemeral_range():
    # Inside it, an outgoing connection's local end (or a probe connected to itself)
    # can hold the port a server is about to bind.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(1024 <= port < low for port in ports)
    assert len(ports) > 40  # spread out, so parallel test workers rarely pick the same
