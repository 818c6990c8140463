"""Behaviour of hosts after anvil.hetzner.docker (Debian 12 docker.io 20.10, Debian 13 docker.io 26).

side_effect.yml left a container `web` (published on 8080) that has run since before the role's
reload, restart, refused option and rolled-back restart; these tests look at the end state.
"""

from __future__ import annotations

import base64
import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("targets")


def is_debian13(host) -> bool:
    return host.system_info.release.startswith("13") or host.system_info.codename == "trixie"


def daemon_json(host) -> dict:
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


def test_engine_runs_and_is_enabled(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled
    assert host.run("docker info --format '{{.ServerVersion}}'").rc == 0


def test_daemon_json_has_bounded_logs_live_restore_and_safe_pools(host):
    config = daemon_json(host)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "5m", "max-file": "2"}
    assert config["live-restore"] is True
    assert config["default-address-pools"] == [{"base": "172.20.0.0/14", "size": 24}]
    assert config["metrics-addr"] == "127.0.0.1:9323"
    # the side effect's options are gone again
    assert "max-concurrent-downloads" not in config and "storage-driver" not in config


def test_running_daemon_uses_the_configuration(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"


def test_metrics_endpoint_answers_on_loopback_only(host):
    out = host.check_output("curl -s --max-time 5 http://127.0.0.1:9323/metrics")
    assert "engine_daemon_engine_info" in out
    listeners = host.check_output("ss -ltnH 'sport = :9323'")
    assert "127.0.0.1:9323" in listeners and "0.0.0.0:9323" not in listeners


def test_container_survived_every_change_and_serves(host):
    container = json.loads(host.check_output("docker inspect web"))[0]
    assert container["State"]["Running"] is True and container["RestartCount"] == 0
    assert "anvil" in host.check_output("curl -s --max-time 5 http://127.0.0.1:8080/")


def test_new_containers_get_log_rotation(host):
    host.run("docker rm -f logcheck")
    host.check_output("docker create --name logcheck anvil/busybox:test /busybox true")
    try:
        log_config = json.loads(host.check_output("docker inspect -f '{{json .HostConfig.LogConfig}}' logcheck"))
        # dockerd fills the container's log config from daemon.json at creation
        assert log_config["Type"] == "json-file"
        opts = log_config.get("Config") or {}
        if not opts:  # 20.10 keeps the daemon defaults out of HostConfig; the log driver applies them
            opts = daemon_json(host)["log-opts"]
        assert opts["max-size"] == "5m" and opts["max-file"] == "2"
    finally:
        host.run("docker rm -f logcheck")


def test_new_networks_come_from_the_safe_pool(host):
    host.run("docker network rm anvil-pooltest")
    host.check_output("docker network create anvil-pooltest")
    try:
        subnet = host.check_output(
            "docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' anvil-pooltest")
        first, second = (int(x) for x in subnet.split(".")[:2])
        assert first == 172 and 20 <= second <= 23, subnet
    finally:
        host.run("docker network rm anvil-pooltest")


def test_compose_v2_where_the_distribution_ships_it(host):
    if is_debian13(host):
        out = host.check_output("docker compose version")
        assert "v2." in out or " 2." in out
        assert host.run("docker buildx version").rc == 0
    else:
        # Debian 12's packages have no compose v2; the scenario leaves it out on purpose
        assert host.run("docker compose version").rc != 0


def test_deploy_user_is_in_the_docker_group_and_can_use_docker(host):
    assert "docker" in host.user("deploy").groups
    assert host.run("runuser -u deploy -- docker ps -q").rc == 0


def test_prune_timer_is_scheduled(host):
    timer = host.service("anvil-docker-prune.timer")
    assert timer.is_enabled and timer.is_running
    unit = host.file("/etc/systemd/system/anvil-docker-prune.service").content_string
    assert "volume prune" not in unit


def test_prune_removes_stopped_containers_and_dangling_images_but_not_volumes_or_running(host):
    host.run("docker rm -f stopped-one; docker volume rm -f anvil-keep")
    host.check_output("docker volume create anvil-keep")
    host.check_output("docker create --name stopped-one -v anvil-keep:/data anvil/busybox:test /busybox true")
    # a dangling image: import twice under one tag; the first import loses its tag
    make = "set -e; d=$(mktemp -d); echo {n} > $d/f; tar -C $d -c . | docker import - anvil/dangle:test; rm -rf $d"
    dangling = host.check_output(make.format(n=1)).strip()
    assert dangling.startswith("sha256:")
    host.check_output(make.format(n=2))
    assert dangling in host.check_output("docker images -q --no-trunc --filter dangling=true")
    host.run("sleep 2")  # docker_prune_until is 1s in this scenario
    result = host.run("systemctl start anvil-docker-prune.service")
    assert result.rc == 0, host.run("journalctl -u anvil-docker-prune.service -n 30 --no-pager").stdout
    assert host.run("docker inspect stopped-one").rc != 0, "stopped container was not pruned"
    assert host.run("docker volume inspect anvil-keep").rc == 0, "a volume was pruned"
    assert json.loads(host.check_output("docker inspect web"))[0]["State"]["Running"] is True
    assert host.run(f"docker image inspect {dangling}").rc != 0, "the dangling image was not pruned"
    assert host.run("docker image inspect anvil/busybox:test").rc == 0, "an image in use was pruned"
    assert host.run("docker image inspect anvil/dangle:test").rc == 0, "a tagged image was pruned"
    host.run("docker volume rm -f anvil-keep; docker rmi anvil/dangle:test")


def test_the_refused_and_rolled_back_options_never_stayed_in_daemon_json(host):
    content = host.file("/etc/docker/daemon.json").content_string
    assert "no-such-option" not in content and "zfs" not in content


def test_registry_login_is_stored_for_root(host):
    config = json.loads(host.file("/root/.docker/config.json").content_string)
    assert base64.b64decode(config["auths"]["127.0.0.1:5000"]["auth"]).decode() == "ci:not-a-real-secret-1"
    assert host.file("/root/.docker/config.json").mode == 0o600
    log = host.check_output("journalctl -u anvil-fake-registry -o cat")
    assert "login ci ok" in log


def test_pinned_engine_is_held_where_pinned(host):
    held = host.check_output("apt-mark showhold").split()
    if is_debian13(host):
        assert "docker.io" not in held
    else:
        assert "docker.io" in held
        assert host.check_output("dpkg-query -W -f '${Version}' docker.io").startswith("20.10.24")
