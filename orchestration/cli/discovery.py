"""`dac find`, `dac match` and `dac suggest-chain` (DESIGN §6.7, §8)."""
from django.core.management.base import CommandError

from .common import as_json

# The discovery services and serializers (DRF) are imported by the verbs that use them.


def add_parsers(verbs):
    p = verbs.add_parser("find", help="find workflows by capability, type, tag or trigger")
    for name in ("input", "output", "type", "tag", "trigger"):
        p.add_argument(f"--{name}", help=f"only workflows with this {name}")
    p.add_argument("--json", action="store_true")
    p = verbs.add_parser("match", help="rank workflows for a free-text task")
    p.add_argument("text", nargs="+", metavar="TEXT")
    p.add_argument("--json", action="store_true")
    p = verbs.add_parser("suggest-chain", help="chains of workflows from available inputs to a goal")
    p.add_argument("--inputs", default="", help="available capabilities, comma separated")
    p.add_argument("--goal", required=True, help="the capability wanted")
    p.add_argument("--json", action="store_true")


def do_find(cmd, json, input=None, output=None, type=None, tag=None, trigger=None, **_):
    from registry.discovery.search import workflows_find
    from registry.serializers import WorkflowSerializer

    items = WorkflowSerializer(workflows_find(input=input, output=output, type=type, tag=tag, trigger=trigger),
                               many=True).data
    if json:
        cmd.out(as_json({"workflows": items}))
        return
    if not items:
        cmd.out("no workflows found")
    for item in items:
        flow = f"{', '.join(item['inputs']) or '-'} -> {', '.join(item['outputs']) or '-'}"
        cmd.out(f"{item['id']}  [{item['type'] or '-'}]  {flow}  {item['name']}")


def do_match(cmd, text, json, **_):
    from registry.discovery.matching import workflows_match
    from registry.discovery.serializers import TASK_MAX_LENGTH

    task = " ".join(text).strip()
    if not task:
        raise CommandError("match: give the task as TEXT")
    if len(task) > TASK_MAX_LENGTH:
        raise CommandError(f"match: TEXT is longer than {TASK_MAX_LENGTH} characters")
    matches = workflows_match(task)
    if json:
        cmd.out(as_json({"matches": [m.as_dict() for m in matches]}))
        return
    if not matches:
        cmd.out("no workflow matches")
    for m in matches:
        cmd.out(f"{m.score:8.3f}  {m.workflow}  ({m.why})")


def do_suggest_chain(cmd, inputs, goal, json, **_):
    from registry.discovery.chains import suggest_chains

    available = [name.strip() for name in inputs.split(",") if name.strip()]
    if not goal.strip():
        raise CommandError("suggest-chain: --goal must name a capability")
    chains = suggest_chains(inputs=available, goal=goal.strip())
    if json:
        cmd.out(as_json({"chains": chains}))
        return
    if not chains:
        cmd.out(f"no chain reaches '{goal.strip()}' from {', '.join(available) or 'nothing'}")
    for chain in chains:
        cmd.out(f"{' -> '.join(chain['workflows'])}  (produces {', '.join(chain['produces'])})")
