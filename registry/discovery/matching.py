"""Ranking workflows for a free-text task (DESIGN §6.7) behind a small matcher interface:
`KeywordMatcher` (BM25-like, deterministic; the default) and `LlmMatcher` (`DAC_MATCHER=llm`)."""
import heapq
import json
import logging
import math
from typing import NamedTuple, Protocol

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .corpus import Corpus, corpus_current, tokens

logger = logging.getLogger(__name__)

MATCH_LIMIT = 10
LLM_CANDIDATES = 20  # the keyword-prefiltered candidates an LLM prompt lists


class Match(NamedTuple):
    workflow: str
    score: float
    why: str

    def as_dict(self):
        return self._asdict()


class Matcher(Protocol):
    def rank(self, task: str, candidates, *, limit: int = MATCH_LIMIT) -> list[Match]:
        """Best first; `candidates` is a Corpus (or an iterable of Candidates)."""


def _as_corpus(candidates):
    return candidates if isinstance(candidates, Corpus) else Corpus(candidates)


class KeywordMatcher:
    """BM25 over the weighted fields of corpus.FIELD_WEIGHTS; ties broken by workflow id."""

    def rank(self, task, candidates, *, limit=MATCH_LIMIT):
        corpus = _as_corpus(candidates)
        terms = list(dict.fromkeys(tokens(task)))
        postings = sorted((corpus.postings[t] for t in terms if t in corpus.postings), key=len, reverse=True)
        if not postings or limit < 1:
            return []
        scores = dict(postings[0])  # the longest list copied at C speed; the others added to it
        for docs in postings[1:]:
            for doc, weight in docs.items():
                scores[doc] = scores.get(doc, 0.0) + weight
        # The limit-th best score, then everything at least as good sorted with the tie-break by id
        # (doc indexes follow id order), so a tie at the cut is decided by id too.
        cut = heapq.nlargest(limit, scores.values())[-1]
        best = sorted(((doc, score) for doc, score in scores.items() if score >= cut),
                      key=lambda item: (-item[1], item[0]))[:limit]
        return [Match(corpus.candidates[doc].id, round(score, 4), self._why(corpus, doc, terms))
                for doc, score in best]

    @staticmethod
    def _why(corpus, doc, terms):
        where = corpus.term_fields[doc]
        return "; ".join(f"'{term}' in {', '.join(where[term])}" for term in terms if term in where)


class LlmMatcher:
    """Asks the `llm.complete` endpoint to rank the keyword matcher's top candidates; on an
    error or an answer it cannot use, the keyword ranking stands and `why` says so."""

    def __init__(self, *, prefilter=LLM_CANDIDATES, keyword=None):
        self.prefilter = prefilter
        self.keyword = keyword or KeywordMatcher()

    def rank(self, task, candidates, *, limit=MATCH_LIMIT):
        corpus = _as_corpus(candidates)
        shortlist = self.keyword.rank(task, corpus, limit=self.prefilter)
        if not shortlist:
            return []
        known = {c.id: c for c in corpus.candidates if c.id in {m.workflow for m in shortlist}}
        try:
            answer = self._complete(self._prompt(task, [known[m.workflow] for m in shortlist]))
            ranked = self._parse(answer, known)
        except (requests.RequestException, ValueError) as exc:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            logger.warning("LLM matcher fell back to keywords: %s", reason)
            return [m._replace(why=f"keyword fallback ({reason}): {m.why}") for m in shortlist[:limit]]
        return ranked[:limit]

    @staticmethod
    def _prompt(task, shortlist):
        lines = "\n".join(json.dumps(c.as_dict(), sort_keys=True) for c in shortlist)
        return (f"Task: {task}\n\nCandidate workflows, one JSON object per line:\n{lines}\n\n"
                "Rank the candidates that fit the task. Answer with JSON only, in this form: "
                '{"matches": [{"workflow": "<candidate id>", "score": <0..1>, "why": "<one sentence>"}]}')

    @staticmethod
    def _complete(prompt):
        from orchestration.actions.llm import llm_complete
        from orchestration.actions.registry import ActionContext, ActionError

        ctx = ActionContext(instance_id="", workflow="dac-discovery", step_id="match", attempt=1)
        try:
            return llm_complete(ctx, prompt=prompt, temperature=0,
                                system="You match tasks to workflows. Reply with JSON only.")["text"]
        except ActionError as exc:
            raise ValueError(str(exc)) from exc

    @staticmethod
    def _parse(answer, known):
        """The answer's matches on known candidates, best first; ValueError when there are none."""
        text = str(answer).strip()
        if text.startswith("```"):  # a fenced block: keep what is inside
            text = text.strip("`").removeprefix("json").strip()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError("the LLM answer was not JSON") from exc
        items = data.get("matches") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ValueError("the LLM answer has no 'matches' list")
        ranked = {}
        for item in items:
            if not isinstance(item, dict) or item.get("workflow") not in known or item["workflow"] in ranked:
                continue
            score = item.get("score")
            if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
                continue
            ranked[item["workflow"]] = Match(item["workflow"], round(float(score), 4),
                                             f"llm: {str(item.get('why') or '').strip()[:300]}")
        if not ranked:
            raise ValueError("the LLM answer named none of the candidates")
        return sorted(ranked.values(), key=lambda m: (-m.score, m.workflow))


MATCHERS = {"keyword": KeywordMatcher, "llm": LlmMatcher}


def matcher_for_settings():
    """The matcher DAC_MATCHER names: `keyword` (default) or `llm`."""
    try:
        return MATCHERS[settings.DAC_MATCHER]()
    except KeyError:
        raise ImproperlyConfigured(f"DAC_MATCHER must be one of {', '.join(MATCHERS)}, "
                                   f"got {settings.DAC_MATCHER!r}") from None


def workflows_match(task, *, limit=MATCH_LIMIT, matcher=None):
    """The registered workflows that fit `task`, best first: [Match(workflow, score, why)]."""
    return (matcher or matcher_for_settings()).rank(task, corpus_current(), limit=limit)
