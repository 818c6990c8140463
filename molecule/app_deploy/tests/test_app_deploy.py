"""Hosts after the app_deploy scenario (v1 deployed, v2 under traffic, v3 and v4 refused, rolled
back to v1 with the registry down): what serves, what is kept, what is recorded, what is exposed;
the accessory kv beside the releases (reached by its alias, never published, its data kept)."""

from __future__ import annotations

import json
import os
import re

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("targets")

APP_DIR = "/var/lib/anvil/apps/shop"


def history(host) -> dict:
    return json.loads(host.check_output(f"cat {APP_DIR}/history.json"))


def live(host) -> dict:
    h = history(host)
    return [r for r in h["releases"] if r["id"] == h["live"]][0]


def test_v1_serves_through_caddy(host):
    assert host.check_output("curl -sk --resolve shop.anvil.test:443:127.0.0.1 https://shop.anvil.test/") == "v1"
    # Caddy's internal CA signs the site's certificate: verified, the name is the site's
    ca = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
    assert host.run(f"curl -sf --cacert {ca} --resolve shop.anvil.test:443:127.0.0.1 https://shop.anvil.test/health").rc == 0


def test_the_history_tells_what_happened(host):
    h = history(host)
    steps = [(r["version"], r["status"]) for r in h["releases"]]
    assert steps == [("v1", "retired"), ("v2", "rolled-back"), ("v3", "failed"), ("v4", "failed"), ("v1", "live")]
    release = live(host)
    assert release["rollback_of"] == 2 and release["from_release"] == 1
    assert all(r["time"] and r["by"] for r in h["releases"])
    assert "health check failed" in h["releases"][2]["reason"] and "watch window failed" in h["releases"][3]["reason"]
    web = [s for s in release["services"] if s["name"] == "web"][0]
    assert web["image_id"].startswith("sha256:") and web["repo_digest"].startswith("172.30.80.30:5000/shop")
    assert host.file(f"{APP_DIR}/history.json").mode == 0o600


def test_only_the_live_colour_runs_and_only_on_loopback(host):
    release = live(host)
    names = host.check_output("docker ps --filter label=anvil.app=shop --format '{{.Names}}'").split()
    assert sorted(names) == sorted(f"shop-{s}-{release['color']}" for s in ("web", "worker"))
    ports = host.check_output(f"docker port shop-web-{release['color']}")
    assert ports.strip() == f"8000/tcp -> 127.0.0.1:{18000 if release['color'] == 'blue' else 18001}"
    assert host.check_output(f"docker port shop-worker-{release['color']}") == ""
    # the image the container runs is the one recorded, by id
    running = host.check_output(f"docker inspect -f '{{{{.Image}}}}' shop-web-{release['color']}")
    assert running == [s for s in release["services"] if s["name"] == "web"][0]["image_id"]


def test_secrets_stay_in_root_only_files(host):
    release = live(host)
    env = host.file(f"{APP_DIR}/releases/{release['id']}/web.env")
    assert env.mode == 0o600 and env.user == "root" and "SECRET_KEY=test-secret-value-1" in env.content_string
    assert "test-secret-value-1" not in host.check_output(f"cat {APP_DIR}/history.json")
    assert host.check_output("curl -sk --resolve shop.anvil.test:443:127.0.0.1 https://shop.anvil.test/secret-length") == "19"


def test_kept_images_and_pruned_ones(host):
    tags = host.check_output("docker image ls --format '{{.Repository}}:{{.Tag}}' anvil-release/shop").split()
    # kept: the live release (5) and the ones that were live before it (1, 2); never the failed ones (3, 4)
    assert {"anvil-release/shop:web-r5", "anvil-release/shop:web-r1", "anvil-release/shop:web-r2"} <= set(tags)
    assert not [t for t in tags if t.endswith(("-r3", "-r4"))]
    assert not host.file(f"{APP_DIR}/releases/3").exists and not host.file(f"{APP_DIR}/releases/4").exists


def test_the_live_colour_alone_is_marked_and_serves(host):
    release = live(host)
    site = host.file("/etc/caddy/sites.d/shop.caddy").content_string
    # both colours in the site, each behind its mark; nothing else decides which one serves
    assert "reverse_proxy 127.0.0.1:18000" in site and "reverse_proxy 127.0.0.1:18001" in site
    assert "import anvil_app_site shop" in site and "try_files /blue" in site and "try_files /green" in site
    marks = host.file("/etc/caddy/live/shop")
    assert marks.is_directory and marks.mode == 0o755 and marks.user == "root"
    assert sorted(marks.listdir()) == [release["color"]]
    mark = host.file(f"/etc/caddy/live/shop/{release['color']}")
    assert mark.mode == 0o644 and mark.content_string == f"release {release['id']} (v1) takes the traffic\n"
    # Caddy (its own user, under the caddy role's sandbox) sees the mark: the live release answers
    body = host.check_output("curl -sk --resolve shop.anvil.test:443:127.0.0.1 https://shop.anvil.test/")
    assert body == "v1"
    # the copy of what Caddy loaded is the site itself (root-only)
    loaded = host.file("/var/lib/anvil/apps/shop/site-loaded.caddy")
    assert loaded.mode == 0o600 and loaded.content_string == site


def test_metrics_follow_the_contract(host):
    if host.system_info.release.startswith("12"):
        # the minimal documented setup (docker and caddy only): no anvil-metric, no node_exporter;
        # the role deployed all the same and wrote no metrics anywhere
        assert not host.file("/usr/local/bin/anvil-metric").exists
        assert not host.file("/var/lib/prometheus/node-exporter/deploy_shop.prom").exists
        assert host.file("/usr/local/lib/anvil/app-deploy-lock").mode == 0o644
        return
    text = host.file("/var/lib/prometheus/node-exporter/deploy_shop.prom").content_string
    release = live(host)
    assert 'anvil_deploy_last_run_success{app="shop"} 1' in text
    assert (f'anvil_deploy_live_info{{app="shop",color="{release["color"]}",release="{release["id"]}",'
            f'version="v1"}} 1') in text
    scraped = host.check_output("curl -s http://127.0.0.1:9100/metrics")
    assert 'anvil_deploy_last_run_success{app="shop"} 1' in scraped


def test_the_compose_app(host):
    """shopc, from the user's compose file: refused on Debian 12 (no compose v2), nothing left there;
    on Debian 13 deployed v1, v2, rolled back to v1 with the registry down."""
    app_dir = "/var/lib/anvil/apps/shopc"
    if host.system_info.release.startswith("12"):
        assert not host.file(app_dir).exists and not host.file("/etc/caddy/sites.d/shopc.caddy").exists
        assert not host.file("/etc/caddy/live/shopc").exists
        assert host.check_output("docker ps -a --filter label=anvil.app=shopc --format '{{.Names}}'") == ""
        assert host.check_output("docker ps -a --filter name=shopc --format '{{.Names}}'") == ""
        return
    h = json.loads(host.check_output(f"cat {app_dir}/history.json"))
    assert [(r["version"], r["status"]) for r in h["releases"]] == [("v1", "retired"), ("v2", "rolled-back"), ("v1", "live")]
    release = [r for r in h["releases"] if r["id"] == h["live"]][0]
    color, port = release["color"], 18010 if release["color"] == "blue" else 18011
    # the release's own files: the compose file, the override, the variables (secret) - root only
    for name in ("compose.yml", "anvil.yml", "compose-env.json"):
        assert host.file(f"{app_dir}/releases/{release['id']}/{name}").mode == 0o600
    assert "#not-a-comment" in host.file(f"{app_dir}/releases/{release['id']}/compose-env.json").content_string
    assert "not-a-comment" not in host.check_output(f"cat {app_dir}/history.json")
    # one container per service in the live colour, the web one on loopback only, from the kept image
    names = host.check_output("docker ps --filter label=anvil.app=shopc --format '{{.Names}}'").split()
    assert sorted(names) == [f"shopc-web-{color}", f"shopc-worker-{color}"]
    assert host.check_output(f"docker port shopc-web-{color}").strip() == f"8000/tcp -> 127.0.0.1:{port}"
    assert host.check_output(f"docker inspect -f '{{{{.Config.Image}}}}' shopc-web-{color}") == \
        f"anvil-release/shopc:web-r{release['id']}"
    assert host.check_output(f"docker inspect -f '{{{{.Image}}}}' shopc-web-{color}") == \
        [s for s in release["services"] if s["name"] == "web"][0]["image_id"]
    # the shared volume is the role's, not a compose project's
    labels = json.loads(host.check_output("docker volume inspect -f '{{json .Labels}}' shopc_uploads"))
    assert labels.get("anvil.app") == "shopc" and "com.docker.compose.project" not in labels
    assert host.check_output("curl -sk --resolve shopc.anvil.test:443:127.0.0.1 https://shopc.anvil.test/") == "v1"
    # the compose release's services joined the app's network, where the accessory shopc-kv is
    for service in ("web", "worker"):
        networks = inspect(host, f"shopc-{service}-{color}")["NetworkSettings"]["Networks"]
        assert set(networks) == {f"shopc-{color}_default", "anvil-shopc"}, networks
    kv = inspect(host, "shopc-kv")
    assert kv["State"]["Health"]["Status"] == "healthy" and not kv["HostConfig"]["PortBindings"]
    assert "kv" in kv["NetworkSettings"]["Networks"]["anvil-shopc"]["Aliases"]


def inspect(host, name: str) -> dict:
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def test_the_accessory_runs_on_the_apps_network_and_is_never_published(host):
    kv = inspect(host, "shop-kv")
    assert kv["State"]["Running"] and kv["State"]["Health"]["Status"] == "healthy"
    assert kv["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    # labelled as the app's accessory, never as a release container (the release logic reads anvil.app)
    labels = kv["Config"]["Labels"]
    assert labels["anvil.accessory"] == "shop" and labels["anvil.accessory.name"] == "kv"
    assert not [k for k in labels if k.startswith("anvil.app")]
    # on the app's network only, with the alias the releases use; no port published anywhere
    assert list(kv["NetworkSettings"]["Networks"]) == ["anvil-shop"]
    assert "kv" in kv["NetworkSettings"]["Networks"]["anvil-shop"]["Aliases"]
    assert not kv["HostConfig"]["PortBindings"] and host.check_output("docker port shop-kv") == ""
    assert not [v for v in (kv["NetworkSettings"]["Ports"] or {}).values() if v]
    assert ":7000 " not in host.check_output("ss -Htln")
    # its data in the app's named volume
    mounts = {m["Destination"]: m for m in kv["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == "shop-kv-data"
    # the image as described (tag v1, pulled once), not an id of a release
    assert kv["Config"]["Image"].rsplit("/", 1)[-1] in ("kv12:v1", "kv13:v1")


def test_a_release_reaches_the_accessory_and_its_data_outlived_every_deploy(host):
    curl = "curl -sk --resolve shop.anvil.test:443:127.0.0.1 https://shop.anvil.test"
    # the side effect counted 6 visits through v1, v2, the failed run, v3, v4 (recreated kv), the rollback
    assert int(host.check_output(f"{curl}/visit")) >= 7
    # the environment v4 changed (generation 2) is the one it runs with
    assert json.loads(host.check_output(f"{curl}/kv-info"))["generation"] == "2"
    # the live release's containers are on the app's network: kv is reached by its alias there
    release = live(host)
    assert "anvil-shop" in inspect(host, f"shop-web-{release['color']}")["NetworkSettings"]["Networks"]


def test_an_accessory_no_longer_described_is_gone_its_volume_kept(host):
    assert host.check_output("docker ps -a --filter label=anvil.accessory=shop --format '{{.Names}}'").split() == ["shop-kv"]
    volume = json.loads(host.check_output("docker volume inspect shop-sick-data"))[0]
    assert volume["Labels"].get("anvil.accessory") == "shop"


def test_the_accessory_secret_is_in_no_world_readable_file(host):
    token = "kv-token-secret-5"
    # every file holding it, with its mode (runc's transient /tmp/runc-process* of Docker's health
    # checks are Docker's own, like /var/lib/docker: left out)
    found = host.run(f"grep -rlsF {token} /etc /var/lib/anvil /var/lib/docker/containers /usr/local /root /tmp /var/tmp "
                     "--exclude-dir=.ansible --exclude='runc-process*' | xargs -r stat -c '%a %n' 2>/dev/null").stdout
    files = dict(reversed(line.split(" ", 1)) for line in found.splitlines())
    # the web services' release files (they need the token: shop's and shopl's env files, shopc's compose
    # variables) and Docker's own container configs; the accessory's environment is in no file of the role
    assert files, "the token should be in the live release's env file and Docker's container config"
    for path, mode in files.items():
        assert int(mode, 8) & 0o004 == 0, path
        assert re.match(r"^/var/lib/anvil/apps/shop[cl]?/releases/[0-9]+/(web\.env|compose-env\.json)$", path) \
            or path.startswith("/var/lib/docker/containers/"), path


def test_no_deploy_lock_left(host):
    """Every run let go of the deploy lock: no holder, no state of a run, nothing holds the flock."""
    lock_dir = "/var/lib/anvil/locks/app-shop"
    assert host.file(lock_dir).mode == 0o700
    assert host.check_output(f"ls -A {lock_dir}").split() == ["lock"]
    assert host.run(f"flock --nonblock {lock_dir}/lock true").rc == 0
