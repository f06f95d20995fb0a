"""`dac validate` and `dac apply`."""
import sys

from django.core.management.base import CommandError

from registry import services as registry
from registry.spec import SpecInvalid

from .common import as_json


def add_parsers(verbs):
    p = verbs.add_parser("validate", help="validate workflow or blueprint files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p = verbs.add_parser("apply", help="register a workflow or blueprint file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true")


def do_validate(cmd, files, json, **_):
    errors, warnings = [], []
    for path in files:
        try:
            compiled = registry.compile_path(path)
            warnings += compiled.warnings
        except SpecInvalid as exc:
            errors += exc.errors
            warnings += exc.warnings
    if json:
        cmd.out(as_json({"valid": not errors, "errors": [e.as_dict() for e in errors],
                         "warnings": [w.as_dict() for w in warnings]}))
    else:
        for w in warnings:
            cmd.stderr.write(f"warning: {w}")
        if not errors:
            cmd.out(f"valid: {', '.join(files)}")
    if errors:
        if not json:
            for e in errors:
                cmd.stderr.write(f"error: {e}")
        sys.exit(1)


def do_apply(cmd, file, json, **_):
    try:
        compiled = registry.compile_path(file)
    except SpecInvalid as exc:
        for e in exc.errors:
            cmd.stderr.write(f"error: {e}")
        raise CommandError(f"{file}: {len(exc.errors)} error(s); nothing was registered") from exc
    report = registry.definitions_apply(compiled=compiled, actor="cli")
    if json:
        cmd.out(as_json(report.as_dict()))
        return
    for w in report.warnings:
        cmd.stderr.write(f"warning: {w}")
    for agent in report.agents:
        cmd.out(f"agent {agent['name']}: {'updated' if agent['changed'] else 'unchanged'}")
    for wf in report.workflows:
        state = f"registered v{wf['version']}" if wf["changed"] else f"unchanged (v{wf['version']})"
        cmd.out(f"workflow {wf['id']}: {state}")
