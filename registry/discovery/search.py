"""Capability search (DESIGN §6.7, `dac find`, `GET /api/v1/workflows/?input=...`): one indexed
query over the definitions' denormalised `inputs`, `outputs`, `tags` and `trigger_types` arrays
(GIN indexes, registry migration 0002)."""
from registry import selectors


def workflows_find(*, input=None, output=None, type=None, tag=None, trigger=None):
    """The definitions matching every filter given, with their latest versions, ordered by id."""
    return selectors.definition_list(type=type, tag=tag, input=input, output=output, trigger=trigger)
