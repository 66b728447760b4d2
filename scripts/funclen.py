#!/usr/bin/env python3
"""No function in src/ longer than 60 lines (from its opening brace to its
closing brace). Reads C with comments, strings and character constants set
aside; a top-level brace after a parenthesised declarator with no `=` opens
a function. Exit 1 with each offender, or 0."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 60


def code_only(text):
    """The text with comments, strings and char constants blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    text = code_only(open(path, encoding="utf-8").read())
    lines = text.split("\n")
    depth, head, start = 0, "", None
    for ln, line in enumerate(lines, 1):
        if depth == 0 and line.lstrip().startswith("#"):
            continue
        for ch in line:
            if ch == "{":
                if depth == 0:
                    decl = head.strip()
                    is_fn = ")" in decl and "=" not in decl
                    start = (ln, decl) if is_fn else None
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    if start:
                        yield start[1], start[0], ln
                    start, head = None, ""
            elif depth == 0:
                head = "" if ch == ";" else head + ch
        if depth == 0:
            head += " "


def main():
    bad = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "src")):
        for f in sorted(files):
            if not f.endswith(".c"):
                continue
            path = os.path.join(dirpath, f)
            for decl, a, b in functions(path):
                if b - a + 1 > LIMIT:
                    name = decl.split("(")[0].split()[-1].lstrip("*")
                    bad.append("%s:%d: %s is %d lines (at most %d)"
                               % (os.path.relpath(path, ROOT), a, name, b - a + 1, LIMIT))
    for b in sorted(bad):
        print(b)
    if bad:
        print("funclen: %d function(s) too long; split them by idea" % len(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
