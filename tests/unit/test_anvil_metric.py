"""anvil-metric, the helper of the textfile contract (roles/node_exporter/templates/anvil-metric.j2),
rendered and run for real against a temporary directory: atomic writes, one sample or a whole file,
refusals that write nothing, no temporary file ever named *.prom, and concurrent writers of one file
that lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles" / "node_exporter" / "templates" / "anvil-metric.j2"


@pytest.fixture(scope="module")
def helper(tmp_path_factory) -> Path:
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    text = env.from_string(TEMPLATE.read_text()).render(node_exporter_textfile_dir="/nonexistent", ansible_managed="test")
    path = tmp_path_factory.mktemp("bin") / "anvil-metric"
    path.write_text(text)
    return path


@pytest.fixture()
def run(helper, tmp_path):
    def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(helper), *args], input=stdin, capture_output=True, text=True,
                              env={**os.environ, "ANVIL_TEXTFILE_DIR": str(tmp_path)}, timeout=30, check=False)
    return _run


def prom(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.prom").read_text()


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))


def test_set_one_sample_keeps_the_others(run, tmp_path):
    assert run("backup_main", "anvil_backup_last_run_success", "1", "backup=main").returncode == 0
    assert run("backup_main", "anvil_backup_size_bytes", "1.5e9", "backup=main").returncode == 0
    assert run("backup_main", "anvil_backup_last_run_success", "0", "backup=main").returncode == 0
    assert prom(tmp_path, "backup_main") == ('anvil_backup_size_bytes{backup="main"} 1.5e9\n'
                                             'anvil_backup_last_run_success{backup="main"} 0\n')
    assert (tmp_path / "backup_main.prom").stat().st_mode & 0o777 == 0o644
    assert leftovers(tmp_path) == ["backup_main.prom"]


def test_labels_are_sorted_and_escaped(run, tmp_path):
    assert run("x", "anvil_info", "1", "z=last", 'a=say "hi"\\now', "m=two\nlines").returncode == 0
    assert prom(tmp_path, "x") == 'anvil_info{a="say \\"hi\\"\\\\now",m="two\\nlines",z="last"} 1\n'
    # the same series given with labels in another order replaces it
    assert run("x", "anvil_info", "2", "m=two\nlines", "z=last", 'a=say "hi"\\now').returncode == 0
    assert prom(tmp_path, "x").count("anvil_info") == 1 and prom(tmp_path, "x").endswith("} 2\n")


def test_max_age_declares_freshness(run, tmp_path):
    assert run("--max-age", "90000", "deploy_shop", "anvil_deploy_last_run_success", "1", "app=shop").returncode == 0
    assert run("--max-age", "3600", "deploy_shop", "anvil_deploy_last_run_success", "1", "app=shop").returncode == 0
    text = prom(tmp_path, "deploy_shop")
    assert text.count("anvil_textfile_max_age_seconds") == 1
    assert 'anvil_textfile_max_age_seconds{textfile="deploy_shop"} 3600' in text


def test_replace_takes_a_whole_file_or_nothing(run, tmp_path):
    good = "# HELP anvil_a A.\n# TYPE anvil_a gauge\nanvil_a 1\nanvil_b{x=\"1\"} 2 1700000000000\n\n"
    assert run("--replace", "--max-age", "600", "f", stdin=good).returncode == 0
    before = prom(tmp_path, "f")
    assert 'anvil_b{x="1"} 2' in before and 'anvil_textfile_max_age_seconds{textfile="f"} 600' in before
    for bad in ("anvil_a 1\nthis is not a sample\n", "anvil_a 1\nanvil_a 2\n", "anvil_a one\n",
                'anvil_a{x="1",x="2"} 1\n', 'anvil_a{__name__="x"} 1\n', "# TYPE\n", 'anvil_a{x="unterminated} 1\n',
                "anvil_a 1_000\n"):
        result = run("--replace", "f", stdin=bad)
        assert result.returncode == 2 and "nothing was written" in result.stderr, (bad, result)
        assert prom(tmp_path, "f") == before, bad
    assert leftovers(tmp_path) == ["f.prom"]


@pytest.mark.parametrize("args", [
    ("../escape", "anvil_a", "1"), ("Upper", "anvil_a", "1"), ("x.prom", "anvil_a", "1"), ("", "anvil_a", "1"),
    ("n", "bad-metric", "1"), ("n", "anvil_a", "NaNa"), ("n", "anvil_a", "1,5"), ("n", "anvil_a", "inf"),
    ("n", "anvil_a", "1", "novalue"), ("n", "anvil_a", "1", "__reserved=x"), ("n", "anvil_a", "1", "a=1", "a=2"),
    ("n", "anvil_a", "1", "bad-label=x"), ("n", "anvil_a"), ("--max-age", "0", "n", "anvil_a", "1"),
    ("--replace", "n", "anvil_a", "1"), ("--remove", "n", "anvil_a"),
])
def test_bad_input_writes_nothing(run, tmp_path, args):
    result = run(*args)
    assert result.returncode == 2, result
    assert leftovers(tmp_path) == []


def test_special_values(run, tmp_path):
    for value in ("NaN", "+Inf", "-Inf", "-3", ".5", "7e-3"):
        assert run("v", "anvil_v", value).returncode == 0, value
    assert prom(tmp_path, "v") == "anvil_v 7e-3\n"


def test_remove(run, tmp_path):
    run("gone", "anvil_a", "1")
    assert run("--remove", "gone").returncode == 0 and leftovers(tmp_path) == []
    assert run("--remove", "gone").returncode == 0  # removing twice is fine


def test_a_missing_directory_is_reported(helper, tmp_path):
    result = subprocess.run([sys.executable, str(helper), "x", "anvil_a", "1"], capture_output=True, text=True,
                            env={**os.environ, "ANVIL_TEXTFILE_DIR": str(tmp_path / "absent")}, check=False)
    assert result.returncode == 2 and "is not a directory" in result.stderr


def test_concurrent_writers_of_one_file_lose_nothing(run, tmp_path):
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: run("busy", f"anvil_writer_{i}", str(i)), range(40)))
    assert all(r.returncode == 0 for r in results)
    lines = prom(tmp_path, "busy").splitlines()
    assert sorted(lines) == sorted(f"anvil_writer_{i} {i}" for i in range(40))
    assert leftovers(tmp_path) == ["busy.prom"]
