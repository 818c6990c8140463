"""app_deploy's accessories: the input check (names apart from the services and the release
containers, never published, images, environment, volumes, health check; never a secret in a
message) and what a run does with each one (create, keep, recreate only when its own description
changed, start again, remove what is no longer described), as the tasks get it from the filter."""

from __future__ import annotations

import json

import pytest
from ansible_collections.anvil.hetzner.plugins.filter.app_deploy_errors import (
    ACCESSORY_PARTS, app_deploy_accessories_plan, app_deploy_compose_services, app_deploy_errors, app_deploy_redact)

HOST = {"distribution": "Debian", "major": "12", "version": "12.8", "caddy_sites_dir": True, "ports_taken": [22, 80, 443]}
WEB = {"name": "web", "image": "registry.example.com/shop/web", "tag": "v1", "port": 8000}
WORKER = {"name": "worker", "image": "registry.example.com/shop/web", "tag": "v1", "command": ["rq", "worker"]}
SECRET = "s3cret-pg-password"
POSTGRES = {"name": "postgres", "image": "postgres", "tag": "16", "environment": {"POSTGRES_PASSWORD": SECRET},
            "volumes": ["data:/var/lib/postgresql/data", "/etc/shop/pg:/etc/pg:ro"],
            "health": {"test": ["CMD", "pg_isready", "-U", "postgres"], "interval": 2, "retries": 15}}
REDIS = {"name": "redis", "image": "redis", "digest": "sha256:" + "c" * 64, "command": ["redis-server", "--appendonly", "yes"]}


def errors(accessories, services=None, **variables):
    base = {"app_deploy_name": "shop", "app_deploy_services": services or [WEB, WORKER],
            "app_deploy_domains": ["shop.example.com"], "app_deploy_health": {"path": "/health"},
            "app_deploy_accessories": accessories}
    return app_deploy_errors({**base, **variables}, host=HOST)


def names(errs):
    return [e.split(":")[0] for e in errs]


def test_valid_accessories_pass():
    assert errors([]) == []
    assert errors([POSTGRES, REDIS]) == []
    # a health check as a string, timings as the strings -e gives, a name with digits and dashes
    health = {"test": "pg_isready -U postgres", "interval": "3", "start_period": 0}
    assert errors([{**POSTGRES, "name": "pg-16", "health": health}]) == []


@pytest.mark.parametrize("accessory, where, says", [
    ({**POSTGRES, "ports": ["5432:5432"]}, "app_deploy_accessories[0] (postgres).ports", "never published"),
    ({**POSTGRES, "ports": []}, "app_deploy_accessories[0] (postgres).ports", "never published"),
    ({**POSTGRES, "restart": "always"}, "app_deploy_accessories[0] (postgres)", "unknown keys ['restart']"),
    ({**POSTGRES, "name": "Postgres"}, "app_deploy_accessories[0].name", "lower-case"),
    ({**POSTGRES, "name": "pg-"}, "app_deploy_accessories[0].name", "lower-case"),
    ({**POSTGRES, "name": "web"}, "app_deploy_accessories[0] (web).name", "also a service"),
    ({**POSTGRES, "name": "web-blue"}, "app_deploy_accessories[0] (web-blue).name", "of the service 'web'"),
    ({**POSTGRES, "name": "cache-green"}, "app_deploy_accessories[0] (cache-green).name", "release container"),
    ({**POSTGRES, "name": "migrate-3"}, "app_deploy_accessories[0] (migrate-3).name", "migration containers"),
    ({k: v for k, v in POSTGRES.items() if k != "tag"}, "app_deploy_accessories[0] (postgres)", "exactly one of tag or digest"),
    ({**POSTGRES, "digest": "sha256:" + "a" * 64}, "app_deploy_accessories[0] (postgres)", "exactly one of tag or digest"),
    ({**POSTGRES, "image": "postgres:16"}, "app_deploy_accessories[0] (postgres).image", "without tag"),
    ({**POSTGRES, "command": {"a": 1}}, "app_deploy_accessories[0] (postgres).command", "string or a list"),
    ({**POSTGRES, "environment": {"BAD-NAME": "x"}}, "app_deploy_accessories[0] (postgres).environment", "not a variable"),
    ({**POSTGRES, "environment": ["A=1"]}, "app_deploy_accessories[0] (postgres).environment", "mapping"),
    ({**POSTGRES, "volumes": "data:/data"}, "app_deploy_accessories[0] (postgres).volumes", "must be a list"),
    ({**POSTGRES, "volumes": ["../data:/data"]}, "app_deploy_accessories[0] (postgres).volumes[0]", "name:/path"),
    ({**POSTGRES, "health": "pg_isready"}, "app_deploy_accessories[0] (postgres).health", "mapping with test"),
    ({**POSTGRES, "health": {"test": ["pg_isready"]}}, "app_deploy_accessories[0] (postgres).health.test", "[CMD"),
    ({**POSTGRES, "health": {"test": ["CMD"]}}, "app_deploy_accessories[0] (postgres).health.test", "[CMD"),
    ({**POSTGRES, "health": {"interval": 5}}, "app_deploy_accessories[0] (postgres).health.test", "needs a command"),
    ({**POSTGRES, "health": {"test": "a\nb"}}, "app_deploy_accessories[0] (postgres).health.test", "one-line"),
    ({**POSTGRES, "health": {"test": "x", "interval": 0}}, "app_deploy_accessories[0] (postgres).health.interval", "1 to 3600"),
    ({**POSTGRES, "health": {"test": "x", "retries": "many"}}, "app_deploy_accessories[0] (postgres).health.retries", "1 to 100"),
    ({**POSTGRES, "health": {"test": "x", "start_period": -1}}, "app_deploy_accessories[0] (postgres).health.start_period",
     "0 to 3600"),
    ({**POSTGRES, "health": {"test": "x", "start_interval": 1}}, "app_deploy_accessories[0] (postgres).health", "unknown keys"),
])
def test_every_bad_accessory_is_named_with_the_reason(accessory, where, says):
    errs = errors([accessory])
    assert where in names(errs), errs
    assert says in [e for e in errs if e.split(":")[0] == where][0], errs


def test_accessories_must_be_a_list_with_unique_names():
    assert names(errors({"name": "postgres"})) == ["app_deploy_accessories"]
    assert names(errors([POSTGRES, {**REDIS, "name": "postgres"}])) == ["app_deploy_accessories"]
    assert "must be a mapping" in errors(["postgres:16"])[0]


def test_the_compose_files_services_count_as_services():
    text = "services:\n  web: {image: registry.example.com/shop/web:v1}\n  db: {image: postgres:16}\n"
    host = {**HOST, "major": "13", "compose_v2": True, "compose_readable": True, "compose_text": text}
    errs = app_deploy_errors({"app_deploy_name": "shop", "app_deploy_services": [], "app_deploy_domains": ["shop.example.com"],
                              "app_deploy_health": {"path": "/health"},
                              "app_deploy_compose": {"file": "/ci/compose.yml", "service": "web", "port": 8000},
                              "app_deploy_accessories": [{**POSTGRES, "name": "db"}, {**REDIS, "name": "web-green"}]},
                             host=host)
    assert names(errs) == ["app_deploy_accessories[0] (db).name", "app_deploy_accessories[1] (web-green).name"], errs


def test_secret_values_are_never_in_a_message():
    bad = {**POSTGRES, "name": "web", "ports": [5432], "image": "Bad:Image",
           "environment": {"POSTGRES_PASSWORD": SECRET + "\n", "bad name": SECRET, "NESTED": {"x": SECRET}},
           "health": {"test": ["pg_isready", SECRET], "interval": SECRET}}
    errs = errors([bad])
    assert len(errs) >= 6
    assert not [e for e in errs if SECRET in e], errs


# ------------------------------------------------------------------------------------------------
# What a run does with each accessory


def container(plan_entry, state="running", status="Up 2 hours (healthy)", **label_changes):
    """The container Docker would list for an accessory a run created from ``plan_entry``."""
    labels = {**plan_entry["labels"], **label_changes}
    return {"Names": [f"/{plan_entry['container']}"], "State": state, "Status": status, "Labels": labels,
            "Mounts": [{"Type": "volume", "Name": v.split(":")[0], "Destination": v.split(":")[1]}
                       for v in plan_entry["volumes"] if not v.startswith("/")]
            + [{"Type": "bind", "Source": "/etc/shop/pg", "Destination": "/etc/pg"}]}


def plan(accessories, containers=None):
    return app_deploy_accessories_plan(accessories, "shop", containers=containers or [])


def by_name(result):
    return {a["name"]: a for a in result["accessories"]}


def test_a_first_run_creates_each_accessory_with_the_apps_names():
    result = plan([POSTGRES, REDIS])
    pg, redis = by_name(result)["postgres"], by_name(result)["redis"]
    assert (pg["action"], pg["container"], pg["image"]) == ("create", "shop-postgres", "postgres:16")
    assert redis["image"] == "redis@sha256:" + "c" * 64
    # named volumes after the app and the accessory; host paths as given
    assert pg["volumes"] == ["shop-postgres-data:/var/lib/postgresql/data", "/etc/shop/pg:/etc/pg:ro"]
    assert pg["named_volumes"] == ["shop-postgres-data"] and redis["named_volumes"] == []
    # labelled as the app's accessory, never anvil.app (the release logic reads those)
    assert pg["labels"]["anvil.accessory"] == "shop" and pg["labels"]["anvil.accessory.name"] == "postgres"
    assert not [k for k in pg["labels"] if k.startswith("anvil.app")]
    assert sorted(k.rsplit(".", 1)[1] for k in pg["labels"] if ".sha." in k) == sorted(ACCESSORY_PARTS)
    # waits for the health check: start_period 0 + retries 15 x interval 2; the defaults fill the rest
    assert pg["wait"] and pg["wait_seconds"] == 30
    assert pg["health_timing"] == {"interval": 2, "timeout": 5, "retries": 15, "start_period": 0}
    assert not redis["wait"] and redis["wait_seconds"] == 0 and redis["health_timing"] is None
    assert result["remove"] == [] and result["refused"] == []


def test_the_plan_holds_no_secret():
    # the environment, the command and the health test may hold secrets: none of them is in the plan
    accessory = {**POSTGRES, "command": ["postgres", "-c", "password=" + SECRET],
                 "health": {"test": f"PGPASSWORD={SECRET} pg_isready"}}
    first = plan([accessory])
    again = plan([accessory], [container(first["accessories"][0])])
    for result in (first, again):
        assert SECRET not in json.dumps(result)


def test_an_unchanged_running_accessory_is_kept_whatever_its_tag_points_to():
    first = by_name(plan([POSTGRES]))["postgres"]
    # the same description: kept (no pull, no restart), no wait when Docker says it is healthy
    kept = by_name(plan([POSTGRES], [container(first)]))["postgres"]
    assert kept["action"] == "keep" and not kept["wait"]
    # kept but not healthy yet (a run that timed out before): the run waits again
    assert by_name(plan([POSTGRES], [container(first, status="Up 3 seconds (health: starting)")]))["postgres"]["wait"]
    # health values given as -e strings are the same description
    as_strings = {**POSTGRES, "health": {"test": POSTGRES["health"]["test"], "interval": "2", "retries": "15"}}
    assert by_name(plan([as_strings], [container(first)]))["postgres"]["action"] == "keep"


@pytest.mark.parametrize("change, says", [
    ({"tag": "17"}, "its image changed (postgres:16 -> postgres:17)"),
    ({"environment": {"POSTGRES_PASSWORD": SECRET + "-rotated"}}, "its environment changed"),
    ({"command": ["postgres", "-c", "max_connections=200"]}, "its command changed"),
    ({"volumes": ["pgdata:/var/lib/postgresql/data"]}, "its volumes changed"),
    ({"health": {"test": ["CMD", "pg_isready"], "interval": 2, "retries": 15}}, "its health changed"),
    ({"tag": "17", "environment": {}}, "its image changed (postgres:16 -> postgres:17), environment changed"),
])
def test_a_changed_description_recreates_the_accessory(change, says):
    first = by_name(plan([POSTGRES]))["postgres"]
    changed = by_name(plan([{**POSTGRES, **change}], [container(first)]))["postgres"]
    assert changed["action"] == "recreate" and changed["reason"] == says and changed["wait"]
    assert SECRET not in changed["reason"]


def test_a_stopped_accessory_is_started_again_and_a_foreign_container_is_refused():
    first = by_name(plan([POSTGRES]))["postgres"]
    started = by_name(plan([POSTGRES], [container(first, state="exited", status="Exited (0) 1 minute ago")]))["postgres"]
    assert started["action"] == "start" and "exited" in started["reason"] and started["wait"]
    # a container of that name that app_deploy did not make for this app (the user's own, another app's)
    foreign = {"Names": ["/shop-postgres"], "State": "running", "Labels": {"anvil.accessory": "shop-admin"}}
    result = plan([POSTGRES, REDIS], [foreign])
    assert [a["name"] for a in result["accessories"]] == ["redis"]
    assert len(result["refused"]) == 1 and "a container shop-postgres exists" in result["refused"][0]
    assert plan([POSTGRES], [{"Names": ["/shop-postgres"], "State": "running", "Labels": {}}])["refused"]


def test_an_accessory_no_longer_described_is_removed_and_its_volumes_named():
    first = by_name(plan([POSTGRES, REDIS]))
    containers = [container(first["postgres"]), container(first["redis"])]
    result = plan([REDIS], containers + [
        # the release containers and another app's accessory are never touched
        {"Names": ["/shop-web-blue"], "State": "running", "Labels": {"anvil.app": "shop", "anvil.service": "web"}},
        {"Names": ["/shop-admin-db"], "State": "running",
         "Labels": {"anvil.accessory": "shop-admin", "anvil.accessory.name": "db"}}])
    assert [a["action"] for a in result["accessories"]] == ["keep"]
    assert result["remove"] == [{"name": "postgres", "container": "shop-postgres", "volumes": ["shop-postgres-data"]}]
    # an empty list removes them all
    assert [r["container"] for r in plan([], containers)["remove"]] == ["shop-postgres", "shop-redis"]


def test_compose_services_carry_their_networks_for_the_override():
    config = json.dumps({"services": {
        "web": {"image": "r/web:v1", "networks": {"default": None}},
        "worker": {"image": "r/web:v1", "networks": {"front": None, "back": {"aliases": ["w"]}}},
        "sidecar": {"image": "r/side:v1", "network_mode": "service:web"},
        "plain": {"image": "r/plain:v1"}}})
    services = {s["name"]: s for s in app_deploy_compose_services(config, {"service": "web", "port": 8000})}
    assert services["web"]["networks"] == ["default"]
    assert services["worker"]["networks"] == ["back", "front"]
    assert services["sidecar"]["networks"] is None
    assert services["plain"]["networks"] == ["default"]
    # the file as written (no compose output): networks as a list
    text = "services:\n  web:\n    image: r/web:v1\n    networks: [front]\n"
    assert app_deploy_compose_services("", {"service": "web"}, text=text)[0]["networks"] == ["front"]


def test_redact_takes_the_accessories_environments():
    text = "FATAL: password authentication failed for s3cret-1 and tok-2"
    assert app_deploy_redact(text, [{"POSTGRES_PASSWORD": "s3cret-1"}, {"TOKEN": "tok-2"}, {}]) == \
        "FATAL: password authentication failed for *** and ***"
    # flags like "1" would shred a log line: only values of min_length characters or more
    assert app_deploy_redact("GET /health HTTP/1.1 500 tok-2", [{"FLAG": "1", "TOKEN": "tok-2"}], min_length=4) == \
        "GET /health HTTP/1.1 500 ***"
