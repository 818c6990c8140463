"""validate_in_copy builds `validate:` commands; run them here for real with stand-in validators."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.anvil.hetzner.plugins.filter.validate_in_copy import validate_in_copy


def run(validate: str, new_file: Path) -> int:
    # what the template module does: replace %s with the temporary file and run the command
    return subprocess.run(validate.replace("%s", str(new_file)), shell=True, check=False, timeout=30).returncode


def test_new_file_is_checked_beside_a_copy_of_the_tree(tmp_path):
    tree = tmp_path / "etc"
    (tree / "jail.d").mkdir(parents=True)
    (tree / "jail.conf").write_text("[DEFAULT]\n")
    new = tmp_path / "new"
    new.write_text("[sshd]\nenabled = true\n")
    command = "test -f {dir}/jail.conf && grep -q enabled {dir}/jail.d/anvil.local"
    assert run(validate_in_copy(command, "jail.d/anvil.local", tree=str(tree)), new) == 0
    new.write_text("broken\n")
    assert run(validate_in_copy(command, "jail.d/anvil.local", tree=str(tree)), new) == 1
    # the live tree is untouched and no temporary directory is left behind
    assert sorted(p.name for p in tree.rglob("*")) == ["jail.conf", "jail.d"]


def test_exit_status_of_the_command_is_kept_and_the_copy_removed(tmp_path):
    new = tmp_path / "Caddyfile"
    new.write_text("x")
    marker = tmp_path / "dir-was"
    validate = validate_in_copy(f"echo {{dir}} > {marker} && (exit 3)", "Caddyfile")
    assert run(validate, new) == 3
    assert not Path(marker.read_text().strip()).exists()


def test_the_copy_is_outside_a_private_tmpdir(tmp_path, monkeypatch):
    """libpam-tmpdir (anvil.hetzner.base) gives root TMPDIR=/tmp/user/0, mode 0700: a copy made there
    could not be read by the user it is handed to (caddy). The copy goes to /tmp itself."""
    private = tmp_path / "user-0"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(private))
    new = tmp_path / "Caddyfile"
    new.write_text("x")
    marker = tmp_path / "dir-was"
    assert run(validate_in_copy(f"echo {{dir}} > {marker}", "Caddyfile"), new) == 0
    made = marker.read_text().strip()
    assert made.startswith("/tmp/anvil-validate.") and not made.startswith(str(private))


@pytest.mark.parametrize(("args", "kwargs"), [(("true", "f"), {}), (("x {dir}", "/abs"), {}),
                                              (("x {dir}", "../up"), {}), (("x {dir}", "f"), {"tree": "rel"}),
                                              (("x {dir}", "f"), {"owner": "a;b"})])
def test_bad_arguments(args, kwargs):
    with pytest.raises(AnsibleFilterError):
        validate_in_copy(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# file_differs: the guard that lets a no-change run skip a write.
from ansible_collections.anvil.hetzner.plugins.filter.file_differs import file_differs  # noqa: E402


def test_file_differs_compares_content_mode_and_owner():
    import hashlib
    entry = {"exists": True, "isdir": False, "mode": "0644", "owner": "root", "group": "root",
             "sha1": hashlib.sha1(b"a = 1\n").hexdigest()}
    assert file_differs(entry, "a = 1\n", "0644") is False
    assert file_differs(entry, "a = 2\n", "0644") is True
    assert file_differs(entry, "a = 1\n", "0600") is True
    assert file_differs(entry, "a = 1\n", "644") is False
    assert file_differs({**entry, "owner": "deploy"}, "a = 1\n", "0644") is True
    assert file_differs(entry, "a = 1\n", "0644", owner="deploy", group="deploy") is True
    assert file_differs({"exists": False}, "", "0644") is True
    assert file_differs(None, "x", "0644") is True
