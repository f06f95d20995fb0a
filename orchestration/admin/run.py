"""Starting an instance from the console: the Run form of a workflow definition.

A definition's `inputs` (DESIGN §2) are capability names, not typed fields; what an instance is
actually given is its `context`, which the workflow's templates read as `context.<key>`, often
with a default (`{{ context.parts | default(3) }}`). So the form has one field per context key the
templates read: its type taken from the default's, required when the workflow reads the key
without a default or a `defined` test (it would fail on its first step without it). A JSON object
box takes any other keys. The context and priority are then checked as the API's run endpoint
checks them (its serializer), and `engine.instance_start` starts the instance, or refuses with an
error that the form shows next to the field it names; nothing is created then.
"""
import json
import re
import uuid
from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from jinja2 import nodes

from dacproject.parsers import json_loads
from orchestration import engine, templating
from registry.models import WorkflowDefinition
from registry.selectors import definition_accepts_runs
from registry.serializers import RunRequestSerializer
from registry.spec.checker import PRIORITIES

NO_DEFAULT = object()
START_PERMISSION = "orchestration.add_workflowinstance"
GUARDS = {"defined", "undefined"}
DEFAULT_FILTERS = {"default", "d"}
_CONTEXT_PATH = re.compile(r"\bcontext\.([^\s:,]+)")


@dataclass
class ContextInput:
    """A context key the workflow's templates read."""

    key: str
    default: object = NO_DEFAULT
    guarded: bool = False  # read somewhere with a default or behind an `is defined` test
    bare: bool = False  # read somewhere without either
    where: list = field(default_factory=list)

    @property
    def required(self):
        return self.bare and not self.guarded

    @property
    def kind(self):
        """number | boolean | json | text (from the default's type) | any (JSON, else text)."""
        value = self.default
        if value is NO_DEFAULT or value is None:
            return "any"
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, (int, float)):
            return "number"
        if isinstance(value, (list, dict)):
            return "json"
        return "text"


def _context_key(node):
    """The key of `context.<key>` / `context['<key>']`, else None."""
    if not (isinstance(node, (nodes.Getattr, nodes.Getitem)) and isinstance(node.node, nodes.Name)
            and node.node.name == "context"):
        return None
    if isinstance(node, nodes.Getattr):
        return node.attr
    return node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else None


def _visit(node, found, where):
    def seen(key):
        item = found.setdefault(key, ContextInput(key))
        if where not in item.where:
            item.where.append(where)
        return item

    if isinstance(node, nodes.Filter) and node.name in DEFAULT_FILTERS and _context_key(node.node):
        item = seen(_context_key(node.node))
        item.guarded = True
        if item.default is NO_DEFAULT:
            try:
                item.default = node.args[0].as_const() if node.args else ""
            except nodes.Impossible:
                pass
        children = [*node.args, *(kw.value for kw in node.kwargs)]
    elif isinstance(node, nodes.Test) and node.name in GUARDS and _context_key(node.node):
        seen(_context_key(node.node)).guarded = True
        children = list(node.args)
    else:
        key = _context_key(node)
        if key is not None:
            seen(key).bare = True
        children = list(node.iter_child_nodes())
    for child in children:
        _visit(child, found, where)


def _strings(value, where):
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def context_inputs(spec):
    """The context keys a workflow's templates read: the required ones first, then by name."""
    spec = spec or {}
    step_ids = tuple(str(s.get("id")) for s in spec.get("steps") or [] if isinstance(s, dict))
    found = {}
    for where, source in _strings({k: v for k, v in spec.items() if k != "triggers"}, ""):
        if not templating.is_template(source):
            continue
        try:
            ast = templating.parse(source, step_ids)
        except Exception:  # noqa: BLE001 - registered specs parse; a form must not fail on one that does not
            continue
        _visit(ast, found, where)
    return sorted(found.values(), key=lambda item: (not item.required, item.key))


def _as_json(value):
    return json.dumps(value, ensure_ascii=False)


def _input_field(item):
    help_parts = []
    if item.default is not NO_DEFAULT:
        help_parts.append(f"default {_as_json(item.default)}")
    if item.required:
        help_parts.append("required: the workflow reads it without a default")
    kind_help = {"number": "a number", "boolean": "true or false", "json": "JSON",
                 "text": "text", "any": "JSON, or else text"}[item.kind]
    help_text = f"{kind_help}; " + "; ".join(help_parts) if help_parts else kind_help
    if item.kind == "boolean":
        choices = [("", "(the workflow's default)" if not item.required else "—"), ("true", "true"), ("false", "false")]
        return forms.ChoiceField(label=item.key, required=item.required, choices=choices, help_text=help_text)
    placeholder = "" if item.default is NO_DEFAULT else (
        item.default if isinstance(item.default, str) else _as_json(item.default))
    return forms.CharField(label=item.key, required=item.required, strip=item.kind != "text", help_text=help_text,
                           widget=forms.TextInput(attrs={"placeholder": placeholder, "size": 40}))


def _parse(item, raw):
    """The context value for what was typed in `item`'s field; ValueError says what is wrong."""
    kind = item.kind
    if kind == "text":
        return raw
    if kind == "boolean":
        return raw == "true"
    try:
        value = json_loads(raw)
    except ValueError:
        if kind == "any":
            return raw
        raise ValueError(f"must be {'a number' if kind == 'number' else 'JSON'}, like the workflow's default "
                         f"{_as_json(item.default)}") from None
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"must be a number, like the workflow's default {_as_json(item.default)}")
    if kind == "json" and type(value) is not type(item.default):
        raise ValueError(f"must be a JSON {'list' if isinstance(item.default, list) else 'object'}, like the "
                         f"workflow's default {_as_json(item.default)}")
    return value


def field_name(key):
    return f"context.{key}"


class RunForm(forms.Form):
    def __init__(self, *args, inputs, default_priority, **kwargs):
        super().__init__(*args, **kwargs)
        self.inputs = inputs
        for item in inputs:
            self.fields[field_name(item.key)] = _input_field(item)
        self.fields["context"] = forms.CharField(
            label="more context", required=False, initial="{}",
            help_text="any other keys, as a JSON object; the fields above win", widget=forms.Textarea(
                attrs={"rows": 3, "cols": 60, "spellcheck": "false"}))
        named = {number: name for name, number in PRIORITIES.items()}
        self.fields["priority"] = forms.ChoiceField(
            label="priority", required=False,
            choices=[("", f"the workflow's ({named.get(default_priority, default_priority)})"),
                     *((name, f"{name} ({number})") for name, number in PRIORITIES.items())])
        self.fields["idempotency_key"] = forms.CharField(required=False, widget=forms.HiddenInput,
                                                         initial=uuid.uuid4().hex)

    def clean(self):
        cleaned = super().clean()
        context = {}
        more = (cleaned.get("context") or "").strip()
        if more:
            try:
                context = json_loads(more)
            except ValueError as exc:
                self.add_error("context", f"not valid JSON: {exc}")
            else:
                if not isinstance(context, dict):
                    self.add_error("context", f"must be a JSON object, got {type(context).__name__}")
                    context = {}
        for item in self.inputs:
            name = field_name(item.key)
            raw = cleaned.get(name)
            if name not in cleaned or raw in (None, ""):
                continue
            try:
                context[item.key] = _parse(item, raw)
            except ValueError as exc:
                self.add_error(name, str(exc))
        # The API's run endpoint checks its body with this serializer: the same rules here.
        body = RunRequestSerializer(data={"context": context, "priority": cleaned.get("priority") or None})
        if not body.is_valid():
            for name, errors in body.errors.items():
                self.add_error(name if name in self.fields else None, [str(e) for e in errors])
        else:
            self.start_context, self.start_priority = body.validated_data["context"], body.validated_data["priority"]
        return cleaned

    def error_field(self, message):
        """The field an engine error is about (`context.<key> ...`), if it is one of the form's."""
        match = _CONTEXT_PATH.search(message)
        if match:
            key = match.group(1).split(".")[0].split("[")[0]
            if field_name(key) in self.fields:
                return field_name(key)
            return "context"
        return "context" if message.startswith("context ") else None


def run_view(model_admin, request, workflow):
    """GET: the form; POST: start the instance (then its page) or the form again with the errors."""
    # Starting runs actions (and spends budget): the permission to add instances, checked before the
    # lookup so that a 404 does not tell who may not start which workflows exist.
    if not request.user.has_perm(START_PERMISSION):
        raise PermissionDenied
    definition = WorkflowDefinition.objects.select_related("latest_version").filter(key=workflow).first()
    if definition is None:
        raise Http404(f"workflow '{workflow}' is not registered")
    spec = definition.latest_version.spec if definition.latest_version_id else {}
    inputs = context_inputs(spec)
    form = RunForm(request.POST if request.method == "POST" else None, inputs=inputs,
                   default_priority=spec.get("priority", PRIORITIES["normal"]))
    if request.method == "POST" and form.is_valid():
        try:
            instance = engine.instance_start(workflow=definition.key, context=form.start_context,
                                             priority=form.start_priority, actor=request.user,
                                             idempotency_key=form.cleaned_data["idempotency_key"] or None)
        except engine.EngineError as exc:
            form.add_error(form.error_field(exc.message), exc.message)
        else:
            messages.success(request, f"Started {definition.key}: instance {instance.id} ({instance.status}).")
            if model_admin.has_view_permission(request):
                return HttpResponseRedirect(reverse("admin:orchestration_workflowinstance_change",
                                                    args=[instance.id]))
            return HttpResponseRedirect(reverse("admin:registry_workflowdefinition_change", args=[definition.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Run {definition.key}",
        "subtitle": None,
        "definition": definition,
        "startable": definition_accepts_runs(definition),
        "form": form,
        "input_fields": [form[field_name(item.key)] for item in inputs],
        "context_field": form["context"],
        "priority_field": form["priority"],
        "opts": WorkflowDefinition._meta,
        "capabilities": definition.inputs,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/orchestration/workflowinstance/run_form.html", context)
