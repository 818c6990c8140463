"""Behaviour of the monitoring servers after anvil.hetzner.monitoring (Debian 12 and 13), seen as an
operator would: every target up over the private network with basic auth (the target over HTTPS
with its certificate checked); nothing listening in
public; the secrets only in files Prometheus's group reads; a failed backup on the target reaching
the webhook receiver through Alertmanager, grouped, with the host and the reason, and its end; the
Watchdog at the heartbeat URL; a route with continue; the public side (the target's Caddy site
probed over verified HTTPS: its 12-hour certificate fires the expiry alert, its stopped upstream the
site-down alert); the stopped target's InstanceDown arriving and silencing its other alerts;
monitoring-debian13's Prometheus and Alertmanager through its Caddy (https://mon.test/, basic auth).
The receiver (prepare.yml) runs on monitoring-debian12 and records every call."""
# (the order matters: the last host-independent test stops the target)

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("monitoring")

ADDRESS = {"monitoring-debian12": "172.30.81.12", "monitoring-debian13": "172.30.81.13"}
# What each server's Alertmanager calls itself in its messages (monitoring-debian13 is reached through
# Caddy: monitoring_web_domain mon.test in molecule.yml)
EXTERNAL = {"monitoring-debian12": "http://172.30.81.12:9093", "monitoring-debian13": "https://mon.test/alertmanager"}
TARGETS = {"monitoring-debian12", "monitoring-debian13", "monitoring-target"}
RECEIVED = "/var/lib/anvil-receiver"
SECRETS = ("scrape-secret-5678", "ops-token-4242", "hb-token-9393", "web-secret-2468")
SITE = "https://shop.test/"  # the target's Caddy site (molecule.yml: caddy_sites, etc_hosts)
UPSTREAM = ("systemd-run --unit anvil-test-upstream --property WorkingDirectory=/srv/shop "
            "python3 -m http.server 8080 --bind 127.0.0.1")  # as prepare.yml starts it
# The receiver's calls before the first alert test: what earlier runs on these hosts left is not counted.
FIRST_CALL = {}


@pytest.fixture(scope="module")
def receiver():
    return RUNNER.get_host("monitoring-debian12")


@pytest.fixture(scope="module")
def target():
    return RUNNER.get_host("monitoring-target")


@pytest.fixture()
def name(host) -> str:
    return host.backend.get_hostname()


def wait_for(predicate, timeout: float, step: float = 2.0):
    """Poll, bounded in time; returns the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value


# GET on a host with its own Python (the images have no curl): the status and the body.
_GET = ("import sys, urllib.request, urllib.error\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n")


_GET_UNVERIFIED = ("import ssl, sys, urllib.request, urllib.error\n"
                   "try:\n"
                   "    print(urllib.request.urlopen(sys.argv[1], timeout=5, context=ssl._create_unverified_context()).status)\n"
                   "except urllib.error.HTTPError as e:\n"
                   "    print(e.code)\n")


def http_get(host, url: str) -> tuple[int, str]:
    out = host.run(f"python3 -c '{_GET}' '{url}'")
    assert out.rc == 0, out.stderr
    status, body = (out.stdout.split("\n", 1) + [""])[:2]
    return int(status), body


_POST = ("import sys, urllib.request\n"
         "r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),\n"
         "    headers={\"Content-Type\": \"application/json\"}), timeout=5); print(r.status)\n")


def http_post(host, url: str, payload) -> int:
    out = host.run(f"python3 -c '{_POST}' '{url}' '{json.dumps(payload)}'")
    assert out.rc == 0, out.stderr
    return int(out.stdout.strip())


def api(host, name: str, port: int, path: str):
    """GET from Prometheus (9090) or Alertmanager (9093) on the server's private address."""
    status, body = http_get(host, f"http://{ADDRESS[name]}:{port}{path}")
    assert status == 200, (status, body)
    return json.loads(body)


def received(receiver, kind: str) -> list[tuple[str, dict]]:
    """Every call the receiver recorded in <kind>.log: (path, body)."""
    out = receiver.run(f"cat {RECEIVED}/{kind}.log 2>/dev/null")
    calls = []
    for line in out.stdout.splitlines():
        path, body = line.split("\t", 1)
        calls.append((path, json.loads(body)))
    return calls


def alerts_at(receiver, path: str, alertname: str, status: str, instance: str = "monitoring-target",
              external: str = "", since: int = 0) -> list[dict]:
    """The alerts of that name and status sent to that receiver path (by the server whose
    external URL contains `external`, when given), in the calls after the first `since`."""
    out = []
    for call_path, body in received(receiver, "alerts")[since:]:
        if call_path != path or (external and external not in body.get("externalURL", "")):
            continue
        for alert in body.get("alerts", []):
            labels = alert.get("labels", {})
            if labels.get("alertname") == alertname and alert.get("status") == status \
                    and labels.get("instance") == instance:
                out.append(dict(alert, groupKey=body.get("groupKey", ""), groupLabels=body.get("groupLabels", {})))
    return out


def test_daemons_run_and_listen_on_the_private_address_only(host, name):
    for unit in ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"):
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit
    sockets = host.run("ss -Hltn").stdout
    listening = {line.split()[3] for line in sockets.splitlines()}
    assert f"{ADDRESS[name]}:9090" in listening and f"{ADDRESS[name]}:9093" in listening
    assert "127.0.0.1:9115" in listening
    for port in ("9090", "9093", "9094", "9115"):
        for wildcard in (f"0.0.0.0:{port}", f"*:{port}", f"[::]:{port}"):
            assert wildcard not in listening, f"{wildcard} listens on every address"
    assert not any(entry.endswith(":9094") for entry in listening), "Alertmanager's cluster port is open"


def test_secrets_only_in_files_prometheus_reads(host):
    for path in ("/etc/prometheus/alertmanager.yml", "/etc/prometheus/anvil-secrets/node_exporter_password"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "prometheus", 0o640), path
    assert host.file("/etc/prometheus/anvil-secrets").mode == 0o750
    config = host.file("/etc/prometheus/prometheus.yml")
    assert config.mode == 0o640
    assert "scrape-secret-5678" not in config.content_string
    assert "password_file: /etc/prometheus/anvil-secrets/node_exporter_password" in config.content_string


def test_configuration_checked_by_the_daemons_own_tools(host):
    assert host.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0
    assert host.run("amtool check-config /etc/prometheus/alertmanager.yml").rc == 0
    rules = api(host, host.backend.get_hostname(), 9090, "/api/v1/rules")["data"]["groups"]
    names = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"BackupFailed", "InstanceDown", "Watchdog", "SiteDown", "TLSCertificateExpiringSoon"} <= names
    # the collection's TLS warning at monitoring_tls_expiry_days (1 here), not its own 14 days
    tls = [rule for group in rules for rule in group["rules"] if rule["name"] == "TLSCertificateExpiringSoon"]
    assert tls and "< 1 * 86400" in tls[0]["query"] and "14 * 86400" not in tls[0]["query"], tls


def test_every_target_is_up_over_the_private_network_with_basic_auth(host, name):
    def node_targets():
        data = api(host, name, 9090, "/api/v1/targets?state=active")["data"]["activeTargets"]
        return {t["labels"]["instance"]: t for t in data if t["labels"]["job"] == "node"}

    def all_up():
        found = node_targets()
        return found if set(found) == TARGETS and all(t["health"] == "up" for t in found.values()) else None

    targets = wait_for(all_up, timeout=60)
    assert targets, node_targets()
    for t in targets.values():
        # the target over HTTPS (its certificate checked against the test CA), the servers over HTTP
        scheme = "https" if t["labels"]["instance"] == "monitoring-target" else "http"
        assert t["scrapeUrl"].startswith(f"{scheme}://172.30.81."), t["scrapeUrl"]
        assert t["labels"]["role"] in ("monitoring", "web"), t["labels"]
    # without the password, the target refuses the scrape (the auth is real), and it speaks only TLS
    out = host.run("python3 -c 'import ssl, sys, urllib.request, urllib.error\n"
                   "ctx = ssl.create_default_context(cafile=\"/usr/local/share/anvil-test-node-ca.crt\")\n"
                   "try:\n    urllib.request.urlopen(sys.argv[1], timeout=5, context=ctx)\n"
                   "except urllib.error.HTTPError as e:\n    print(e.code)' https://172.30.81.20:9100/metrics")
    assert out.stdout.strip() == "401", out.stdout + out.stderr
    # plain HTTP gets the TLS server's own refusal (not any error: an unreachable port would be one)
    plain = host.run("python3 -c 'import urllib.request, urllib.error\n"
                     "try:\n    urllib.request.urlopen(\"http://172.30.81.20:9100/metrics\", timeout=5)\n"
                     "except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())'")
    assert plain.stdout.startswith("400 ") and "HTTPS server" in plain.stdout, plain.stdout + plain.stderr


def test_a_failed_backup_reaches_the_receiver_grouped_with_host_and_reason_and_then_ends(target, receiver):
    """anvil-metric on the target (what the backup unit writes), BackupFailed (for: 1m) firing in
    both Prometheus servers, one message per server at the ops receiver grouped by alertname and
    instance, with the host and the reason; the success metric then resolves it."""
    write = "anvil-metric backup-shop anvil_backup_last_run_success {} backup=shop"
    FIRST_CALL["alerts"] = before = len(received(receiver, "alerts"))
    FIRST_CALL["heartbeat"] = len(received(receiver, "heartbeat"))
    assert target.run(write.format(0)).rc == 0
    for server in ("monitoring-debian12", "monitoring-debian13"):
        firing = wait_for(lambda s=server: alerts_at(receiver, "/alerts/ops-token-4242", "BackupFailed", "firing",
                                                     external=EXTERNAL[s], since=before), timeout=240)
        assert firing, f"{server}: no BackupFailed at the receiver: {received(receiver, 'alerts')[-3:]}"
        alert = firing[0]
        assert alert["labels"]["backup"] == "shop" and alert["labels"]["severity"] == "critical"
        assert "shop" in alert["annotations"]["summary"] and "monitoring-target" in alert["annotations"]["summary"]
        assert alert["groupLabels"] == {"alertname": "BackupFailed", "instance": "monitoring-target"}
    assert target.run(write.format(1)).rc == 0
    for server in ("monitoring-debian12", "monitoring-debian13"):
        resolved = wait_for(lambda s=server: alerts_at(receiver, "/alerts/ops-token-4242", "BackupFailed", "resolved",
                                                       external=EXTERNAL[s], since=before), timeout=180)
        assert resolved, f"{server}: BackupFailed did not resolve at the receiver"
    # the oncall route takes the db team's critical alerts only: BackupFailed (no team) never went there
    assert not [call for call in received(receiver, "alerts")[before:] if call[0] == "/alerts/oncall"]


def test_the_watchdog_reaches_the_heartbeat_url(receiver):
    def beats():
        return {body.get("externalURL") for path, body in received(receiver, "heartbeat")[FIRST_CALL.get("heartbeat", 0):]
                if path == "/heartbeat/hb-token-9393"
                and any(a["labels"].get("alertname") == "Watchdog" for a in body.get("alerts", []))}

    got = wait_for(lambda: beats() if len(beats()) == 2 else None, timeout=120)
    assert got, f"heartbeats from {beats()}, not from both servers"
    # never at a person's receiver
    assert not any(a["labels"].get("alertname") == "Watchdog"
                   for call in received(receiver, "alerts") for a in call[1].get("alerts", []))


def test_a_route_takes_its_alerts_and_continue_passes_them_on(receiver):
    """An alert of the db team (critical) goes to oncall through its route and, continue: true, on to
    ops; the same alert of another team only to ops. Posted to Alertmanager as Prometheus posts."""
    server = RUNNER.get_host("monitoring-debian12")
    before = len(received(receiver, "alerts"))
    alerts = [{"labels": {"alertname": "DiskFull", "instance": "monitoring-debian13", "severity": "critical",
                          "team": team}, "annotations": {"summary": f"route check {team}"}} for team in ("db", "web")]
    assert http_post(server, "http://172.30.81.12:9093/api/v2/alerts", alerts) == 200

    def teams(path):
        return {a["labels"]["team"] for call_path, body in received(receiver, "alerts")[before:] if call_path == path
                for a in body.get("alerts", []) if a["labels"].get("alertname") == "DiskFull"}

    got = wait_for(lambda: (teams("/alerts/oncall"), teams("/alerts/ops-token-4242"))
                   if teams("/alerts/ops-token-4242") == {"db", "web"} else None, timeout=60)
    assert got, (teams("/alerts/oncall"), teams("/alerts/ops-token-4242"))
    assert got[0] == {"db"}, got


def query(host, name: str, expr: str) -> list[dict]:
    """An instant query on the server's Prometheus: the result vector."""
    return api(host, name, 9090, "/api/v1/query?query=" + urllib.parse.quote(expr))["data"]["result"]


def test_the_site_is_probed_over_verified_https_and_its_short_lived_certificate_fires_the_expiry_alert(
        host, name):
    """https://shop.test/ (the target's caddy_sites, no second list) probed through the local
    blackbox_exporter and trusted through monitoring_blackbox_ca_file; Caddy's internal certificates
    live 12 hours, under monitoring_tls_expiry_days (1): TLSCertificateExpiringSoon is active for the
    site (pending for its 10 minutes, or firing), and only that one warning."""
    def up():
        result = query(host, name, f'probe_success{{job="blackbox",instance="{SITE}"}}')
        return result if result and result[0]["value"][1] == "1" else None

    assert wait_for(up, timeout=120), query(host, name, 'probe_success{job="blackbox"}')
    left = float(query(host, name, f'probe_ssl_earliest_cert_expiry{{instance="{SITE}"}} - time()')[0]["value"][1])
    assert 0 < left <= 12 * 3600, left
    # the certificate is checked for real: the same site by its address (no certificate for that
    # name) fails the probe
    status, body = http_get(host, "http://127.0.0.1:9115/probe?module=anvil_https&target="
                            + urllib.parse.quote("https://172.30.81.20/", safe=""))
    assert status == 200 and "\nprobe_success 0" in body, body[-400:]

    def expiring():
        return [a for a in api(host, name, 9090, "/api/v1/alerts")["data"]["alerts"]
                if a["labels"].get("instance") == SITE and a["labels"]["alertname"].startswith("TLSCertificate")]

    active = wait_for(expiring, timeout=120)
    assert {a["labels"]["alertname"] for a in active} == {"TLSCertificateExpiringSoon", "TLSCertificateExpiresTomorrow"}, active
    assert all(a["state"] in ("pending", "firing") for a in active), active


def test_a_stopped_upstream_fires_site_down_and_its_return_ends_it(target, receiver):
    """The site's upstream stops: Caddy answers 502/503, the probe fails, SiteDown (for: 30 s) reaches ops
    from both servers; the upstream back, the alert resolves."""
    before = len(received(receiver, "alerts"))
    assert target.run("systemctl stop anvil-test-upstream").rc == 0
    try:
        for server in ("monitoring-debian12", "monitoring-debian13"):
            down = wait_for(lambda s=server: alerts_at(receiver, "/alerts/ops-token-4242", "SiteDown", "firing",
                                                       instance=SITE, external=EXTERNAL[s], since=before), timeout=240)
            assert down, f"{server}: no SiteDown at the receiver"
            assert down[0]["labels"]["severity"] == "critical"
        # it is the app that is down, not Caddy: Caddy answers, with a 502 or 503 (no upstream), and the
        # probe failed on that answer (the target does not trust its own internal CA: this one request
        # skips the check)
        assert target.check_output(f"python3 -c '{_GET_UNVERIFIED}' '{SITE}'").strip() in ("502", "503")
    finally:
        target.run("systemctl reset-failed anvil-test-upstream 2>/dev/null; " + UPSTREAM)
    for server in ("monitoring-debian12", "monitoring-debian13"):
        resolved = wait_for(lambda s=server: alerts_at(receiver, "/alerts/ops-token-4242", "SiteDown", "resolved",
                                                       instance=SITE, external=EXTERNAL[s], since=before), timeout=180)
        assert resolved, f"{server}: SiteDown did not resolve after the upstream came back"


def test_a_stopped_target_fires_instance_down_which_silences_its_other_alerts(target, receiver):
    """The target stops (the container): after InstanceDown's 5 minutes it arrives at the receiver.
    Then an alert about the stopped host reaches Alertmanager (as Prometheus sends one; the host's
    own series went stale with it, so none of its rules fire any more): Alertmanager holds it as
    inhibited by InstanceDown and sends nothing, while the same alert for a host that is up goes out."""
    server = RUNNER.get_host("monitoring-debian12")
    before = len(received(receiver, "alerts"))
    stopped_at = time.monotonic()
    subprocess.run(["docker", "stop", "-t", "5", "monitoring-target"], check=True, capture_output=True, timeout=60)
    try:
        down = wait_for(lambda: alerts_at(receiver, "/alerts/ops-token-4242", "InstanceDown", "firing",
                                          external=EXTERNAL["monitoring-debian12"], since=before), timeout=480, step=5)
        assert down, f"no InstanceDown {time.monotonic() - stopped_at:.0f} s after the stop"
        assert down[0]["labels"]["severity"] == "critical" and down[0]["labels"]["job"] == "node"
        alert = {"labels": {"alertname": "BackupFailed", "backup": "inhibit-check", "severity": "critical",
                            "job": "node"},
                 "annotations": {"summary": "backup inhibit-check failed"}}
        payload = [{**alert, "labels": {**alert["labels"], "instance": host}}
                   for host in ("monitoring-target", "monitoring-debian13")]
        assert http_post(server, "http://172.30.81.12:9093/api/v2/alerts", payload) == 200
        sent = wait_for(lambda: [a for a in alerts_at(receiver, "/alerts/ops-token-4242", "BackupFailed", "firing",
                                                      instance="monitoring-debian13", since=before)
                                 if a["labels"].get("backup") == "inhibit-check"], timeout=60)
        assert sent, "the alert for a host that is up did not go out"
        held = [a for a in api(server, "monitoring-debian12", 9093, "/api/v2/alerts?inhibited=true")
                if a["labels"].get("backup") == "inhibit-check" and a["labels"]["instance"] == "monitoring-target"]
        assert held and held[0]["status"]["state"] == "suppressed" and held[0]["status"]["inhibitedBy"], held
        assert not [a for a in alerts_at(receiver, "/alerts/ops-token-4242", "BackupFailed", "firing", since=before)
                    if a["labels"].get("backup") == "inhibit-check"], "the stopped host's alert was sent"
    finally:
        subprocess.run(["docker", "start", "monitoring-target"], check=False, capture_output=True, timeout=60)


# GET over HTTPS through Caddy, its certificate checked against Caddy's own CA, with a login or none:
# the status, the Location of a redirect (not followed) and the body.
_GET_WEB = ("import base64, json, ssl, sys, urllib.request, urllib.error\n"
            "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
            "class Stay(urllib.request.HTTPRedirectHandler):\n"
            "    def redirect_request(self, *args): return None\n"
            "opener = urllib.request.build_opener(Stay, urllib.request.HTTPSHandler(context=ctx))\n"
            "req = urllib.request.Request(sys.argv[1])\n"
            "if sys.argv[3]: req.add_header(\"Authorization\", \"Basic \" + base64.b64encode(sys.argv[3].encode()).decode())\n"
            "try:\n"
            "    r = opener.open(req, timeout=10); print(json.dumps([r.status, \"\", r.read().decode()]))\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(json.dumps([e.code, e.headers.get(\"Location\", \"\"), e.read().decode()]))\n")
CADDY_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


def web_get(host, path: str, login: str = "") -> tuple[int, str, str]:
    out = host.run(f"python3 -c '{_GET_WEB}' 'https://mon.test{path}' {CADDY_CA} '{login}'")
    assert out.rc == 0, out.stderr
    status, location, body = json.loads(out.stdout)
    return status, location, body


def test_prometheus_and_alertmanager_through_caddy_only_with_a_login():
    """monitoring-debian13 (monitoring_web_domain mon.test, tls internal): Caddy serves Prometheus at
    / and Alertmanager at /alertmanager/ over verified HTTPS to the right login only; the links in
    alerts point there; the daemons themselves still listen on the private address only."""
    server = RUNNER.get_host("monitoring-debian13")
    for path in ("/", "/api/v1/query?query=up", "/alertmanager/api/v2/status", "/alertmanager/"):
        assert web_get(server, path)[0] == 401, path
        assert web_get(server, path, "ops:wrong-password-1")[0] == 401, path
        assert web_get(server, path, "nobody:web-secret-2468")[0] == 401, path
    status, location, body = web_get(server, "/api/v1/query?query=up", "ops:web-secret-2468")
    assert status == 200 and json.loads(body)["status"] == "success", body
    assert {r["metric"]["instance"] for r in json.loads(body)["data"]["result"]} >= TARGETS, body
    flags = json.loads(web_get(server, "/api/v1/status/flags", "ops:web-secret-2468")[2])["data"]
    assert flags["web.external-url"] == "https://mon.test/", flags
    status, location, body = web_get(server, "/alertmanager/api/v2/status", "ops:web-secret-2468")
    assert status == 200 and "config" in json.loads(body), body
    # Alertmanager's UI under the prefix Caddy strips, and the bare prefix sent to it
    status, location, body = web_get(server, "/alertmanager/", "ops:web-secret-2468")
    assert status == 200 and "Alertmanager" in body, body[:300]
    status, location, body = web_get(server, "/alertmanager", "ops:web-secret-2468")
    assert status == 308 and location == "/alertmanager/", (status, location)
    # the password is only a bcrypt hash in the site file Caddy reads
    site = server.file("/etc/caddy/sites.d/anvil-monitoring.caddy")
    assert "web-secret-2468" not in site.content_string and "ops $2" in site.content_string
    # the access log fail2ban's Caddy jail reads
    assert server.file("/var/log/caddy/anvil-monitoring.log").user == "caddy"
    # a server without a domain has no site
    assert not RUNNER.get_host("monitoring-debian12").file("/etc/caddy/sites.d/anvil-monitoring.caddy").exists


def test_no_secret_in_a_world_readable_file(host):
    for secret in SECRETS:
        out = host.run(f"grep -rlF '{secret}' /etc /var/lib/prometheus 2>/dev/null")
        for path in out.stdout.split():
            f = host.file(path)
            assert not f.mode & 0o004, f"{path} ({oct(f.mode)}) holds a secret and is world-readable"
