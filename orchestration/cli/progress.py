"""A one-line live progress for the CLI's long waits (`run --wait`, `apply` of a large blueprint).

Only on a terminal: stdout carries what scripts parse (DESIGN §8), so the line goes to stderr and
only when stderr is a TTY; piped or redirected, nothing at all is written and the output is
exactly what it was without it. The line is rewritten in place and erased before the verb prints
its result.
"""
import os
import sys
import time

CLEAR_LINE = "\r\x1b[K"  # back to column 0, erase to the end of the line


class Progress:
    """`with Progress(cmd.stderr) as progress: progress.update("...")`; `clear()` erases the line
    (leaving the block does too, also on an error or Ctrl-C). Updates closer together than
    `min_interval` seconds are dropped (a loop may report every item)."""

    MIN_INTERVAL = 0.05

    def __init__(self, stream=None, *, min_interval=None):
        stream = sys.stderr if stream is None else stream
        # A management command's `self.stderr` is an OutputWrapper, which adds a newline to every
        # write: write to the file it wraps.
        self.stream = getattr(stream, "_out", stream)
        self.enabled = _is_tty(self.stream)
        self.min_interval = self.MIN_INTERVAL if min_interval is None else min_interval
        self.started = time.monotonic()
        self.shown = False
        self._written_at = None

    def elapsed(self):
        return time.monotonic() - self.started

    def update(self, text):
        if not self.enabled:
            return
        now = time.monotonic()
        if self._written_at is not None and now - self._written_at < self.min_interval:
            return
        self._written_at = now
        # One line that never wraps, or `\r` would rewrite only its last part.
        self.stream.write(CLEAR_LINE + text[:max(_columns(self.stream) - 1, 10)])
        self.stream.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.shown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.clear()


def _is_tty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed file
        return False


def _columns(stream):
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80  # 0: a terminal that never said
    except (AttributeError, ValueError, OSError):
        return 80


def seconds(elapsed):
    """12.3s, 4m05s, 1h02m."""
    if elapsed < 60:
        return f"{elapsed:.1f}s"
    minutes, secs = divmod(int(elapsed), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"
