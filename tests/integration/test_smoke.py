import pytest

from tests.support.helpers import apply_yaml, finished, start

pytestmark = pytest.mark.integration

DIAMOND = """
id: diamond
steps:
  - {id: a, action: echo, with: {n: 1}}
  - {id: b, action: echo, with: {n: "{{ steps.a.output.n + 1 }}"}, depends_on: [a]}
  - {id: c, action: echo, with: {n: "{{ steps.a.output.n + 10 }}"}, depends_on: [a]}
  - {id: d, action: echo, with: {total: "{{ steps.b.output.n + steps.c.output.n }}"}, depends_on: [b, c]}
"""


def test_diamond_completes_with_native_template_values(live):
    apply_yaml(DIAMOND)
    instance = finished(start("diamond"))
    assert instance.status == "completed"
    assert instance.result == {"d": {"total": 13}}
