"""The mutation score per module and the surviving mutants, from mutmut's results in mutants/.

Run from the project root after ``mutmut run`` (``make mutation`` does both). Mutants listed
in ``tests/mutation-equivalent.txt`` are left out of the score when their recorded mutated
line still matches; an entry that no longer matches is reported as stale and counts as a
survivor again.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code

EQUIVALENT_LIST = Path("tests/mutation-equivalent.txt")
COLUMNS = ("killed", "timeout", "survived", "no tests", "equivalent", "not checked", "other")
# A surviving mutant's name and the lines it changed ("-" original, "+" mutated).
Survivor = tuple[str, list[tuple[str, str]]]


@dataclass(frozen=True)
class Equivalent:
    name: str
    mutated: str
    why: str


def load_equivalents(path: Path) -> dict[str, Equivalent]:
    """Entries: a mutant's name at the start of a line, then indented its mutated line
    (as ``mutmut show`` prints it, without the ``+``; ``- <line>`` for a mutant that only
    deletes a line) and ``why: ...``."""
    entries: dict[str, Equivalent] = {}
    name, mutated, why = "", "", ""

    def flush() -> None:
        if name:
            if not (mutated and why):
                raise SystemExit(f"{path}: {name} needs its mutated line and a why: line")
            entries[name] = Equivalent(name, mutated, why)

    for raw in path.read_text("utf-8").splitlines() if path.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw[0].isspace():
            flush()
            name, mutated, why = line, "", ""
        elif line.startswith("why:"):
            why = line.removeprefix("why:").strip()
        else:
            mutated = line
    flush()
    return entries


def changed_lines(name: str, path: str) -> list[tuple[str, str]]:
    """The ``-``/``+`` lines of a mutant's diff, without their markers."""
    diff = get_diff_for_mutant(name, path=path).splitlines()
    return [
        (line[0], line[1:].strip())
        for line in diff
        if line[:1] in "-+" and not line.startswith(("---", "+++"))
    ]


def tally(
    path: str, equivalents: dict[str, Equivalent], problems: list[str]
) -> tuple[Counter[str], list[Survivor]]:
    """One module's counts by status, and its survivors with their changed lines."""
    results = json.loads((Path("mutants") / f"{path}.meta").read_text("utf-8"))
    counts: Counter[str] = Counter()
    survivors: list[Survivor] = []
    for name, code in sorted(results["exit_code_by_key"].items()):
        status = status_by_exit_code[code]
        listed = equivalents.pop(name, None)
        if status == "survived":
            lines = changed_lines(name, path)
            if listed is not None and _recorded(listed.mutated, lines):
                counts["equivalent"] += 1
                continue
            if listed is not None:
                problems.append(f"{name}: stale entry in {EQUIVALENT_LIST}, its line changed")
            survivors.append((name, lines))
        elif listed is not None:
            problems.append(f"{name} is listed as equivalent but was {status}")
        counts[status if status in COLUMNS else "other"] += 1
    return counts, survivors


def _recorded(mutated: str, lines: list[tuple[str, str]]) -> bool:
    """Whether an entry's line is the mutant's: its ``+`` line, or for a mutant that only
    deletes a line, that line recorded as ``- <line>``."""
    if mutated.startswith("- ") and not any(sign == "+" for sign, _ in lines):
        return ("-", mutated[2:]) in lines
    return ("+", mutated) in lines


def main() -> int:
    config = tomllib.loads(Path("pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]
    equivalents = load_equivalents(EQUIVALENT_LIST)
    rows: list[tuple[str, Counter[str]]] = []
    survivors: list[Survivor] = []
    problems: list[str] = []
    for path in config["only_mutate"]:
        if not (Path("mutants") / f"{path}.meta").exists():
            problems.append(f"{path}: no results, run mutmut first")
            continue
        counts, lost = tally(path, equivalents, problems)
        rows.append((path, counts))
        survivors += lost
    print_table(rows)
    print_survivors(survivors)
    problems += [f"{name}: listed in {EQUIVALENT_LIST}, no such mutant" for name in equivalents]
    for problem in problems:
        print("warning:", problem)
    return 0


def score(counts: Counter[str]) -> str:
    """Killed (a timeout is a kill) among the mutants checked that are not equivalent."""
    tested = sum(counts.values()) - counts["equivalent"] - counts["not checked"]
    if not tested:
        return "-"
    return f"{100 * (counts['killed'] + counts['timeout']) / tested:.1f} %"


def print_table(rows: list[tuple[str, Counter[str]]]) -> None:
    total: Counter[str] = Counter()
    print("| module | mutants | " + " | ".join(COLUMNS) + " | score |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for path, counts in [*rows, ("all", total)]:
        if path != "all":
            total.update(counts)
        cells = [str(counts[c]) for c in COLUMNS]
        print(f"| {path} | {sum(counts.values())} | " + " | ".join(cells) + f" | {score(counts)} |")


def print_survivors(survivors: list[Survivor]) -> None:
    print(f"\n{len(survivors)} surviving mutants (`mutmut show NAME` prints the whole diff):")
    for name, lines in survivors:
        print(f"\n{name}")
        for sign, text in lines:
            print(f"    {sign} {text}")


if __name__ == "__main__":
    sys.exit(main())
