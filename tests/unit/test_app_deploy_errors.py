"""The app_deploy role's input check and its release bookkeeping: what a run does (nothing, a
deploy, a rollback), the history it leaves, which images may go, the metrics; never a secret in a
message."""

from __future__ import annotations

import pytest
from ansible_collections.anvil.hetzner.plugins.filter.app_deploy_errors import (
    app_deploy_compose_services, app_deploy_errors, app_deploy_log_tail, app_deploy_metrics, app_deploy_plan,
    app_deploy_record, app_deploy_redact)

HOST = {"distribution": "Debian", "major": "12", "version": "12.8", "caddy_sites_dir": True, "ports_taken": [22, 80, 443]}
WEB = {"name": "web", "image": "registry.example.com/shop/web", "tag": "v1", "port": 8000,
       "environment": {"DATABASE_URL": "postgres://shop:s3cret-value@db/shop", "WORKERS": 4}}
WORKER = {"name": "worker", "image": "registry.example.com/shop/web", "tag": "v1", "command": ["rq", "worker"]}


def errors(**variables):
    base = {"app_deploy_name": "shop", "app_deploy_services": [WEB, WORKER], "app_deploy_domains": ["shop.example.com"],
            "app_deploy_health": {"path": "/health"}}
    return app_deploy_errors({**base, **variables}, host=HOST)


def names(errs):
    return [e.split(":")[0] for e in errs]


def test_a_valid_app_passes():
    assert errors() == []
    assert errors(app_deploy_migration={"command": "manage.py migrate"},
                  app_deploy_registry={"registry": "registry.example.com:5000", "username": "ci", "password": "x"},
                  app_deploy_services=[{**WEB, "tag": None, "digest": "sha256:" + "a" * 64,
                                        "volumes": ["media:/srv/media", "/etc/shop:/etc/shop:ro"]}]) == []


@pytest.mark.parametrize("service, where", [
    ({**WEB, "bogus": 1}, "app_deploy_services[0] (web)"),                        # unknown key
    ({**WEB, "port": 70000}, "app_deploy_services[0] (web).port"),                # port out of range
    ({**WEB, "port": 0}, "app_deploy_services[0] (web).port"),
    ({k: v for k, v in WEB.items() if k != "tag"}, "app_deploy_services[0] (web)"),   # neither tag nor digest
    ({**WEB, "digest": "sha256:" + "a" * 64}, "app_deploy_services[0] (web)"),     # both
    ({**WEB, "image": "Registry/Shop"}, "app_deploy_services[0] (web).image"),
    ({**WEB, "image": "shop/web:v1"}, "app_deploy_services[0] (web).image"),       # tag inside the image
    ({**WEB, "tag": "v 1"}, "app_deploy_services[0] (web).tag"),
    ({**WEB, "digest": "sha256:abc", "tag": None}, "app_deploy_services[0] (web).digest"),
    ({**WEB, "name": "Web App"}, "app_deploy_services[0].name"),
    ({**WEB, "command": {"a": 1}}, "app_deploy_services[0] (web).command"),
    ({**WEB, "volumes": "media:/srv"}, "app_deploy_services[0] (web).volumes"),
    ({**WEB, "volumes": ["../x:/srv"]}, "app_deploy_services[0] (web).volumes[0]"),
    ({**WEB, "environment": {"BAD-NAME": "x"}}, "app_deploy_services[0] (web).environment"),
    ({**WEB, "environment": {"MULTI": "a\nb"}}, "app_deploy_services[0] (web).environment.MULTI"),
])
def test_every_bad_service_is_named(service, where):
    errs = errors(app_deploy_services=[service, WORKER])
    assert where in names(errs), errs


def test_exactly_one_web_service_and_unique_names():
    assert "app_deploy_services" in names(errors(app_deploy_services=[WORKER]))
    assert "app_deploy_services" in names(errors(app_deploy_services=[WEB, {**WEB, "name": "api"}]))
    assert "app_deploy_services" in names(errors(app_deploy_services=[WEB, {**WORKER, "name": "web"}]))
    assert names(errors(app_deploy_services=[])) == ["app_deploy_services"]


def test_health_check_is_required_and_checked():
    assert names(errors(app_deploy_health={})) == ["app_deploy_health"]
    assert names(errors(app_deploy_health={"path": "health"})) == ["app_deploy_health.path"]
    assert names(errors(app_deploy_health={"path": "/h", "retries": 0})) == ["app_deploy_health.retries"]
    assert names(errors(app_deploy_health={"path": "/h", "retris": 3})) == ["app_deploy_health"]


def test_secret_values_are_never_in_a_message():
    bad = {**WEB, "environment": {"DATABASE_URL": "postgres://shop:s3cret-value@db/shop\n", "bad key": "s3cret-value"},
           "port": 99999}
    registry = {"registry": "bad host!", "username": "ci", "password": "s3cret-value"}
    errs = errors(app_deploy_services=[bad], app_deploy_registry=registry)
    assert len(errs) >= 3
    assert not [e for e in errs if "s3cret" in e], errs


def test_ports_colours_and_hosts():
    assert names(errors(app_deploy_ports={"blue": 18000, "green": 18000})) == ["app_deploy_ports"]
    assert names(errors(app_deploy_ports={"blue": 18000})) == ["app_deploy_ports"]
    for caddys in (80, 443, 2019):  # Caddy's, even when it does not listen there yet
        errs = errors(app_deploy_ports={"blue": caddys, "green": 18001})
        assert names(errs) == ["app_deploy_ports"] and "belong to Caddy" in errs[0]
    taken = app_deploy_errors({"app_deploy_name": "shop", "app_deploy_services": [WEB], "app_deploy_domains": ["a.example"],
                               "app_deploy_health": {"path": "/h"}, "app_deploy_ports": {"blue": 22, "green": 18001}},
                              host=HOST)
    assert names(taken) == ["app_deploy_ports.blue"] and "port 22 is already taken" in taken[0]
    assert "anvil.hetzner.caddy has not run on this host (no /etc/caddy/sites.d)" in " ".join(
        app_deploy_errors({"app_deploy_name": "shop", "app_deploy_services": [WEB], "app_deploy_domains": ["a.example"],
                           "app_deploy_health": {"path": "/h"}}, host={**HOST, "caddy_sites_dir": False}))
    assert names(errors(caddy_admin="off")) == ["caddy_admin"]
    assert names(errors(app_deploy_domains=[])) == ["app_deploy_domains"]
    assert names(errors(app_deploy_migration={"command": "x", "service": "nope"})) == ["app_deploy_migration.service"]


# ------------------------------------------------------------------------------------------------
# What a run does

def wanted(version="v1", image_id="sha256:" + "1" * 64, env="e1"):
    return {"app": "shop", "version": version,
            "services": [{"name": "web", "image": f"r/shop:{version}", "image_id": image_id, "command": None,
                          "volumes": [], "port": 8000, "env_sha": env}]}


def run(history, version, image_id, status="live", rollback=False, running=None, keep=3):
    plan = app_deploy_plan(wanted(version, image_id), history, rollback=rollback, running=running)
    if plan["action"] in ("noop", "refuse"):
        return plan, history
    recorded = app_deploy_record(history, {**plan["release"], "epoch": 1000 + plan["release"]["id"]}, status,
                                 keep=keep, when="t", by="ci")
    return plan, recorded


def names_running(history):
    live = [r for r in history["releases"] if r["id"] == history["live"]][0]
    return [f"shop-web-{live['color']}"]


def test_first_deploy_is_blue_then_colours_alternate():
    plan, rec = run(None, "v1", "sha256:" + "1" * 64)
    assert plan["action"] == "deploy" and plan["release"]["color"] == "blue" and plan["live"] is None
    h = rec["history"]
    plan, rec = run(h, "v2", "sha256:" + "2" * 64, running=names_running(h))
    assert plan["action"] == "deploy" and plan["release"]["color"] == "green" and plan["live"]["version"] == "v1"
    assert [r["status"] for r in rec["history"]["releases"]] == ["retired", "live"]


def test_the_live_release_again_is_nothing_to_do_but_a_change_is_a_release():
    h = run(None, "v1", "sha256:" + "1" * 64)[1]["history"]
    assert run(h, "v1", "sha256:" + "1" * 64, running=names_running(h))[0]["action"] == "noop"
    # same version label, but the tag now points to another image: a new release
    assert run(h, "v1", "sha256:" + "9" * 64, running=names_running(h))[0]["action"] == "deploy"
    # same image, changed environment: a new release
    plan = app_deploy_plan(wanted("v1", env="e2"), h, running=names_running(h))
    assert plan["action"] == "deploy"
    # live and unchanged but its container is gone: started again (health-gated, other colour)
    plan = app_deploy_plan(wanted("v1"), h, running=[])
    assert plan["action"] == "deploy" and plan["live"] is None and "not running" in plan["reason"]


def test_a_failed_release_changes_nothing_live():
    h = run(None, "v1", "sha256:" + "1" * 64)[1]["history"]
    plan, rec = run(h, "v3", "sha256:" + "3" * 64, status="failed", running=names_running(h))
    h2 = rec["history"]
    assert h2["live"] == h["live"] and [r["status"] for r in h2["releases"]] == ["live", "failed"]
    # and the failed one's images may go at once, the live one's never
    assert rec["prune"] == [plan["release"]["id"]]


def test_rollback_goes_to_the_previous_live_release_with_its_images():
    h = run(None, "v1", "sha256:" + "1" * 64)[1]["history"]
    h = run(h, "v2", "sha256:" + "2" * 64, running=names_running(h))[1]["history"]
    h = run(h, "v3", "sha256:" + "3" * 64, status="failed", running=names_running(h))[1]["history"]
    plan, rec = run(h, "", "", rollback=True, running=names_running(h))
    assert plan["action"] == "rollback" and plan["release"]["version"] == "v1"
    assert plan["release"]["services"][0]["image_id"] == "sha256:" + "1" * 64
    assert plan["release"]["from_release"] == 1 and plan["release"]["color"] != plan["live"]["color"]
    statuses = {r["version"]: r["status"] for r in rec["history"]["releases"] if r["id"] <= 3}
    assert statuses == {"v1": "retired", "v2": "rolled-back", "v3": "failed"}
    assert rec["history"]["live"] == plan["release"]["id"]


def test_rollback_with_nothing_before_is_refused():
    assert app_deploy_plan(wanted(), None, rollback=True)["action"] == "refuse"
    h = run(None, "v1", "sha256:" + "1" * 64)[1]["history"]
    plan = app_deploy_plan(wanted(), h, rollback=True, running=names_running(h))
    assert plan["action"] == "refuse" and "first one" in plan["reason"]


def test_pruning_keeps_the_last_releases_that_were_live():
    h = None
    pruned = []
    for n in range(1, 8):
        plan, rec = run(h, f"v{n}", "sha256:" + str(n) * 64, running=names_running(h) if h else [], keep=3)
        h = rec["history"]
        pruned += rec["prune"]
    # releases 1..4 may go (each once it fell out of the last 3), 5, 6, 7 stay
    assert sorted(set(pruned)) == [1, 2, 3, 4]
    assert {r["id"] for r in h["releases"] if r["id"] not in rec["prune"]} == {5, 6, 7}


def test_history_keeps_thirty_runs_and_the_live_one():
    h = run(None, "v1", "sha256:" + "1" * 64)[1]["history"]
    for n in range(40):
        h = run(h, f"bad{n}", "sha256:" + f"{n + 100:04d}" * 16, status="failed", running=names_running(h))[1]["history"]
    assert len(h["releases"]) == 31 and h["releases"][0]["version"] == "v1" and h["live"] == 1


def test_metrics():
    h = run(None, "v1", "sha256:" + "1" * 64)[1]["history"]
    text = app_deploy_metrics(h, "shop", "live", 42, 2000)
    assert 'anvil_deploy_last_run_success{app="shop"} 1' in text
    assert 'anvil_deploy_live_info{app="shop",version="v1",release="1",color="blue"} 1' in text
    assert 'anvil_deploy_last_success_timestamp_seconds{app="shop"} 1001' in text
    failed = app_deploy_metrics(h, "shop", "failed", 5, 3000)
    assert 'anvil_deploy_last_run_success{app="shop"} 0' in failed and "anvil_deploy_live_info" in failed
    assert 'version="a\\"b"' in app_deploy_metrics({"live": 1, "releases": [{"id": 1, "version": 'a"b', "color": "blue",
                                                                            "status": "live", "epoch": 1}]},
                                                   "shop", "live", 1, 2)


def test_log_tail():
    assert app_deploy_log_tail({"stdout_lines": ["a", "b"], "stderr_lines": ["boom"]}, 2) == "b / boom"
    assert app_deploy_log_tail({}) == "(no output)"


# ---------------------------------------------------------------------------------------------
# The user's own compose file.

COMPOSE_TEXT = """
services:
  web:
    image: registry.example.com/shop/web:${APP_VERSION:-v1}
    environment: {DATABASE_URL: "${DATABASE_URL}"}
    volumes: [media:/srv/media]
  worker:
    image: registry.example.com/shop/web@sha256:%s
    command: [rq, worker]
    restart: always
volumes:
  media: {}
""" % ("b" * 64)
COMPOSE = {"file": "/ci/compose.yml", "service": "web", "port": 8000, "environment": {"DATABASE_URL": "pg://s3cret"}}
COMPOSE_HOST = {**HOST, "major": "13", "compose_v2": True, "compose_readable": True, "compose_text": COMPOSE_TEXT}


def compose_errors(compose=None, text=COMPOSE_TEXT, **host):
    return app_deploy_errors({"app_deploy_name": "shop", "app_deploy_services": [], "app_deploy_domains": ["shop.example.com"],
                              "app_deploy_health": {"path": "/health"}, "app_deploy_compose": compose or COMPOSE,
                              "app_deploy_migration": {"command": "manage.py migrate", "service": "worker"}},
                             host={**COMPOSE_HOST, "compose_text": text, **host})


def test_a_valid_compose_file_passes():
    assert compose_errors() == []


@pytest.mark.parametrize("key, value, says", [
    ("ports", ["8000:8000"], "bypass UFW"),
    ("container_name", "shop", "side by side"),
    ("build", ".", "build and push the image in CI"),
    ("network_mode", "host", "network_mode: host"),
    ("scale", 2, "more than one replica"),
    ("deploy", {"replicas": 3}, "more than one replica"),
    ("image", "", "needs an image"),
])
def test_every_refused_compose_setting_is_named(key, value, says):
    text = COMPOSE_TEXT.replace("    command: [rq, worker]\n", f"    command: [rq, worker]\n    {key}: {value!r}\n") \
        if key != "image" else COMPOSE_TEXT.replace("image: registry.example.com/shop/web@", "image: ''\n    x-was: ")
    errs = compose_errors(text=text)
    assert len(errs) == 1 and "service 'worker'" in errs[0] and says in errs[0], errs


def test_compose_needs_compose_v2_and_a_readable_file_with_the_web_service():
    assert any("needs Docker Compose v2" in e and "Debian 12's docker.io" in e for e in compose_errors(compose_v2=False))
    assert any("2.24.4 or newer" in e and "2.20.2" in e for e in compose_errors(compose_version="2.20.2"))
    assert compose_errors(compose_version="2.26.1") == compose_errors(compose_version="v2.40.0") == []
    assert compose_errors(compose_readable=False) == ["app_deploy_compose.file (/ci/compose.yml): cannot be read on the controller"]
    assert "is not valid YAML (line 2)" in compose_errors(text="services:\n\tweb: {}\n")[0]
    assert "has no services" in compose_errors(text="volumes: {}\n")[0]
    assert "'api' is not a service of /ci/compose.yml (web, worker)" in compose_errors({**COMPOSE, "service": "api"})[0]
    assert names(compose_errors({"file": "/ci/compose.yml"})) == ["app_deploy_compose.service", "app_deploy_compose.port"]
    assert names(compose_errors({**COMPOSE, "port": 70000, "bogus": 1})) == ["app_deploy_compose", "app_deploy_compose.port"]


def test_compose_and_services_are_one_or_the_other_and_secrets_stay_hidden():
    both = app_deploy_errors({"app_deploy_name": "shop", "app_deploy_services": [WEB], "app_deploy_compose": COMPOSE,
                              "app_deploy_domains": ["shop.example.com"], "app_deploy_health": {"path": "/health"}},
                             host=COMPOSE_HOST)
    assert any("not both" in e for e in both)
    bad_env = compose_errors({**COMPOSE, "environment": {"DATABASE_URL": "pg://s3cret\nline2", "bad name": "s3cret"}})
    assert len(bad_env) == 2 and not any("s3cret" in e for e in bad_env)
    assert "migration.service: 'api'" in app_deploy_errors(
        {"app_deploy_name": "shop", "app_deploy_compose": COMPOSE, "app_deploy_domains": ["shop.example.com"],
         "app_deploy_health": {"path": "/health"}, "app_deploy_migration": {"command": "x", "service": "api"}},
        host=COMPOSE_HOST)[0]


def test_compose_services_in_the_shape_of_app_deploy_services():
    config = ('{"services": {"web": {"image": "registry.example.com:5000/shop/web:v7", "environment": {"A": "1"}},'
              ' "worker": {"image": "registry.example.com/shop/web@sha256:%s", "restart": "always"},'
              ' "cron": {"image": "busybox"}}}' % ("b" * 64))
    services = app_deploy_compose_services(config, COMPOSE)
    assert [(s["name"], s["image"], s.get("tag"), s.get("digest"), s.get("port"), s["restart"]) for s in services] == [
        ("cron", "busybox", "latest", None, None, None),
        ("web", "registry.example.com:5000/shop/web", "v7", None, 8000, None),
        ("worker", "registry.example.com/shop/web", None, "sha256:" + "b" * 64, None, "always")]
    # a changed setting changes the service's config hash, a changed image reference does not (the id decides)
    changed = app_deploy_compose_services(config.replace('"A": "1"', '"A": "2"'), COMPOSE)
    retagged = app_deploy_compose_services(config.replace("web:v7", "web:v8"), COMPOSE)
    assert changed[1]["config_sha"] != services[1]["config_sha"] == retagged[1]["config_sha"]
    # without compose's output (check mode on a host without Docker): the file as written
    assert [s["name"] for s in app_deploy_compose_services("", COMPOSE, text=COMPOSE_TEXT)] == ["web", "worker"]


def test_a_compose_release_carries_its_shared_volumes_into_a_rollback():
    wanted = {"app": "shop", "version": "v1", "volumes": {"media": "shop_media"},
              "services": [{"name": "web", "image_id": "sha256:1", "port": 8000, "config_sha": "c1"}]}
    first = app_deploy_plan(wanted, None)
    assert first["release"]["volumes"] == {"media": "shop_media"}
    history = app_deploy_record(None, first["release"], "live")["history"]
    second = app_deploy_plan({**wanted, "version": "v2", "services": [{**wanted["services"][0], "config_sha": "c2"}]},
                             history, running=["shop-web-blue"])
    assert second["action"] == "deploy" and second["reason"] == "v1 -> v2"
    history = app_deploy_record(history, second["release"], "live")["history"]
    back = app_deploy_plan(wanted, history, rollback=True, running=["shop-web-green"])
    assert back["action"] == "rollback" and back["release"]["volumes"] == {"media": "shop_media"}


def test_redact():
    assert app_deploy_redact("bad value pg://s3cret for x and s3cret", {"A": "pg://s3cret", "B": "s3cret", "C": ""}) \
        == "bad value *** for x and ***"
