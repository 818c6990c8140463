"""Behaviour of hosts after anvil.hetzner.caddy: the site over HTTPS with Caddy's internal CA, on
loopback (curl --resolve), in front of the backend prepare.yml started on 127.0.0.1:8081."""

from __future__ import annotations

import json
import os
import time

import bcrypt

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("targets")

CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
PASSWORD = "correct-horse-battery"


def curl(host, url: str, *args: str) -> tuple[int, dict[str, str], str]:
    """Status, headers (lower-case names) and body of one request to the site over loopback."""
    name = url.split("/")[2]
    port = 443 if url.startswith("https") else 80
    cmd = (f"curl -s --max-time 10 --cacert {CA} --resolve {name}:{port}:127.0.0.1 "
           f"-D /tmp/anvil-headers {' '.join(args)} '{url}'")
    body = host.run(cmd).stdout
    lines = host.file("/tmp/anvil-headers").content_string.splitlines()
    status = int(lines[0].split()[1]) if lines else 0
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _unused, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return status, headers, body


def test_caddy_runs_hardened_as_its_own_user(host):
    caddy = host.service("caddy")
    assert caddy.is_running and caddy.is_enabled
    assert host.check_output("ps -o user= -C caddy").split()[0] == "caddy"
    show = host.check_output("systemctl show caddy -p ProtectSystem -p NoNewPrivileges -p PrivateTmp "
                             "-p CapabilityBoundingSet -p DropInPaths")
    assert "ProtectSystem=strict" in show and "NoNewPrivileges=yes" in show and "PrivateTmp=yes" in show
    assert "cap_net_bind_service" in show.lower() and "cap_sys_admin" not in show.lower()
    assert "anvil-hardening.conf" in show
    # the vendor unit was not edited
    assert "anvil" not in host.file("/lib/systemd/system/caddy.service").content_string


def test_backend_answers_over_https_with_security_headers(host):
    status, headers, body = curl(host, "https://app.anvil.test/")
    assert status == 200 and "backend-ok" in body
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["content-security-policy"] == "default-src 'self'"
    assert headers["x-anvil"] == "test"
    # neither Caddy's nor the backend's (Python's) Server header reaches the client
    assert "server" not in headers


def test_http_redirects_to_https(host):
    status, headers, _unused = curl(host, "http://app.anvil.test/some/path")
    assert status in (301, 308)
    assert headers["location"] == "https://app.anvil.test/some/path"


def test_www_redirects_to_the_site_name(host):
    status, headers, _unused = curl(host, "https://www.app.anvil.test/x?y=1")
    assert status == 301
    assert headers["location"] == "https://app.anvil.test/x?y=1"


def test_basic_auth_protects_admin_only(host):
    assert curl(host, "https://app.anvil.test/admin/")[0] == 401
    assert curl(host, "https://app.anvil.test/admin/", "-u", "ops:wrong-password")[0] == 401
    status, _unused, body = curl(host, "https://app.anvil.test/admin/", "-u", f"ops:{PASSWORD}")
    assert status == 200 and "admin-area" in body
    assert curl(host, "https://app.anvil.test/")[0] == 200


def test_stored_hash_is_bcrypt_of_the_password_and_never_the_password(host):
    caddyfile = host.file("/etc/caddy/Caddyfile").content_string
    assert PASSWORD not in caddyfile
    line = next(ln for ln in caddyfile.splitlines() if ln.strip().startswith("ops "))
    digest = line.split()[1]
    assert digest.startswith("$2b$12$")
    # checked with the controller's bcrypt (the role hashes there; the host needs no bcrypt)
    assert bcrypt.checkpw(PASSWORD.encode(), digest.encode())
    assert not bcrypt.checkpw(b"wrong-password", digest.encode())


def test_static_route(host):
    status, _unused, body = curl(host, "https://app.anvil.test/static/hello.txt")
    assert status == 200 and "static-ok" in body


def test_request_body_limit(host):
    host.run("head -c 2000000 /dev/zero > /tmp/anvil-big")
    status, _unused, _unused = curl(host, "https://app.anvil.test/", "-X", "POST", "--data-binary", "@/tmp/anvil-big")
    assert status == 413
    host.run("rm -f /tmp/anvil-big")


def test_compression(host):
    host.run("head -c 4000 /dev/zero | tr '\\0' a > /srv/backend/big.txt")
    _unused, headers, _unused = curl(host, "https://app.anvil.test/big.txt", "-o", "/dev/null", "-H", "'Accept-Encoding: gzip'")
    assert headers.get("content-encoding") == "gzip"


def test_json_access_log_per_site(host):
    curl(host, "https://app.anvil.test/?access-log-probe")
    log = host.file("/var/log/caddy/app.log")
    deadline = time.monotonic() + 10
    while "access-log-probe" not in log.content_string and time.monotonic() < deadline:
        time.sleep(0.5)
    entries = [json.loads(line) for line in log.content_string.splitlines() if "access-log-probe" in line]
    assert entries and entries[-1]["request"]["host"] == "app.anvil.test"
    assert log.user == "caddy"


def test_admin_endpoint_on_loopback_only_with_metrics(host):
    listeners = host.check_output("ss -ltnH 'sport = :2019'")
    assert "127.0.0.1:2019" in listeners or "[::1]:2019" in listeners
    assert "0.0.0.0:2019" not in listeners and "*:2019" not in listeners
    metrics = host.check_output("curl -s --max-time 5 http://localhost:2019/metrics")
    assert "caddy_http_requests_total" in metrics or "caddy_http_request_duration_seconds" in metrics


def test_caddyfile_is_valid_as_installed(host):
    assert host.run("runuser -u caddy -- caddy validate --adapter caddyfile --config /etc/caddy/Caddyfile").rc == 0
