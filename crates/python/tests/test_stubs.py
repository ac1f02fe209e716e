"""The stubs (`_native.pyi`) name exactly what the native module has: every public
function, class, method and constant, and nothing it lacks."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

import the_block._native as native

STUB = Path(__file__).resolve().parents[1] / "python/the_block/_native.pyi"


def _stub_names() -> Dict[str, Set[str]]:
    tree = ast.parse(STUB.read_text())
    out: Dict[str, Set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[""].add(node.name)
            out[node.name] = {
                n.name
                for n in node.body
                if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
            }
        elif isinstance(node, ast.FunctionDef):
            out[""].add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[""].add(node.target.id)
    out[""] = {n for n in out[""] if not n.startswith("_") or n == "__version__"}
    return out


def test_stubs_match_the_module() -> None:
    stubs = _stub_names()
    module = {n for n in dir(native) if not n.startswith("_") or n == "__version__"}
    assert stubs[""] == module
    for cls, methods in stubs.items():
        if not cls or issubclass(getattr(native, cls), BaseException):
            continue
        have = {n for n in dir(getattr(native, cls)) if not n.startswith("_")}
        assert methods == have, cls
