"""What the compiled codecs (``fast_decode``, ``fast_encode``) share: writing Python source.

Each compiles one schema into straight-line functions: a :class:`Module` holds the source
being written and the globals it refers to, a :class:`Function` its lines and local names,
and :meth:`Module.compile` runs the source once, with its lines shown in tracebacks.
"""

from __future__ import annotations

import itertools
import linecache
import zlib
from typing import Any


class Module:
    """The source of one schema's functions being written, and the globals it refers to."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = dict(namespace)
        self.functions: list[Function] = []
        self._classes: dict[type, str] = {}

    def name(self, stem: str) -> str:
        """A global name not taken yet (reserved: the caller binds it)."""
        for suffix in itertools.chain([""], (f"_{i}" for i in itertools.count(2))):
            if stem + suffix not in self.namespace:
                self.namespace[stem + suffix] = None
                return stem + suffix
        raise AssertionError("unreachable")

    def constant(self, stem: str, value: Any) -> str:
        """A global name for ``value``, for the compiled code to refer to."""
        name = self.name(stem)
        self.namespace[name] = value
        return name

    def class_(self, cls: type) -> str:
        """The global name of a class (one name per class)."""
        if cls not in self._classes:
            self._classes[cls] = self.constant(cls.__name__, cls)
        return self._classes[cls]

    def source(self, doc: str) -> str:
        blocks = [f'"""{doc}"""\n'] + ["\n".join(f.lines) + "\n" for f in self.functions]
        return "\n\n".join(blocks)

    def compile(self, compiler: str, schema_name: str) -> str:
        """Run the source (its globals land in ``namespace``); the source."""
        source = self.source(f"Compiled by schemas.{compiler} from the {schema_name} schema.")
        filename = f"<{compiler} {schema_name} {zlib.crc32(source.encode()):08x}>"
        # Tracebacks and debuggers show the generated lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.namespace)  # noqa: S102 (our own source)
        return source


class Function:
    """One generated function: its lines and its local names (``taken``: reserved)."""

    def __init__(self, signature: str, taken: set[str]) -> None:
        self.name = signature.partition("(")[0]
        self.lines = [f"def {signature}:"]
        self._locals = set(taken)

    def add(self, depth: int, *lines: str) -> None:
        self.lines.extend("    " * depth + line for line in lines)

    def local(self, stem: str) -> str:
        """A local name not taken yet in this function."""
        for suffix in itertools.chain([""], (str(i) for i in itertools.count(2))):
            if stem + suffix not in self._locals:
                self._locals.add(stem + suffix)
                return stem + suffix
        raise AssertionError("unreachable")


def kind(avro: Any) -> tuple[str, str | None]:
    """(Avro type name, logical type) of a field type; "union" for a union."""
    if isinstance(avro, list):
        return "union", None
    if isinstance(avro, str):
        return avro, None
    if isinstance(avro, dict) and isinstance(avro.get("type"), str):
        logical = avro.get("logicalType")
        return avro["type"], logical if isinstance(logical, str) else None
    raise TypeError(f"unsupported Avro type {avro!r}")


def describe(avro: Any) -> str:
    """A short name of an Avro type, for comments in the source and error messages."""
    name, logical = kind(avro)
    if name == "union":
        return " | ".join(describe(branch) for branch in avro)
    if logical == "decimal":
        return f"decimal({avro.get('precision')}, {avro.get('scale', 0)})"
    if logical is not None:
        return logical
    if name == "array":
        return f"array<{describe(avro['items'])}>"
    if name == "map":
        return f"map<{describe(avro['values'])}>"
    if name in ("enum", "record", "fixed"):
        return f"{name} {avro['name']}"
    return name
