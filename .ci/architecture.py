#!/usr/bin/env python3
"""Architecture rules CI holds (STYLE habits 1 and 11): no import cycle between modules, no file over
MAX_CODE_LINES lines of code.

Cycles: 
Every source file is one module (`lib.rs`/`main.rs` the crate root, `a/mod.rs` and `a.rs` module `a`,
`a/b.rs` module `a::b`). An edge A -> B means A's code names B's items: a `use crate::..`/`super::..`/`self::..`
path, or such a path written inline. Re-exports are followed (`use crate::apply::Stage` where `apply` says
`pub use stage::Stage` is an edge to `apply::stage`), so a parent that re-exports its children does not look
like their dependent. Test code (`#[cfg(test)]` items and `*_tests.rs` files) is left out: tests may look
anywhere. Declaring a child (`mod b;`) is not an edge. Prints each strongly connected component and exits 1 if
there is any.

Size: lines of code are the lines left after removing comments, blank lines and test code; a file over
MAX_CODE_LINES fails.

Usage: architecture.py [CRATE_SRC_DIR...] (default: agent/src status-writer/src)
"""
import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# STYLE: files of 50-400 lines, one concern each.
MAX_CODE_LINES = 400


def strip_comments_and_strings(text):
    """Blanks out comments, string and char literals, keeping line structure."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            i += len(re.match(r"'(\\.[^']*|[^\\'])'", text[i:]).group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_items(code):
    """Removes `#[cfg(test)]` items (a `mod tests { .. }` block or a single item up to `;`/its block)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", code)
        if not m:
            return code
        i = m.end()
        depth, end = 0, None
        while i < len(code):
            if code[i] == "{":
                depth += 1
            elif code[i] == "}":
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
            elif code[i] == ";" and depth == 0:
                end = i + 1
                break
            i += 1
        code = code[: m.start()] + code[end or len(code):]


def expand_use_tree(tree):
    """`a::{b, c::{d, e as f}, self}` -> [(path, alias)]; a glob gives alias `*`."""
    tree = re.sub(r"\s+", "", tree)
    results = []

    def walk(prefix, t):
        parts, depth, start = [], 0, 0
        for k, ch in enumerate(t):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(t[start:k])
                start = k + 1
        parts.append(t[start:])
        for p in filter(None, parts):
            brace = p.find("{")
            if brace >= 0:
                head = p[:brace].rstrip(":")
                walk(prefix + ([x for x in head.split("::") if x] if head else []), p[brace + 1 : p.rfind("}")])
                continue
            alias = None
            if "as" in p and re.search(r"as" + IDENT + "$", p):
                m = re.match(r"(.*?)as(" + IDENT + ")$", p)
                if m and m.group(1).endswith(tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_*}")):
                    p, alias = m.group(1), m.group(2)
            segs = [x for x in p.split("::") if x]
            if segs and segs[-1] == "self":
                segs = segs[:-1]
                alias = alias or (segs[-1] if segs else None)
            if segs and segs[-1] == "*":
                results.append((prefix + segs[:-1], "*"))
            elif segs:
                results.append((prefix + segs, alias or segs[-1]))

    walk([], tree)
    return results


class Crate:
    def __init__(self, src):
        self.src = Path(src)
        self.files = {}  # module path tuple -> code
        self.paths = {}  # module path tuple -> file
        for f in sorted(self.src.rglob("*.rs")):
            if f.name.endswith("_tests.rs") or f.name == "tests.rs":
                continue
            rel = f.relative_to(self.src).with_suffix("").parts
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            if rel and rel[0] == "bin":
                continue
            code = strip_test_items(strip_comments_and_strings(f.read_text()))
            self.files[tuple(rel)] = code
            self.paths[tuple(rel)] = f
        self.uses = {m: self.parse_uses(code) for m, code in self.files.items()}

    @staticmethod
    def parse_uses(code):
        out = []
        for m in re.finditer(r"\b(pub(\([^)]*\))?\s+)?use\s+([^;]+);", code):
            for path, alias in expand_use_tree(m.group(3)):
                out.append((bool(m.group(1)), path, alias))
        return out

    def absolute(self, module, segs):
        """Resolves a path's leading `crate`/`super`/`self` against `module`; None if it leaves the crate."""
        if not segs:
            return None
        if segs[0] == "crate":
            return list(segs[1:])
        base = list(module)
        i = 0
        if segs[0] == "self":
            i = 1
        while i < len(segs) and segs[i] == "super":
            base, i = base[:-1], i + 1
        if i == 0:
            # A bare path: a child module of this one, or an extern crate/std.
            if tuple(base + [segs[0]]) in self.files:
                return base + list(segs)
            return None
        return base + list(segs[i:])

    def target(self, path, seen=None):
        """The file module that defines the item at `path` (crate-absolute), following re-exports."""
        seen = seen or set()
        for k in range(len(path), -1, -1):
            mod = tuple(path[:k])
            if mod not in self.files:
                continue
            if k == len(path):
                return mod
            item = path[k]
            for public, upath, alias in self.uses[mod]:
                if not public or (alias != item and alias != "*"):
                    continue
                resolved = self.absolute(mod, upath if alias != "*" else upath + [item])
                if resolved is None or (mod, item) in seen:
                    continue
                seen.add((mod, item))
                found = self.target(resolved + path[k + 1 :], seen)
                if found is not None and (alias != "*" or found != tuple(resolved[:-1] or ())):
                    return found
            return mod
        return None

    def edges(self):
        graph = {m: set() for m in self.files}
        for mod, code in self.files.items():
            paths = []
            for _public, upath, alias in self.uses[mod]:
                paths.append(upath)
            body = re.sub(r"\buse\s+[^;]+;", "", code)
            for m in re.finditer(r"\b((?:crate|super|self)(?:::" + IDENT + ")+)", body):
                paths.append(m.group(1).split("::"))
            # Bare paths into a child module (`pack::build(..)` in `push`).
            for m in re.finditer(r"(?<![:\w])(" + IDENT + r"(?:::" + IDENT + ")+)", body):
                segs = m.group(1).split("::")
                if tuple(list(mod) + [segs[0]]) in self.files:
                    paths.append(segs)
            for p in paths:
                a = self.absolute(mod, p)
                if a is None:
                    continue
                t = self.target(a)
                if t is not None and t != mod and t != ():
                    graph[mod].add(t)
                elif t == () and mod != ():
                    graph[mod].add(())
        return graph


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
            out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) or "crate"


def main(dirs):
    failed = False
    for d in dirs:
        crate = Crate(d)
        graph = crate.edges()
        cycles = [c for c in sccs(graph) if len(c) > 1]
        for comp in cycles:
            failed = True
            members = set(comp)
            print(f"{d}: import cycle between {len(comp)} modules:")
            for m in sorted(comp):
                inside = sorted(name(t) for t in graph[m] if t in members)
                print(f"  {name(m)} -> {', '.join(inside)}")
        if not cycles:
            print(f"{d}: {len(graph)} modules, no import cycle")
        sizes = {m: sum(1 for line in code.splitlines() if line.strip()) for m, code in crate.files.items()}
        for m, n in sorted(sizes.items(), key=lambda kv: -kv[1]):
            if n > MAX_CODE_LINES:
                failed = True
                print(f"{crate.paths[m]}: {n} lines of code, more than {MAX_CODE_LINES}: split it by concern")
        largest = max(sizes, key=sizes.get)
        print(f"{d}: largest file {crate.paths[largest]} ({sizes[largest]} lines of code)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["agent/src", "status-writer/src"]))
