"""Hostile input (issue: data safety): the suite's verdict per subcommand.

Runs tests/test_hostile.py (470 bad inputs over every subcommand, 13 valid ones,
controls) in a pytest subprocess and prints, per subcommand, how many cases were
answered as promised: exit status 2, one stderr line naming the file and field
(or option), no traceback, no hang, nothing of the user's changed and nothing
half-written. Also prints the wall time::

    .venv/bin/python benchmarks/hostile.py
"""

from __future__ import annotations

import collections
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    console = Console(width=120)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "hostile.xml"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(ROOT / "tests" / "test_hostile.py"), f"--junitxml={xml}"],
                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        cases = ET.parse(xml).getroot().iter("testcase")
        tally: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        failed: list[str] = []
        for c in cases:
            name = c.get("name", "")
            kind, _, case = name.partition("[")
            group = case.rstrip("]").split("-")[0] if case else kind
            label = "hostile" if kind == "test_hostile" else (
                "valid" if kind == "test_valid_still_works" else "controls")
            verdict = "failed" if c.find("failure") is not None or c.find("error") is not None \
                else "skipped" if c.find("skipped") is not None else "passed"
            tally[(label, group)][verdict] += 1
            if verdict == "failed":
                failed.append(name)
    t = Table(title=f"tests/test_hostile.py: {wall:.0f} s wall")
    for col in ("kind", "subcommand", "cases", "answered as promised", "failed", "skipped"):
        t.add_column(col, justify="left" if col in ("kind", "subcommand") else "right")
    total = collections.Counter()
    for (label, group), n in sorted(tally.items()):
        t.add_row(label, group, str(sum(n.values())), str(n["passed"]), str(n["failed"]),
                  str(n["skipped"]))
        if label == "hostile":
            total.update(n)
    console.print(t)
    ran = total["passed"] + total["failed"]
    console.print(f"hostile cases: {ran} run, {total['passed']} answered as promised "
                  f"({100 * total['passed'] / max(ran, 1):.1f} %), {total['failed']} failed, "
                  f"{total['skipped']} skipped")
    for name in failed:
        console.print(f"  failed: {name}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
