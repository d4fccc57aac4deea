#!/usr/bin/env python3
"""Makes every type declared in the given source folders internal (and sealed where nothing derives from it).

Usage: python3 tools/internal-sealed.py src/Hourglass.Core src/Hourglass.Simulation src/Hourglass.Server

Mechanical and idempotent: a type declaration `public ... class|record|struct|interface|enum|delegate` becomes
`internal ...`; a class or record that is neither static, abstract nor sealed gets `sealed` unless a type anywhere
under src/, tests/ or bench/ names it as a base. Members keep their `public` (inside an internal type it means
"the assembly and its friends"). tests/Hourglass.Tests/Architecture/InternalSealedTests.cs holds the result.
"""
import pathlib
import re
import sys

MODIFIERS = r"(?:(?:static|sealed|abstract|partial|readonly|unsafe|ref|new|file)\s+)*"
DECL = re.compile(r"^(?P<indent>[ \t]*)(?P<access>public|internal)\s+(?P<mods>" + MODIFIERS + r")"
                  r"(?P<kind>record\s+struct|record\s+class|class|record|struct|interface|enum|delegate)\b(?P<rest>.*)$")
NAME = re.compile(r"\s*(?:[\w<>\[\],.? ]+?\s+)?(?P<name>\w+)")
BASE = re.compile(r"\b(?:class|record)\s+\w+(?:<[^>]*>)?(?:\([^)]*\))?\s*:\s*(?P<bases>[^{;]*)", re.S)


def derived_names(root: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for folder in ("src", "tests", "bench"):
        for path in (root / folder).rglob("*.cs"):
            if "/obj/" in str(path) or "/bin/" in str(path):
                continue
            text = path.read_text(encoding="utf-8")
            for match in BASE.finditer(text):
                for base in re.findall(r"\b([A-Z]\w*)\b", match.group("bases")):
                    names.add(base)
    return names


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    bases = derived_names(root)
    changed = 0
    for folder in sys.argv[1:]:
        for path in sorted((root / folder).rglob("*.cs")):
            if "/obj/" in str(path) or "/bin/" in str(path):
                continue
            lines = path.read_text(encoding="utf-8").split("\n")
            out = []
            for line in lines:
                match = DECL.match(line)
                if match:
                    mods = match.group("mods")
                    kind = match.group("kind")
                    rest = match.group("rest")
                    if kind == "delegate":
                        name = re.search(r"(\w+)\s*(?:<[^>]*>)?\s*\(", rest)
                        name = name.group(1) if name else ""
                    else:
                        name = re.match(r"\s*(\w+)", rest).group(1)
                    words = mods.split()
                    is_class = kind in ("class", "record") or kind.startswith("record") and "struct" not in kind
                    if is_class and not {"static", "abstract", "sealed"} & set(words) and name not in bases:
                        words.insert(0, "sealed")
                    new_mods = "".join(w + " " for w in words)
                    new = f"{match.group('indent')}internal {new_mods}{kind}{rest}"
                    if new != line:
                        changed += 1
                        line = new
                out.append(line)
            path.write_text("\n".join(out), encoding="utf-8")
    print(f"{changed} declarations changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
