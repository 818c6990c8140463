"""The filters a role's writing loop uses to skip what host_probe found in place (file_differs.py):
files_to_write, dirs_to_make, services_to_change. Each field that differs (content, mode, owner,
group; directory or not; enabled, active) keeps its item, and so does anything not probed."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.anvil.hetzner.plugins.filter.file_differs import dirs_to_make, files_to_write, services_to_change


def entry(content: str = "x\n", mode: str = "0644", owner: str = "root", group: str = "root", isdir: bool = False) -> dict:
    return {"exists": True, "isdir": isdir, "mode": mode, "owner": owner, "group": group,
            "sha1": "" if isdir else hashlib.sha1(content.encode()).hexdigest()}


ITEMS = [{"src": "a.j2", "dest": "/a", "mode": "0644"}, {"src": "b.j2", "dest": "/b", "mode": "0700"}]


def test_files_in_place_are_dropped_and_every_difference_keeps_its_item():
    same = {"/a": entry("A\n"), "/b": entry("B\n", "0700")}
    assert files_to_write(ITEMS, same, ["A\n", "B\n"]) == []
    for changed in ({"/a": entry("A changed\n")}, {"/a": entry("A\n", "0600")}, {"/a": entry("A\n", owner="deploy")},
                    {"/a": entry("A\n", group="adm")}, {"/a": {"exists": False, "sha1": ""}}, {"/a": None}):
        files = {**same, **changed}
        assert files_to_write(ITEMS, files, ["A\n", "B\n"]) == [ITEMS[0]], changed
    # not probed at all: written
    assert files_to_write(ITEMS, {}, ["A\n", "B\n"]) == ITEMS
    assert files_to_write(ITEMS, None, ["A\n", "B\n"]) == ITEMS
    # an item's own owner and group
    item = {"dest": "/c", "mode": "0640", "owner": "caddy", "group": "caddy"}
    assert files_to_write([item], {"/c": entry("C", "0640", "caddy", "caddy")}, ["C"]) == []


def test_contents_must_match_the_items():
    with pytest.raises(ValueError, match="2 items but 1 contents"):
        files_to_write(ITEMS, {}, ["A\n"])


def test_directories():
    dirs = [{"path": "/etc/anvil", "mode": "0755"}, {"path": "/var/backups/postgres", "mode": "0700"}]
    ok = {"/etc/anvil": entry(isdir=True, mode="0755"), "/var/backups/postgres": entry(isdir=True, mode="0700")}
    assert dirs_to_make(dirs, ok) == []
    for changed in ({"/etc/anvil": entry(isdir=True, mode="0775")}, {"/etc/anvil": entry(isdir=False, mode="0755")},
                    {"/etc/anvil": entry(isdir=True, mode="0755", owner="nobody")},
                    {"/etc/anvil": {"exists": False, "isdir": False, "mode": "", "owner": "", "group": ""}}):
        assert dirs_to_make(dirs, {**ok, **changed}) == [dirs[0]], changed
    assert dirs_to_make(dirs, {}) == dirs
    # a mode given without its leading zero
    assert dirs_to_make([{"path": "/etc/anvil", "mode": "755"}], ok) == []


@pytest.mark.parametrize(("on", "enabled", "active", "kept"), [
    (True, True, True, False), (True, True, False, True), (True, False, True, True), (True, False, False, True),
    (False, False, False, False), (False, True, False, True), (False, False, True, True),
    ("True", True, True, False), ("false", False, False, False),
])
def test_services(on, enabled, active, kept):
    item = {"name": "anvil-pg-backup.timer", "on": on}
    services = {"anvil-pg-backup.timer": {"enabled": enabled, "active": active}}
    assert services_to_change([item], services) == ([item] if kept else [])


def test_a_service_not_probed_is_kept():
    assert services_to_change([{"name": "x.timer", "on": False}], {}) == [{"name": "x.timer", "on": False}]


def test_dir_in_place():
    from ansible_collections.anvil.hetzner.plugins.test.dir_in_place import dir_in_place  # pylint: disable=import-outside-toplevel
    log_dir = entry(isdir=True, mode="0750", owner="caddy", group="caddy")
    assert dir_in_place(log_dir, "0750", "caddy", "caddy")
    assert not dir_in_place(log_dir, "0750")  # root wanted
    assert not dir_in_place(log_dir, "0755", "caddy", "caddy")
    assert not dir_in_place(entry(isdir=False, mode="0750", owner="caddy", group="caddy"), "0750", "caddy", "caddy")
    assert not dir_in_place(None, "0755")
    assert dir_in_place(entry(isdir=True, mode="0755"), "755")
