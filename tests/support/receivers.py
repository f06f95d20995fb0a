"""Real local receivers for notifications: an HTTP server and an SMTP server, each recording what
it was sent. They stand in for Slack and a mail relay; nothing of ours is replaced."""
import json
import socket
import threading
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler

from aiosmtpd.controller import Controller

from tests.support.stub_server import LocalHTTPServer


class HttpReceiver(LocalHTTPServer):
    """Records every POST; answers 500 to the first `fail_first` of them, then `status`."""

    def __init__(self, *, fail_first=0, status=200):
        self.fail_first = fail_first
        self.status = status
        self._lock = threading.Lock()
        super().__init__()

    def _record(self, request):
        """Append the request; the status to answer it with."""
        with self._lock:
            self.requests.append(request)
            return 500 if len(self.requests) <= self.fail_first else self.status

    def _handler(receiver):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                status = receiver._record({"path": self.path, "headers": dict(self.headers), "body": body})
                data = b"ok" if status < 300 else b"receiver says no"
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on a free local port; `messages` holds each received mail as
    an `email.message.EmailMessage`, with its envelope in `envelopes`."""

    def __init__(self):
        self.messages = []
        self.envelopes = []
        self.host = "127.0.0.1"
        self.port = free_port()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.envelopes.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos)})
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy))
        return "250 Message accepted for delivery"

    def start(self):
        self._controller.start()
        return self

    def stop(self):
        self._controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
