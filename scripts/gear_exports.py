#!/usr/bin/env python3
"""The functions include/orrery/gear.h declares, which the server exports to
the gears it loads (and nothing else):

  gear_exports.py list GEAR_H              one name per line
  gear_exports.py dynlist GEAR_H OUT       a linker --dynamic-list file
  gear_exports.py check GEAR_H BINARY      exit 1 unless BINARY's dynamic
                                           symbol table defines exactly them

orr_gear_entry is the one function a gear defines, not the server."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from funclen import code_only  # noqa: E402

GEAR_ENTRY = "orr_gear_entry"


def names(gear_h):
    text = code_only(open(gear_h, encoding="utf-8").read())
    found = set(re.findall(r"\b(orr_\w+)\s*\(", text))
    found.discard(GEAR_ENTRY)
    return sorted(found)


def exported_functions(binary):
    out = subprocess.run(["nm", "-D", "--defined-only", binary], check=True,
                         capture_output=True, text=True).stdout
    return sorted(l.split()[-1] for l in out.splitlines()
                  if len(l.split()) == 3 and l.split()[1] in "TtWw" and l.split()[-1] != "_init"
                  and l.split()[-1] != "_fini")


def main():
    cmd, gear_h = sys.argv[1], sys.argv[2]
    want = names(gear_h)
    if cmd == "list":
        print("\n".join(want))
    elif cmd == "dynlist":
        with open(sys.argv[3], "w", encoding="utf-8") as f:
            f.write("{\n" + "".join("  %s;\n" % n for n in want) + "};\n")
    elif cmd == "check":
        have = exported_functions(sys.argv[3])
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        for n in missing:
            print("%s: gear.h declares %s but the binary does not export it" % (sys.argv[3], n))
        for n in extra:
            print("%s: exports %s, which gear.h does not declare" % (sys.argv[3], n))
        if missing or extra:
            sys.exit(1)
        print("%s exports the %d functions of gear.h, and nothing else" % (sys.argv[3], len(want)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
