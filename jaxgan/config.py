"""Configs are Python (``ml_collections.ConfigDict``), overridable from the command line.

Every experiment module defines ``get_config()`` and, for tests and quick checks, a
``smoke`` dict of overrides. On the command line each leaf of the config is an option::

    python -m experiments.dcgan --steps 500 --batch_size 32 --model.base_features 16 \
        --workdir runs/dcgan --smoke

``--smoke`` applies the experiment's tiny setting first; explicit options win over it.
Values are parsed with the type of the default (booleans accept true/false/1/0; tuples and
lists accept comma-separated values; a ``None`` default accepts any string, or ``none``).
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Sequence
from typing import Any

import ml_collections


def _leaves(cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        name = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict):
            out.update(_leaves(v, name + "."))
        else:
            out[name] = v
    return out


def _parse_value(text: str, default: Any, name: str) -> Any:
    if text.lower() == "none":
        return None
    try:
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, (tuple, list)):
            items = [s for s in text.replace("(", "").replace(")", "").split(",") if s.strip()]
            kind = type(default[0]) if default else str
            vals = [_parse_value(s.strip(), kind() if kind is not str else "", name) for s in items]
            return type(default)(vals)
        if isinstance(default, str) or default is None:
            if default is None:
                try:
                    return ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    return text
            return text
    except ValueError:
        raise SystemExit(f"--{name}: cannot read {text!r} as {type(default).__name__}") from None
    return text


def set_path(cfg: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    """Set ``cfg.a.b.c = value`` for ``dotted = 'a.b.c'`` (unlocking the leaf's type)."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    with node.ignore_type():
        node[leaf] = value


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: dict[str, Any]) -> None:
    """Apply ``{'a.b': value}`` overrides; unknown keys are an error that lists the known."""
    known = _leaves(cfg)
    for k, v in overrides.items():
        if k not in known:
            raise KeyError(f"unknown config field {k!r}; known fields: {', '.join(sorted(known))}")
        set_path(cfg, k, v)


def parse_config(
    cfg: ml_collections.ConfigDict,
    argv: Sequence[str] | None,
    smoke: dict[str, Any] | None = None,
    prog: str | None = None,
    description: str | None = None,
) -> ml_collections.ConfigDict:
    """Return ``cfg`` with ``--smoke`` and the command-line options of ``argv`` applied."""
    leaves = _leaves(cfg)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny, fast setting (for tests and quick checks)"
    )
    for name, default in leaves.items():
        parser.add_argument(f"--{name}", type=str, default=None, help=f"default: {default!r}")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.smoke and smoke:
        apply_overrides(cfg, smoke)
    for name, default in leaves.items():
        text = getattr(args, name)
        if text is not None:
            set_path(cfg, name, _parse_value(text, default, name))
    return cfg
