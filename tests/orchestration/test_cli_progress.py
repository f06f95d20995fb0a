"""The CLI on a terminal (issue 10.9): `dac status` has a header row; `run --wait` and `apply`
show a live progress line on stderr only when stderr is a TTY, and scripts see no change."""
import contextlib
import fcntl
import json
import os
import pty
import struct
import termios
import threading
import tty
from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import OutputWrapper

from orchestration import engine, selectors
from orchestration.cli.instances import STATUS_HEADER
from orchestration.cli.progress import CLEAR_LINE, Progress, seconds
from tests.support.helpers import apply_spec

GATED = {"id": "gated", "steps": [{"id": "a", "action": "noop"},
                                  {"id": "b", "action": "noop", "depends_on": ["a"], "approval": True}]}


@contextlib.contextmanager
def terminal(columns=200):
    """A pseudo-terminal: yields (the file to write to, its master side's output so far as a list
    of one bytes object once the block ends). Raw mode: bytes arrive as written."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    received = bytearray()

    def drain():  # read while the code under test writes, so a full pty buffer never blocks it
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the slave side is closed
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out = os.fdopen(slave, "w", encoding="utf-8")
    result = []
    try:
        yield out, result
    finally:
        out.close()
        reader.join(timeout=10)
        os.close(master)
        result.append(bytes(received).decode())


def dac(*args):
    out, err = StringIO(), StringIO()
    call_command("dac", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- the helper ----------------------------------------------------------------------------


def test_progress_writes_nothing_when_the_stream_is_not_a_terminal():
    stream = StringIO()
    with Progress(stream, min_interval=0) as progress:
        progress.update("running, steps 1/3")
        progress.clear()
    assert not progress.enabled
    assert stream.getvalue() == ""


def test_progress_on_a_terminal_rewrites_one_line_in_place_and_erases_it_at_the_end():
    with terminal() as (stream, output):
        with Progress(stream, min_interval=0) as progress:
            progress.update("steps 1/3")
            progress.update("steps 2/3")
    assert output == [f"{CLEAR_LINE}steps 1/3{CLEAR_LINE}steps 2/3{CLEAR_LINE}"]
    assert "\n" not in output[0]


def test_progress_on_a_terminal_never_wraps_and_drops_too_frequent_updates():
    with terminal(columns=12) as (stream, output):
        with Progress(OutputWrapper(stream), min_interval=3600) as progress:  # a command's self.stderr
            progress.update("a line much longer than twelve columns")
            progress.update("dropped: too soon after the first")
    assert output == [f"{CLEAR_LINE}a line much{CLEAR_LINE}"]


def test_seconds_reads_well():
    assert [seconds(s) for s in (0.04, 12.34, 65, 3725)] == ["0.0s", "12.3s", "1m05s", "1h02m"]


# --- dac status ----------------------------------------------------------------------------


def test_status_lists_instances_under_a_header_row_and_json_is_unchanged(db):
    apply_spec(GATED)
    first = engine.instance_start(workflow="gated", context={}, actor="test")
    second = engine.instance_start(workflow="gated", context={}, actor="test")
    out, _ = dac("status")
    header, *rows = out.splitlines()
    assert header == STATUS_HEADER
    assert header.split() == ["ID", "WORKFLOW", "STATUS", "PRIORITY", "CREATED", "(UTC)", "PARENT"]
    assert [row.split()[0] for row in rows] == [str(second.id), str(first.id)]  # newest first
    for row in rows:  # each value under its column
        for column, value in (("WORKFLOW", "gated"), ("STATUS", "running"), ("PARENT", "-")):
            assert row[header.index(column):].startswith(value)
    listed = json.loads(dac("status", "--json")[0])
    expected = [selectors.instance_as_dict(selectors.instance_get(i.id), with_steps=False) for i in (second, first)]
    assert listed == json.loads(json.dumps({"instances": expected}, default=str))


def test_status_with_nothing_to_list_prints_the_header_alone(db):
    assert dac("status")[0].splitlines() == [STATUS_HEADER]


# --- dac run --wait ------------------------------------------------------------------------


def test_run_wait_off_a_terminal_writes_exactly_what_it_did(db):
    apply_spec(GATED)  # no worker here: it never ends, so --timeout elapses
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("dac", "run", "gated", "--wait", "--timeout", "0.3", stdout=out, stderr=err)
    assert exited.value.code == 2
    summary = json.loads(out.getvalue())
    assert summary["status"] == "running"
    assert err.getvalue() == f"timed out after 0.3s waiting for instance {summary['id']}\n"


def test_run_wait_on_a_terminal_shows_live_progress_then_erases_it(db, monkeypatch):
    monkeypatch.setattr(Progress, "MIN_INTERVAL", 0)
    apply_spec(GATED)
    out = StringIO()
    with terminal() as (stream, output), pytest.raises(SystemExit):
        call_command("dac", "run", "gated", "--wait", "--timeout", "0.3", stdout=out, stderr=stream)
    summary = json.loads(out.getvalue())  # stdout: the same JSON as off a terminal
    shown = output[0]
    assert f"{CLEAR_LINE}gated {summary['id'][:8]}: running, steps 0/2, " in shown
    # The line is erased before the verb says anything else.
    progress, _, after = shown.rpartition(CLEAR_LINE)
    assert progress and "timed out after 0.3s waiting for instance" in after


# --- dac apply -----------------------------------------------------------------------------


@pytest.fixture
def blueprint(tmp_path):
    path = tmp_path / "big.yaml"
    workflows = [{"id": f"wf-{i}", "steps": [{"id": "a", "action": "noop"}]} for i in range(5)]
    path.write_text(yaml.safe_dump({"name": "big", "workflows": workflows}))
    return str(path)


def test_apply_off_a_terminal_writes_only_its_report(db, blueprint):
    out, err = dac("apply", blueprint)
    assert err == ""
    assert out.splitlines() == [f"workflow wf-{i}: created v1" for i in range(5)]


def test_apply_on_a_terminal_shows_workflows_done_then_erases_the_line(db, blueprint, monkeypatch):
    monkeypatch.setattr(Progress, "MIN_INTERVAL", 0)
    out = StringIO()
    with terminal() as (stream, output):
        call_command("dac", "apply", blueprint, stdout=out, stderr=stream)
    assert out.getvalue().splitlines() == [f"workflow wf-{i}: created v1" for i in range(5)]
    lines = output[0].split(CLEAR_LINE)
    assert lines[0] == "" and lines[-1] == ""  # each update rewrites the line; the last erases it
    shown = [line.rsplit(",", 1)[0] for line in lines[1:-1]]
    assert shown[0] == f"reading {blueprint}"
    for phase in ("reading", "validating", "registering"):
        assert [f"{phase} {blueprint}: {n}/5 workflows" for n in range(5)] == [
            line for line in shown if line.startswith(phase + " ") and ":" in line]
