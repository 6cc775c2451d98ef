"""Tokens of NNEF text (spec chapter 3.1), with tract's `i"escaped"` identifiers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nnefopt.errors import Location, NNEFError

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<real>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<integer>\d+)
  | (?P<escaped>i(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
  | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<operator>->|<=|>=|==|!=|&&|\|\||[-+*/^<>=!:,;()\[\]{}?])
  | (?P<bad>["'].*|.)
    """,
    re.VERBOSE,
)

_ESCAPES = re.compile(r"\\(.)")


@dataclass(slots=True)
class Token:
    kind: str  # "identifier", "integer", "real", "string", "operator" or "end"
    text: str  # for strings and escaped identifiers: the decoded value
    line: int
    column: int


def _unquote(quoted: str) -> str:
    return _ESCAPES.sub(r"\1", quoted[1:-1])


def tokenize(text: str, file: str) -> list[Token]:
    tokens: list[Token] = []
    line, line_start = 1, 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "space" or kind == "comment":
            continue
        if kind == "newline":
            line, line_start = line + 1, match.end()
            continue
        column = match.start() - line_start + 1
        value = match.group()
        if kind == "bad":
            what = "unterminated string" if value[0] in "'\"" else f"unexpected character {value!r}"
            raise NNEFError(what, Location(file, line, column))
        if kind == "string":
            value = _unquote(value)
        elif kind == "escaped":
            kind, value = "identifier", _unquote(value[1:])
        tokens.append(Token(kind, value, line, column))
    end_column = len(text) - line_start + 1
    tokens.append(Token("end", "end of file", line, end_column))
    return tokens
