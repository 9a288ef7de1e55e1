"""Assembles docs/BENCHMARKS.md from docs/benchmarks/*.md (one section per capability)."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
ORDER = ["vocoder", "speaker", "cloning", "detection", "watermark", "lipsync", "demo"]
HEADER = """# Benchmarks

Every figure below was measured by the command printed with it, on the machines described
(the shared 2-core CPU machine unless stated; most runs had other jobs on the same cores, which
is noted where it matters). Figures that miss an issue's target are reported as they are.
Sections are copied from `docs/benchmarks/<capability>.md` by `python benchmarks/assemble.py`.
"""


def main() -> None:
    names = [n for n in ORDER if (DOCS / "benchmarks" / f"{n}.md").exists()]
    names += sorted(p.stem for p in (DOCS / "benchmarks").glob("*.md") if p.stem not in names)
    parts = [HEADER]
    for name in names:
        text = (DOCS / "benchmarks" / f"{name}.md").read_text().strip()
        parts.append("\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()))
    (DOCS / "BENCHMARKS.md").write_text("\n\n".join(parts) + "\n")
    print(f"wrote {DOCS / 'BENCHMARKS.md'} ({', '.join(names)})")


if __name__ == "__main__":
    main()
