"""Scores of finished runs as one Markdown table: ``python -m jaxgan.report RUNS_DIR``.

Reads ``RUNS_DIR/<experiment>/eval.json`` (written at the end of every run) and prints a
table with each run's steps, training time and scores. With ``--run NAME [NAME ...]`` it
first trains those experiments with their defaults into ``RUNS_DIR/<name>`` (resuming any
that were interrupted), so the README's results table is produced by one command::

    python -m jaxgan.report runs --run gan dcgan wgan wgan_gp lsgan ralsgan
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from collections.abc import Sequence

# Scores shown, in this order, when a run reports them; then anything else it reports.
_ORDER = ("digits_fid", "digits_is", "class_accuracy", "cat_code_accuracy", "modes", "high_quality")


def collect(runs_dir: str) -> dict[str, dict]:
    """``{run name: eval.json contents}`` for every run under ``runs_dir`` that has one."""
    out = {}
    for name in sorted(os.listdir(runs_dir)):
        path = os.path.join(runs_dir, name, "eval.json")
        if os.path.isfile(path):
            with open(path) as fh:
                out[name] = json.load(fh)
    return out


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown_table(results: dict[str, dict]) -> str:
    """A Markdown table of ``results`` (as returned by :func:`collect`)."""
    if not results:
        return "(no finished runs)"
    keys = [k for k in _ORDER if any(k in r for r in results.values())]
    skip = {"step", "train_seconds", *keys}
    keys += sorted({k for r in results.values() for k in r if k not in skip})
    head = ["run", "steps", "train time", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, r in results.items():
        minutes = f"{r['train_seconds'] / 60:.1f} min" if "train_seconds" in r else ""
        cells = [name, _fmt(r.get("step", "")), minutes, *(_fmt(r.get(k, "")) for k in keys)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(prog="python -m jaxgan.report", description=__doc__)
    p.add_argument("runs_dir")
    p.add_argument("--run", nargs="*", default=[], help="experiments to train first")
    args = p.parse_args(argv)
    for name in args.run:
        module = importlib.import_module(f"experiments.{name}")
        module.main(["--workdir", os.path.join(args.runs_dir, name)])
    table = markdown_table(collect(args.runs_dir))
    print(table)
    return table


if __name__ == "__main__":
    main()
