"""The engine's pages in the governance console: instances, steps and attempts (`instances`), and
the event bus, triggers, waits, schedules' state and shared context (`coordination`). All
read-only: state changes only through services."""
from . import coordination, instances  # noqa: F401 - importing registers the pages
