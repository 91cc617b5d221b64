#!/usr/bin/env python3
"""Every relative link in README.md and docs/*.md leads somewhere (run by
scripts/test.sh): the file or folder exists, and a `#anchor` names a heading of the
file it points into (GitHub's slugs). Exits 1 naming each broken link, file:line."""
import os
import re
import sys

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pages = [os.path.join(repo, "README.md")]
docs = os.path.join(repo, "docs")
pages += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    found = set()
    fenced = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


broken = []
links = 0
for page in pages:
    fenced = False
    for number, line in enumerate(open(page, encoding="utf-8"), 1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            links += 1
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            where = f"{os.path.relpath(page, repo)}:{number}"
            if not os.path.exists(full):
                broken.append(f"{where}: `{target}`: no {os.path.relpath(full, repo)}")
            elif anchor and full.endswith(".md") and slug(anchor) not in anchors(full):
                broken.append(f"{where}: `{target}`: no heading `#{anchor}` in {os.path.relpath(full, repo)}")

if broken:
    print("\n".join(broken), file=sys.stderr)
    sys.exit(1)
print(f"links: {links} relative links in {len(pages)} pages, each leads somewhere")
