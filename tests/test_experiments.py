"""Every experiment module runs end to end in its --smoke setting, and the sample CLI
reads what it wrote."""

from __future__ import annotations

import importlib
import json
import os

import numpy as np
import pytest
from PIL import Image

from jaxgan.train.logging import read_metrics

UNCONDITIONAL = ["gan", "dcgan", "wgan", "wgan_gp", "lsgan", "ralsgan"]


@pytest.mark.parametrize("name", UNCONDITIONAL)
def test_experiment_smoke_writes_everything(name, tmp_path):
    module = importlib.import_module(f"experiments.{name}")
    wd = str(tmp_path / name)
    state = module.main(["--smoke", "--workdir", wd, "--tensorboard", "false"])
    assert int(state.step) == 4
    assert sorted(int(s) for s in os.listdir(os.path.join(wd, "checkpoints")) if s.isdigit()) == [
        2,
        4,
    ]
    for f in ("samples/step_000002.png", "samples/step_000004.png", "samples/final.png"):
        assert Image.open(os.path.join(wd, f)).size[0] > 0
    rows = read_metrics(wd)
    assert [r["step"] for r in rows if "g_loss" in r] == [1, 2, 3, 4]
    with open(os.path.join(wd, "eval.json")) as fh:
        scores = json.load(fh)
    config = module.get_config()
    key = "modes" if config.dataset in ("ring8", "grid25") else "digits_fid"
    assert np.isfinite(scores[key])
    assert any(f"eval/{key}" in r for r in rows)


def test_sample_cli_and_tensorboard_events(tmp_path):
    from experiments import dcgan
    from jaxgan.sample import main as sample_main

    wd = str(tmp_path / "dcgan")
    dcgan.main(["--smoke", "--workdir", wd, "--steps", "2"])
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(wd, "tb")))
    out = sample_main([wd, "--num", "9", "--seed", "3", "--npy", str(tmp_path / "s.npy")])
    assert os.path.exists(out)
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (9, 16, 16, 1) and np.abs(x).max() <= 1.0
    again = sample_main([wd, "--num", "9", "--seed", "3", "--npy", str(tmp_path / "t.npy")])
    np.testing.assert_array_equal(x, np.load(tmp_path / "t.npy"))
    assert again == out
    with pytest.raises(FileNotFoundError, match="config.json"):
        sample_main([str(tmp_path / "nothing")])


def test_report_table_from_eval_files(tmp_path):
    from jaxgan.report import main as report_main

    for name, scores in {
        "dcgan": {"digits_fid": 12.5},
        "gan": {"modes": 8, "high_quality": 0.5},
    }.items():
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / "eval.json", "w") as fh:
            json.dump({"step": 100, "train_seconds": 90.0, **scores}, fh)
    os.makedirs(tmp_path / "unfinished")
    table = report_main([str(tmp_path)]).splitlines()
    assert table[0] == "| run | steps | train time | digits_fid | modes | high_quality |"
    assert table[2] == "| dcgan | 100 | 1.5 min | 12.5 |  |  |"
    assert table[3] == "| gan | 100 | 1.5 min |  | 8 | 0.5 |"
    assert len(table) == 4
