"""A real local HTTP server standing in for the outside world: an OpenAI-compatible LLM
endpoint and a generic JSON service. Records every request it receives."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalHTTPServer:
    """A threaded HTTP server on a free loopback port; subclasses give `_handler()`."""

    def __init__(self):
        self.requests = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _handler(self):
        raise NotImplementedError


class StubServer(LocalHTTPServer):

    def _handler(stub):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                return json.loads(raw) if raw else None

            def do_GET(self):
                stub.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
                if self.path.startswith("/status/"):
                    self._reply(int(self.path.rsplit("/", 1)[1]), {"status": "as asked"})
                else:
                    self._reply(200, {"path": self.path, "ok": True})

            def do_POST(self):
                body = self._body()
                stub.requests.append({"method": "POST", "path": self.path, "body": body, "headers": dict(self.headers)})
                if self.path.endswith("/chat/completions"):
                    prompt = " ".join(m.get("content", "") for m in body.get("messages", []))
                    self._reply(200, {
                        "id": "cmpl-test", "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {prompt}"}}],
                        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
                    })
                else:
                    self._reply(200, {"path": self.path, "received": body})

        return Handler
