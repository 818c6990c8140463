"""The postgres_backup role's input check: sources, names, the backup directory, retention,
recipients, remote and offsite settings; never a password in a message."""

from __future__ import annotations

import pytest
from ansible_collections.anvil.hetzner.plugins.filter.postgres_backup_errors import postgres_backup_errors

HOST = {"distribution": "Debian", "major": "12", "version": "12.8", "invalid_calendars": []}
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"  # age's README example
SSH_RECIPIENT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@laptop"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
BOX = {"host": "u123456.your-storagebox.de", "user": "u123456-sub1", "host_key": HOST_KEY}


def errors(**variables):
    return postgres_backup_errors({"postgres_backup_age_recipients": [RECIPIENT], **variables}, host=HOST)


def names(errs):
    return [e.split(":")[0] for e in errs]


def test_a_valid_setup_passes():
    assert errors() == []
    assert errors(postgres_backup_age_recipients=[RECIPIENT, SSH_RECIPIENT], postgres_backup_offsite=BOX,
                  postgres_backup_databases=["shop", "app_2"], postgres_backup_on_failure_webhook="https://hooks.example.com/x") == []


def test_recipients_are_public_keys():
    assert names(postgres_backup_errors({"postgres_backup_age_recipients": []}, host=HOST)) == ["postgres_backup_age_recipients"]
    errs = errors(postgres_backup_age_recipients=["AGE-SECRET-KEY-1QQQQ", "age1short"])
    assert names(errs) == ["postgres_backup_age_recipients[0]", "postgres_backup_age_recipients[1]"]
    assert "QQQQ" not in errs[0] and "looks like a private key" in errs[0]  # never echoed
    assert "age1short" not in errs[1]


def test_sources_need_their_settings():
    assert names(errors(postgres_backup_source="docker")) == ["postgres_backup_container"]
    assert errors(postgres_backup_source="docker", postgres_backup_container="db-1") == []
    errs = errors(postgres_backup_source="remote", postgres_backup_remote={"host": "db.internal", "user": "Bad User",
                                                                           "password": "", "port": 70000})
    assert names(errs) == ["postgres_backup_remote.user", "postgres_backup_remote.password", "postgres_backup_remote.port"]
    errs = errors(postgres_backup_source="remote", postgres_backup_remote={"host": "db.internal", "user": "backup",
                                                                           "password": "s3cret-value"})
    assert errs == []


def test_no_password_in_any_message():
    errs = errors(postgres_backup_source="remote", postgres_backup_remote={"host": "bad host", "user": "x y",
                                                                           "password": "s3cret-value"})
    assert errs and not [e for e in errs if "s3cret" in e]


@pytest.mark.parametrize("path", ["/", "/var", "/var/backups", "/tmp/b", "/var/tmp/b", "/run/b", "relative", ""])
def test_backup_dir_must_be_a_directory_of_its_own(path):
    assert names(errors(postgres_backup_dir=path)) == ["postgres_backup_dir"]


def test_retention_counts():
    assert names(errors(postgres_backup_keep_last=0)) == ["postgres_backup_keep_last"]
    assert names(errors(postgres_backup_keep_daily=-1)) == ["postgres_backup_keep_daily"]
    assert errors(postgres_backup_keep_daily=0, postgres_backup_keep_weekly=0, postgres_backup_keep_monthly=0,
                  postgres_backup_keep_last=1) == []


def test_calendars_the_host_refuses():
    errs = postgres_backup_errors({"postgres_backup_age_recipients": [RECIPIENT], "postgres_backup_calendar": "nightly"},
                                  host={**HOST, "invalid_calendars": ["nightly"]})
    assert names(errs) == ["postgres_backup_calendar"]


@pytest.mark.parametrize(("change", "field"), [
    ({"host_key": None}, "host_key"), ({"host_key": "ssh-ed25519"}, "host_key"),
    ({"host_key": HOST_KEY[:-4]}, "host_key"), ({"path": "../etc"}, "path"),
    ({"path": "a b"}, "path"), ({"user": ""}, "user"), ({"host": ""}, "host"), ({"port": 0}, "port")])
def test_offsite_settings(change, field):
    box = {k: v for k, v in {**BOX, **change}.items() if v is not None}
    assert names(errors(postgres_backup_offsite=box)) == [f"postgres_backup_offsite.{field}"]


def test_timeouts_are_ranged_and_ordered():
    ok = {"postgres_backup_network_timeout": 60, "postgres_backup_offsite_timeout": 3600, "postgres_backup_unit_timeout": 21600}
    assert errors(**ok) == []
    assert errors(**{k: str(v) for k, v in ok.items()}) == []  # as -e gives them
    assert names(errors(**{**ok, "postgres_backup_network_timeout": 0})) == ["postgres_backup_network_timeout"]
    assert names(errors(**{**ok, "postgres_backup_offsite_timeout": 30000})) == ["postgres_backup_offsite_timeout"]
    assert names(errors(**{**ok, "postgres_backup_network_timeout": 600, "postgres_backup_offsite_timeout": 300})) == \
        ["postgres_backup_offsite_timeout"]
    assert names(errors(**{**ok, "postgres_backup_unit_timeout": "six hours"})) == ["postgres_backup_unit_timeout"]
