"""Sandboxed Jinja2 templates for step inputs, conditions and results (never `eval`).

A string that is exactly one `{{ expression }}` yields the expression's native value; any
other string renders as text. Step ids may contain '-' (seed-004 dialect), so references
such as `steps.scan-compliance.output` are rewritten to subscripts before compiling.
"""
import functools
import re
from collections.abc import Mapping

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

NAMESPACES = frozenset({"context", "steps", "nodes", "item", "index", "instance", "trigger", "shared", "secrets"})
STEP_NAMESPACES = ("steps", "nodes")
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.S)


class TemplateError(Exception):
    """A template that cannot be parsed or rendered; the message says why."""


class _DataEnvironment(ImmutableSandboxedEnvironment):
    """On a mapping, `a.b` is the key `b` and never a dict method (DESIGN §2): `context.items`,
    `payload.keys` or `output.values` are the user's data. A missing key is undefined, as any
    missing name is; `| items` and `| dictsort` iterate a mapping."""

    def getattr(self, obj, attribute):
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


_env = _DataEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def is_template(value):
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _needs_rewrite(step_id):
    return not step_id.isidentifier()


def rewrite_step_refs(source, step_ids):
    """`steps.a-b.output` -> `steps["a-b"].output` for ids that are not identifiers."""
    odd = sorted((s for s in step_ids if _needs_rewrite(s)), key=len, reverse=True)
    if not odd:
        return source
    pattern = re.compile(
        r"(?<![\w.])(steps|nodes)\.(" + "|".join(re.escape(s) for s in odd) + r")(?![\w-])"
    )
    return pattern.sub(lambda m: f'{m.group(1)}["{m.group(2)}"]', source)


@functools.lru_cache(maxsize=4096)
def _compile(source, step_ids):
    source = rewrite_step_refs(source, step_ids)
    match = _SINGLE_EXPRESSION.match(source)
    try:
        if match and "{%" not in source:
            return "expr", _env.compile_expression(match.group("expr"), undefined_to_none=False)
        return "text", _env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc


def parse(source, step_ids=()):
    """The Jinja AST of a template (for validation)."""
    source = rewrite_step_refs(source, tuple(step_ids))
    match = _SINGLE_EXPRESSION.match(source)
    if match and "{%" not in source:
        source = "{{ " + match.group("expr") + " }}"
    try:
        return _env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc


def references(source, step_ids=()):
    """(namespaces used, step ids referenced) by one template string."""
    from jinja2 import meta

    ast = parse(source, step_ids)
    names = set(meta.find_undeclared_variables(ast))
    refs = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in STEP_NAMESPACES):
            continue
        if isinstance(node, nodes.Getattr):
            refs.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            refs.add(node.arg.value)
    return names, refs


def render_value(value, scope, step_ids=()):
    """Render every template inside a JSON-like value, keeping native types."""
    if isinstance(value, str):
        return render_string(value, scope, step_ids) if is_template(value) else value
    if isinstance(value, dict):
        return {k: render_value(v, scope, step_ids) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, scope, step_ids) for v in value]
    return value


def render_string(source, scope, step_ids=()):
    kind, compiled = _compile(source, tuple(step_ids))
    try:
        if kind == "expr":
            return _native(compiled(**scope))
        return compiled.render(**scope)
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any render failure is a template error for the step
        raise TemplateError(f"cannot render {source!r}: {exc}") from exc


def evaluate_condition(condition, scope, step_ids=()):
    if isinstance(condition, bool):
        return condition
    value = render_string(condition, scope, step_ids) if is_template(condition) else condition
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)


def _native(value):
    """Undefined-safe conversion of Jinja results into JSON-friendly Python values."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    return str(value)


class Secrets(dict):
    """`secrets.NAME`, resolved lazily; remembers which values were read so they can be masked."""

    def __init__(self, resolver):
        super().__init__()
        self._resolver = resolver

    def __missing__(self, name):
        value = self._resolver(name)
        if value is None:
            raise KeyError(name)
        self[name] = value
        return value

    def used_values(self):
        return [v for v in self.values() if v]
