"""Chains of workflows from available inputs to a goal capability (DESIGN §6.7): breadth-first
over workflows, so the shortest chains come first.

A workflow is usable once all its `inputs` are available; its `outputs` then become available.
Only workflows that can lead to the goal (a backward closure from it) are tried, and a step must
add a capability on that way, so the search stays small even over 10,000 definitions; it is
bounded besides (chain length and states visited).
"""
from .corpus import Corpus, corpus_current

CHAIN_LIMIT = 5
MAX_CHAIN_LENGTH = 6
MAX_STATES = 20_000


def suggest_chains(*, inputs, goal, limit=CHAIN_LIMIT, corpus=None):
    """[{"workflows": [ids in run order], "produces": [capabilities, in order]}], shortest first,
    then by the ids in order; [] when the goal is unreachable (or already among the inputs)."""
    corpus = corpus_current() if corpus is None else corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    start = frozenset(inputs)
    if goal in start or limit < 1:
        return []
    relevant_caps, relevant_docs = _toward(corpus, goal)
    found, found_sets, seen, states = [], [], set(), 0
    level = [((), start)]
    for _ in range(MAX_CHAIN_LENGTH):
        next_level = []
        for chain, available in level:
            for doc in relevant_docs:
                candidate = corpus.candidates[doc]
                new = set(candidate.outputs) - available
                if doc in chain or not new & relevant_caps or not set(candidate.inputs) <= available:
                    continue
                extended = (*chain, doc)
                key = frozenset(extended)
                if key in seen:
                    continue
                seen.add(key)
                states += 1
                if goal in new:
                    # A chain holding a shorter one found before does nothing more: skip it.
                    if not any(earlier <= key for earlier in found_sets):
                        found.append(extended)
                        found_sets.append(key)
                        if len(found) >= limit:
                            return [_as_dict(corpus, c, start) for c in found]
                else:
                    next_level.append((extended, available | new))
                if states >= MAX_STATES:
                    return [_as_dict(corpus, c, start) for c in found]
        level = next_level
        if not level:
            break
    return [_as_dict(corpus, c, start) for c in found]


def _toward(corpus, goal):
    """Capabilities that lead to `goal` and the workflows (as sorted doc indexes) producing them."""
    caps, docs, todo = {goal}, set(), [goal]
    while todo:
        for doc in corpus.producers.get(todo.pop(), ()):
            if doc not in docs:
                docs.add(doc)
                for capability in corpus.candidates[doc].inputs:
                    if capability not in caps:
                        caps.add(capability)
                        todo.append(capability)
    return caps, sorted(docs)


def _as_dict(corpus, chain, start):
    produces = []
    for doc in chain:
        produces += [c for c in corpus.candidates[doc].outputs if c not in start and c not in produces]
    return {"workflows": [corpus.candidates[doc].id for doc in chain], "produces": produces}
