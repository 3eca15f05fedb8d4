"""Every suite's latest figures as one Markdown table: ``python -m benchmarks.report [--readme]``.

Reads ``benchmarks/results/*.json`` (written by the suites). ``--readme`` replaces what stands between
the markers ``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->`` in README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
ORDER = (
    "core-mcp1",
    "core-mcp2",
    "hermes",
    "openai-agents",
    "healed-mcp1",
    "healed-mcp2",
    "healed-wave2b-mcp1",
    "healed-wave2b-crewai-mcp1",
    "healed-wave2b-mcp2",
)


def load(directory: Path) -> list[dict[str, Any]]:
    documents = [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(documents, key=lambda d: (rank.get(d["suite"], len(ORDER)), d["suite"]))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def render(documents: list[dict[str, Any]]) -> str:
    if not documents:
        return "_No figures yet: run `nox -s bench`._\n"
    lines: list[str] = []
    machines = {json.dumps(d["machine"], sort_keys=True) for d in documents}
    for machine in sorted(machines):  # (a set: sorted, so the README does not change between renders)
        m = json.loads(machine)
        lines.append(f"Measured on {m['cpu']}, {m['cores']} cores, {m['system']}, {m['python']}.")
    timed = [d["seconds"] for d in documents if isinstance(d.get("seconds"), int)]
    if len(timed) == len(documents):
        lines.append(f"The suites measured for {_duration(sum(timed))} in all (installing their environments aside).")
    lines.append("")
    for document in documents:
        versions = ", ".join(f"{k} {v}" for k, v in document["versions"].items() if k != "python")
        quick = " (quick run: few rounds, not for reading)" if document.get("quick") else ""
        took = f"; {_duration(document['seconds'])}" if isinstance(document.get("seconds"), int) else ""
        lines.append(f"**{document['suite']}**: {versions}; {document['generated'][:10]}{took}{quick}")
        lines.append("")
        lines.append("| Figure | Result | Target | Met |")
        lines.append("|---|---|---|---|")
        notes: list[str] = []
        group = None
        for figure in document["figures"]:
            if figure["group"] != group:
                group = figure["group"]
                lines.append(f"| _{_cell(group)}_ | | | |")
            met = {True: "yes", False: "**no**", None: ""}[figure["met"]]
            mark = ""
            if figure["note"]:
                notes.append(figure["note"])
                mark = f" [{len(notes)}]"
            lines.append(
                f"| {_cell(figure['label'])}{mark} | {_cell(figure['result'])} | {_cell(figure['target'])} | {met} |"
            )
        lines.append("")
        for number, note in enumerate(notes, 1):
            lines.append(f"{number}. {note}")
        if notes:
            lines.append("")
    return "\n".join(lines)


def update_readme(table: str, readme: Path = README) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: the markers {START} and {END} are missing")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table.rstrip()}\n{END}{tail}")
    print(f"updated {readme}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    table = render(load(args.results))
    sys.stdout.write(table + "\n")
    if args.readme:
        update_readme(table)


if __name__ == "__main__":
    main()
