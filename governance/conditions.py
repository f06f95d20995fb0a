"""Governance conditions: one small, safe expression language (DESIGN §7.2).

A condition such as ``workflow_duration > 4h and not deploy-prod`` is tokenized, parsed by recursive
descent into an immutable tree and evaluated against facts; no ``eval``, and evaluation never raises.

Grammar (EBNF; tokens may be separated by whitespace; keywords are lower case)::

    condition  = or_expr ;
    or_expr    = and_expr , { "or" , and_expr } ;
    and_expr   = negation , { "and" , negation } ;
    negation   = "not" , negation | comparison ;
    comparison = primary , [ compare_op , primary ] ;      (* no chaining: a < b < c is an error *)
    primary    = literal | name | "(" , or_expr , ")" ;
    compare_op = "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" , "in" ;
    literal    = number | duration | money | string | "true" | "false" | "null" ;
    number     = [ "-" ] , digits , [ "." , digits ] ;
    duration   = digits , [ "." , digits ] , ( "s" | "m" | "h" | "d" ) ;   (* value in seconds *)
    money      = "$" , digits , [ "." , digits ] ;                       (* value in USD *)
    string     = "'" , { char | "\\" , char } , "'" | '"' , { char | "\\" , char } , '"' ;
    name       = ident , { "." , key } ;                  (* dotted paths only under "context" *)
    ident      = ( letter | "_" ) , { letter | digit | "_" | "-" } ;
    key        = ( letter | digit | "_" | "-" ) , { letter | digit | "_" | "-" } ;

Precedence, tightest first, as in Python: comparisons, ``not``, ``and``, ``or``; so
``not step == 'deploy'`` means ``not (step == 'deploy')``.

A known fact (FACTS) is read from the facts (missing: null); ``context.a.0`` walks the context dict,
digit keys indexing lists (missing: null); any other bare name is an *operation test*, true when the
``operations`` fact (the current step's operation and approval type names) contains it. Numbers,
durations and money are Decimals (int/float facts go through ``str``, so comparison is exact). Values
of different kinds are never equal nor ordered. ``x in y``: y a list/set, a string or a mapping's keys.
"""
import functools
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

__all__ = ["FACTS", "MAX_DEPTH", "MAX_LENGTH", "Condition", "ConditionError", "parse"]

FACTS = frozenset({
    "workflow_duration", "cost_estimate", "tokens_used", "step", "workflow", "workflow_type", "operation", "context",
})
MAX_LENGTH = 1000
# Parentheses and "not"s both recurse; the cap keeps parsing and evaluation far from RecursionError.
MAX_DEPTH = 50

_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<money>\$\d+(?:\.\d+)?)
  | (?P<duration>\d+(?:\.\d+)?[smhd])
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][\w-]*(?:\.[\w-]+)*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\))
""", re.VERBOSE | re.ASCII | re.DOTALL)
# Characters glued to a numeric literal make it invalid: "4x", "4hours", "1.2.3", "5-3".
_GLUED_RE = re.compile(r"[\w.$-]+", re.ASCII)
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LITERAL_VALUES = {
    "number": Decimal,
    "duration": lambda text: Decimal(text[:-1]) * _DURATION_SECONDS[text[-1]],
    "money": lambda text: Decimal(text[1:]),
    "string": lambda text: _ESCAPE_RE.sub(r"\1", text[1:-1]),
}
_CONSTANTS = {"true": True, "false": False, "null": None}
_KEYWORDS = frozenset({"and", "or", "not", "in"})
_ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_BAD_START = {"'": "unterminated string", '"': "unterminated string", "$": "expected an amount after '$'"}


class ConditionError(ValueError):
    """An unparsable condition; the message says what is wrong and at which (0-based) character."""

    def __init__(self, message, position=None):
        super().__init__(message)
        self.message = message
        self.position = position


def _error(source, what, position):
    return ConditionError(f"{what} at position {position} in {source!r}", position)


class _Token(NamedTuple):
    kind: str  # "literal", "name", "keyword", "op" or "end"
    text: str
    position: int
    value: Any = None


def _tokenize(source):
    tokens, position = [], 0
    while position < len(source):
        match = _TOKEN_RE.match(source, position)
        if match is None:
            char = source[position]
            raise _error(source, _BAD_START.get(char, f"unexpected {char!r}"), position)
        kind, text, end = match.lastgroup, match.group(), match.end()
        if kind in ("number", "duration", "money") and (glued := _GLUED_RE.match(source, end)):
            raise _error(source, f"invalid literal {text + glued.group()!r}", position)
        if kind == "name" and source.startswith(".", end):
            raise _error(source, f"expected a key after {text + '.'!r}", end)
        if kind in _LITERAL_VALUES:
            tokens.append(_Token("literal", text, position, _LITERAL_VALUES[kind](text)))
        elif kind == "name" and text in _CONSTANTS:
            tokens.append(_Token("literal", text, position, _CONSTANTS[text]))
        elif kind in ("name", "op"):
            tokens.append(_Token("keyword" if text in _KEYWORDS else kind, text, position))
        position = end
    tokens.append(_Token("end", "", len(source)))
    return tokens


class _Parser:
    """Recursive descent over the tokens, one method per grammar rule. Tree nodes are tuples:
    ("literal", value), ("fact", name), ("path", keys), ("operation", name), ("not", node),
    ("and", nodes), ("or", nodes), ("compare", op, left, right)."""

    def __init__(self, source):
        self.source, self.tokens, self.index, self.depth = source, _tokenize(source), 0, 0
        self.names = set()  # the facts the condition reads, for Condition.names

    def parse(self):
        root = self.or_expr()
        if self.peek().kind != "end":
            self.fail(self.peek())
        return root

    def peek(self, ahead=0):
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def is_keyword(self, word, ahead=0):
        token = self.peek(ahead)
        return token.kind == "keyword" and token.text == word

    def fail(self, token, expected=None):
        found = "end of condition" if token.kind == "end" else repr(token.text)
        raise _error(self.source, f"expected {expected}, found {found}" if expected else f"unexpected {found}",
                     token.position)

    def enter(self, token):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(self.source, f"nesting deeper than {MAX_DEPTH}", token.position)

    def chain(self, word, parse_operand):
        operands = [parse_operand()]
        while self.is_keyword(word):
            self.index += 1
            operands.append(parse_operand())
        # A flat tuple rather than nested pairs, so long chains do not make deep trees.
        return operands[0] if len(operands) == 1 else (word, tuple(operands))

    def or_expr(self):
        return self.chain("or", lambda: self.chain("and", self.negation))

    def compare_op(self):
        token = self.peek()
        if token.kind == "op" and token.text in ("==", "!=", "<", "<=", ">", ">="):
            return token.text
        if self.is_keyword("in"):
            return "in"
        return "not in" if self.is_keyword("not") and self.is_keyword("in", ahead=1) else None

    def comparison(self):
        left = self.primary()
        op = self.compare_op()
        if op is None:
            return left
        self.index += len(op.split())  # "not in" is two tokens
        right = self.primary()
        if self.compare_op() is not None:
            raise _error(self.source, "comparisons cannot be chained (use 'and')", self.peek().position)
        return ("compare", op, left, right)

    def negation(self):
        if not self.is_keyword("not"):
            return self.comparison()
        self.enter(self.tokens[self.index])
        self.index += 1
        node = ("not", self.negation())
        self.depth -= 1
        return node

    def primary(self):
        token = self.peek()
        self.index += 1
        if token.kind == "literal":
            return ("literal", token.value)
        if token.kind == "name":
            return self.name(token)
        if token.text != "(" or token.kind != "op":
            self.fail(token)
        self.enter(token)
        node = self.or_expr()
        if self.peek().text != ")":
            self.fail(self.peek(), "')'")
        self.index += 1
        self.depth -= 1
        return node

    def name(self, token):
        root, _, keys = token.text.partition(".")
        if keys and root != "context":
            raise _error(self.source, f"unknown path {token.text!r} (only context has fields)", token.position)
        if keys:
            self.names.add("context")
            return ("path", tuple(keys.split(".")))
        if root in FACTS:
            self.names.add(root)
            return ("fact", root)
        self.names.add("operations")
        return ("operation", root)


def _evaluate(node, facts):
    match node:
        case ("literal", value):
            return value
        case ("fact", name):
            return facts[name]
        case ("path", keys):
            return _walk(facts["context"], keys)
        case ("operation", name):
            operations = facts["operations"]  # a lone string is one name, not text to search in
            return operations == name if isinstance(operations, str) else _contains(operations, name)
        case ("not", operand):
            return not _truthy(_evaluate(operand, facts))
        case ("and", operands):
            return all(_truthy(_evaluate(operand, facts)) for operand in operands)
        case ("or", operands):
            return any(_truthy(_evaluate(operand, facts)) for operand in operands)
        case ("compare", op, left, right):
            return _compare(op, _evaluate(left, facts), _evaluate(right, facts))


def _walk(value, keys):
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, (list, tuple)) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def _truthy(value):
    try:
        return bool(value)
    except Exception:
        return False


def _number(value):
    """An exact finite Decimal for an int/float/Decimal (bools are not numbers), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    try:
        number = Decimal(str(value))
    except (ArithmeticError, ValueError):  # ValueError: an int too long to print
        return None
    return number if number.is_finite() else None


def _compare(op, left, right):
    if op in ("==", "!="):
        return _equal(left, right) == (op == "==")
    if op in ("in", "not in"):
        return _contains(right, left) == (op == "in")
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        return _ORDERINGS[op](left_number, right_number)
    return isinstance(left, str) and isinstance(right, str) and _ORDERINGS[op](left, right)


def _equal(left, right):
    left_number, right_number = _number(left), _number(right)
    if left_number is not None or right_number is not None:
        return left_number is not None and right_number is not None and left_number == right_number
    try:  # neither is a number: Python's == already says False across kinds (None, str, bool, ...)
        return bool(left == right)
    except Exception:  # e.g. a signalling Decimal NaN
        return False


def _contains(container, item):
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, (list, tuple, set, frozenset, Mapping)):  # our equality: 1 in [1.0], "1" not in [1]
        return any(_equal(item, member) for member in container)
    return False


class _FactReader(dict):
    """The facts read so far: each is looked up only when first needed, and once per evaluation."""

    def __init__(self, facts):
        super().__init__()
        self.facts = facts

    def __missing__(self, name):
        if callable(getattr(self.facts, "get", None)):
            value = self.facts.get(name)
        else:
            try:
                value = self.facts[name]
            except (KeyError, IndexError, TypeError):  # absent, or no facts at all (None)
                value = None
        self[name] = value
        return value


@dataclass(frozen=True)
class Condition:
    """A parsed condition. Immutable, so a cached instance can be shared freely."""

    source: str
    names: frozenset  # the facts evaluate() may read ("operations" when it has an operation test)
    _root: Any = field(repr=False, compare=False)

    def evaluate(self, facts) -> bool:
        """True when the condition holds for ``facts`` (a mapping, read lazily; missing facts are null)."""
        return _truthy(_evaluate(self._root, _FactReader(facts)))


def parse(source) -> Condition:
    """Parse a condition, or raise ConditionError saying what is wrong and where."""
    if not isinstance(source, str):
        raise ConditionError(f"a condition must be a string, not {type(source).__name__}")
    if len(source) > MAX_LENGTH:
        raise ConditionError(f"condition is {len(source)} characters long; the limit is {MAX_LENGTH}", MAX_LENGTH)
    return _parse(str(source))


@functools.lru_cache(maxsize=1024)  # the same rule text is evaluated again and again
def _parse(source):
    if not source.strip():
        raise _error(source, "empty condition", 0)
    parser = _Parser(source)
    root = parser.parse()  # also collects parser.names
    return Condition(source, frozenset(parser.names), root)
