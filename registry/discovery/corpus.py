"""The in-process discovery corpus: every registered definition's searchable summary with token
postings for the matcher and producer lists for chain search.

Built once per process and kept until the registry's change number (registry.changes) moves,
so all processes see a new definition on their next query. Without Redis the cache is bypassed
and the corpus is rebuilt per query (correct, only slower).
"""
import math
import re
from collections import defaultdict
from dataclasses import dataclass

from ..changes import registry_version

# Field weights of the BM25F-like score: names and ids say most about a workflow.
FIELD_WEIGHTS = {"id": 3.0, "name": 3.0, "tags": 2.0, "capabilities": 2.0, "description": 1.0}
BM25_K1 = 1.2
BM25_B = 0.75
STOPWORDS = frozenset("a an and are as at be by for from in into is it of on or that the this to with".split())
TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokens(text):
    """Lower-case words of `text` without stopwords, plurals folded ('reviews' -> 'review')."""
    words = []
    for word in TOKEN_RE.findall(str(text).lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    return words


@dataclass(frozen=True)
class Candidate:
    """What discovery knows of one definition (its latest version's summary)."""

    id: str
    name: str = ""
    type: str = ""
    description: str = ""
    tags: tuple = ()
    inputs: tuple = ()
    outputs: tuple = ()

    def field_texts(self):
        return {"id": self.id, "name": self.name, "tags": " ".join(self.tags),
                "capabilities": " ".join((*self.inputs, *self.outputs)), "description": self.description}

    def as_dict(self):
        return {"id": self.id, "name": self.name, "type": self.type, "description": self.description,
                "tags": list(self.tags), "inputs": list(self.inputs), "outputs": list(self.outputs)}


class Corpus:
    """Candidates sorted by id, with term postings {doc: BM25 weight} and the fields each term
    occurs in per document (for the matcher's `why`)."""

    def __init__(self, candidates):
        self.candidates = sorted(candidates, key=lambda c: c.id)
        self.postings = defaultdict(dict)
        self.term_fields = []
        self.producers = defaultdict(list)  # capability -> [doc] whose outputs include it
        lengths, weighted_tfs = [], []
        for doc, candidate in enumerate(self.candidates):
            weighted, where, length = defaultdict(float), defaultdict(list), 0.0
            for field, text in candidate.field_texts().items():
                words = tokens(text)
                length += FIELD_WEIGHTS[field] * len(words)
                for word in words:
                    weighted[word] += FIELD_WEIGHTS[field]
                    if field not in where[word]:
                        where[word].append(field)
            weighted_tfs.append(weighted)
            self.term_fields.append(dict(where))
            lengths.append(length)
            for capability in candidate.outputs:
                self.producers[capability].append(doc)
        average = (sum(lengths) / len(lengths)) if lengths else 1.0
        # A term's BM25 weight in a document does not depend on the query: the postings hold it,
        # so a query only adds up numbers.
        for doc, weighted in enumerate(weighted_tfs):
            norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[doc] / (average or 1.0))
            for word, tf in weighted.items():
                self.postings[word][doc] = tf * (BM25_K1 + 1) / (tf + norm)
        for docs in self.postings.values():
            idf = math.log(1 + (len(self.candidates) - len(docs) + 0.5) / (len(docs) + 0.5))
            for doc in docs:
                docs[doc] *= idf

    def __len__(self):
        return len(self.candidates)


_cache = {"version": None, "corpus": None}


def corpus_current():
    """The corpus of every registered definition, rebuilt when the registry's version changed."""
    version = registry_version()  # read before loading: a change committed meanwhile bumps it again
    if version is None or version != _cache["version"] or _cache["corpus"] is None:
        _cache["corpus"], _cache["version"] = corpus_load(), version
    return _cache["corpus"]


def corpus_forget():
    """Drop this process's corpus (tests, whose rolled-back applies never bump the version)."""
    _cache["corpus"], _cache["version"] = None, None


def corpus_load():
    from registry.models import WorkflowDefinition

    rows = WorkflowDefinition.objects.values_list("key", "name", "type", "description", "tags", "inputs", "outputs")
    return Corpus(Candidate(key, name, type_, description or "", tuple(tags or ()), tuple(inputs or ()),
                            tuple(outputs or ())) for key, name, type_, description, tags, inputs, outputs in rows)
