import pytest

from orchestration import templating
from orchestration.engine.scope import mask

SCOPE = {"context": {"n": 2, "name": "x"}, "steps": {"a-b": {"output": {"v": [1, 2]}, "status": "completed"}}}
IDS = ("a-b", "c")


def test_single_expression_keeps_native_types():
    assert templating.render_string("{{ context.n * 2 }}", SCOPE) == 4
    assert templating.render_string("{{ steps['a-b'].output.v }}", SCOPE) == [1, 2]
    assert templating.render_string("{{ context.n > 1 }}", SCOPE) is True


def test_text_around_an_expression_renders_a_string():
    assert templating.render_string("n={{ context.n }}", SCOPE) == "n=2"


def test_hyphenated_step_ids_are_addressable_with_dots():
    assert templating.render_string("{{ steps.a-b.output.v[1] }}", SCOPE, IDS) == 2
    assert templating.references("{{ nodes.a-b.output.v }} {{ steps.c.output }}", IDS)[1] == {"a-b", "c"}


def test_render_value_walks_nested_structures():
    assert templating.render_value({"x": ["{{ context.name }}", 3]}, SCOPE) == {"x": ["x", 3]}


def test_undefined_names_fail_clearly():
    with pytest.raises(templating.TemplateError, match="missing"):
        templating.render_string("{{ context.missing.deeper }}", SCOPE)


@pytest.mark.parametrize("source", ["{{ ''.__class__.__mro__ }}", "{{ context.__class__ }}",
                                    "{{ cycler.__init__.__globals__ }}"])
def test_sandbox_refuses_to_reach_python_internals(source):
    with pytest.raises(templating.TemplateError):
        templating.render_string(source, {**SCOPE, "cycler": object()})


def test_syntax_errors_are_template_errors():
    with pytest.raises(templating.TemplateError, match="syntax"):
        templating.references("{{ steps.a.output ", IDS)


@pytest.mark.parametrize("condition, expected", [
    ("{{ context.n == 2 }}", True), ("{{ context.n == 3 }}", False), (True, True), (False, False),
    ("{{ 'false' }}", False), ("{{ [] }}", False), ("yes", True),
])
def test_conditions(condition, expected):
    assert templating.evaluate_condition(condition, SCOPE) is expected


def test_secrets_resolve_lazily_and_are_remembered_for_masking():
    secrets = templating.Secrets(lambda name: {"TOKEN": "abc123"}.get(name))
    assert templating.render_string("Bearer {{ secrets.TOKEN }}", {"secrets": secrets}) == "Bearer abc123"
    assert secrets.used_values() == ["abc123"]
    with pytest.raises(templating.TemplateError):
        templating.render_string("{{ secrets.NOPE }}", {"secrets": secrets})


def test_mask_replaces_secret_values_everywhere():
    value = {"h": "Bearer abc123", "l": ["abc123", 5], "n": None}
    assert mask(value, ["abc123"]) == {"h": "Bearer ***", "l": ["***", 5], "n": None}


@pytest.mark.parametrize("name", ["items", "keys", "values", "get", "update", "pop", "copy"])
@pytest.mark.parametrize("namespace", ["context", "trigger", "shared"])
def test_a_dotted_name_on_a_mapping_is_the_key_never_a_dict_method(namespace, name):
    scope = {namespace: {name: [1, 2, 3]}}
    assert templating.render_string(f"{{{{ {namespace}.{name} }}}}", scope) == [1, 2, 3]
    assert templating.render_string(f"{{{{ {namespace}.{name} | length }}}}", scope) == 3


@pytest.mark.parametrize("name", ["items", "keys", "values", "get", "update"])
def test_step_outputs_and_nested_payloads_read_keys_named_like_dict_methods(name):
    scope = {"steps": {"a": {"status": "completed", "output": {name: {"values": "v"}}}},
             "trigger": {"payload": {name: 7}}}
    assert templating.render_string(f"{{{{ steps.a.output.{name}.values }}}}", scope) == "v"
    assert templating.render_string(f"{{{{ trigger.payload.{name} + 1 }}}}", scope) == 8


def test_a_missing_key_is_undefined_rather_than_a_dict_method():
    with pytest.raises(templating.TemplateError, match="items"):
        templating.render_string("{{ context.items }}", {"context": {"n": 1}})
    assert templating.render_string("{{ context.items | default([]) }}", {"context": {}}) == []
    assert templating.render_string("{{ context | items | list }}", {"context": {"n": 1}}) == [["n", 1]]
