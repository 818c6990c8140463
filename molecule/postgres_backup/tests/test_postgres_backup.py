"""Behaviour of hosts after anvil.hetzner.postgres_backup: backups through the unit,
encrypted locally and offsite, restorable with the operator's identity, drilled."""

from __future__ import annotations

import json
import os

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("targets")

BACKUPS = "/var/backups/postgres"
METRICS = "/var/lib/prometheus/node-exporter/backup_main.prom"


@pytest.fixture(scope="module")
def storagebox():
    return RUNNER.get_host("postgres-backup-storagebox")


def psql(host, db: str, sql: str) -> str:
    """SQL where the host's PostgreSQL is: the container pg on Debian 12 (source docker), else the host."""
    prefix = "docker exec -u postgres pg" if host.file("/usr/bin/docker").exists else "runuser -u postgres --"
    return host.check_output(f"{prefix} psql -X -At -d {db} -c \"{sql}\"")


def has_node_exporter(host) -> bool:
    """Debian 13 runs postgres_backup without node_exporter (molecule.yml): no metrics there."""
    return host.file("/usr/local/bin/anvil-metric").exists


def latest(host) -> str:
    return host.check_output(f"ls {BACKUPS} | grep -E '^[0-9]{{8}}T[0-9]{{6}}Z$' | tail -1")


def test_a_backup_through_the_unit_is_verified_and_encrypted(host):
    host.check_output("systemctl start anvil-pg-backup.service")
    stamp = latest(host)
    manifest = json.loads(host.file(f"{BACKUPS}/{stamp}/MANIFEST.json").content_string)
    assert manifest["verified"] is True and {"shop.dump.age", "globals.sql.age"} <= set(manifest["files"])
    for name, entry in manifest["files"].items():
        path = f"{BACKUPS}/{stamp}/{name}"
        assert host.check_output(f"sha256sum {path} | cut -c1-64") == entry["sha256"]
        assert host.file(path).mode == 0o600
    # no plaintext table data (the rows are 'secret-item-N') in any local file
    assert host.run(f"grep -rl secret-item {BACKUPS}").rc == 1
    assert host.file(BACKUPS).mode == 0o700


def test_the_offsite_copy_is_encrypted_and_complete(host, storagebox):
    stamp = latest(host)
    account = "u" + host.ansible("setup", "filter=ansible_distribution_major_version")["ansible_facts"][
        "ansible_distribution_major_version"]
    remote = f"/home/{account}/backups/{stamp}"
    assert storagebox.file(f"{remote}/MANIFEST.json").exists
    assert storagebox.file(f"{remote}/shop.dump.age").content == host.file(f"{BACKUPS}/{stamp}/shop.dump.age").content
    assert storagebox.run(f"grep -rl secret-item /home/{account}").rc == 1
    assert not storagebox.run(f"ls -a /home/{account}/backups").stdout.count(".partial")


def test_the_operator_restores_it_and_counts_match(host):
    psql(host, "postgres", "DROP DATABASE IF EXISTS verify_restore")
    host.check_output("anvil-pg-restore --identity /root/operator.agekey shop verify_restore")
    query = "SELECT count(*), sum(qty), md5(string_agg(item, ',' ORDER BY id)) FROM orders"
    assert psql(host, "verify_restore", query) == psql(host, "shop", query)
    # a database with tables is not overwritten without --force
    refused = host.run("anvil-pg-restore --identity /root/operator.agekey shop verify_restore")
    assert refused.rc == 3 and "refusing to overwrite" in refused.stderr
    psql(host, "postgres", "DROP DATABASE verify_restore")


def test_the_operator_restores_a_named_backup_from_the_storage_box(host, storagebox):
    stamp = latest(host)
    psql(host, "postgres", "DROP DATABASE IF EXISTS verify_offsite")
    out = host.check_output(f"anvil-pg-restore --offsite --backup {stamp} --identity /root/operator.agekey "
                            "shop verify_offsite")
    assert out == f"anvil-pg-restore: shop from {stamp} restored into verify_offsite"
    query = "SELECT count(*), md5(string_agg(item, ',' ORDER BY id)) FROM orders"
    assert psql(host, "verify_offsite", query) == psql(host, "shop", query)
    psql(host, "postgres", "DROP DATABASE verify_offsite")
    # the temporary copy is gone, and a backup that is not there is an error, not an empty database
    assert host.run("ls /var/tmp | grep anvil-pg-restore").rc == 1
    missing = host.run("anvil-pg-restore --offsite --backup 20200101T000000Z --identity /root/operator.agekey "
                       "shop verify_offsite")
    assert missing.rc == 1 and "no backup of shop" in missing.stderr
    assert "verify_offsite" not in psql(host, "postgres", "SELECT string_agg(datname, ',') FROM pg_database")


def test_the_drill_restores_and_compares(host):
    host.check_output("systemctl start anvil-pg-backup.service && systemctl start anvil-pg-drill.service")
    run = host.check_output("systemctl show -p InvocationID --value anvil-pg-drill.service")
    log = host.check_output(f"journalctl _SYSTEMD_INVOCATION_ID={run} -o cat --no-pager")
    manifest = json.loads(host.file(f"{BACKUPS}/{latest(host)}/MANIFEST.json").content_string)
    dumps = sorted(name[:-len(".dump.age")] for name in manifest["files"] if name.endswith(".dump.age"))
    # every database of the backup drilled (Debian 12: postgres and shop), each matching
    drilled = sorted(line.split()[1] for line in log.splitlines()
                     if line.startswith("pg-drill: ") and line.endswith("counts and checksums match"))
    assert drilled == dumps and "shop" in dumps, log
    if has_node_exporter(host):
        assert 'anvil_backup_restore_drill_success{backup="main"} 1' in host.file(METRICS).content_string
    assert "anvil_drill_" not in psql(host, "postgres", "SELECT string_agg(datname, ',') FROM pg_database")


def test_metrics_follow_the_contract(host):
    if not has_node_exporter(host):
        pytest.skip("Debian 13 runs without node_exporter (test_it_works_without_node_exporter)")
    text = host.file(METRICS).content_string
    for metric in ("anvil_backup_last_run_success", "anvil_backup_last_success_timestamp_seconds",
                   "anvil_backup_max_age_seconds", "anvil_backup_size_bytes", "anvil_backup_verified",
                   "anvil_backup_offsite_success", "anvil_backup_duration_seconds", "anvil_backup_local_damaged"):
        assert f'{metric}{{backup="main"}}' in text, metric
    assert 'anvil_textfile_max_age_seconds{textfile="backup_main"}' in text


def test_the_container_source_dumps_with_the_containers_own_tools(host):
    if not host.file("/usr/bin/docker").exists:
        pytest.skip("Debian 13 backs up the host's PostgreSQL")
    assert not host.service("postgresql").is_running  # only the container can have answered
    manifest = json.loads(host.file(f"{BACKUPS}/{latest(host)}/MANIFEST.json").content_string)
    assert manifest["source"] == "docker" and "shop.dump.age" in manifest["files"]


def test_databases_and_globals_as_configured(host):
    manifest = json.loads(host.file(f"{BACKUPS}/{latest(host)}/MANIFEST.json").content_string)
    docker = host.file("/usr/bin/docker").exists
    # Debian 13 lists [shop]; Debian 12 takes every database (postgres and shop)
    databases = ["postgres", "shop"] if docker else ["shop"]
    expected = {"globals.sql.age"} | {f"{db}.dump{part}.age" for db in databases for part in ("", ".fingerprint")}
    assert set(manifest["files"]) == expected
    globals_sql = host.check_output(f"age -d -i /root/operator.agekey {BACKUPS}/{latest(host)}/globals.sql.age")
    assert "CREATE ROLE reporting" in globals_sql
    # role passwords only where asked (Debian 13)
    assert ("SCRAM-SHA-256$" in globals_sql) == (not docker)


def test_timers_are_scheduled(host):
    for timer in ("anvil-pg-backup.timer", "anvil-pg-drill.timer"):
        assert host.service(timer).is_enabled and host.service(timer).is_running
    unit = host.file("/etc/systemd/system/anvil-pg-backup.timer").content_string
    assert "Persistent=true" in unit and "RandomizedDelaySec=15m" in unit


def test_it_works_without_node_exporter(host):
    """The README names node_exporter optional: without it, a backup and a drill succeed, no metric is written."""
    if host.ansible.get_variables()["inventory_hostname"] not in RUNNER.get_hosts("no_node_exporter"):
        pytest.skip("Debian 12 runs with node_exporter")
    assert not host.file("/usr/local/bin/anvil-metric").exists and not host.file(METRICS).exists
    host.check_output("systemctl start anvil-pg-backup.service && systemctl start anvil-pg-drill.service")
    for unit in ("anvil-pg-backup.service", "anvil-pg-drill.service"):
        assert host.check_output(f"systemctl show -p Result --value {unit}") == "success"


def test_the_host_keys_are_pinned_as_ssh_keyscan_printed_them(host):
    lines = host.file("/etc/anvil/postgres_backup_known_hosts").content_string.splitlines()
    # every key type the box offers (converge fed the whole ssh-keyscan output, comments included)
    assert len(lines) >= 2 and all(line.startswith("[172.30.79.20]:23 ") and len(line.split()) == 3 for line in lines)
    assert len({line.split()[1] for line in lines}) == len(lines)
    # and the scripts' own SSH (StrictHostKeyChecking=yes) gets through with them
    host.check_output(". /etc/anvil/postgres_backup.conf; . /usr/local/lib/anvil/pg-common.sh; d=$(mktemp -d); "
                      "offsite_listing $d && ls $d | grep -qE '^[0-9]{8}T[0-9]{6}Z$'; rc=$?; rm -rf $d; exit $rc")


def test_the_units_are_bounded_in_time(host):
    for unit in ("anvil-pg-backup.service", "anvil-pg-drill.service"):
        assert host.check_output(f"systemctl show -p TimeoutStartUSec --value {unit}") == "5min"
    conf = host.file("/etc/anvil/postgres_backup.conf").content_string
    assert "NETWORK_TIMEOUT=5\n" in conf and "OFFSITE_TIMEOUT=60\n" in conf
