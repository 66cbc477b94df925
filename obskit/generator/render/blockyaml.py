"""A fast block-YAML writer, byte for byte what `output.dump_yaml`'s PyYAML dumper writes.

PyYAML's pure-Python emitter was most of `obskit generate`'s time on a fleet (an event object,
a style analysis and several method calls per scalar). Generated documents use a small part of
YAML: mappings with string keys (sorted), lists, and str/int/float/bool/None scalars, written
in block style with indented lists, multi-line strings as literal blocks, no line folding
(width 10,000). `dump()` writes exactly that subset the way PyYAML does:

- a string is plain when PyYAML's analysis allows a plain block scalar and the plain text would
  read back as a string (PyYAML's own resolver decides), else single-quoted (quotes doubled);
- a multi-line string without trailing spaces on its lines is a literal block (`|`, `|-`,
  `|2-`...), indented two spaces deeper than its key;
- numbers, booleans and null as PyYAML's SafeRepresenter writes them.

Anything else (a string that needs double quotes, a line PyYAML would fold, an empty key,
nested lists, `|+` chomping, other types...) makes `dump()` return None, and the caller uses
PyYAML for the whole document: the output never depends on which path ran.
tests/generator/test_blockyaml.py compares both on generated documents and on random ones.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Final, cast

import yaml
from yaml.emitter import Emitter
from yaml.resolver import Resolver

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_FLOAT: Final = "tag:yaml.org,2002:float"
MAX_SCALAR: Final = 4000
"""Longer scalars go to PyYAML: with its 10,000-column width it could fold a long line."""
MAX_INDENT: Final = 1000
_OTHER_BREAKS: Final = ("\x85", "\u2028", "\u2029", "\r")
_CACHE_LIMIT: Final = 100_000

_resolver: Any = Resolver()
_analyzer = Emitter(cast(Any, None), allow_unicode=True)
"""Only its `analyze_scalar` is used (a pure function of the text and `allow_unicode`)."""


class Fallback(Exception):
    """This document needs PyYAML."""


def _resolves_to(text: str, tag: str) -> bool:
    return bool(_resolver.resolve(yaml.ScalarNode, text, (True, False)) == tag)


def _styles(text: str) -> tuple[bool, bool, bool]:
    """(plain allowed, single quotes allowed, literal block allowed) for a non-empty scalar in
    block context, as PyYAML's `analyze_scalar` decides (ASCII text is decided here, faster,
    by the same rules; other text by PyYAML itself)."""
    if text.isascii() and "\n" in text:
        if not text.replace("\n", "").isprintable():
            return False, False, False  # control characters: double quotes
        space_break = " \n" in text
        return False, not (space_break or "\n " in text), not (space_break or text[-1] == " ")
    if text.isascii():
        if not text.isprintable():
            return False, False, False
        first = text[0]
        indicator = (
            text.startswith(("---", "..."))
            or first in "#,[]{}&*!|>'\"%@`"
            or (first in "?:-" and (len(text) == 1 or text[1] == " "))
            or ": " in text[1:]
            or (len(text) > 1 and text[-1] == ":")
            or " #" in text
        )
        spaced = first == " " or text[-1] == " "
        return not (indicator or spaced), True, text[-1] != " "
    analysis = _analyzer.analyze_scalar(text)
    return analysis.allow_block_plain, analysis.allow_single_quoted, analysis.allow_block


@lru_cache(maxsize=1 << 16)
def inline(text: str, key: bool = False) -> str:
    """`text` as a one-line scalar (plain or single-quoted); Fallback when it is not one."""
    if len(text) > MAX_SCALAR or "\n" in text or any(c in text for c in _OTHER_BREAKS):
        raise Fallback
    if not text:
        if key:
            raise Fallback  # PyYAML writes an empty key as a complex key
        return "''"
    plain, single, _ = _styles(text)
    if plain and _resolves_to(text, _STR):
        return text
    if single:
        return "'" + text.replace("'", "''") + "'"
    raise Fallback


def wants_literal(text: str) -> bool:
    """The literal-block rule of `output._str_representer`."""
    return "\n" in text and not any(line != line.rstrip() for line in text.splitlines())


@lru_cache(maxsize=1 << 14)
def literal(text: str) -> tuple[str, tuple[str, ...]]:
    """(header, lines) of `text` as a literal block; Fallback when PyYAML would not write one."""
    if len(text) > MAX_SCALAR or any(c in text for c in _OTHER_BREAKS):
        raise Fallback
    if not _styles(text)[2]:
        raise Fallback
    hints = "2" if text[0] in " \n" else ""
    if text[-1] != "\n":
        hints += "-"
    elif len(text) == 1 or text[-2] == "\n":
        raise Fallback  # keep chomping (`|+`): PyYAML may also end the document with `...`
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return "|" + hints, tuple(lines)


def _number(value: Any) -> str:
    """null, booleans and numbers as SafeRepresenter writes them."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        text = str(value)
        if not _resolves_to(text, _INT):
            raise Fallback
        return text
    if kind is float:
        if math.isnan(value):
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value).lower()
        if "." not in text and "e" in text:
            text = text.replace("e", ".0e", 1)
        if not _resolves_to(text, _FLOAT):
            raise Fallback
        return text
    raise Fallback


_KEYS: dict[Any, str] = {}
"""key -> `key:` as written."""
_VALUES: dict[str, str | None] = {}
"""str -> " text\\n" when it is written on its key's line, None for a literal block."""


class _Writer:
    """The lines of one document (the caches above are shared by all documents)."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def key(self, key: Any) -> str:
        text = _KEYS.get(key)
        if text is None:
            if type(key) is not str or len(key) >= 128:
                raise Fallback  # PyYAML would write a complex (`? `) key
            text = inline(key, key=True) + ":"
            if len(_KEYS) > _CACHE_LIMIT:
                _KEYS.clear()
            _KEYS[key] = text
        return text

    def string(self, value: str, indent: int) -> str:
        """What follows `key:` or `-` for a str value (with its newline)."""
        known = _VALUES.get(value, "")
        if known == "":  # never a rendered value (those start with a space)
            known = None if wants_literal(value) else " " + inline(value) + "\n"
            if len(_VALUES) > _CACHE_LIMIT:
                _VALUES.clear()
            _VALUES[value] = known
        if known is not None:
            return known
        header, lines = literal(value)
        pad = " " * (indent + 2)
        return " " + header + "\n" + "".join(pad + line + "\n" if line else "\n" for line in lines)

    def node(self, value: Any, indent: int) -> None:
        """A value after `key:` or `-` on the current line."""
        kind = type(value)
        if kind is str:
            self.out.append(self.string(value, indent))
        elif kind is dict:
            if value:
                self.out.append("\n")
                self.mapping(value, indent + 2, inline=False)
            else:
                self.out.append(" {}\n")
        elif kind is list:
            if value:
                self.out.append("\n")
                self.sequence(value, indent + 2)
            else:
                self.out.append(" []\n")
        else:
            self.out.append(" " + _number(value) + "\n")

    def mapping(self, mapping: dict[Any, Any], indent: int, inline: bool) -> None:
        if indent > MAX_INDENT:
            raise Fallback
        pad = " " * indent
        try:
            keys = sorted(mapping)
        except TypeError:
            raise Fallback from None
        append = self.out.append
        for key in keys:
            value = mapping[key]
            head = self.key(key)
            if inline:  # the first key of a list item shares the `- ` line
                inline = False
            else:
                head = pad + head
            if type(value) is str:
                append(head + self.string(value, indent))
            else:
                append(head)
                self.node(value, indent)

    def sequence(self, items: list[Any], indent: int) -> None:
        if indent > MAX_INDENT:
            raise Fallback
        pad = " " * indent
        for item in items:
            kind = type(item)
            if kind is dict and item:
                self.out.append(pad + "- ")
                self.mapping(item, indent + 2, inline=True)
            elif kind is list and item:
                raise Fallback  # `- - x`: rare, left to PyYAML
            elif kind is str:
                self.out.append(pad + "-" + self.string(item, indent))
            else:
                self.out.append(pad + "-")
                self.node(item, indent)


def dump(data: Any) -> str | None:
    """`data` as `output.dump_yaml` writes it (without the header), or None: use PyYAML."""
    if type(data) is not dict or not data:
        return None
    writer = _Writer()
    try:
        writer.mapping(data, 0, inline=False)
    except (Fallback, RecursionError):
        return None
    return "".join(writer.out)
