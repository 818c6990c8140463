"""anvil.hetzner.rendered held against Ansible itself: for templates that read facts-like nested
data, loops, filters, ansible_managed, template_path and template_vars, the text equals what
ansible.builtin.template's lookup returns and what the template module writes; the variables it is
given are copied one level deep only, so a template that changed a nested value it was given would
change the caller's (none of the collection's templates does; the lookup's documentation says so).
Probe-sized variables as the roles have them. (Its speed is measured by make bench-web, not here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TEMPLATES = {
    "plain.j2": "# {{ ansible_managed }}\nport {{ port }}\n",
    "nested.j2": textwrap.dedent("""\
        {% for name, entry in probe.files | dictsort %}
        {{ name }} {{ entry.mode }}{% if entry.exists %} present{% endif %}

        {% endfor %}
        {{ users | map(attribute='name') | join(',') }}
        {{ template_path | basename }} {{ extra | default('none') }}
        """),
    # a template with a list of its own that it fills in a loop
    "loops.j2": "{% set seen = [] %}{% for u in users %}{{ seen.append(u.name) or '' }}{% endfor %}{{ seen | length }}\n",
}


def run(tmp_path: Path) -> dict:
    (tmp_path / "templates").mkdir()
    for name, text in TEMPLATES.items():
        (tmp_path / "templates" / name).write_text(text)
    variables = {
        "port": 22,
        "users": [{"name": "deploy"}, {"name": "ops"}],
        "probe": {"files": {f"/etc/f{i}": {"mode": "0644", "exists": i % 2 == 0} for i in range(3)},
                  # probe-sized: the answers the roles' probes hand to every template lookup
                  "installed": {f"package-{i}": {"version": f"1.{i}"} for i in range(3000)}},
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    names = sorted(TEMPLATES)
    (tmp_path / "play.yml").write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Render with both lookups
              ansible.builtin.set_fact:
                ours: "{{{{ query('anvil.hetzner.rendered', *{names}) }}}}"
                builtin: "{{{{ query('ansible.builtin.template', *{names}) }}}}"
                ours_vars: "{{{{ lookup('anvil.hetzner.rendered', 'nested.j2', template_vars={{'extra': 'x'}}) }}}}"
                builtin_vars: "{{{{ lookup('ansible.builtin.template', 'nested.j2', template_vars={{'extra': 'x'}}) }}}}"
            - name: Write with the template module
              ansible.builtin.template:
                src: "{{{{ item }}}}"
                dest: "{tmp_path}/written-{{{{ item }}}}"
                mode: "0600"
              loop: {json.dumps(names)}
            - name: Record
              ansible.builtin.copy:
                content: >-
                  {{{{ {{'ours': ours, 'builtin': builtin, 'ours_vars': ours_vars, 'builtin_vars': builtin_vars,
                      'users_after': users}}
                     | to_json }}}}
                dest: {tmp_path}/out.json
                mode: "0600"
        """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    out = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path}/vars.json",
                          "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    result["written"] = [(tmp_path / f"written-{name}").read_text() for name in names]
    return result


def test_the_text_is_the_builtin_lookups_and_the_template_modules(tmp_path):
    result = run(tmp_path)
    assert result["ours"] == result["builtin"]
    assert result["ours"] == result["written"]
    assert result["ours_vars"] == result["builtin_vars"] and result["ours_vars"].rstrip().endswith("nested.j2 x")
    # every template rendered something real (ansible_managed, the nested data, the loop)
    loops, nested, plain = result["ours"]  # (sorted by name)
    assert "port 22" in plain and "Ansible managed" in plain and "/etc/f0 0644 present" in nested
    assert "deploy,ops" in nested and loops.strip() == "2"
