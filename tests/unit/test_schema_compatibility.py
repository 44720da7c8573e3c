"""Every .avsc in the working tree reads what every committed version of it wrote.

The check itself (schemas.compatibility) is tested first, on changes known to break and
known to keep backward compatibility, and against the Apache Avro library's own checker.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

import schemas
from schemas.compatibility import backward_incompatibilities, is_backward_compatible
from schemas.loader import load_schema, schema_names

pytestmark = pytest.mark.unit

SCHEMA_DIR = Path(schemas.__file__).parent / "avro"

BASE: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "scoreline.test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["red", "blue"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2},
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}


def changed(**edits: Any) -> dict[str, Any]:
    """BASE with fields replaced (a dict), added (name not in BASE) or removed (None)."""
    schema = copy.deepcopy(BASE)
    fields = {f["name"]: f for f in schema["fields"]}
    for name, field in edits.items():
        if field is None:
            fields.pop(name)
        else:
            fields[name] = {"name": name, **field}
    schema["fields"] = list(fields.values())
    return schema


COMPATIBLE = {
    "unchanged": BASE,
    "field added with a default": changed(extra={"type": "int", "default": 0}),
    "optional field added": changed(extra={"type": ["null", "string"], "default": None}),
    "field removed": changed(note=None),
    "int promoted to long": changed(count={"type": "long"}),
    "enum symbol added": changed(
        color={"type": {"type": "enum", "name": "Color", "symbols": ["red", "blue", "green"]}}
    ),
    "field made nullable": changed(id={"type": ["null", "string"], "default": None}),
    "record renamed with an alias": {**BASE, "name": "Item", "aliases": ["scoreline.test.Thing"]},
}

BREAKING = {
    "field added without a default": changed(extra={"type": "int"}),
    "long narrowed to int": None,  # built from the long version below
    "type changed": changed(count={"type": "string"}),
    "enum symbol removed": changed(
        color={"type": {"type": "enum", "name": "Color", "symbols": ["red"]}}
    ),
    "nullable made required": None,
    "record renamed": {**BASE, "name": "Item"},
    "decimal scale changed": changed(
        amount={"type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4}}
    ),
}


def breaking_pair(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(new, old) for a breaking change."""
    if name == "long narrowed to int":
        return BASE, changed(count={"type": "long"})
    if name == "nullable made required":
        return changed(note={"type": "string"}), BASE
    schema = BREAKING[name]
    assert schema is not None
    return schema, BASE


@pytest.mark.parametrize("name", sorted(COMPATIBLE))
def test_a_compatible_change_passes(name: str) -> None:
    assert backward_incompatibilities(COMPATIBLE[name], BASE) == []
    assert is_backward_compatible(COMPATIBLE[name], BASE)


@pytest.mark.parametrize("name", sorted(BREAKING))
def test_a_breaking_change_fails_with_a_reason(name: str) -> None:
    new, old = breaking_pair(name)
    problems = backward_incompatibilities(new, old)
    assert problems, f"{name} should break backward compatibility"
    assert not is_backward_compatible(new, old)


def test_an_enum_with_a_default_may_lose_symbols() -> None:
    color = {"type": "enum", "name": "Color", "symbols": ["red", "other"], "default": "other"}
    new = changed(color={"type": color})
    assert is_backward_compatible(new, BASE)


def test_a_missing_default_is_caught_without_sample_data() -> None:
    problems = backward_incompatibilities(changed(extra={"type": "int"}), BASE)
    assert problems == ["$.extra: field added without a default"]


def _avro_says_compatible(new: dict[str, Any], old: dict[str, Any]) -> bool:
    reader, writer = avro.schema.parse(json.dumps(new)), avro.schema.parse(json.dumps(old))
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    return bool(result.compatibility is SchemaCompatibilityType.compatible)


@pytest.mark.parametrize("name", sorted(COMPATIBLE.keys() | BREAKING.keys()))
def test_the_verdict_agrees_with_the_apache_avro_checker(name: str) -> None:
    if name == "decimal scale changed":
        pytest.skip("Apache Avro ignores logical types when checking; we do not")
    new, old = (COMPATIBLE[name], BASE) if name in COMPATIBLE else breaking_pair(name)
    assert is_backward_compatible(new, old) == _avro_says_compatible(new, old)


# -- the shipped schemas against their history --------------------------------------------


def _git(*args: str, cwd: Path) -> str:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: schema history unavailable")
    done = subprocess.run([git, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LookupError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout


def committed_versions(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(commit, schema) for every committed version of ``path``, newest first."""
    try:
        root = Path(_git("rev-parse", "--show-toplevel", cwd=path.parent).strip())
    except LookupError as e:
        pytest.skip(f"not a git checkout, schema history unavailable: {e}")
    relative = path.resolve().relative_to(root.resolve()).as_posix()
    try:
        commits = _git("log", "--format=%H", "--", relative, cwd=root).split()
    except LookupError as e:
        pytest.skip(f"git history unavailable: {e}")
    versions = []
    for commit in commits:
        try:
            text = _git("show", f"{commit}:{relative}", cwd=root)
        except LookupError:
            continue  # the commit deleted the file
        versions.append((commit, json.loads(text)))
    return versions


@pytest.mark.parametrize("name", schema_names())
def test_the_working_tree_schema_reads_every_committed_version(name: str) -> None:
    current = load_schema(name)
    for commit, old in committed_versions(SCHEMA_DIR / f"{name}.avsc"):
        problems = backward_incompatibilities(current, old)
        assert not problems, (
            f"{name}.avsc cannot read data written with its version in {commit[:12]}: "
            + "; ".join(problems)
        )
