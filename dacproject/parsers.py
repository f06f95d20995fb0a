"""Request parsers and the JSON reading they share with forms (its own module: settings name it,
and it must import nothing of the project)."""
import codecs
import json
import math

from django.conf import settings
from rest_framework import exceptions, parsers


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON value")


def json_loads(text):
    """JSON as PostgreSQL's jsonb can store it: no NaN or Infinity, and no number beyond a double
    (Python would read 1e999 as inf). ValueError says what is wrong."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, reading with `json_loads`; a body nested deeper than Python can parse is a
    400 like any bad body."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads(codecs.getreader(encoding)(stream).read())
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply") from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
