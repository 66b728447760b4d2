#!/usr/bin/env python3
"""The layer rule: every `#include "dir/file.h"` in src/ follows an edge
listed in docs/ARCHITECTURE.md's ```layers block (`dir: allowed dirs`, and
`private` when another directory's internal headers may be used). Files
directly under src/ count as directory `main`. Exit 1 with each offending
line, or 0."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "ARCHITECTURE.md")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([A-Za-z0-9_]+\.h)"')


def is_private(header):
    return header == "internal.h" or header.endswith("_internal.h")


def load_rules():
    text = open(DOC, encoding="utf-8").read()
    m = re.search(r"```layers\n(.*?)```", text, re.S)
    if not m:
        sys.exit("%s: no ```layers block" % DOC)
    allowed, private = {}, {}
    for n, line in enumerate(m.group(1).splitlines(), 1):
        line = re.sub(r"\(.*?\)", "", line).strip()
        if not line:
            continue
        mod, _, rest = line.partition(":")
        words = rest.split()
        allowed.setdefault(mod.strip(), set())
        if "private" in words:
            words.remove("private")
            private.setdefault(mod.strip(), set()).update(words)
        allowed[mod.strip()].update(words)
    return allowed, private


def main():
    allowed, private = load_rules()
    bad = []
    src = os.path.join(ROOT, "src")
    for dirpath, _, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        mod = "main" if rel == "." else rel.split(os.sep)[0]
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, f)
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                to, header = m.groups()
                where = "%s:%d: %s" % (os.path.relpath(path, ROOT), n, line.strip())
                if mod not in allowed:
                    bad.append("%s: directory %s is not in the layers block" % (where, mod))
                elif to != mod and to not in allowed[mod]:
                    bad.append("%s: %s may not include from %s" % (where, mod, to))
                elif to != mod and is_private(header) and to not in private.get(mod, ()):
                    bad.append("%s: %s is private to %s" % (where, header, to))
    for b in bad:
        print(b)
    if bad:
        print("layers: %d include(s) break the rule in docs/ARCHITECTURE.md" % len(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
