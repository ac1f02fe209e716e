#!/usr/bin/env python3
"""Cycles between the source files of one crate.

Usage: scripts/file-cycles.py crates/node/src [crates/chain/src ...]

Each .rs file under SRC is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` and
`main.rs` are the root). A file depends on another when it names it by path:
`crate::a::b`, `super::x`, `self::x` (inside `use` trees too: `use crate::{a, b::c}`).
A child module naming its parent, or a parent declaring its children (`mod x;`), is
not a dependency. Prints every strongly connected group of two or more files, or
`no cycles`; exits 1 when there is a cycle.
"""
import os
import re
import sys


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            if rel and rel[0] == "bin":
                continue
            mods[tuple(rel)] = path
    return mods


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def expand_use(tree):
    """Paths named by a use tree (`a::{b, c::d}`), as lists of segments."""
    tree = tree.strip()
    m = re.match(r"^([\w:]*?)(::)?\{(.*)\}$", tree, re.S)
    if not m:
        return [tree.split(" as ")[0].strip().split("::")]
    prefix = [p for p in m.group(1).split("::") if p]
    out, depth, cur = [], 0, ""
    for ch in m.group(3):
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    out.append(cur)
    paths = []
    for part in out:
        if part.strip():
            paths += [prefix + p for p in expand_use(part) if p != [""]]
    return paths or [prefix]


def resolve(mods, here, segs):
    if not segs:
        return None
    if segs[0] == "crate":
        base, rest = [], segs[1:]
    elif segs[0] == "super":
        base = list(here)
        rest = segs
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
    elif segs[0] == "self":
        base, rest = list(here), segs[1:]
    else:
        return None
    best = None
    for i in range(len(rest) + 1):
        cand = tuple(base + rest[:i])
        if cand in mods:
            best = cand
    return best


def deps(mods):
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        text = strip(open(path, encoding="utf-8").read())
        paths = []
        for u in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", text):
            paths += expand_use(u.group(1))
        for r in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
            paths.append(r.group(1).split("::"))
        for segs in paths:
            t = resolve(mods, m, [s.strip() for s in segs])
            if t is None or t == m:
                continue
            # A module and its own ancestors/descendants: declaration and re-export.
            if t == m[: len(t)] or m == t[: len(m)]:
                continue
            graph[m].add(t)
    return graph


def sccs(graph):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    bad = False
    for src in sys.argv[1:]:
        mods = modules(src)
        graph = deps(mods)
        found = sccs(graph)
        name = lambda m: "::".join(m) or "(root)"
        if not found:
            print(f"{src}: no cycles ({len(mods)} files)")
            continue
        bad = True
        for comp in found:
            members = sorted(comp)
            edges = [
                f"{name(a)} -> {name(b)}"
                for a in members
                for b in sorted(graph[a])
                if b in comp
            ]
            print(f"{src}: cycle among {', '.join(name(m) for m in members)}")
            for e in edges:
                print(f"    {e}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
