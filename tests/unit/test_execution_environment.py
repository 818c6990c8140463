"""The execution environment (execution-environment.yml, docs/execution-environment.md).

``ansible-builder create`` makes its build context (no image is built here: no registry answers), and
the context holds everything the collection uses on the controller, each pinned to the version the
project tests: every collection named by FQCN in roles/ and playbooks/ or imported by plugins/, every
third-party Python module plugins/ imports, ansible-core and ansible-runner. The collection installed
from the context is file for file what ``ansible-galaxy collection build`` ships, and ansible-builder's
own introspection (the builder stage's script, run here on the installed collections) leaves no
Python package unpinned.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
EE_FILE = ROOT / "execution-environment.yml"
CONTROLLER_VENV = ROOT / ".venv-controller"

FQCN = r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_.]*[a-z0-9_]"
FQCN_KEY = re.compile(rf"^{FQCN}$")
# Jinja: `| ns.coll.filter`, `is [not] ns.coll.test`, lookup('ns.coll.x') / query(...) / q(...)
JINJA_USES = (
    re.compile(rf"\|\s*({FQCN})\b"),
    re.compile(rf"\bis\s+(?:not\s+)?({FQCN})\b"),
    re.compile(rf"\b(?:lookup|query|q)\(\s*[\"']({FQCN})[\"']"),
)
TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")
ROLE_TASKS = ("include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role")
IMPLICIT = {"ansible.builtin", "ansible.legacy"}
# a module that runs a program on the controller -> the system package that must be in bindep
CONTROLLER_PROGRAMS = {"ansible.posix.synchronize": "rsync"}


def collection_of(fqcn: str) -> str:
    return ".".join(fqcn.split(".")[:2])


# ---------------------------------------------------------------------------------------------
# What the collection uses (pure functions of a tree, so the self-test can feed them a made-up one)


def _task_uses(task: dict, where: str, found: dict[str, set[str]]) -> None:
    for key, value in task.items():
        if key in TASK_LISTS and isinstance(value, list):
            _walk_tasks(value, where, found)
        elif FQCN_KEY.match(str(key)):
            found.setdefault(collection_of(key), set()).add(f"{where}: {key}")
        if key == "module_defaults" and isinstance(value, dict):  # `group/ns.coll.all` or a module
            for name in value:
                if FQCN_KEY.match(str(name).removeprefix("group/")):
                    found.setdefault(collection_of(str(name).removeprefix("group/")), set()).add(f"{where}: {name}")
        if key in ROLE_TASKS and isinstance(value, dict) and FQCN_KEY.match(str(value.get("name", ""))):
            found.setdefault(collection_of(value["name"]), set()).add(f"{where}: role {value['name']}")


def _walk_tasks(tasks: list, where: str, found: dict[str, set[str]]) -> None:
    for task in tasks:
        if isinstance(task, dict):
            _task_uses(task, where, found)


def _walk_play(play: dict, where: str, found: dict[str, set[str]]) -> None:
    for role in play.get("roles") or []:
        name = role if isinstance(role, str) else (role.get("role") or role.get("name") or "")
        if FQCN_KEY.match(str(name)):
            found.setdefault(collection_of(name), set()).add(f"{where}: role {name}")
    for name in play.get("collections") or []:
        found.setdefault(str(name), set()).add(f"{where}: collections keyword")
    target = play.get("import_playbook") or play.get("ansible.builtin.import_playbook")
    if isinstance(target, str) and FQCN_KEY.match(target):
        found.setdefault(collection_of(target), set()).add(f"{where}: playbook {target}")
    _task_uses({k: v for k, v in play.items() if k in TASK_LISTS or k == "module_defaults"}, where, found)


def used_collections(root: Path) -> dict[str, set[str]]:
    """Collection -> where it is used: modules (task keys) of roles' tasks/handlers and of playbooks,
    roles and playbooks by FQCN, and Jinja filters, tests and lookups in any file under roles/ and
    playbooks/ (templates included)."""
    found: dict[str, set[str]] = {}
    for top in ("roles", "playbooks"):
        for path in sorted((root / top).rglob("*")):
            if not path.is_file():
                continue
            where = str(path.relative_to(root))
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for pattern in JINJA_USES:
                for fqcn in pattern.findall(text):
                    found.setdefault(collection_of(fqcn), set()).add(f"{where}: {fqcn}")
            if path.suffix not in (".yml", ".yaml"):
                continue
            data = yaml.safe_load(text)
            parts = path.relative_to(root).parts
            if top == "roles" and len(parts) > 2 and parts[2] in ("tasks", "handlers") and isinstance(data, list):
                _walk_tasks(data, where, found)
            elif top == "playbooks" and isinstance(data, list):
                for item in data:
                    if not isinstance(item, dict):
                        continue
                    if "hosts" in item or "import_playbook" in item or "ansible.builtin.import_playbook" in item:
                        _walk_play(item, where, found)
                    else:  # a task file under playbooks/tasks/
                        _task_uses(item, where, found)
    return found


def plugin_imports(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(collection -> files, third-party top-level module -> files) of every Python file under plugins/:
    imports of ansible_collections.<ns>.<name>, doc fragments by FQCN, and the other imports minus the
    standard library and ansible itself."""
    collections: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for path in sorted((root / "plugins").rglob("*.py")):
        where = str(path.relative_to(root))
        tree = ast.parse(path.read_text(), filename=where)
        names: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.append(node.module)
            elif (isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DOCUMENTATION" for t in node.targets)
                  and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                fragments = (yaml.safe_load(node.value.value) or {}).get("extends_documentation_fragment") or []
                for fragment in [fragments] if isinstance(fragments, str) else fragments:
                    if FQCN_KEY.match(fragment):
                        collections.setdefault(collection_of(fragment), set()).add(f"{where}: doc fragment {fragment}")
        for name in names:
            parts = name.split(".")
            if parts[0] == "ansible_collections" and len(parts) >= 3:
                collections.setdefault(f"{parts[1]}.{parts[2]}", set()).add(where)
            elif parts[0] not in sys.stdlib_module_names and parts[0] not in ("ansible", "ansible_collections", "__future__"):
                modules.setdefault(parts[0], set()).add(where)
    return collections, modules


@functools.cache
def checkout_uses() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(collection -> where, third-party module -> where) of this checkout, scanned once."""
    used = used_collections(ROOT)
    plugin_collections, modules = plugin_imports(ROOT)
    for name, where in plugin_collections.items():
        used.setdefault(name, set()).update(where)
    return used, modules


def distributions_of(modules: dict[str, set[str]]) -> dict[str, str]:
    """Top-level import name -> canonical distribution name, from what this venv has installed
    (e.g. yaml -> pyyaml). An import no installed distribution provides is an error of its own."""
    provided = importlib.metadata.packages_distributions()
    unknown = sorted(name for name in modules if name not in provided)
    assert not unknown, (
        f"plugins/ import {unknown} ({', '.join(sorted(set().union(*(modules[n] for n in unknown))))}), which no "
        "installed distribution provides: install the library, pin it in requirements-dev.txt and "
        "requirements-controller.txt, list it in meta/ee-requirements.txt and execution-environment.yml")
    return {name: canonicalize_name(provided[name][0]) for name in modules}


def missing_collections(used: dict[str, set[str]], listed: set[str]) -> dict[str, list[str]]:
    return {name: sorted(where) for name, where in sorted(used.items()) if name not in listed | IMPLICIT}


def missing_requirements(dists: dict[str, str], modules: dict[str, set[str]], pinned: dict[str, str]) -> dict[str, list[str]]:
    return {f"{module} ({dist})": sorted(modules[module]) for module, dist in sorted(dists.items()) if dist not in pinned}


# ---------------------------------------------------------------------------------------------
# Files


def pins_of(lines: list[str]) -> dict[str, str]:
    """canonical name -> exact version of `name==version` lines; anything else fails."""
    pins: dict[str, str] = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, f"not an exact pin: {line!r}"
        pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def requirement_file(path: Path) -> dict[str, str]:
    return pins_of(path.read_text().splitlines())


def names_of(path: Path) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")}


def clean_env() -> dict[str, str]:
    """This checkout's Ansible settings (its collections path holds the checkout) stay out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def controller_collections() -> Path:
    """ansible_collections of the tested provisioning controller (.venv-controller, built by
    `make test` before pytest from requirements-controller.txt)."""
    found = sorted(CONTROLLER_VENV.glob("lib/python3*/site-packages/ansible_collections"))
    if not found:
        pytest.skip(f"{CONTROLLER_VENV} is missing (make test builds it: tests/harness/controller.sh); "
                    "the collection versions of the tested controller cannot be read")
    site = found[-1].parent
    want = requirement_file(ROOT / "requirements-controller.txt")["ansible"]
    have = [d.name for d in site.glob("ansible-*.dist-info") if re.fullmatch(r"ansible-[0-9][^-]*\.dist-info", d.name)]
    if have != [f"ansible-{want}.dist-info"]:
        pytest.skip(f"{CONTROLLER_VENV} holds {have}, not ansible {want} of requirements-controller.txt: "
                    "rebuild it (tests/harness/controller.sh) to compare the collection pins")
    return found[-1]


def manifest_version(collection_dir: Path) -> str:
    return json.loads((collection_dir / "MANIFEST.json").read_text())["collection_info"]["version"]


@pytest.fixture(scope="module")
def ee() -> dict:
    return yaml.safe_load(EE_FILE.read_text())


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    builder = shutil.which("ansible-builder", path=str(Path(sys.executable).parent)) or shutil.which("ansible-builder")
    if builder is None:
        pytest.skip("ansible-builder is not installed in this venv (requirements-dev.txt pins it)")
    ctx = tmp_path_factory.mktemp("ee") / "context"
    run([builder, "create", "--file", str(EE_FILE), "--context", str(ctx), "--output-filename", "Containerfile"], cwd=ROOT)
    assert (ctx / "Containerfile").is_file()
    return ctx


@pytest.fixture(scope="module")
def galaxy_requirements(context: Path) -> list[dict]:
    return yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]


@pytest.fixture(scope="module")
def source_entry(galaxy_requirements: list[dict]) -> dict:
    entries = [c for c in galaxy_requirements if c.get("type") == "dir"]
    assert len(entries) == 1, f"exactly one source directory (this checkout) in the galaxy requirements: {entries}"
    return entries[0]


@pytest.fixture(scope="module")
def listed_collections(context: Path, galaxy_requirements: list[dict], source_entry: dict) -> dict[str, str]:
    """collection -> version requirement, the checkout's own included (read from its copied galaxy.yml)."""
    listed = {c["name"]: str(c.get("version", "")) for c in galaxy_requirements if c.get("type") != "dir"}
    meta = yaml.safe_load((context / "_build" / source_entry["name"] / "galaxy.yml").read_text())
    listed[f"{meta['namespace']}.{meta['name']}"] = "(this checkout)"
    return listed


@pytest.fixture(scope="module")
def python_pins(context: Path) -> dict[str, str]:
    return requirement_file(context / "_build" / "requirements.txt")


@pytest.fixture(scope="module")
def installed(context: Path, source_entry: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's entry of the galaxy requirements installed as the galaxy stage would (from the
    context's _build, which the image holds at /build), without the Galaxy dependencies (no Galaxy here)."""
    build = context / "_build"
    only_source = tmp_path_factory.mktemp("req") / "requirements.yml"
    only_source.write_text(yaml.safe_dump({"collections": [source_entry]}))
    target = tmp_path_factory.mktemp("collections")
    run(["ansible-galaxy", "collection", "install", "--no-deps", "-r", str(only_source), "-p", str(target)], cwd=build)
    return target


# ---------------------------------------------------------------------------------------------
# The build context


def test_containerfile_names_the_base_image(context, ee):
    name = ee["images"]["base_image"]["name"]
    text = (context / "Containerfile").read_text()
    assert f'ARG EE_BASE_IMAGE="{name}"' in text
    assert "FROM $EE_BASE_IMAGE AS base" in text
    # project rule: no registry's or mirror's host name; the engine's default registry resolves it
    first = name.split("/", 1)[0]
    assert "/" not in name or not ("." in first or ":" in first or first == "localhost"), f"{name} names a registry host"
    image, _sep, tag = name.rpartition(":")
    assert image and tag and tag != "latest", f"{name}: a fixed tag, not latest"


def test_containerfile_installs_the_pinned_python_core_and_runner(context, ee):
    text = (context / "Containerfile").read_text()
    deps = ee["dependencies"]
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"$', text, re.M)
    assert refs, "ansible-core and ansible-runner are installed"
    pins = pins_of(refs.group(1).split())
    assert set(pins) == {"ansible-core", "ansible-runner"}
    assert f'ARG PYCMD="{deps["python_interpreter"]["python_path"]}"' in text
    assert re.search(r"pip install --no-cache-dir 'dumb-init==[0-9.]+'", text), "the init package is pinned too"


def test_every_collection_used_is_in_the_context(listed_collections):
    used, _modules = checkout_uses()
    # the scan sees what the roles and playbooks are known to use (else it could pass on nothing)
    assert {"anvil.hetzner", "ansible.builtin", "community.docker", "hetzner.hcloud", "ansible.posix"} <= set(used)
    missing = missing_collections(used, set(listed_collections))
    assert not missing, ("collections used but not in execution-environment.yml's galaxy requirements (add them, "
                         f"pinned, and to requirements.yml and galaxy.yml's dependencies): {json.dumps(missing, indent=1)}")


def test_controller_programs_are_in_bindep(context):
    bindep = (context / "_build" / "bindep.txt").read_text()
    packages = {line.split()[0] for line in bindep.splitlines() if line.strip() and not line.startswith("#")}
    assert {"openssh-clients", "openssh-client"} <= packages, "ssh for the connection to the managed hosts"
    used = {fqcn.rsplit(": ", 1)[-1] for where in checkout_uses()[0].values() for fqcn in where}
    for module, package in CONTROLLER_PROGRAMS.items():
        assert module not in used or package in packages, f"{module} runs {package} on the controller: add it to meta/ee-bindep.txt"


def test_every_third_party_import_has_a_pinned_requirement(python_pins):
    _used, modules = checkout_uses()
    assert {"hcloud", "yaml", "bcrypt"} <= set(modules), "the scan sees the inventory's and filters' imports"
    missing = missing_requirements(distributions_of(modules), modules, python_pins)
    assert not missing, ("plugins/ import libraries that execution-environment.yml does not pin (dependencies.python; "
                         f"also meta/ee-requirements.txt): {json.dumps(missing, indent=1)}")


def test_shipped_requirements_are_what_plugins_import():
    """meta/ee-requirements.txt (read by ansible-builder from the installed collection, in anyone's EE)
    names exactly the distributions plugins/ import."""
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "meta/ee-requirements.txt", "system": "meta/ee-bindep.txt"}
    _used, modules = checkout_uses()
    assert names_of(ROOT / "meta" / "ee-requirements.txt") == set(distributions_of(modules).values())


def test_every_pin_is_exact(context, galaxy_requirements, python_pins):
    assert python_pins, "the context's requirements.txt pins the Python packages"
    for collection in galaxy_requirements:
        if collection.get("type") == "dir":
            continue
        version = str(collection.get("version", ""))
        assert re.fullmatch(r"==[0-9]+\.[0-9]+\.[0-9]+", version), f"{collection['name']}: {version!r} is not an exact pin"
    exclude = context / "_build" / "exclude-requirements.txt"
    assert {"docker", "paramiko"} <= names_of(exclude), "community.docker's unversioned extras stay out"


# ---------------------------------------------------------------------------------------------
# The pins are the tested ones


def test_python_pins_are_the_tested_controller(ee, python_pins):
    controller = requirement_file(ROOT / "requirements-controller.txt")
    core = pins_of([ee["dependencies"]["ansible_core"]["package_pip"]])
    assert core == {"ansible-core": controller["ansible-core"]}
    expected = {name: version for name, version in controller.items() if name not in ("ansible", "ansible-core")}
    drift = {name: {"ee": python_pins.get(name), "requirements-controller.txt": expected.get(name)}
             for name in sorted(set(python_pins) | set(expected)) if python_pins.get(name) != expected.get(name)}
    assert not drift, ("execution-environment.yml's dependencies.python is requirements-controller.txt without ansible "
                       f"and ansible-core: update both together: {json.dumps(drift)}")
    pins_of([ee["dependencies"]["ansible_runner"]["package_pip"]])
    # the unit tests exercise the plugins' libraries with the dev venv: each is pinned there too
    dev = requirement_file(ROOT / "requirements-dev.txt")
    _used, modules = checkout_uses()
    assert set(distributions_of(modules).values()) <= set(dev)


def test_python_interpreter_is_the_tested_one(ee):
    path = ee["dependencies"]["python_interpreter"]["python_path"]
    minor = re.fullmatch(r"/usr/bin/python(3\.[0-9]+)", path)
    assert minor and ee["dependencies"]["python_interpreter"]["package_system"] == f"python{minor.group(1)}"
    assert Version(minor.group(1)) >= Version("3.12"), "ansible-core 2.21 needs Python 3.12 or later"
    tested = sorted(CONTROLLER_VENV.glob("lib/python3*"))
    if not tested:
        pytest.skip(f"{CONTROLLER_VENV} is missing: its Python version cannot be compared")
    assert tested[-1].name == f"python{minor.group(1)}", "the Python that requirements-controller.txt was tested with"


def test_collection_pins_satisfy_the_declared_ranges(listed_collections):
    required = {c["name"]: c["version"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    assert set(required) == set(galaxy)
    pinned = {name: version for name, version in listed_collections.items() if version.startswith("==")}
    assert set(pinned) == set(required), "the EE installs exactly the collections requirements.yml lists"
    for name, version in pinned.items():
        for source, ranges in (("requirements.yml", required), ("galaxy.yml", galaxy)):
            assert SpecifierSet(ranges[name]).contains(version[2:]), f"{name} {version} is outside {source}'s {ranges[name]}"


def test_collection_pins_are_the_tested_controller(listed_collections):
    bundled = controller_collections()
    for name, version in listed_collections.items():
        if not version.startswith("=="):
            continue
        namespace, collection = name.split(".")
        assert version[2:] == manifest_version(bundled / namespace / collection), (
            f"{name}: the EE pins {version}, the tested controller (requirements-controller.txt's ansible) bundles "
            f"{manifest_version(bundled / namespace / collection)}")


# ---------------------------------------------------------------------------------------------
# What the image's galaxy and builder stages would make of the context


def test_installed_collection_is_what_galaxy_ships(installed, tmp_path):
    meta = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    collection = installed / "ansible_collections" / meta["namespace"] / meta["name"]
    run(["ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(tmp_path)], cwd=tmp_path)
    tarball = tmp_path / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
    run(["tar", "-xzf", str(tarball), "-C", str(tmp_path), "FILES.json"], cwd=tmp_path)

    def files(path: Path) -> set[str]:
        return {f["name"] for f in json.loads(path.read_text())["files"]}

    shipped, in_image = files(tmp_path / "FILES.json"), files(collection / "FILES.json")
    assert shipped - in_image == set(), "shipped but not copied by execution-environment.yml's additional_build_files"
    assert in_image - shipped == set(), "in the image but not in the Galaxy tarball"
    for name in ("meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt"):
        assert name in in_image, f"{name} ships: ansible-builder reads it from the installed collection"
    assert not any(n.split("/")[0] in {"tests", "molecule", ".venv", ".venv-controller", "execution-environment.yml"} for n in in_image)


def test_introspection_leaves_nothing_unpinned(context, installed, python_pins, tmp_path):
    """The builder stage's introspect.py, on the collections the galaxy stage would install: anvil.hetzner
    from the context and the tested controller's copies of the pinned Galaxy collections."""
    bundled = controller_collections()
    root = installed / "ansible_collections"
    for name in ("ansible/posix", "community/crypto", "community/docker", "community/general", "hetzner/hcloud"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if not (root / name).exists():
            (root / name).symlink_to(bundled / name)
    build = context / "_build"
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    run([sys.executable, str(build / "scripts" / "introspect.py"), "introspect", str(installed),
         f"--user-pip={build / 'requirements.txt'}", f"--exclude-pip-reqs={build / 'exclude-requirements.txt'}",
         f"--user-bindep={build / 'bindep.txt'}", f"--write-pip={pip_out}", f"--write-bindep={bindep_out}"], cwd=tmp_path)
    lines = [line for line in pip_out.read_text().splitlines() if line.strip()]
    sources = {line.rsplit("# from collection ", 1)[-1] for line in lines}
    assert {"user", "anvil.hetzner"} <= sources, "anvil.hetzner's meta/execution-environment.yml is read from the image"
    unpinned = sorted(line for line in lines if canonicalize_name(Requirement(line.split("#")[0]).name) not in python_pins)
    assert unpinned == [], "pip would install these at whatever version is newest: pin them or exclude them"
    assert not any(Requirement(line.split("#")[0]).name.lower() in ("docker", "paramiko") for line in lines)
    assert "openssh-clients [platform:rpm]  # from collection anvil.hetzner" in bindep_out.read_text()


# ---------------------------------------------------------------------------------------------
# The checks above can fail


def test_a_new_collection_or_import_is_caught(tmp_path, listed_collections, python_pins):
    """A made-up tree that uses a collection and a library the EE lacks: the same functions report both."""
    tasks = tmp_path / "roles" / "demo" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(
        "---\n- name: A database\n  community.mysql.mysql_db:\n    name: app\n"
        "- name: A block\n  block:\n    - name: Nested\n      community.zabbix.zabbix_host: {}\n"
        "- name: A filter\n  ansible.builtin.debug:\n    msg: \"{{ x | community.network.ipaddr }}\"\n")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "play.yml").write_text(
        "---\n- name: Play\n  hosts: all\n  module_defaults:\n    group/amazon.aws.aws: {}\n"
        "  roles:\n    - community.sap.install\n  tasks:\n"
        "    - name: Look up\n      ansible.builtin.debug:\n        msg: \"{{ lookup('community.hashi_vault.vault_read', 'x') }}\"\n")
    (tasks.parent / "templates").mkdir()
    (tasks.parent / "templates" / "app.conf.j2").write_text("{% if x is community.libvirt.running %}{{ y }}{% endif %}\n")
    plugins = tmp_path / "plugins" / "filter"
    plugins.mkdir(parents=True)
    (plugins / "demo.py").write_text("import json\nimport yaml\nimport pytest\n"
                                     "from ansible_collections.community.vmware.plugins.module_utils import vmware\n")
    used = used_collections(tmp_path)
    plugin_collections, modules = plugin_imports(tmp_path)
    used.update(plugin_collections)
    missing = missing_collections(used, set(listed_collections))
    assert set(missing) == {"community.mysql", "community.zabbix", "community.network", "community.sap",
                            "community.hashi_vault", "community.vmware", "amazon.aws", "community.libvirt"}
    assert missing["community.mysql"] == ["roles/demo/tasks/main.yml: community.mysql.mysql_db"]
    assert set(modules) == {"yaml", "pytest"}  # json is the standard library
    assert set(missing_requirements(distributions_of(modules), modules, python_pins)) == {"pytest (pytest)"}
    with pytest.raises(AssertionError, match="not an exact pin"):
        pins_of(["hcloud>=2.0"])
