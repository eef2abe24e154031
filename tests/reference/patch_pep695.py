"""Rewrite the few PEP 695 constructs in LeRobot 0.6.1 so it imports on Python 3.11.

`type X = Y`              -> `X = Y`
`def f[T: B](...)`        -> `def f(...)`            (+ module-level `T = TypeVar("T")`)
`class C[T, U](Base):`    -> `class C(Base, Generic[T, U]):`   (+ module-level TypeVars)
Type parameters only feed static typing; the TypeVars are defined so annotations that
name them (and runtime subscripts such as `C[X, Y]`) still resolve.
Run it on a fresh install (it does not re-patch already patched files).
"""
import pathlib
import re
import sys

TYPE_ALIAS = re.compile(r"^(\s*)type\s+(\w+)(\[[^\]]*\])?\s*=", re.M)
GENERIC_DEF = re.compile(r"^(\s*(?:async\s+)?def\s+\w+)\[([^\]]*)\](\s*\()", re.M)
GENERIC_CLASS = re.compile(r"^(\s*class\s+\w+)\[([^\]]*)\](?:\(([^)]*)\))?(\s*:)", re.M)
HEADER_MARK = "# --- pep695 shim ---"


def _names(params: str) -> list[str]:
    out = []
    for p in params.split(","):
        p = p.strip().lstrip("*")
        if p:
            out.append(p.split(":")[0].split("=")[0].strip())
    return out


def patch(text: str) -> str:
    if HEADER_MARK in text:
        return text
    names: list[str] = []

    def alias(m):
        if m.group(3):
            names.extend(_names(m.group(3)[1:-1]))
        return f"{m.group(1)}{m.group(2)} ="

    def gdef(m):
        names.extend(_names(m.group(2)))
        return m.group(1) + m.group(3)

    def gclass(m):
        ps = _names(m.group(2))
        names.extend(ps)
        bases = (m.group(3) or "").strip()
        generic = f"_pep695_typing.Generic[{', '.join(ps)}]"
        bases = f"{bases}, {generic}" if bases else generic
        return f"{m.group(1)}({bases}){m.group(4)}"

    new = TYPE_ALIAS.sub(alias, text)
    new = GENERIC_DEF.sub(gdef, new)
    new = GENERIC_CLASS.sub(gclass, new)
    if new == text:
        return text
    header = [HEADER_MARK, "import typing as _pep695_typing"]
    for n in dict.fromkeys(names):
        header.append(f'{n} = _pep695_typing.TypeVar("{n}")')
    lines = new.split("\n")
    # insert after the last `from __future__` import (must stay first), else at the top
    at = 0
    for i, ln in enumerate(lines):
        if ln.startswith("from __future__"):
            at = i + 1
    lines[at:at] = header
    return "\n".join(lines)


def main(root: str) -> None:
    changed = 0
    for path in pathlib.Path(root).rglob("*.py"):
        old = path.read_text()
        new = patch(old)
        if new != old:
            path.write_text(new)
            changed += 1
    print(f"patched {changed} files under {root}")


if __name__ == "__main__":
    main(sys.argv[1])
