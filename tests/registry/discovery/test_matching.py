"""Free-text matching: the keyword matcher, the LLM matcher against a real local endpoint, and
the corpus cache following applies."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from registry.discovery.corpus import Candidate, Corpus
from registry.discovery.matching import KeywordMatcher, LlmMatcher, matcher_for_settings, workflows_match
from tests.support.helpers import apply_spec


def test_keyword_matcher_ranks_by_where_terms_occur_and_says_why(catalog):
    matches = workflows_match("review a pull request")
    assert [m.workflow for m in matches][:1] == ["code-review"]
    top = matches[0].as_dict()
    assert set(top) == {"workflow", "score", "why"}
    assert top["why"] == ("'review' in id, name, tags, capabilities, description; "
                          "'pull' in capabilities, description; 'request' in capabilities, description")
    assert all(a.score >= b.score for a, b in zip(matches, matches[1:], strict=False))
    assert workflows_match("review a pull request") == matches  # deterministic
    assert workflows_match("quantum teleportation") == []


def test_keyword_ties_are_broken_by_id():
    corpus = Corpus([Candidate("zeta", name="Nightly report"), Candidate("alpha", name="Nightly report"),
                     Candidate("mid", name="Weekly summary")])
    assert [m.workflow for m in KeywordMatcher().rank("nightly report", corpus)] == ["alpha", "zeta"]


def test_a_committed_apply_refreshes_the_cached_corpus(catalog, django_capture_on_commit_callbacks):
    assert workflows_match("invoice") == []
    with django_capture_on_commit_callbacks(execute=True):
        apply_spec({"id": "billing", "name": "Send invoice", "steps": [{"id": "a", "action": "noop"}]})
    assert [m.workflow for m in workflows_match("invoice")] == ["billing"]


def test_llm_matcher_honours_the_endpoints_ranking(catalog, scripted_llm):
    scripted_llm.answer = ('```json\n{"matches": [{"workflow": "fast-deploy", "score": 0.9, "why": "a hotfix"}, '
                           '{"workflow": "deploy", "score": 0.4, "why": "full pipeline"}, '
                           '{"workflow": "not-a-candidate", "score": 1.0}]}\n```')
    matches = workflows_match("deploy a hotfix", matcher=LlmMatcher())
    assert [m.as_dict() for m in matches] == [
        {"workflow": "fast-deploy", "score": 0.9, "why": "llm: a hotfix"},
        {"workflow": "deploy", "score": 0.4, "why": "llm: full pipeline"},
    ]
    prompt = scripted_llm.requests[-1]["messages"][-1]["content"]
    assert "Task: deploy a hotfix" in prompt and '"id": "fast-deploy"' in prompt
    assert '"id": "support-triage"' not in prompt  # only the keyword shortlist is sent


def test_llm_matcher_falls_back_to_keywords_on_an_unusable_answer(catalog, stub_server, settings):
    settings.DAC_LLM_BASE_URL = f"{stub_server.url}/v1"  # the echo stub: not JSON
    keyword = workflows_match("deploy a hotfix", matcher=KeywordMatcher())
    matches = workflows_match("deploy a hotfix", matcher=LlmMatcher())
    assert [(m.workflow, m.score) for m in matches] == [(m.workflow, m.score) for m in keyword]
    assert matches[0].why == f"keyword fallback (the LLM answer was not JSON): {keyword[0].why}"


def test_the_setting_picks_the_matcher(settings):
    assert isinstance(matcher_for_settings(), KeywordMatcher)
    settings.DAC_MATCHER = "llm"
    assert isinstance(matcher_for_settings(), LlmMatcher)
    settings.DAC_MATCHER = "oracle"
    with pytest.raises(ImproperlyConfigured, match="DAC_MATCHER"):
        matcher_for_settings()
