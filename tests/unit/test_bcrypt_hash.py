"""Reproducible bcrypt (filters anvil.hetzner.bcrypt_hash and caddy_basic_auth_hashes)."""

from __future__ import annotations


import bcrypt
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.anvil.hetzner.plugins.filter.bcrypt_hash import FilterModule, bcrypt_hash
from ansible_collections.anvil.hetzner.plugins.filter.caddy_errors import caddy_basic_auth_hashes


def test_same_password_same_hash_and_it_verifies():
    first = bcrypt_hash("correct horse", ["anvil-caddy", "app", "ops"], cost=4)
    assert first == bcrypt_hash("correct horse", ["anvil-caddy", "app", "ops"], cost=4)
    assert first.startswith("$2b$04$") and len(first) == 60
    assert bcrypt.checkpw(b"correct horse", first.encode())
    assert not bcrypt.checkpw(b"wrong", first.encode())
    assert "bcrypt_hash" in FilterModule().filters()


def test_context_and_password_change_the_hash():
    base = bcrypt_hash("correct horse", ["a", "b"], cost=4)
    assert base != bcrypt_hash("correct horse", ["a", "c"], cost=4)
    assert base != bcrypt_hash("correct horsf", ["a", "b"], cost=4)


def test_caddy_hashes_are_the_ones_earlier_releases_wrote():
    # the salt the inline script used: sha256('anvil-caddy' NUL site NUL user NUL password)
    hashes = caddy_basic_auth_hashes([{"name": "app", "domains": ["a.test"],
                                       "basic_auth": [{"username": "ops", "password": "s3cret-pass"}]},
                                      {"domains": ["b.test"], "basic_auth": [{"username": "ops", "password": "s3cret-pass"}]}])
    assert set(hashes) == {"app/ops", "b.test/ops"}
    assert hashes["app/ops"] != hashes["b.test/ops"]
    assert hashes["app/ops"] == bcrypt_hash("s3cret-pass", ["anvil-caddy", "app", "ops"])


@pytest.mark.parametrize(("password", "context", "cost", "message"),
                         [("", ["a"], 4, "password must be a non-empty string"),
                          (None, ["a"], 4, "password must be a non-empty string"),
                          ("s3cret-" * 11, ["a"], 4, "only the first 72 bytes"),
                          ("s3cret-pw", "a", 4, "context must be a list of strings"),
                          ("s3cret-pw", ["a"], 3, "cost must be from 4 to 31")])
def test_bad_arguments_fail_without_printing_the_password(password, context, cost, message):
    with pytest.raises(AnsibleFilterError, match=message) as err:
        bcrypt_hash(password, context, cost)
    assert "s3cret" not in str(err.value)


@pytest.mark.usefixtures("no_bcrypt")
def test_missing_library_fails_clearly():
    with pytest.raises(AnsibleFilterError, match="bcrypt Python library is missing on the controller"):
        bcrypt_hash("correct horse", ["a"], cost=4)
