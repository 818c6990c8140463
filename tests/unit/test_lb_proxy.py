"""The sandbox's load balancer proxy (lb_proxy.py) run in this process on loopback: a service that a
reload removes stops listening at once, while the services that stay keep forwarding."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest
from hcloud_sandbox import lb_proxy


class Hello(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"hello\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(5)
        return sock.recv(64)


def service(port: int, target_port: int) -> dict:
    return {"protocol": "tcp", "listen_port": port, "destination_port": target_port,
            "health_check": {"protocol": "tcp", "port": target_port, "interval": 0.2, "timeout": 1, "retries": 1}}


def write(path: Path, generation: int, services: list[dict]) -> None:
    path.write_text(json.dumps({"generation": generation, "services": services, "listen_address": "127.0.0.1",
                                "targets": [{"server_id": 1, "ip": "127.0.0.1"}]}))


def wait_healthy(path: Path, ports: list[int]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        health = json.loads((path.parent / "status.json").read_text())["health"]
        if all(health.get(str(port), {}).get("127.0.0.1") == "healthy" for port in ports):
            return
        time.sleep(0.1)
    pytest.fail(f"not healthy within 20 s: {health}")


def test_a_service_a_reload_removes_stops_listening_and_the_others_keep_forwarding(tmp_path: Path) -> None:
    target = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Hello)
    target.daemon_threads = True
    threading.Thread(target=target.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    config = tmp_path / "config.json"
    kept, removed = free_port(), free_port()
    proxy = lb_proxy.Proxy(str(config))
    try:
        write(config, 1, [service(kept, target.server_address[1]), service(removed, target.server_address[1])])
        proxy.load()
        wait_healthy(config, [kept, removed])
        assert read(kept) == read(removed) == b"hello\n"
        serving = [t for t in threading.enumerate() if t.name == f"serve-{removed}"]
        assert len(serving) == 1, threading.enumerate()

        write(config, 2, [service(kept, target.server_address[1])])
        proxy.load()
        # before the fix the port went on accepting: the serving thread, blocked in accept(), kept
        # the closed socket listening and forwarded to the old target
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", removed), timeout=5).close()
        for thread in serving:
            thread.join(timeout=5)
            assert not thread.is_alive(), "the removed service's accept loop is still running"
        assert read(kept) == b"hello\n"
        assert json.loads((tmp_path / "status.json").read_text())["generation"] == 2
    finally:
        write(config, 3, [])
        proxy.load()
        target.shutdown()
        target.server_close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", kept), timeout=5).close()
