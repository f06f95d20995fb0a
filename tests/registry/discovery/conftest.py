"""Discovery fixtures: a small catalog of workflows, a fresh corpus per test, and a
real local LLM endpoint whose answer a test scripts."""
import json

import pytest

from registry.discovery.corpus import corpus_forget
from tests.support.helpers import apply_yaml
from tests.support.stub_server import LocalHTTPServer

# Two ways from a pull request to a deployment: one workflow, or three.
CATALOG = """
name: discovery-catalog
workflows:
  - id: build
    name: Build
    type: development
    tags: [ci]
    inputs: [pull_request]
    outputs: [build_artifact]
    steps: [{id: a, action: noop}]
  - id: code-review
    name: Code review
    type: development
    description: Reviews a pull request and reports the problems it finds
    tags: [review, quality]
    inputs: [pull_request]
    outputs: [review_report]
    triggers: [{type: event, event: pr_created}]
    steps: [{id: a, action: noop}]
  - id: deploy
    name: Deployment pipeline
    type: operations
    tags: [deploy, release]
    inputs: [build_artifact, review_report]
    outputs: [deployment]
    steps: [{id: a, action: noop}]
  - id: fast-deploy
    name: Hotfix deploy
    type: operations
    description: Ships a reviewed hotfix straight to production
    tags: [deploy]
    inputs: [pull_request]
    outputs: [deployment]
    steps: [{id: a, action: noop}]
  - id: support-triage
    name: Support triage
    type: support
    description: Classify a customer ticket
    tags: [support]
    inputs: [ticket]
    outputs: [triage]
    steps: [{id: a, action: noop}]
"""


@pytest.fixture(autouse=True)
def _fresh_corpus():
    """Each test's database is rolled back without bumping the registry version: forget the corpus."""
    corpus_forget()
    yield
    corpus_forget()


@pytest.fixture
def catalog(db):
    apply_yaml(CATALOG)


class ScriptedLlm(LocalHTTPServer):
    """An OpenAI-compatible endpoint answering every chat completion with `answer`."""

    answer = ""

    def _handler(stub):
        from http.server import BaseHTTPRequestHandler

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                stub.requests.append(body)
                data = json.dumps({"model": body.get("model"), "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                                   "choices": [{"message": {"role": "assistant", "content": stub.answer}}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def scripted_llm(settings):
    with ScriptedLlm() as server:
        settings.DAC_LLM_BASE_URL = f"{server.url}/v1"
        yield server
