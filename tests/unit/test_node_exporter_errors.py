"""The node_exporter role's filters: the input check (public-listener guard, addresses the host
lacks, collectors by version, paths the sandbox hides, basic-auth users, TLS pairs, a missing bcrypt
library), where it listens, release architectures, the web configuration; and file_sd targets."""

from __future__ import annotations


import bcrypt
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.anvil.hetzner.plugins.filter import node_exporter_errors as ne
from ansible_collections.anvil.hetzner.plugins.filter.prometheus_file_sd import prometheus_file_sd

HOST12 = {"distribution": "Debian", "major": "12", "version": "12.8", "architecture": "x86_64",
          "addresses": ["10.0.0.2", "203.0.113.7", "fd00::2"], "exists": {}, "invalid_calendars": []}
AUTH = [{"username": "prometheus", "password": "long-enough-1"}]


def errors(host=None, **variables):
    return ne.node_exporter_errors(variables, host=HOST12 if host is None else host)


def names(errs):
    return [e.split(":")[0] for e in errs]


def test_defaults_pass():
    assert errors() == []


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "203.0.113.7"])
def test_public_or_wildcard_listener_needs_auth_or_tls(address):
    errs = errors(node_exporter_listen_address=address)
    assert names(errs) == ["node_exporter_listen_address"]
    assert "open to the internet" in errs[0]
    assert errors(node_exporter_listen_address=address, node_exporter_basic_auth_users=AUTH) == []


def test_the_inventory_private_address_is_checked_like_an_explicit_one():
    assert errors(hcloud_private_ipv4="10.0.0.2") == []
    assert names(errors(hcloud_private_ipv4="10.0.0.9")) == ["hcloud_private_ipv4"]  # not on the host
    errs = errors(hcloud_private_ipv4="198.51.100.4", host={**HOST12, "addresses": ["198.51.100.4"]})
    assert names(errs) == ["hcloud_private_ipv4"] and "public address" in errs[0]


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::9"])
def test_a_private_address_the_host_lacks_is_refused(address):
    errs = errors(node_exporter_listen_address=address)
    assert names(errs) == ["node_exporter_listen_address"] and "not an address of this host" in errs[0]


def test_without_network_facts_the_address_is_not_checked_against_the_host():
    assert errors(host={**HOST12, "addresses": None}, node_exporter_listen_address="10.1.2.3") == []


def test_listen_address_choice():
    assert ne.node_exporter_listen({}) == "127.0.0.1"
    assert ne.node_exporter_listen({"hcloud_private_ipv4": "10.0.0.2"}) == "10.0.0.2"
    assert ne.node_exporter_listen({"hcloud_private_ipv4": "10.0.0.2", "node_exporter_listen_address": "127.0.0.1"}) \
        == "127.0.0.1"
    assert ne.node_exporter_listen({"hcloud_private_ipv4": None, "node_exporter_listen_address": ""}) == "127.0.0.1"


def test_collectors_known_and_by_version():
    assert names(errors(node_exporter_collectors=["systemd", "gpu_magic"])) == ["node_exporter_collectors[1]"]
    errs = errors(node_exporter_collectors=["systemd"], node_exporter_collectors_disabled=["systemd"])
    assert names(errs) == ["node_exporter_collectors_disabled"]
    # watchdog is newer than Debian 12's 1.5, fine on Debian 13 (1.9) and with a newer tarball
    assert names(errors(node_exporter_collectors=["watchdog"])) == ["node_exporter_collectors"]
    assert errors(host={**HOST12, "major": "13"}, node_exporter_collectors=["watchdog"]) == []
    assert errors(node_exporter_install_source="tarball", node_exporter_version="1.9.1",
                  node_exporter_collectors=["watchdog"]) == []
    assert names(errors(node_exporter_install_source="tarball", node_exporter_version="1.5.0",
                        node_exporter_collectors=["watchdog"])) == ["node_exporter_collectors"]


@pytest.mark.parametrize("path", ["/home/metrics", "/root/m", "/tmp", "/tmp/x", "/var/tmp/m", "/run/user/0/m", "/"])
def test_textfile_dir_the_sandbox_hides_is_refused(path):
    assert names(errors(node_exporter_textfile_dir=path)) == ["node_exporter_textfile_dir"]


def test_textfile_dir_elsewhere_is_fine():
    assert errors(node_exporter_textfile_dir="/var/lib/node_exporter/textfile") == []
    assert errors(node_exporter_textfile_dir="/homes") == []


def test_basic_auth_users():
    errs = errors(node_exporter_basic_auth_users=[{"username": "prom:etheus", "password": "long-enough-1"},
                                                  {"username": "ops", "password": "short"},
                                                  {"username": "ops", "password": "long-enough-2"},
                                                  "ops:secret"])
    assert names(errs) == ["node_exporter_basic_auth_users[0].username", "node_exporter_basic_auth_users[1].password",
                           "node_exporter_basic_auth_users[2].username", "node_exporter_basic_auth_users[3]"]
    assert not [e for e in errs if "short" in e or "long-enough" in e or "secret" in e]  # never a password


def test_tls_needs_both_files_present_on_the_host():
    assert names(errors(node_exporter_tls_cert_file="/etc/ssl/c.pem")) == [
        "node_exporter_tls_cert_file, node_exporter_tls_key_file", "node_exporter_tls_cert_file"]
    host = {**HOST12, "exists": {"/etc/ssl/c.pem": True, "/etc/ssl/k.pem": True}}
    assert errors(host, node_exporter_tls_cert_file="/etc/ssl/c.pem", node_exporter_tls_key_file="/etc/ssl/k.pem") == []
    # TLS alone also protects a public listener
    assert errors(host, node_exporter_tls_cert_file="/etc/ssl/c.pem", node_exporter_tls_key_file="/etc/ssl/k.pem",
                  node_exporter_listen_address="0.0.0.0") == []


@pytest.mark.parametrize(("owner", "group", "mode", "readable"), [
    ("root", "node-exporter", "0640", True), ("node-exporter", "root", "0600", True), ("root", "root", "0644", True),
    ("root", "root", "0600", False), ("root", "root", "0640", False), ("root", "node-exporter", "0600", False),
    ("root", "ssl-cert", "0640", False)])
def test_tls_key_must_be_readable_by_the_service_user(owner, group, mode, readable):
    files = {p: {"exists": True, "owner": owner, "group": group, "mode": mode} for p in ("/c.pem", "/k.pem")}
    files["/c.pem"]["mode"] = "0644"
    host = {**HOST12, "exists": {"/c.pem": True, "/k.pem": True}, "files": files}
    errs = errors(host, node_exporter_tls_cert_file="/c.pem", node_exporter_tls_key_file="/k.pem")
    assert (errs == []) == readable, errs
    if not readable:
        assert names(errs) == ["node_exporter_tls_key_file"] and "cannot be read by node-exporter" in errs[0]


@pytest.mark.usefixtures("no_bcrypt")
def test_missing_bcrypt_is_refused_before_anything_changes():
    errs = errors(node_exporter_basic_auth_users=AUTH)
    assert names(errs) == ["node_exporter_basic_auth_users"] and "bcrypt library" in errs[0]
    assert errors() == []  # without basic auth bcrypt is not needed
    with pytest.raises(AnsibleFilterError, match="prometheus"):
        ne.node_exporter_web_config(AUTH, "web1")


def test_tarball_architectures():
    assert ne.node_exporter_arch("x86_64") == "amd64" and ne.node_exporter_arch("aarch64") == "arm64"
    with pytest.raises(AnsibleFilterError, match="mips"):
        ne.node_exporter_arch("mips")
    errs = errors(host={**HOST12, "architecture": "mips"}, node_exporter_install_source="tarball")
    assert names(errs) == ["node_exporter_install_source"]


def test_checksums_and_urls():
    assert errors(node_exporter_checksums={"amd64": "a" * 64}) == []
    assert names(errors(node_exporter_checksums={"amd64": "A" * 64})) == ["node_exporter_checksums"]
    assert names(errors(node_exporter_download_url="https://mirror.internal/node_exporter/")) == [
        "node_exporter_download_url"]
    assert errors(node_exporter_download_url="http://10.0.0.5:8000/releases") == []


def test_web_config_is_reproducible_and_verifies():
    first = ne.node_exporter_web_config(AUTH, "web1")
    assert first == ne.node_exporter_web_config(AUTH, "web1")  # a rerun changes nothing
    stored = first["basic_auth_users"]["prometheus"]
    assert stored.startswith("$2b$12$") and bcrypt.checkpw(b"long-enough-1", stored.encode())
    assert not bcrypt.checkpw(b"long-enough-2", stored.encode())
    # another host, or another password: another hash
    assert ne.node_exporter_web_config(AUTH, "web2")["basic_auth_users"]["prometheus"] != stored
    other = [{"username": "prometheus", "password": "long-enough-2"}]
    assert ne.node_exporter_web_config(other, "web1")["basic_auth_users"]["prometheus"] != stored
    tls = ne.node_exporter_web_config([], "web1", "/c.pem", "/k.pem")
    assert tls == {"tls_server_config": {"cert_file": "/c.pem", "key_file": "/k.pem", "min_version": "TLS12"}}
    assert ne.node_exporter_web_config([], "web1") == {}


def test_file_sd_targets_follow_the_inventory():
    hostvars = {
        "web1": {"hcloud_private_ipv4": "10.0.0.2", "hcloud_location": "fsn1", "hcloud_server_type": "cx22",
                 "hcloud_labels": {"role": "web", "env": "prod"}},
        "web2": {"node_exporter_listen_address": "fd00::3", "node_exporter_port": 9200, "hcloud_labels": {}},
        "db1": {},  # no private network: listens on loopback, cannot be scraped from elsewhere
        "edge": {"node_exporter_listen_address": "0.0.0.0", "ansible_host": "198.51.100.9",
                 "node_exporter_tls_cert_file": "/etc/ssl/c.pem"},
    }
    out = prometheus_file_sd(hostvars, ["web1", "web2", "db1", "edge"], group="web", label_keys=["role", "env"])
    assert out["targets"] == [
        {"targets": ["10.0.0.2:9100"], "labels": {"instance": "web1", "group": "web", "location": "fsn1",
                                                  "server_type": "cx22", "role": "web", "env": "prod"}},
        {"targets": ["[fd00::3]:9200"], "labels": {"instance": "web2", "group": "web"}},
        {"targets": ["198.51.100.9:9100"], "labels": {"instance": "edge", "group": "web", "__scheme__": "https"}},
    ]
    assert list(out["skipped"]) == ["db1"] and "127.0.0.1" in out["skipped"]["db1"]
    with pytest.raises(AnsibleFilterError, match="nope"):
        prometheus_file_sd(hostvars, ["nope"])
    with pytest.raises(AnsibleFilterError, match="list"):
        prometheus_file_sd(hostvars, "web1")
