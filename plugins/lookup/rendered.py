# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible.builtin.template's lookup without its deep copy of every variable for every template."""
from __future__ import annotations

DOCUMENTATION = r"""
name: rendered
short_description: What a template renders to, as ansible.builtin.template's lookup returns it, without copying every variable
version_added: 0.9.0
description:
  - The text of each template, rendered exactly as the lookup C(ansible.builtin.template) renders it (the
    same search path, the same C(ansible_managed), C(template_path) and the other template variables, the
    same options). It is that lookup, except that the variables it is given are copied one level deep instead of
    in full.
  - C(ansible.builtin.template)'s lookup deep-copies all of the task's variables for every template (the
    facts, every registered result, the inventory's variables), which on a host with a large probe result
    costs about 0.1 s a template. The roles compare what a template would write with the file on the host
    (C(anvil.hetzner.file_differs), C(anvil.hetzner.files_to_write)) in every run, and a no-change run
    renders dozens of them. A template that only reads its variables renders the same text from a one-level
    copy; one that changed a nested value in place (C(list.append) on a variable) would change the caller's
    value too. None of the collection's templates does; use the builtin lookup for such a template.
options:
  _terms:
    description: Template files, found as C(ansible.builtin.template) finds them (the role's C(templates)).
    required: true
  template_vars:
    description: Additional variables for the templates.
    type: dict
    default: {}
  variable_start_string:
    description: The string marking the beginning of a print statement.
    type: str
    default: '{{'
  variable_end_string:
    description: The string marking the end of a print statement.
    type: str
    default: '}}'
  comment_start_string:
    description: The string marking the beginning of a comment statement.
    type: str
    default: '{#'
  comment_end_string:
    description: The string marking the end of a comment statement.
    type: str
    default: '#}'
  trim_blocks:
    description: Whether the first newline after a block is removed.
    type: bool
    default: true
  convert_data:
    description: Passed to C(ansible.builtin.template)'s lookup as given (ansible-core before 2.19 reads it).
    type: bool
    default: true
  jinja2_native:
    description: Passed to C(ansible.builtin.template)'s lookup as given (ansible-core before 2.19 reads it).
    type: bool
    default: true
author:
  - anvil.hetzner maintainers (@anvil-hetzner)
"""

EXAMPLES = r"""
- name: Write the sysctl file (only when it would change)
  ansible.builtin.template:
    src: sysctl.conf.j2
    dest: /etc/sysctl.d/90-anvil.conf
    mode: "0644"
  when: probe.files['/etc/sysctl.d/90-anvil.conf'] | anvil.hetzner.file_differs(lookup('anvil.hetzner.rendered', 'sysctl.conf.j2'), '0644')
"""

RETURN = r"""
_raw:
  description: The rendered text of each template.
  type: list
  elements: str
"""

from typing import Any

from ansible.plugins.lookup.template import LookupModule as TemplateLookup


class _CopiedShallow(dict):
    """The task's variables, handed to the template lookup: its deepcopy() gets a one-level copy."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return dict(self)


class LookupModule(TemplateLookup):
    """See DOCUMENTATION."""

    def run(self, terms: list[str], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        return super().run(terms, variables=_CopiedShallow(variables or {}), **kwargs)
