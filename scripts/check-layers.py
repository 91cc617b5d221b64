#!/usr/bin/env python3
"""Keeps docs/architecture.md's layer drawing true (run by scripts/test.sh).

The drawing is the fenced ```layers block there: one line per layer, the top one
first, the modules of host/src named on it. A module may use (`crate::X`, outside
`#[cfg(test)]`) only modules of the layers below its own: never one beside it or
above it, so the top-level modules cannot form an import cycle. A module of
host/src that the drawing does not name fails the check too, so a new one gets a
place. Exits 1 naming every reference out of place, with its file and line.
"""
import os
import re
import sys

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = os.path.join(repo, "host", "src")
doc = os.path.join(repo, "docs", "architecture.md")

text = open(doc, encoding="utf-8").read()
block = re.search(r"```layers\n(.*?)```", text, re.S)
if not block:
    sys.exit(f"{doc}: no ```layers block")
layer_of = {}
for depth, line in enumerate(block.group(1).strip().splitlines()):
    for name in line.split("#")[0].split():
        layer_of[name] = depth  # 0: the top

# Top-level modules: files and folders of host/src (the binary's cli/ aside).
modules = set()
for entry in os.listdir(src):
    if entry in ("lib.rs", "main.rs", "cli"):
        continue
    if entry.endswith(".rs"):
        modules.add(entry[:-3])
    elif os.path.isdir(os.path.join(src, entry)):
        modules.add(entry)

faults = [f"{doc}: the drawing does not place `{m}` (host/src/{m})" for m in sorted(modules - set(layer_of))]
faults += [f"{doc}: `{m}` is drawn but is no module of host/src" for m in sorted(set(layer_of) - modules)]


def code_lines(path):
    """(line number, text) of a file's code: comments and #[cfg(test)] items out."""
    lines = open(path, encoding="utf-8").read().split("\n")
    skip_depth = None
    depth = 0
    pending_test = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        code = re.sub(r"//.*", "", line)
        if skip_depth is None and stripped.startswith("#[cfg(test)]"):
            pending_test = True
            continue
        opened, closed = code.count("{"), code.count("}")
        if pending_test and skip_depth is None:
            skip_depth = depth
            pending_test = False
            depth += opened - closed
            if depth <= skip_depth:
                skip_depth = None  # a one-line item
            continue
        depth += opened - closed
        if skip_depth is not None:
            if depth <= skip_depth:
                skip_depth = None
            continue
        if stripped.startswith("//"):
            continue
        yield number, code


for folder, _, files in os.walk(src):
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, src)
        first = rel.split(os.sep)[0]
        me = first[:-3] if first.endswith(".rs") else first
        if me not in modules or me not in layer_of:
            continue
        for number, code in code_lines(path):
            used = re.findall(r"crate::([a-z_][a-z0-9_]*)", code)
            for group in re.findall(r"crate::\{([^}]*)\}", code):
                used += [g.strip().split("::")[0] for g in group.split(",") if g.strip()]
            for other in used:
                if other == me or other not in modules:
                    continue
                if other not in layer_of:
                    continue  # named above as unplaced
                if layer_of[other] <= layer_of[me]:
                    where = "beside it" if layer_of[other] == layer_of[me] else "above it"
                    faults.append(
                        f"host/src/{rel}:{number}: `{me}` uses `{other}`, which is {where} in docs/architecture.md's layers"
                    )

if faults:
    print("\n".join(faults), file=sys.stderr)
    sys.exit(1)
print(f"layers: {len(modules)} modules, every crate:: reference points down")
