"""The sandbox's load balancer: a TCP proxy run by DockerBackend in a container (python3, standard
library only; also runs as `python3 lb_proxy.py CONFIG` anywhere).

CONFIG (JSON, rewritten whole by the backend, reloaded on SIGHUP or when its mtime changes):
  {"generation": N, "algorithm": "round_robin" | "least_connections",
   "services": [the API's service objects: protocol, listen_port, destination_port, proxyprotocol,
                health_check {protocol tcp|http|https, port, interval, timeout, retries,
                              http {domain, path, response, status_codes, tls}}],
   "targets": [{"server_id": 1, "ip": "10.0.1.2"}],
   "listen_address": "0.0.0.0" (optional; the tests run the proxy on loopback)}

Every service listens on <listen_address>:<listen_port> and forwards each connection (plain TCP,
for http and https too: no TLS termination) to <ip>:<destination_port> of a target that passes the
service's health check. A target is "unknown" until its first check, then healthy/unhealthy; it changes
state after `retries` consecutive results of the other kind (at least one). A reload keeps every
listener whose port stays, every connection in flight and the health of unchanged checks.
Next to CONFIG the proxy writes status.json: {"generation", "errors", "health": {port: {ip: state}}}.
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from typing import Any

BUFFER = 65536
MAX_CONNECTIONS = 1024


class Target:
    def __init__(self, ip: str):
        self.ip = ip
        self.state = "unknown"
        self.streak = 0  # consecutive results that disagree with the state
        self.active = 0


class Checker(threading.Thread):
    """Health checks of one target for one service, every `interval` s, until stopped."""

    def __init__(self, service: Service, target: Target):
        super().__init__(daemon=True)
        self.service, self.target, self.stop = service, target, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            check = self.service.check
            ok = probe(self.target.ip, check)
            with self.service.proxy.lock:
                self.service.record(self.target, ok)
            self.stop.wait(max(0.2, float(check.get("interval", 15))))


def probe(ip: str, check: dict[str, Any]) -> bool:
    timeout = max(0.2, float(check.get("timeout", 10)))
    port = int(check.get("port", 80))
    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            protocol = check.get("protocol", "tcp")
            if protocol == "tcp":
                return True
            http = check.get("http") or {}
            if protocol == "https" or http.get("tls"):
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname=http.get("domain") or None)
            sock.settimeout(timeout)
            host = http.get("domain") or ip
            request = f"GET {http.get('path') or '/'} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n" \
                      "User-Agent: hcloud-sandbox-lb\r\n\r\n"
            sock.sendall(request.encode())
            data = b""
            deadline = time.monotonic() + timeout
            while len(data) < 1 << 20 and time.monotonic() < deadline:
                chunk = sock.recv(BUFFER)
                if not chunk:
                    break
                data += chunk
            head, _sep, body = data.partition(b"\r\n\r\n")
            parts = head.split(b" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                return False
            codes = http.get("status_codes") or ["2??", "3??"]
            if not any(fnmatch.fnmatch(parts[1].decode(), str(c)) for c in codes):
                return False
            return not http.get("response") or http["response"].encode() in body
    except (OSError, ssl.SSLError, ValueError):
        return False


class Service:
    def __init__(self, proxy: Proxy, config: dict[str, Any]):
        self.proxy = proxy
        self.listen_port = int(config["listen_port"])
        self.listener: socket.socket | None = None
        self.targets: dict[str, Target] = {}
        self.checkers: dict[str, Checker] = {}
        self.next = 0
        self.update(config)

    def update(self, config: dict[str, Any]) -> None:
        self.config = config
        self.destination_port = int(config.get("destination_port") or config["listen_port"])
        self.check = dict(config.get("health_check") or {"protocol": "tcp", "port": self.destination_port,
                                                         "interval": 15, "timeout": 10, "retries": 3})
        self.check.setdefault("port", self.destination_port)

    def record(self, target: Target, ok: bool) -> None:
        if target.state == "unknown":
            target.state, target.streak = ("healthy" if ok else "unhealthy"), 0
        elif (target.state == "healthy") != ok:
            target.streak += 1
            if target.streak >= max(1, int(self.check.get("retries", 3))):
                target.state, target.streak = ("healthy" if ok else "unhealthy"), 0
        else:
            target.streak = 0
        self.proxy.report()

    def set_targets(self, ips: list[str], check_changed: bool) -> None:
        for ip in list(self.targets):
            if ip not in ips or check_changed:
                self.checkers.pop(ip).stop.set()
                if ip not in ips:
                    del self.targets[ip]
                else:
                    self.targets[ip].state, self.targets[ip].streak = "unknown", 0
        for ip in ips:
            if ip not in self.targets:
                self.targets[ip] = Target(ip)
            if ip not in self.checkers:
                self.checkers[ip] = Checker(self, self.targets[ip])
                self.checkers[ip].start()

    def pick(self, exclude: set[str]) -> Target | None:
        healthy = [t for ip, t in sorted(self.targets.items()) if t.state == "healthy" and ip not in exclude]
        if not healthy:
            return None
        if self.proxy.algorithm == "least_connections":
            return min(healthy, key=lambda t: t.active)
        self.next += 1
        return healthy[self.next % len(healthy)]

    def close(self) -> None:
        for checker in self.checkers.values():
            checker.stop.set()
        if self.listener is not None:
            # shutdown() first: while serve() is blocked in accept() the kernel keeps the socket for
            # that call, so close() alone would leave the port listening and the removed service
            # forwarding; shutdown() stops the listening and wakes accept() with an error
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, peer = listener.accept()
            except OSError:
                return  # listener closed by a reload
            if threading.active_count() > MAX_CONNECTIONS * 2:
                client.close()
                continue
            threading.Thread(target=self.forward, args=(client, peer), daemon=True).start()

    def forward(self, client: socket.socket, peer: tuple[str, int]) -> None:
        tried: set[str] = set()
        upstream = None
        target = None
        while upstream is None:
            with self.proxy.lock:
                target = self.pick(tried)
                if target is None:
                    client.close()
                    return
                target.active += 1
                port = self.destination_port
                proxyprotocol = bool(self.config.get("proxyprotocol"))
            try:
                upstream = socket.create_connection((target.ip, port), timeout=5)
            except OSError:
                with self.proxy.lock:
                    target.active -= 1
                tried.add(target.ip)
        try:
            upstream.settimeout(None)
            if proxyprotocol:
                local = client.getsockname()
                family = "TCP6" if ":" in peer[0] else "TCP4"
                upstream.sendall(f"PROXY {family} {peer[0]} {local[0]} {peer[1]} {local[1]}\r\n".encode())
            pump = threading.Thread(target=copy, args=(upstream, client), daemon=True)
            pump.start()
            copy(client, upstream)
            pump.join()
        finally:
            with self.proxy.lock:
                target.active -= 1
            upstream.close()
            client.close()


def copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(BUFFER)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Proxy:
    def __init__(self, path: str):
        self.path = path
        self.status_path = os.path.join(os.path.dirname(path), "status.json")
        self.lock = threading.RLock()
        self.services: dict[int, Service] = {}
        self.algorithm = "round_robin"
        self.generation: Any = None
        self.errors: list[str] = []
        self.mtime = 0.0

    def load(self) -> None:
        try:
            self.mtime = os.stat(self.path).st_mtime
            with open(self.path, encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, ValueError) as exc:
            with self.lock:
                self.errors = [f"cannot read {self.path}: {exc}"]
                self.report()
            return
        with self.lock:
            self.errors = []
            self.algorithm = config.get("algorithm", "round_robin")
            ips = [t["ip"] for t in config.get("targets", []) if t.get("ip")]
            wanted = {int(s["listen_port"]): s for s in config.get("services", [])}
            for port in list(self.services):
                if port not in wanted:
                    self.services.pop(port).close()
            for port, service_config in wanted.items():
                service = self.services.get(port)
                if service is None:
                    service = Service(self, service_config)
                    try:
                        service.listener = listen(port, config.get("listen_address", "0.0.0.0"))
                    except OSError as exc:
                        self.errors.append(f"listen_port {port}: {exc}")
                        continue
                    self.services[port] = service
                    threading.Thread(target=service.serve, args=(service.listener,), name=f"serve-{port}",
                                     daemon=True).start()
                    service.set_targets(ips, check_changed=False)
                else:
                    old = service.check
                    service.update(service_config)
                    service.set_targets(ips, check_changed=service.check != old)
            self.generation = config.get("generation")
            self.report()

    def report(self) -> None:
        status = {"generation": self.generation, "errors": self.errors,
                  "health": {str(port): {ip: t.state for ip, t in s.targets.items()}
                             for port, s in self.services.items()}}
        tmp = self.status_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(status, handle)
        os.replace(tmp, self.status_path)


def listen(port: int, address: str = "0.0.0.0") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(128)
    return sock


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: lb_proxy.py CONFIG.json", file=sys.stderr)
        return 2
    proxy = Proxy(argv[1])
    reload = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    proxy.load()
    while True:
        reload.wait(1.0)
        try:
            changed = os.stat(proxy.path).st_mtime != proxy.mtime
        except OSError:
            changed = False
        if reload.is_set() or changed:
            reload.clear()
            proxy.load()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
