"""Errors the engine's services raise; each maps to one API status code and CLI message."""


class EngineError(Exception):
    code = "engine_error"
    http_status = 400

    def __init__(self, message, *, details=None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(EngineError):
    code = "not_found"
    http_status = 404


class Conflict(EngineError):
    """The request is valid but the target's state does not allow it."""

    code = "conflict"
    http_status = 409


class InvalidRequest(EngineError):
    code = "invalid"
    http_status = 400


class PreconditionFailed(EngineError):
    """A compare-and-set write whose expected version is not the current one."""

    code = "precondition_failed"
    http_status = 412
