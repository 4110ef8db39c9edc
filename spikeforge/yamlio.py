"""The one YAML reader of spikeforge: safe, strict and bounded.

Every YAML file a user hands to spikeforge (run and training configs, QNets,
hardware descriptions, mappings, studies) is read by :func:`read_yaml`, so
every one of them fails the same way: one :class:`~spikeforge.errors.ConfigError`
line naming the file. The reader

* builds only plain data (``yaml.SafeLoader``: no Python objects, no code);
* refuses files over :data:`MAX_BYTES`, text that is not UTF-8, nesting deeper
  than :data:`MAX_DEPTH`, documents whose aliases would expand to more than
  :data:`MAX_NODES` nodes ("billion laughs"), and duplicate mapping keys;
* quotes at most :data:`QUOTE` characters of any value in a message
  (:func:`short`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from spikeforge.errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "QUOTE", "parse_yaml", "read_yaml", "short"]

MAX_BYTES = 16 * 1024 * 1024  # a QNet's arrays live in its NPZ; YAML files are small
MAX_DEPTH = 64
MAX_NODES = 1_000_000  # after alias expansion
QUOTE = 80


def short(value: Any, limit: int = QUOTE) -> str:
    """``repr(value)`` cut to ``limit`` characters (with ``…``), safe on huge or shared values."""
    if isinstance(value, (dict, list, tuple)) and _size(value, limit) > limit:
        text = _head(value, limit)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(value: Any, cap: int) -> int:
    """A bound on the repr length of ``value`` that stops counting at ``cap``."""
    stack, total = [value], 0
    while stack and total <= cap:
        v = stack.pop()
        total += 2
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        else:
            total += len(repr(v)) if isinstance(v, (int, float, bool, type(None))) else 8
    return total


def _head(value: Any, limit: int) -> str:
    """The first ``limit`` characters of the repr of a container, built lazily."""
    out: list[str] = []
    n = 0

    def emit(s: str) -> bool:
        nonlocal n
        out.append(s)
        n += len(s)
        return n < limit

    def walk(v: Any, depth: int) -> bool:
        if depth > 8:
            return emit("…")
        if isinstance(v, dict):
            if not emit("{"):
                return False
            for i, (k, x) in enumerate(v.items()):
                if (i and not emit(", ")) or not walk(k, depth + 1) or not emit(": ") \
                        or not walk(x, depth + 1):
                    return False
            return emit("}")
        if isinstance(v, (list, tuple)):
            if not emit("["):
                return False
            for i, x in enumerate(v):
                if (i and not emit(", ")) or not walk(x, depth + 1):
                    return False
            return emit("]")
        r = repr(v)
        return emit(r[:limit])

    walk(value, 0)
    return "".join(out)


class _Refused(Exception):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader with a nesting limit, duplicate-key refusal and no timestamps."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode):
                key = self.construct_object(key_node, deep=deep)
                try:
                    dup = key in seen
                except TypeError:
                    continue
                if dup:
                    raise _Refused(f"duplicate key {short(key)}", key_node.start_mark.line + 1)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# dates stay strings: a config never means a datetime
_BoundedLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _expanded_nodes(root: Node, memo: dict[int, int] | None = None) -> int:
    """Nodes of ``root`` with every alias expanded, counted once per node object (memoized)."""
    memo = {} if memo is None else memo
    # iterative post-order: the graph is at most MAX_DEPTH deep, but stay off the C stack
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in memo:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [x for kv in node.value for x in kv]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in memo)
            continue
        total = 1
        for c in children:
            total += memo.get(id(c), 1)
            if total > MAX_NODES:
                total = MAX_NODES + 1
                break
        memo[id(node)] = total
    return memo.get(id(root), 1)


_MAX_INT_DIGITS = 4000  # Python refuses int() of more than 4300 digits


def _long_integer(root: Node) -> str | None:
    """The path of an integer scalar too long to convert, or None (each node seen once)."""
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            if node.tag == "tag:yaml.org,2002:int" and len(node.value) > _MAX_INT_DIGITS:
                return path
        elif isinstance(node, SequenceNode):
            stack.extend((v, f"{path}.{i}" if path else str(i))
                         for i, v in enumerate(node.value))
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                key = str(k.value) if isinstance(k, ScalarNode) else "?"
                stack.append((k, path))
                stack.append((v, f"{path}.{key}" if path else key))
    return None


def _heaviest_path(node: Node, memo: dict[int, int]) -> str:
    """``a.b.0``: the deepest place whose expansion alone passes the cap."""
    path: list[str] = []
    for _ in range(MAX_DEPTH):
        nxt = None
        if isinstance(node, MappingNode):
            for k, v in node.value:
                if memo.get(id(v), 1) > MAX_NODES:
                    nxt = v
                    path.append(str(k.value) if isinstance(k, ScalarNode) else "?")
                    break
        elif isinstance(node, SequenceNode):
            for i, v in enumerate(node.value):
                if memo.get(id(v), 1) > MAX_NODES:
                    nxt = v
                    path.append(str(i))
                    break
        if nxt is None:
            break
        node = nxt
    return ".".join(path)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML ``text``; ``where`` names it (a path) in the one-line error."""
    try:
        loader = _BoundedLoader(text)  # the reader refuses some characters (NUL) at once
    except yaml.YAMLError:
        raise ConfigError(where, "-", "is not valid YAML (a character YAML does not allow)"
                          ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        memo: dict[int, int] = {}
        long_int = _long_integer(node)
        if long_int is not None:
            raise ConfigError(where, long_int or "-", "an integer of more than "
                                                      f"{_MAX_INT_DIGITS} digits")
        if _expanded_nodes(node, memo) > MAX_NODES:
            field = _heaviest_path(node, memo)
            raise ConfigError(where, field or "-",
                              f"aliases expand to more than {MAX_NODES:,} values")
        return loader.construct_document(node)
    except _Refused as e:
        at = f" (line {e.line})" if e.line else ""
        raise ConfigError(where, "-", f"{e}{at}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(where, "-", f"is not valid YAML{at}") from None
    except RecursionError:
        raise ConfigError(where, "-", f"nesting deeper than {MAX_DEPTH} levels") from None
    except ConfigError:
        raise
    except ValueError as e:  # an integer of more than 4300 digits, a bad base-60 number
        raise ConfigError(where, "-", f"holds a value YAML cannot convert "
                                      f"({short(str(e), 60)})") from None
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The parsed YAML document at ``path``; one-line :class:`ConfigError` when it can't be."""
    p = Path(path)
    try:
        if not p.is_file():
            raise ConfigError(str(p), "-", "file does not exist" if not p.exists()
                              else "is not a regular file")
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(str(p), "-", f"is {size:,} bytes; YAML inputs are limited to "
                                           f"{MAX_BYTES:,}")
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(str(p), "-", f"cannot be read ({e.strerror or e.__class__.__name__})"
                          ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(str(p), "-", f"is not UTF-8 text (byte 0x{data[e.start]:02x} at "
                                       f"line {line})") from None
    return parse_yaml(text, str(p))
