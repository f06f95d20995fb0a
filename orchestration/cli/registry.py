"""`dac validate` and `dac apply`."""
import sys
from contextlib import contextmanager

from django.core.management.base import CommandError

from .common import as_json
from .progress import Progress, seconds

# The registry services and the spec compiler (jsonschema, jinja2) are imported by the verbs.


def add_parsers(verbs):
    p = verbs.add_parser("validate", help="validate workflow or blueprint files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p = verbs.add_parser("apply", help="register a workflow or blueprint file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true")


def do_validate(cmd, files, json, **_):
    from registry import services as registry
    from registry.spec import SpecInvalid

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
    from registry import services as registry
    from registry.spec import SpecInvalid

    with apply_progress(cmd.stderr, file) as progress:  # a live line on a terminal's stderr only
        try:
            compiled = registry.compile_path(file)
        except SpecInvalid as exc:
            progress.clear()
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
        cmd.out(f"agent {agent['name']}: {agent['action']}")
    for wf in report.workflows:
        state = f"{wf['action']} v{wf['version']}" if wf["changed"] else f"unchanged (v{wf['version']})"
        cmd.out(f"workflow {wf['id']}: {state}")


@contextmanager
def apply_progress(stream, file):
    """`validating big.yaml: 120/400 workflows, 1.2s` while a file is compiled and applied (the
    phases registry.progress reports: reading, validating, registering)."""
    from registry.progress import reporting

    with Progress(stream) as progress:
        if not progress.enabled:
            yield progress
            return
        progress.update(f"reading {file}")

        def show(phase, done, total):
            progress.update(f"{phase} {file}: {done}/{total} workflows, {seconds(progress.elapsed())}")

        with reporting(show):
            yield progress
