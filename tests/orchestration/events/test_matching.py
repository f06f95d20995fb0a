"""Filter matching is pure: dotted paths, globs with brace alternatives, any-of lists, equality."""
import pytest

from orchestration.events.matching import expand_braces, payload_matches

PAYLOAD = {"repo": "acme/api", "pr": {"number": 42, "labels": ["bug", "ui"], "draft": False,
                                      "files": [{"path": "src/app.ts"}]}, "count": 3}


@pytest.mark.parametrize("filters, expected", [
    ({}, True),
    ({"repo": "acme/*"}, True),
    ({"repo": "ACME/*"}, False),                   # globs are case-sensitive
    ({"repo": ["other/x", "acme/api"]}, True),     # a list is any of
    ({"repo": ["other/*"]}, False),
    ({"pr.number": 42}, True),
    ({"pr.number": "4?"}, True),                   # a glob matches a number by its text
    ({"pr.number": 43}, False),
    ({"pr.draft": False}, True),
    ({"pr.draft": 0}, False),                      # a boolean equals only a boolean
    ({"count": True}, False),
    ({"pr.labels": "bug"}, True),                  # a list in the payload matches when an element does
    ({"pr.labels": ["docs", "ui"]}, True),
    ({"pr.labels": "docs"}, False),
    ({"pr.files.0.path": "**.{ts,tsx,js}"}, True),
    ({"pr.files.1.path": "*"}, False),             # no such element
    ({"pr.missing": "*"}, False),                  # a missing path never matches, not even '*'
    ({"repo": "acme/*", "pr.number": 41}, False),  # every filter must hold
])
def test_payload_matches(filters, expected):
    assert payload_matches(filters, PAYLOAD) is expected


def test_a_non_mapping_payload_matches_only_an_empty_filter():
    assert payload_matches({}, [1, 2]) and not payload_matches({"a": "*"}, [1, 2])


def test_brace_alternatives_expand_and_nest():
    assert expand_braces("*.{ts,py}") == ["*.ts", "*.py"]
    assert expand_braces("{a,b{c,d}}x") == ["ax", "bcx", "bdx"]
    assert expand_braces("plain") == ["plain"]
