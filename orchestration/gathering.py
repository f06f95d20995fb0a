"""Work gathered while a block runs and done once at its end: a worker task collects what its
transactions' commits would each send (dispatches, reaction checks, follow-ups) and sends it
together. Blocks nest; only the outermost one flushes."""
from contextlib import contextmanager


@contextmanager
def gathering(local, flush):
    """Within the block, `gathered(local)` is a list to append to; `flush(items)` at its end."""
    if getattr(local, "items", None) is not None:
        yield
        return
    local.items = []
    try:
        yield
    finally:
        items, local.items = local.items, None
        if items:
            flush(items)


def gathered(local):
    """The list of the enclosing `gathering` block, or None outside one."""
    return getattr(local, "items", None)
