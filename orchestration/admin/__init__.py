"""The engine's pages in the governance console: instances with their DAG (`instances`, `graph`), their
history from the audit log (`history`), the Run form that starts one (`run`), step runs, items and
attempts (`steps`), and the event bus, triggers, waits, schedules' state and shared context
(`coordination`). Read-only: state changes only through services."""
from . import coordination, instances, steps  # noqa: F401 - importing registers the pages
