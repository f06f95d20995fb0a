"""Discovery figure (DESIGN §10): capability search (`workflows_find` with capability filters,
serialised as the API lists it) and free-text match (`KeywordMatcher` over the cached corpus)
over 10,000 registered definitions, p95 <= 20 ms.

The definitions are synthetic but valid: one spec compiled by the registry's own compiler is the
template; each copy changes only its id, name, description, tags and capabilities, and is stored
as the apply service stores it (definition summary + version 1 with its sha256), in bulk.
"""
import copy
import random
import time

from .common import ms, percentile

DEFINITIONS = 10_000
QUERIES = 500
PREFIX = "bench-disc-"
WORDS = ("invoice payment refund order customer ticket support release deploy build test review code "
         "security audit report metric alert incident backup restore schedule email campaign content "
         "article translate summarise classify triage onboarding contract legal hiring payroll budget "
         "forecast inventory shipment supplier pricing churn survey feedback roadmap sprint docs search "
         "index cache migrate database schema api gateway login session fraud risk compliance").split()
TEMPLATE = """
id: bench-disc-template
name: template
type: data
description: template
tags: [t]
inputs: [a]
outputs: [b]
triggers: [{type: manual}]
steps:
  - {id: a, action: noop}
"""


def _vocabulary(rng):
    capabilities = sorted({f"{rng.choice(WORDS)}_{rng.choice(WORDS)}" for _ in range(800)})
    return capabilities, sorted(rng.sample(WORDS, 30))


def register_definitions(n=DEFINITIONS, seed=7):
    """Ensure exactly `n` synthetic definitions exist (kept between runs); returns seconds spent."""
    from django.db import connection, transaction
    from django.db.models import OuterRef, Subquery

    from registry import spec as specs
    from registry.changes import registry_changed
    from registry.models import WorkflowDefinition, WorkflowVersion
    from registry.spec.normalize import WORKFLOW_TYPES

    started = time.perf_counter()
    existing = WorkflowDefinition.objects.filter(key__startswith=PREFIX)
    if existing.count() == n:
        return 0.0
    template = specs.compile_text(TEMPLATE, "bench/discovery.yaml").workflows[0].spec
    rng = random.Random(seed)
    capabilities, tags = _vocabulary(rng)
    with transaction.atomic():
        existing.update(latest_version=None)
        existing.delete()
        definitions, specs_by_key = [], {}
        for i in range(n):
            spec = copy.deepcopy(template)
            words = rng.sample(WORDS, rng.randint(2, 4))
            spec.update(id=f"{PREFIX}{i:05d}", name=" ".join(words).capitalize(), type=rng.choice(WORKFLOW_TYPES),
                        description=" ".join(rng.choices(WORDS, k=rng.randint(6, 14))),
                        tags=rng.sample(tags, rng.randint(1, 3)), inputs=rng.sample(capabilities, rng.randint(0, 3)),
                        outputs=rng.sample(capabilities, rng.randint(1, 2)))
            specs_by_key[spec["id"]] = spec
            definitions.append(WorkflowDefinition(
                key=spec["id"], name=spec["name"], type=spec["type"], description=spec["description"],
                tags=spec["tags"], inputs=spec["inputs"], outputs=spec["outputs"], trigger_types=["manual"]))
        WorkflowDefinition.objects.bulk_create(definitions, batch_size=2000)
        WorkflowVersion.objects.bulk_create(
            [WorkflowVersion(definition=d, number=1, spec=specs_by_key[d.key],
                             spec_sha256=specs.spec_sha256(specs_by_key[d.key]), source_file="bench/discovery.py")
             for d in definitions], batch_size=2000)
        WorkflowDefinition.objects.filter(key__startswith=PREFIX).update(latest_version=Subquery(
            WorkflowVersion.objects.filter(definition=OuterRef("pk"), number=1).values("pk")[:1]))
        transaction.on_commit(registry_changed)  # as an apply does: every process's corpus is stale now
    with connection.cursor() as cursor:
        # What autovacuum does soon after a bulk load: merges the GIN indexes' pending lists and
        # refreshes the planner's statistics (measured otherwise: the first minutes after a load).
        cursor.execute("VACUUM ANALYZE registry_workflowdefinition")
    return time.perf_counter() - started


def _timed(call, args):
    samples = []
    for arg in args:
        began = time.perf_counter()
        call(arg)
        samples.append(ms(time.perf_counter() - began))
    return samples


def search_latencies(queries=QUERIES, seed=11):
    """{find_p50_ms, find_p95_ms, match_p50_ms, match_p95_ms, search_p95_ms, corpus_build_ms, ...}."""
    from registry.discovery.corpus import corpus_current
    from registry.discovery.matching import KeywordMatcher, workflows_match
    from registry.discovery.search import workflows_find
    from registry.models import WorkflowDefinition
    from registry.serializers import WorkflowSerializer

    rng = random.Random(seed)
    capabilities, tags = _vocabulary(random.Random(7))
    filters = [rng.choice([{"input": rng.choice(capabilities)}, {"output": rng.choice(capabilities)},
                           {"output": rng.choice(capabilities), "tag": rng.choice(tags)}]) for _ in range(queries)]
    texts = [" ".join(rng.sample(WORDS, rng.randint(2, 4))) for _ in range(queries)]
    matcher = KeywordMatcher()

    began = time.perf_counter()
    corpus = corpus_current()  # the first query after a change pays for this once per process
    build_ms = ms(time.perf_counter() - began)
    find = _timed(lambda f: WorkflowSerializer(workflows_find(**f), many=True).data, filters)
    match = _timed(lambda text: workflows_match(text, matcher=matcher), texts)
    rows = [len(workflows_find(**f)) for f in filters[:50]]
    result = {"find_p50_ms": percentile(find, 50), "find_p95_ms": percentile(find, 95),
              "match_p50_ms": percentile(match, 50), "match_p95_ms": percentile(match, 95),
              "corpus_build_ms": build_ms, "corpus_definitions": len(corpus),
              "registered_definitions": WorkflowDefinition.objects.count(),
              "find_rows_avg": sum(rows) / len(rows), "queries": queries}
    result["search_p95_ms"] = max(result["find_p95_ms"], result["match_p95_ms"])
    return result
