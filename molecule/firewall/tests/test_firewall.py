"""Behaviour of hosts behind anvil.hetzner.firewall, probed from a second container (the client).

prepare.yml proved that, before the role, the client reached the denied port 8082, the published
container port 8090 and the port 9100, so every refusal below is the role's doing.
"""

from __future__ import annotations

import os
import time

import pytest
import testinfra
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("targets")


@pytest.fixture(scope="module")
def client():
    return RUNNER.get_host("firewall-client")


@pytest.fixture()
def name(host) -> str:
    return host.backend.get_hostname()


def http_code(client, name: str, port: int) -> str:
    return client.run(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 4 http://{name}:{port}/").stdout


def client_ip(client) -> str:
    return client.check_output("ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1")


def wait_for(predicate, timeout: float, step: float = 1.0) -> bool:
    """Poll a condition, bounded in time (a ban takes effect and expires asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_ufw_is_active_with_default_deny(host):
    out = host.check_output("ufw status verbose")
    assert "Status: active" in out
    assert "Default: deny (incoming), allow (outgoing), deny (routed)" in out
    assert "IPV6=yes" in host.file("/etc/default/ufw").content_string


def test_ssh_is_allowed_and_rate_limited_by_tagged_rules(host):
    out = host.check_output("ufw status")
    ssh = [line for line in out.splitlines() if line.startswith("22/tcp ")]
    assert ssh and all("LIMIT" in line and "# anvil:" in line for line in ssh)
    assert "60000:60010/udp" in out


def test_trusted_network_is_allowed(host):
    assert any(line.startswith("Anywhere") and "ALLOW" in line and "10.98.0.0/16" in line and "# anvil:" in line
               for line in host.check_output("ufw status").splitlines())


def test_manual_rules_stay_unless_purging_was_asked_for(host, name):
    status = host.check_output("ufw status")
    assert "7001/tcp" not in status  # the role's own rule, dropped from the list: removed on both hosts
    if name == "firewall-debian13":  # firewall_purge_unmanaged_rules: true
        assert "7000/tcp" not in status
    else:
        assert "7000/tcp" in status and "manual rule" in status


def test_caddy_ports_open_where_enabled(host, client, name):
    rules = host.check_output("ufw status")
    for port in ("80/tcp", "443/tcp", "443/udp"):
        assert (f"{port}" in rules) == (name == "firewall-debian13"), rules
    if name == "firewall-debian13":
        assert "# anvil:" in next(line for line in rules.splitlines() if line.startswith("443/tcp "))
        # nothing listens on 80 there: an open port answers with a refusal, a closed one times out
        out = client.run(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 4 http://{name}:80/")
        assert out.rc == 7, out  # connection refused (RST), not a timeout (28)


def test_caddy_jail_runs_where_enabled(host, name):
    jails = host.check_output("fail2ban-client status")
    assert ("anvil-caddy-auth" in jails) == (name == "firewall-debian13")


def test_session_opened_before_ufw_still_works(client, name):
    assert client.run(f"ssh -S /root/ctl-{name} -O check root@{name}").rc == 0
    # a command through the same, pre-existing TCP connection
    assert client.check_output(f"ssh -S /root/ctl-{name} root@{name} echo alive") == "alive"


def test_allowed_port_answers_and_denied_ports_do_not(client, name):
    assert http_code(client, name, 8081) == "200"
    assert http_code(client, name, 8082) == "000"
    assert http_code(client, name, 9100) == "000"  # allowed only from 10.99.0.0/16


def test_published_container_port_obeys_ufw(host, client, name):
    assert host.check_output("curl -s --max-time 4 http://127.0.0.1:8090/") == "anvil"  # the container serves
    assert http_code(client, name, 8090) == "000"  # ... but not to the outside
    assert http_code(client, name, 8091) == "200"  # allowed by firewall_docker_allow


def test_docker_rules_survive_a_ufw_reload(host, client, name):
    host.check_output("ufw reload")
    assert http_code(client, name, 8090) == "000"
    assert http_code(client, name, 8091) == "200"
    assert http_code(client, name, 8081) == "200"


def test_fail2ban_jails(host):
    status = host.check_output("fail2ban-client status")
    assert "sshd" in status and "recidive" in status
    assert host.check_output("fail2ban-client get sshd bantime") == "20"
    assert "192.0.2.0/24" in host.check_output("fail2ban-client get sshd ignoreip")
    assert "sshd-session" in host.check_output("fail2ban-client get sshd journalmatch")
    assert host.check_output("fail2ban-client get sshd maxretry") == "3"


def test_caddy_filter_matches_basic_auth_failures(host):
    lines = [
        '{"level":"info","ts":1795400000.5,"logger":"http.log.access","msg":"handled request",'
        '"request":{"remote_ip":"203.0.113.9","client_ip":"203.0.113.9","method":"GET","uri":"/admin"},'
        '"status":401}',
        '{"level":"info","ts":1795400001.5,"logger":"http.log.access","msg":"handled request",'
        '"request":{"remote_ip":"203.0.113.9","client_ip":"203.0.113.9","method":"GET","uri":"/"},'
        '"status":200}',
    ]
    host.check_output("printf '%s\\n' " + " ".join(f"'{line}'" for line in lines) + " > /tmp/caddy-sample.log")
    out = host.check_output("fail2ban-regex /tmp/caddy-sample.log /etc/fail2ban/filter.d/anvil-caddy-auth.conf")
    assert "Lines: 2 lines, 0 ignored, 1 matched, 1 missed" in out
    assert "203.0.113.9" in host.check_output(
        "fail2ban-regex -v /tmp/caddy-sample.log /etc/fail2ban/filter.d/anvil-caddy-auth.conf")


def test_failed_logins_get_the_client_banned_then_unbanned(host, client, name):
    """Last in this file: it bans the client from this host for the ban time (20 s here)."""
    address = client_ip(client)
    assert client.run(f"nc -z -w 3 {name} 22").rc == 0
    for _unused in range(4):
        client.run(f"sshpass -p wrong-password ssh -o PreferredAuthentications=password -o PubkeyAuthentication=no "
                   f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=4 "
                   f"nobody-here@{name} true")
    banned = wait_for(lambda: address in host.check_output("fail2ban-client status sshd"), timeout=30)
    assert banned, host.check_output("fail2ban-client status sshd") + host.run(
        "journalctl -u fail2ban --no-pager -n 30").stdout
    assert address in host.check_output("ufw status")  # the ban is a UFW rule
    assert client.run(f"nc -z -w 3 {name} 22").rc != 0  # and the client is shut out
    assert wait_for(lambda: address not in host.check_output("fail2ban-client status sshd"), timeout=60, step=2)
    # fail2ban drops the address from its list before the unban action has removed the UFW rule
    assert wait_for(lambda: address not in host.check_output("ufw status"), timeout=20, step=1), \
        host.check_output("ufw status")
    assert wait_for(lambda: client.run(f"nc -z -w 3 {name} 22").rc == 0, timeout=35, step=2)
