#!/usr/bin/env python3
"""The naming rule: every function src/ defines without `static` starts with
a prefix its directory may use, as listed in docs/ARCHITECTURE.md's
```naming block (`dir: prefixes`; the word `gear.h` admits the public SDK,
the functions include/orrery/gear.h declares). Everything else is static.
Exit 1 with each offender, or 0."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from funclen import code_only  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "ARCHITECTURE.md")
GEAR_H = os.path.join(ROOT, "include", "orrery", "gear.h")


def load_rules():
    text = open(DOC, encoding="utf-8").read()
    m = re.search(r"```naming\n(.*?)```", text, re.S)
    if not m:
        sys.exit("%s: no ```naming block" % DOC)
    rules = {}
    for line in m.group(1).splitlines():
        mod, _, rest = line.partition(":")
        if mod.strip():
            rules[mod.strip()] = rest.split()
    return rules


def public_names():
    text = code_only(open(GEAR_H, encoding="utf-8").read())
    return set(re.findall(r"\b(orr_\w+)\s*\(", text))


def definitions(path):
    """(name, line, is_static) of each function defined at file level."""
    text = code_only(open(path, encoding="utf-8").read())
    text = re.sub(r"(?m)^[ \t]*#.*$", "", text)
    depth, head, head_line, line = 0, "", 1, 1
    for ch in text:
        if ch == "\n":
            line += 1
        if ch == "{":
            if depth == 0:
                decl = head.strip()
                m = re.search(r"([A-Za-z_]\w*)\s*\((?:[^()]|\([^()]*\))*\)\s*$", decl)
                if m and "=" not in decl and not re.match(r"(typedef|struct|enum|union)\b", decl):
                    yield m.group(1), head_line, re.search(r"\bstatic\b", decl) is not None
            depth += 1
            head = ""
        elif ch == "}":
            depth -= 1
            head = ""
        elif depth == 0:
            if ch == ";":
                head = ""
            else:
                if not head.strip():
                    head_line = line
                head += ch


def main():
    rules, public = load_rules(), public_names()
    bad = []
    src = os.path.join(ROOT, "src")
    for dirpath, _, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        mod = "main" if rel == "." else rel.split(os.sep)[0]
        prefixes = rules.get(mod)
        for f in sorted(files):
            if not f.endswith(".c"):
                continue
            path = os.path.join(dirpath, f)
            where = os.path.relpath(path, ROOT)
            if prefixes is None:
                bad.append("%s: directory %s is not in the naming block" % (where, mod))
                continue
            for name, ln, is_static in definitions(path):
                if is_static:
                    continue
                if "gear.h" in prefixes and name in public:
                    continue
                if not any(name == p or name.startswith(p) for p in prefixes if p != "gear.h"):
                    bad.append("%s:%d: %s: %s may define only %s (or static)"
                               % (where, ln, name, mod, " ".join(prefixes)))
    for b in sorted(bad):
        print(b)
    if bad:
        print("naming: %d function(s) break the rule in docs/ARCHITECTURE.md" % len(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
