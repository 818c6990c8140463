"""Behaviour of hosts after anvil.hetzner.node_exporter (Debian 12 with anvil.hetzner.firewall,
Debian 13 alone, its int/bool options given as strings on Debian 12), seen from the
Prometheus container of the scenario (172.30.78.10, the only allowed source), from the other host
(not allowed) and from the host itself; and what Prometheus makes of them: targets up, the shipped
rules loaded, an alert driven by a textfile metric firing."""

from __future__ import annotations

import json
import os
import time

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("targets")

ADDRESS = {"node-exporter-debian12": "172.30.78.12", "node-exporter-debian13": "172.30.78.13"}
OTHER = {"node-exporter-debian12": "node-exporter-debian13", "node-exporter-debian13": "node-exporter-debian12"}
USER = "prometheus"
PASSWORD = "scrape-secret-1234"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


@pytest.fixture(scope="module")
def prometheus():
    return RUNNER.get_host("node-exporter-prometheus")


@pytest.fixture()
def name(host) -> str:
    return host.backend.get_hostname()


def wait_for(predicate, timeout: float, step: float = 1.0):
    """Poll, bounded in time; returns the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value


SCHEME = {"node-exporter-debian12": "http", "node-exporter-debian13": "https"}
CA = "/etc/prometheus/node-exporter-ca.pem"  # Debian 13's self-signed certificate (prepare.yml)


def scrape(client, address: str, *auth: str, scheme: str = "http") -> tuple[str, str]:
    """curl's HTTP code and exit status, and the body, of a scrape from `client`. HTTPS is
    verified against Debian 13's certificate where the client has it (the Prometheus container)."""
    cred = f"-u {auth[0]}:{auth[1]}" if auth else ""
    tls = (f"--cacert {CA}" if client.file(CA).exists else "-k") if scheme == "https" else ""
    out = client.run(f"curl -s --max-time 4 {cred} {tls} -o /tmp/anvil-scrape -w '%{{http_code}}' "
                     f"{scheme}://{address}:9100/metrics; echo \" $?\"")
    code = out.stdout.strip()
    body = client.run("cat /tmp/anvil-scrape 2>/dev/null").stdout
    return code, body


def api(prometheus, path: str) -> dict:
    return json.loads(prometheus.check_output(f"curl -s --max-time 5 'http://127.0.0.1:9090{path}'"))


def series(body: str, metric: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith(metric + " ") or line.startswith(metric + "{")]


# --- the service ------------------------------------------------------------------------------

def test_runs_as_its_own_user_in_a_sandbox(host):
    pid = host.check_output("systemctl show -p MainPID --value prometheus-node-exporter")
    assert pid != "0"
    assert host.check_output(f"ps -o user= -p {pid}") == "node-exporter"
    props = host.check_output("systemctl show prometheus-node-exporter -p ProtectSystem -p NoNewPrivileges "
                              "-p ProtectHome -p PrivateTmp -p CapabilityBoundingSet")
    assert "ProtectSystem=strict" in props and "NoNewPrivileges=yes" in props
    assert "ProtectHome=yes" in props and "PrivateTmp=yes" in props
    assert "CapabilityBoundingSet=" in props.splitlines()  # empty: no capabilities at all


def test_install_source(host, name):
    pid = host.check_output("systemctl show -p MainPID --value prometheus-node-exporter")
    exe = host.check_output(f"readlink -f $(ps -o args= -p {pid} | cut -d' ' -f1)")
    if name.endswith("debian13"):
        # the release tarball: unpacked from the controller's checked copy, no package
        assert exe == "/opt/node_exporter/node_exporter-1.5.0.linux-amd64/node_exporter"
        assert host.file("/usr/local/bin/node_exporter").linked_to == exe
        assert not host.package("prometheus-node-exporter").is_installed
        cache = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "node-exporter-cache",
                             "node_exporter-1.5.0.linux-amd64.tar.gz")
        assert os.path.exists(cache)
    else:
        assert exe == "/usr/bin/prometheus-node-exporter"
        assert host.package("prometheus-node-exporter").is_installed
        # without Recommends: no second set of textfile scripts
        assert not host.package("prometheus-node-exporter-collectors").is_installed


def test_listens_on_the_private_address_only(host, name):
    sockets = host.check_output("ss -ltnH '( sport = :9100 )'")
    assert f"{ADDRESS[name]}:9100" in sockets
    assert len(sockets.splitlines()) == 1, sockets
    # the host's other address (loopback): nothing listens there
    code, _body = scrape(host, "127.0.0.1", scheme=SCHEME[name])
    assert code.split()[0] == "000" and code.split()[1] == "7", code  # connection refused, never 200


def test_basic_auth_is_required(prometheus, name):
    code, body = scrape(prometheus, ADDRESS[name], scheme=SCHEME[name])
    assert code.split()[0] == "401", code
    code, _body = scrape(prometheus, ADDRESS[name], USER, "wrong-password-1", scheme=SCHEME[name])
    assert code.split()[0] == "401", code
    code, body = scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])
    assert code.split()[0] == "200", code
    assert series(body, "node_cpu_seconds_total")
    # the systemd collector works through the sandbox (D-Bus)
    assert [s for s in series(body, "node_systemd_unit_state") if 'name="prometheus-node-exporter.service"' in s]
    # the collector succeeded (a failing one still exports the line, with 0)
    assert 'node_scrape_collector_success{collector="systemd"} 1' in body


def test_stored_hash_is_bcrypt_never_the_password(host, name):
    conf = host.file("/etc/node-exporter/web-config.yml")
    assert conf.mode == 0o640 and conf.user == "root" and conf.group == "node-exporter"
    assert "$2b$12$" in conf.content_string
    assert PASSWORD not in conf.content_string
    assert ("tls_server_config" in conf.content_string) == (SCHEME[name] == "https")


def test_tls_host_refuses_plain_http(prometheus):
    # Debian 13 serves HTTPS only (Debian 12 has no TLS in this scenario)
    address = ADDRESS["node-exporter-debian13"]
    code, _body = scrape(prometheus, address, USER, PASSWORD, scheme="http")
    assert code.split()[0] == "400", code  # an HTTP request to the TLS port, never 200
    # verified against the configured certificate (curl fails on any other)
    code, body = scrape(prometheus, address, USER, PASSWORD, scheme="https")
    assert code.split() == ["200", "0"] and series(body, "node_cpu_seconds_total")


def test_firewall_lets_only_prometheus_in():
    # Debian 12 runs the firewall role: one tagged rule for the Prometheus source
    host = RUNNER.get_host("node-exporter-debian12")
    rules = [line for line in host.check_output("ufw status").splitlines() if line.startswith("9100")]
    assert len(rules) == 1 and "172.30.78.10" in rules[0] and "# anvil:" in rules[0], rules
    # the other host of the scenario is not a Prometheus source: UFW drops it (time-out), never 200
    other = RUNNER.get_host("node-exporter-debian13")
    code, _body = scrape(other, ADDRESS["node-exporter-debian12"], USER, PASSWORD, scheme="http")
    assert code.split()[0] == "000" and code.split()[1] == "28", code


def test_without_the_firewall_role_it_still_asks_everyone_for_auth():
    # Debian 13 runs node_exporter alone (its minimal documented setup): no UFW, nothing from the
    # firewall role; any client of the private network reaches the port, and gets 401 without the
    # password, 200 with it
    host = RUNNER.get_host("node-exporter-debian13")
    assert not host.package("ufw").is_installed
    other = RUNNER.get_host("node-exporter-debian12")
    code, _body = scrape(other, ADDRESS["node-exporter-debian13"], scheme="https")
    assert code.split()[0] == "401", code
    code, body = scrape(other, ADDRESS["node-exporter-debian13"], USER, PASSWORD, scheme="https")
    assert code.split()[0] == "200" and series(body, "node_cpu_seconds_total"), code


# --- the textfile contract ------------------------------------------------------------------------

def test_textfile_directory_contract(host):
    d = host.file(TEXTFILE_DIR)
    assert d.is_directory and d.user == "root" and d.group == "anvil-metrics" and d.mode == 0o2775


def test_helper_writes_a_metric_that_appears_in_the_scrape(host, prometheus, name):
    host.check_output("anvil-metric --max-age 600 verify_probe anvil_verify_value 42 kind=probe")
    assert host.file(f"{TEXTFILE_DIR}/verify_probe.prom").mode == 0o644
    _code, body = scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])
    assert 'anvil_verify_value{kind="probe"} 42' in body
    assert 'anvil_textfile_max_age_seconds{textfile="verify_probe"} 600' in body
    # a second sample in the same file keeps the first
    host.check_output("anvil-metric verify_probe anvil_verify_other 7")
    _code, body = scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])
    assert 'anvil_verify_value{kind="probe"} 42' in body and "anvil_verify_other 7" in body
    # bad input changes nothing
    bad = host.run("anvil-metric verify_probe 'bad name' 1")
    assert bad.rc == 2 and "nothing was written" in bad.stderr
    assert "anvil_verify_other 7" in host.file(f"{TEXTFILE_DIR}/verify_probe.prom").content_string


def test_a_half_written_file_never_appears(host, prometheus, name):
    host.check_output("anvil-metric --remove half")
    # a writer that stops in the middle: the first line is written, then it waits 6 s
    host.check_output("( (echo 'anvil_half_first 1'; sleep 6; echo 'anvil_half_second 2') "
                      "| anvil-metric --replace half >/dev/null 2>&1 & )")
    time.sleep(1)
    _code, body = scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])
    assert "anvil_half_first" not in body
    assert "node_textfile_scrape_error 0" in body
    done = wait_for(lambda: "anvil_half_second 2" in scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])[1], 15)
    assert done and "anvil_half_first 1" in scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])[1]
    # a writer killed mid-way: the old file stays as it was, no temporary file is read
    host.check_output("( (echo 'anvil_half_first 5'; sleep 30) | anvil-metric --replace half >/dev/null 2>&1 & )")
    time.sleep(1)
    killed = host.run("pkill -9 -f '[a]nvil-metric --replace half'")  # [a]: not this shell's own command line
    host.run("pkill -f '[s]leep 30'")
    assert killed.rc == 0, "the writer was not running to be killed"
    time.sleep(2.5)  # a scrape after the writer's end
    _code, body = scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])
    assert "anvil_half_first 1" in body and "anvil_half_first 5" not in body
    assert "node_textfile_scrape_error 0" in body
    assert host.file(f"{TEXTFILE_DIR}/half.prom").content_string == "anvil_half_first 1\nanvil_half_second 2\n"


def test_upgrade_metrics_follow_the_host(host, prometheus, name):
    _code, body = scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])
    for metric in ("anvil_apt_upgrades_pending", "anvil_apt_security_upgrades_pending", "anvil_reboot_required",
                   "anvil_reboot_required_since_timestamp_seconds", "anvil_unattended_upgrades_installed"):
        assert series(body, metric), metric
    assert 'anvil_textfile_max_age_seconds{textfile="anvil_upgrades"} 10800' in body
    assert host.service("anvil-upgrade-metrics.timer").is_enabled
    # apt's stamp of the last successful unattended-upgrade run, three days old
    stamp = int(time.time()) - 3 * 86400
    host.check_output(f"mkdir -p /var/lib/apt/periodic && touch -d @{stamp} /var/lib/apt/periodic/unattended-upgrades-stamp")
    # a reboot becomes required: the next run says so, with the time it appeared
    host.check_output("touch /run/reboot-required && systemctl start anvil-upgrade-metrics.service")
    try:
        _code, body = scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])
        assert "anvil_reboot_required 1" in body
        since = float(series(body, "anvil_reboot_required_since_timestamp_seconds")[0].split()[-1])
        assert abs(since - time.time()) < 300
        # node_exporter prints large values in exponent form (1.79564189e+09)
        last = series(body, "anvil_unattended_upgrades_last_success_timestamp_seconds")
        assert last and float(last[0].split()[-1]) == stamp
    finally:
        host.check_output("rm -f /run/reboot-required && systemctl start anvil-upgrade-metrics.service")
    _code, body = scrape(prometheus, ADDRESS[name], USER, PASSWORD, scheme=SCHEME[name])
    assert "anvil_reboot_required 0" in body


def test_apt_runs_refresh_the_upgrade_metrics(host):
    before = host.file(f"{TEXTFILE_DIR}/anvil_upgrades.prom").mtime
    time.sleep(1.1)
    host.check_output("apt-get install -y --reinstall -q curl >/dev/null")
    assert wait_for(lambda: host.file(f"{TEXTFILE_DIR}/anvil_upgrades.prom").mtime > before, 20)


# --- Prometheus ---------------------------------------------------------------------------------

def test_prometheus_scrapes_both_hosts(prometheus):
    # Debian 12 through the firewall, Debian 13 without one
    def targets():
        active = api(prometheus, "/api/v1/targets")["data"]["activeTargets"]
        return {t["labels"]["instance"]: t for t in active}
    found = wait_for(lambda: all(t["health"] == "up" for t in targets().values()) and len(targets()) == 2 and targets(), 20)
    assert found, targets()
    for name, target in found.items():
        assert target["scrapeUrl"] == f"{SCHEME[name]}://{ADDRESS[name]}:9100/metrics"
        assert target["labels"]["group"] == "targets"
        assert target["labels"]["location"] in ("fsn1", "nbg1") and target["labels"]["role"] in ("web", "db")


def test_shipped_rules_load_and_evaluate_without_errors(prometheus):
    shipped = {"anvil-backup", "anvil-cpu", "anvil-deploy", "anvil-filesystem", "anvil-instance", "anvil-memory",
               "anvil-textfile", "anvil-tls", "anvil-upgrades"}

    def groups():
        return {g["name"]: g for g in api(prometheus, "/api/v1/rules")["data"]["groups"]}
    loaded = wait_for(lambda: shipped <= set(groups()) and all(
        r["health"] == "ok" for n in shipped for r in groups()[n]["rules"]) and groups(), 30)
    assert loaded, {n: [(r["name"], r["health"], r.get("lastError")) for r in g["rules"]] for n, g in groups().items()}
    assert sum(len(loaded[n]["rules"]) for n in shipped) >= 19


def test_an_alert_driven_by_a_textfile_metric_fires(host, prometheus, name):
    # BackupFailedNow: the shipped BackupFailed rule without its `for:` (prepare.yml)
    host.check_output(f"anvil-metric backup_verify anvil_backup_last_run_success 0 backup=verify-{name}")

    def firing():
        alerts = api(prometheus, "/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"].get("alertname") == "BackupFailedNow"
                and a["labels"].get("backup") == f"verify-{name}" and a["state"] == "firing"]
    try:
        alert = wait_for(firing, 40)
        assert alert, api(prometheus, "/api/v1/alerts")
        assert alert[0]["labels"]["instance"] == name and alert[0]["labels"]["severity"] == "critical"
        assert alert[0]["annotations"]["summary"] == f"backup verify-{name} failed on {name}"
    finally:
        host.check_output("anvil-metric --remove backup_verify")
