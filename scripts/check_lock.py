"""Keeps the lock files in step with the requirements they are compiled from (`make lock`).

`stamp LOCK INPUT` writes, after pip-compile, a header line with the SHA-256 of INPUT and of every
file it includes (`-r`, `-c`). `check` (run by `make lint`, so by `make test` and CI) fails when
an input changed since, or when a lock holds anything but `name==version` lines with hashes,
leaves a requirement of the .txt files unpinned or outside its range, or disagrees with the
other lock. No network: what the header and the pins say is enough.
"""

import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"requirements.lock": "requirements.txt", "requirements-dev.lock": "requirements-dev.txt"}
HEADER = "# inputs-sha256: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;[^\\]*)?\\?$")
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*\\?$")
INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def inputs_of(path: Path) -> list[Path]:
    """`path` and the files it includes, depth first, each once."""
    seen: list[Path] = []

    def walk(p: Path) -> None:
        if p in seen:
            return
        seen.append(p)
        for line in p.read_text().splitlines():
            m = INCLUDE.match(line)
            if m:
                walk((p.parent / m.group(1)).resolve())

    walk(path.resolve())
    return seen


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in inputs_of(path):
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def header_line(txt: Path) -> str:
    names = " ".join(p.relative_to(ROOT).as_posix() for p in inputs_of(txt))
    return f"{HEADER}{digest(txt)}  ({names})"


def stamp(lock: Path, txt: Path) -> None:
    lines = [ln for ln in lock.read_text().splitlines() if not ln.startswith(HEADER)]
    at = 1 if lines and lines[0] == "#" else 0
    lines.insert(at, header_line(txt))
    lock.write_text("\n".join(lines) + "\n")


def read_lock(lock: Path) -> tuple[dict[str, tuple[str, list[str]]], list[str]]:
    """{name: (version, [hash lines])} and the problems found reading it."""
    pins: dict[str, tuple[str, list[str]]] = {}
    problems: list[str] = []
    current = None
    for n, line in enumerate(lock.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if HASH.match(line):
            if current is None:
                problems.append(f"{lock.name}:{n}: a hash with no pin above it")
            else:
                pins[current][1].append(line.strip().rstrip("\\").strip())
            continue
        m = PIN.match(line)
        if not m:
            problems.append(f"{lock.name}:{n}: not a `name==version` pin or a hash: {line.strip()}")
            current = None
            continue
        current = canonical(m.group(1))
        if current in pins:
            problems.append(f"{lock.name}:{n}: {m.group(1)} is pinned twice")
        pins[current] = (m.group(2), [])
    problems += [f"{lock.name}: {name}=={v} has no hash" for name, (v, h) in pins.items() if not h]
    return pins, problems


def direct_requirements(txt: Path) -> list[str]:
    """The requirement lines of `txt` and of the files it includes with `-r`."""
    found = []
    for p in inputs_of(txt):
        for line in p.read_text().splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith(("#", "-")):
                found.append(line)
    return found


def check() -> list[str]:
    from packaging.requirements import Requirement  # from the dev venv (pytest needs it)

    problems: list[str] = []
    locked = {}
    for lock_name, txt_name in LOCKS.items():
        lock, txt = ROOT / lock_name, ROOT / txt_name
        if not lock.is_file():
            problems.append(f"{lock_name} is missing: run `make lock`")
            continue
        text = lock.read_text()
        want = header_line(txt)
        have = next((ln for ln in text.splitlines() if ln.startswith(HEADER)), None)
        if have != want:
            problems.append(
                f"{lock_name} is out of step with {txt_name} (the inputs changed since it was"
                " compiled): run `make lock` and commit the result"
            )
        pins, read_problems = read_lock(lock)
        problems += read_problems
        locked[lock_name] = pins
        for line in direct_requirements(txt):
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate():
                continue
            pin = pins.get(canonical(req.name))
            if pin is None:
                problems.append(f"{lock_name} does not pin {req.name} ({txt_name}): run `make lock`")
            elif not req.specifier.contains(pin[0], prereleases=True):
                problems.append(
                    f"{lock_name} pins {req.name}=={pin[0]}, outside {req.specifier} asked by"
                    f" {txt_name}: run `make lock`"
                )
    runtime, dev = locked.get("requirements.lock", {}), locked.get("requirements-dev.lock", {})
    for name, (version, hashes) in runtime.items():
        if dev and dev.get(name, (None, None)) != (version, hashes):
            problems.append(
                f"requirements-dev.lock disagrees with requirements.lock on {name}=={version}:"
                " run `make lock`"
            )
    return problems


def main(argv: list[str]) -> int:
    if argv[:1] == ["stamp"] and len(argv) == 3:
        stamp(ROOT / argv[1], ROOT / argv[2])
        return 0
    if argv == ["check"]:
        problems = check()
        for problem in problems:
            print(f"lock check: {problem}", file=sys.stderr)
        if not problems:
            print(f"lock check: {', '.join(LOCKS)} in step with their inputs")
        return 1 if problems else 0
    print("usage: check_lock.py check | stamp LOCK INPUT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
