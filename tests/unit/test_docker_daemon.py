"""The docker role's daemon.json builder and checks (filters in anvil.hetzner's docker_daemon.py)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.anvil.hetzner.plugins.filter.docker_daemon import (
    FilterModule,
    distro_provides,
    docker_daemon_config,
    docker_errors,
    docker_reload_only,
    docker_unknown_keys,
)

DEFAULTS = {
    "docker_install_source": "official",
    "docker_version": "",
    "docker_compose": True,
    "docker_buildx": True,
    "docker_log_driver": "json-file",
    "docker_log_max_size": "10m",
    "docker_log_max_file": 3,
    "docker_live_restore": True,
    "docker_bridge_ip": "",
    "docker_default_address_pools": [{"base": "172.20.0.0/14", "size": 24}],
    "docker_reserved_networks": ["172.31.1.1/32"],
    "docker_metrics_address": "",
    "docker_userland_proxy": True,
    "docker_daemon_options": {},
    "docker_users": [],
    "docker_prune_until": "168h",
    "docker_prune_schedule": "daily",
    "docker_registries": [],
}


def with_(**changes):
    out = dict(DEFAULTS)
    out.update({k.replace("__", "-"): v for k, v in changes.items()})
    return out


def test_defaults_build_a_safe_daemon_json():
    config = docker_daemon_config(DEFAULTS)
    assert config == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "live-restore": True,
        "default-address-pools": [{"base": "172.20.0.0/14", "size": 24}],
    }
    assert docker_errors(DEFAULTS, "Debian", "12") == []
    json.dumps(config)
    assert set(FilterModule().filters()) >= {"docker_daemon_config", "docker_errors", "docker_reload_only"}


def test_options_merge_deeply_over_the_defaults():
    config = docker_daemon_config(with_(
        docker_daemon_options={"log-opts": {"compress": "true"}, "max-concurrent-downloads": 5},
        docker_metrics_address="127.0.0.1:9323", docker_userland_proxy=False, docker_bridge_ip="172.17.0.1/16"))
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3", "compress": "true"}
    assert config["max-concurrent-downloads"] == 5
    assert config["metrics-addr"] == "127.0.0.1:9323"
    assert config["userland-proxy"] is False
    assert config["bip"] == "172.17.0.1/16"


def test_other_log_drivers_get_no_file_rotation_options():
    config = docker_daemon_config(with_(docker_log_driver="journald"))
    assert config["log-driver"] == "journald" and "log-opts" not in config


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (with_(docker_log_max_size="ten"), "docker_log_max_size: 'ten'"),
        (with_(docker_log_max_file=0), "docker_log_max_file: 0 must be a whole number from 1 to 100"),
        (with_(docker_daemon_options={"log-opts": {"max-file": 3}}), "log-opts 'max-file': dockerd takes only strings"),
        (with_(docker_daemon_options={"live-restore": "yes"}), "docker_daemon_options['live-restore']: must be true or false"),
        (with_(docker_daemon_options={"mtu": "1450"}), "docker_daemon_options['mtu']: must be a whole number"),
        (with_(docker_daemon_options={"dns": "1.1.1.1"}), "docker_daemon_options['dns']: must be a list"),
        (with_(docker_daemon_options={"hosts": ["tcp://0.0.0.0:2375"]}), "docker_daemon_options['hosts']: the packaged"),
        (with_(docker_daemon_options=["debug"]), "docker_daemon_options: must be a mapping"),
        (with_(docker_default_address_pools=[{"base": "172.20.0.0/33", "size": 24}]), "docker_default_address_pools[0].base"),
        (with_(docker_default_address_pools=[{"base": "fd00::/48", "size": 64}]), "not an IPv4 CIDR network"),
        (with_(docker_default_address_pools=[{"base": "172.20.0.0/16", "size": 8}]), "docker_default_address_pools[0].size"),
        (with_(docker_default_address_pools=[{"base": "172.20.0.0/16"}]), "docker_default_address_pools[0]: must be a mapping"),
        (with_(docker_default_address_pools=[{"base": "172.20.0.0/16", "size": 24},
                                             {"base": "172.20.128.0/17", "size": 24}]), "overlaps docker_default_address_pools[0]"),
        (with_(docker_default_address_pools=[{"base": "172.16.0.0/12", "size": 24}]), "overlaps docker_reserved_networks entry 172.31.1.1/32"),
        (with_(docker_bridge_ip="10.0.0.1/16", docker_reserved_networks=["10.0.0.0/8"]), "docker_bridge_ip: 10.0.0.0/16 overlaps"),
        (with_(docker_reserved_networks=["172.16.0.0/12"]), "docker_bridge_ip: 172.17.0.0/16 overlaps"),
        (with_(docker_bridge_ip="172.17.0.1"), "docker_bridge_ip: '172.17.0.1' is not an IPv4 address with prefix"),
        (with_(docker_reserved_networks=["office"]), "docker_reserved_networks[0]: 'office'"),
        (with_(docker_metrics_address="127.0.0.1"), "docker_metrics_address"),
        (with_(docker_metrics_address="127.0.0.1:99999"), "docker_metrics_address"),
        (with_(docker_prune_until="a week"), "docker_prune_until"),
        (with_(docker_prune_schedule=""), "docker_prune_schedule"),
        (with_(docker_users=["root"]), "docker_users[0]"),
        (with_(docker_users=["Bad User"]), "docker_users[0]"),
        (with_(docker_version="latest please"), "docker_version"),
        (with_(docker_registries=[{"registry": "ghcr.io", "username": "ci"}]), "docker_registries[0].password: must be"),
        (with_(docker_registries=[{"registry": "ghcr.io", "username": "ci", "password": "x", "token": "y"}]), "unknown keys ['token']"),
        (with_(docker_registries=[{"registry": "ghcr.io", "username": "a", "password": "x"},
                                  {"registry": "ghcr.io", "username": "b", "password": "y"}]), "docker_registries[1].registry: ghcr.io is already"),
        (with_(docker_registries=[{"registry": "bad host!", "username": "a", "password": "x"}]), "docker_registries[0].registry"),
        (with_(docker_registries=["ghcr.io"]), "docker_registries[0]: must be a mapping"),
    ],
)
def test_bad_input_is_named(variables, message):
    errors = docker_errors(variables, "Debian", "13")
    assert any(message in e for e in errors), errors


def test_passwords_never_appear_in_messages():
    errors = docker_errors(with_(docker_registries=[{"registry": "bad host!", "username": "", "password": "s3cret"}]))
    assert errors and not any("s3cret" in e for e in errors)


def test_compose_and_buildx_from_the_distribution():
    distro = with_(docker_install_source="distro")
    assert docker_errors(distro, "Debian", "13") == []
    assert docker_errors(distro, "Ubuntu", "24") == []
    errors = docker_errors(distro, "Debian", "12")
    assert any(e.startswith("docker_compose: Debian 12") for e in errors)
    assert any(e.startswith("docker_buildx: Debian 12") for e in errors)
    assert docker_errors(with_(docker_install_source="distro", docker_compose=False, docker_buildx=False), "Debian", "12") == []
    # the official repository always has both
    assert docker_errors(DEFAULTS, "Debian", "12") == []
    assert distro_provides("Debian", "13") == {"compose": "docker-compose", "buildx": "docker-buildx"}
    assert distro_provides("Ubuntu", "22") == {"compose": "docker-compose-v2", "buildx": "docker-buildx"}
    assert distro_provides("Debian", "12") == {"compose": "", "buildx": ""}


def test_reload_or_restart():
    old = docker_daemon_config(DEFAULTS)
    text = json.dumps(old)
    assert docker_reload_only(text, {**old, "max-concurrent-downloads": 5, "debug": True})
    assert docker_reload_only(old, {**old, "registry-mirrors": ["https://mirror.invalid"]})
    assert not docker_reload_only(text, {**old, "log-opts": {"max-size": "20m", "max-file": "3"}})
    assert not docker_reload_only(text, {**old, "storage-driver": "overlay2"})
    # a key removed counts as a change
    assert not docker_reload_only(text, {k: v for k, v in old.items() if k != "default-address-pools"})
    # no old file or an unreadable one: restart
    assert not docker_reload_only("", old)
    assert not docker_reload_only("{not json", old)
    assert docker_reload_only(text, old)


def test_unknown_keys_against_what_dockerd_knows():
    known = ["log-driver", "log-opts", "live-restore", "default-address-pools"]
    assert docker_unknown_keys(docker_daemon_config(DEFAULTS), known) == []
    assert docker_unknown_keys({"live-restore": True, "no-such-option": 1, "debg": True}, known) == ["debg", "no-such-option"]


def test_calendar_refused_by_the_host_is_named() -> None:
    """systemd-analyze on the host is the judge of calendars (host_probe's invalid_calendars)."""
    variables = with_(docker_prune_schedule="every tuesday-ish")
    assert docker_errors(variables) == []
    errors = docker_errors(variables, host={"invalid_calendars": ["every tuesday-ish"]})
    assert errors == ["docker_prune_schedule: 'every tuesday-ish' is not a systemd calendar expression "
                      "(systemd-analyze calendar refuses it); try daily, weekly or Mon *-*-* 04:00"]


def test_host_state_errors():
    from ansible_collections.anvil.hetzner.plugins.filter.docker_daemon import docker_host_errors
    conflicts = ["docker.io", "containerd", "runc"]
    official = {"docker_install_source": "official"}
    assert docker_host_errors(official, conflicts, ["docker-ce"], 3, []) == []
    assert docker_host_errors(official, conflicts, ["docker.io", "runc"], 0, []) == []
    running = docker_host_errors(official, conflicts, ["docker.io", "runc"], 2, [])
    assert running == ["docker_install_source: official would remove docker.io, runc while 2 container(s) run; "
                       "stop them first, or set docker_replace_running_engine: true"]
    assert docker_host_errors({**official, "docker_replace_running_engine": True}, conflicts, ["docker.io"], 2, []) == []
    keep = docker_host_errors({**official, "docker_remove_conflicting": False}, conflicts, ["docker.io"], 0, [])
    assert keep[0].startswith("docker_install_source: official conflicts with the installed docker.io")
    assert docker_host_errors(official, conflicts, [], 0, ["ci"])[0].startswith("docker_users: no such user(s) ci")


def test_package_names_per_source_release_and_pin():
    from ansible_collections.anvil.hetzner.plugins.filter.docker_daemon import docker_package_names
    assert docker_package_names({"docker_install_source": "distro"}, "Debian", "12") == ["docker.io"]
    assert docker_package_names({"docker_install_source": "distro", "docker_version": "26.1.5"}, "Debian", "13") == [
        "docker.io=26.1.5*", "docker-compose", "docker-buildx"]
    assert docker_package_names({"docker_version": "27.3.1", "docker_compose": False}, "Debian", "12") == [
        "docker-ce=5:27.3.1*", "docker-ce-cli=5:27.3.1*", "containerd.io", "docker-buildx-plugin"]
    assert docker_package_names({"docker_version": "5:27.3.1-1~debian.12~bookworm"}, "Debian", "12")[0] == \
        "docker-ce=5:27.3.1-1~debian.12~bookworm*"
