"""The http_check module (app_deploy's health gate and watch window) against real HTTP and HTTPS
servers on loopback: every kind of unhealthy answer fails, the TLS name is the site's, and the
module itself through ansible."""

from __future__ import annotations

import datetime
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ansible_collections.anvil.hetzner.plugins.modules import http_check

ROOT = Path(__file__).resolve().parents[2]


class Handler(http.server.BaseHTTPRequestHandler):
    """/ok 200, /fail 500, /redirect 302, /flip 200 for the first 3 requests then 503, /slow sleeps."""

    flips = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/flip":
            type(self).flips += 1
        status = {"/ok": 200, "/fail": 500, "/redirect": 302, "/created": 201,
                  "/flip": 200 if type(self).flips <= 3 else 503}.get(self.path, 404)
        if self.path == "/slow":
            threading.Event().wait(1.5)
            status = 200
        if self.path == "/host":
            status = 200 if self.headers["Host"].split(":")[0] == "shop.example.test" else 421
        body = f"{self.path} {status} host={self.headers['Host']}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def serve(context: ssl.SSLContext | None = None) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture()
def plain():
    Handler.flips = 0
    server, port = serve()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """An HTTPS server whose certificate names shop.example.test only, and its CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("shop.example.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    tmp = tmp_path_factory.mktemp("tls")
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    server, port = serve(context)
    yield port, str(tmp / "cert.pem")
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def check(targets, mode="wait", **kw):
    args = {"timeout": 1.0, "interval": 0.05, "retries": 3, "duration": 0.5} | kw
    return http_check.run(targets, mode, args["timeout"], args["interval"], args["retries"], args["duration"])


def test_wait_passes_on_2xx(plain):
    result = check([{"url": f"{plain}/ok"}, {"url": f"{plain}/created"}])
    assert result["failed"] is False and result["rounds"] == 1
    assert [a["status"] for a in result["answers"]] == [200, 201]


@pytest.mark.parametrize("path, status", [("/fail", 500), ("/redirect", 302), ("/missing", 404), ("/slow", 0)])
def test_wait_fails_on_every_kind_of_non_2xx(plain, path, status):
    result = check([{"url": f"{plain}{path}"}], retries=2)
    assert result["failed"] is True and result["rounds"] == 2
    assert result["answers"][0]["status"] == status
    assert f"{plain}{path} answered" in result["msg"]


def test_wait_fails_on_a_refused_connection():
    result = check([{"url": f"http://127.0.0.1:{closed_port()}/health"}], retries=2)
    assert result["failed"] and result["answers"][0]["status"] == 0
    assert "ConnectionRefusedError" in result["msg"]


def test_wait_needs_every_target_healthy_in_the_same_round(plain):
    result = check([{"url": f"{plain}/ok"}, {"url": f"{plain}/fail"}], retries=3)
    assert result["failed"] and result["rounds"] == 3 and "/fail answered 500" in result["msg"]
    assert "/ok answered" not in result["msg"]


def test_watch_passes_a_healthy_window(plain):
    result = check([{"url": f"{plain}/ok"}], mode="watch", duration=0.3)
    assert result["failed"] is False and result["rounds"] >= 3


def test_watch_fails_at_the_first_bad_answer(plain):
    # /flip answers 200 three times, then 503: the 4th round fails the window
    result = check([{"url": f"{plain}/flip"}], mode="watch", duration=30)
    assert result["failed"] is True and result["rounds"] == 4
    assert "answered 503" in result["msg"] and "into the watch window" in result["msg"]


def test_watch_fails_when_the_server_goes_away():
    Handler.flips = 0
    server, port = serve()
    calls = []

    def get(target, timeout):
        calls.append(1)
        if len(calls) == 3:
            server.shutdown()
            server.server_close()
        return http_check.request(target, timeout)

    # two healthy rounds, then the server is gone before the third
    result = http_check.run([{"url": f"http://127.0.0.1:{port}/ok"}], "watch", 1.0, 0.01, 1, 30, get=get)
    assert result["failed"] and result["answers"][0]["status"] == 0 and len(calls) == 3


def test_https_through_another_address_keeps_the_sites_name(tls):
    port, ca = tls
    target = {"url": f"https://shop.example.test:{port}/host", "connect_to": "127.0.0.1", "ca_path": ca}
    result = check([target])
    # verified against the CA with the site's name, and the Host header is the site's
    assert result["failed"] is False, result
    assert "host=shop.example.test" in result["answers"][0]["detail"]


def test_https_with_a_certificate_for_another_name_fails(tls):
    port, ca = tls
    result = check([{"url": f"https://127.0.0.1:{port}/ok", "ca_path": ca}], retries=1)
    assert result["failed"] and "CERTIFICATE_VERIFY_FAILED" in result["msg"]
    # unless verification is off (a proxy's internal CA the host does not trust)
    assert check([{"url": f"https://127.0.0.1:{port}/ok", "validate_certs": False}])["failed"] is False


def test_the_module_through_ansible(plain):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    for path, ok in (("/ok", True), ("/fail", False)):
        args = {"targets": [{"url": f"{plain}{path}"}], "retries": 2, "interval": 0.1}
        out = subprocess.run(
            ["ansible", "localhost", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
             "-m", "anvil.hetzner.http_check", "-a", json.dumps(args), "-o"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        marker = " | SUCCESS => " if ok else " | FAILED! => "
        assert marker in out.stdout, out.stdout + out.stderr
        result = json.loads(out.stdout.split(marker, 1)[1])
        assert result["changed"] is False and result["answers"][0]["status"] == (200 if ok else 500)
