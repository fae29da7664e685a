"""Tests for jaxgan.data: sources, validation and the step-indexed input pipeline."""

from __future__ import annotations

import os
import socket
import threading

import numpy as np
import pytest
from PIL import Image

from jaxgan.data import (
    DIGITS_TRAIN_SIZE,
    FolderSource,
    Source,
    batch_indices,
    batch_iterator,
    fixed_batch,
    get_source,
    list_embedded,
    mixture_centers,
    validate_images,
)


class RangeSource(Source):
    """``x`` of example ``i`` is ``[i]``: batches show exactly which indices were read."""

    kind = "points"
    sample_shape = (1,)
    num_classes = 0

    def __init__(self, n: int):
        self.name = f"range{n}"
        self.n = n
        self.reads: list[np.ndarray] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def get(self, indices):
        idx = self._check_indices(indices)
        with self._lock:
            self.reads.append(idx)
        return {"x": idx[:, None].astype(np.float32), "label": np.full(len(idx), -1, np.int32)}


def _ids(batch) -> np.ndarray:
    return batch["x"][:, 0].astype(np.int64)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ----------------------------------------------------------------------------- embedded


def test_list_embedded():
    assert set(list_embedded()) == {"digits", "ring8", "grid25"}


def test_digits_splits_shapes_range_and_labels():
    from sklearn.datasets import load_digits

    target = load_digits().target
    train = get_source("digits")
    test = get_source("digits", split="test")
    every = get_source("digits", split="all")
    assert (len(train), len(test), len(every)) == (DIGITS_TRAIN_SIZE, 297, 1797)
    assert train.sample_shape == (8, 8, 1) and train.num_classes == 10 and train.kind == "image"

    b = every.get(np.arange(len(every)))
    assert b["x"].shape == (1797, 8, 8, 1) and b["x"].dtype == np.float32
    assert b["x"].min() == -1.0 and b["x"].max() == 1.0
    np.testing.assert_array_equal(b["label"], target)
    assert b["label"].dtype == np.int32
    # native resolution: exactly the 0..16 grey levels mapped to [-1, 1]
    np.testing.assert_allclose(b["x"][..., 0], load_digits().images / 8.0 - 1.0, atol=1e-6)
    # the test split is the last 297, disjoint from train
    np.testing.assert_array_equal(test.get(np.arange(297))["label"], target[DIGITS_TRAIN_SIZE:])
    np.testing.assert_array_equal(test.get(np.arange(297))["x"], b["x"][DIGITS_TRAIN_SIZE:])


def test_digits_resize_and_channels():
    from sklearn.datasets import load_digits

    native = load_digits().images[:200] / 8.0 - 1.0
    s16 = get_source("digits", image_size=16, split="all")
    x16 = s16.get(np.arange(200))["x"]
    assert s16.sample_shape == (16, 16, 1) and x16.shape == (200, 16, 16, 1)
    assert x16.min() >= -1.0 and x16.max() <= 1.0
    # a smooth upsampling: 2x2 average pooling gives the original back closely
    pooled = x16[..., 0].reshape(-1, 8, 2, 8, 2).mean(axis=(2, 4))
    assert np.abs(pooled - native).mean() < 0.12
    assert np.corrcoef(pooled.ravel(), native.ravel())[0, 1] > 0.98

    rgb = get_source("digits", image_size=16, channels=3, split="all")
    assert rgb.sample_shape == (16, 16, 3)
    xr = rgb.get(np.arange(5))["x"]
    for c in range(3):
        np.testing.assert_array_equal(xr[..., c : c + 1], x16[:5])


def test_embedded_bad_options():
    with pytest.raises(ValueError, match="split"):
        get_source("digits", split="validation")
    with pytest.raises(ValueError, match="channels"):
        get_source("digits", channels=2)
    with pytest.raises(ValueError, match="image_size"):
        get_source("digits", image_size=0)
    with pytest.raises(IndexError):
        get_source("digits", split="test").get(np.array([297]))


@pytest.mark.parametrize("name, k", [("ring8", 8), ("grid25", 25)])
def test_mixture_labels_are_the_nearest_centre(name, k):
    src = get_source(name)
    assert src.kind == "points" and src.sample_shape == (2,) and src.num_classes == k
    b = src.get(np.arange(5000))
    assert b["x"].shape == (5000, 2) and b["x"].dtype == np.float32
    assert b["label"].dtype == np.int32
    centers = mixture_centers(name)
    d = np.linalg.norm(b["x"][:, None, :] - centers[None], axis=-1)
    np.testing.assert_array_equal(b["label"], d.argmin(axis=1))
    assert set(np.unique(b["label"])) == set(range(k))
    # a fixed pool: the same on every construction; test is another draw
    np.testing.assert_array_equal(get_source(name).get(np.arange(100))["x"], b["x"][:100])
    test = get_source(name, split="test").get(np.arange(100))["x"]
    assert not np.allclose(test, b["x"][:100])


# ----------------------------------------------------------------------------- tfds


def test_tfds_mock_mnist(no_network):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        raw = tfds.data_source("mnist", split="train")
        src = get_source("mnist")
        assert src.sample_shape == (28, 28, 1) and src.num_classes == 10 and len(src) == 12
        b = src.get(np.array([3, 0, 3]))
        assert b["x"].shape == (3, 28, 28, 1) and b["x"].dtype == np.float32
        validate_images(b["x"], (28, 28, 1))
        np.testing.assert_allclose(b["x"][1], raw[0]["image"] / 127.5 - 1.0, atol=1e-6)
        np.testing.assert_array_equal(b["x"][0], b["x"][2])
        assert b["label"].tolist() == [int(raw[3]["label"]), int(raw[0]["label"]), b["label"][0]]

        same = get_source("tfds:mnist").get(np.array([3]))
        np.testing.assert_array_equal(same["x"][0], b["x"][0])

        rgb = get_source("mnist", image_size=32, channels=3)
        x = rgb.get(np.arange(4))["x"]
        assert rgb.sample_shape == (32, 32, 3) and x.shape == (4, 32, 32, 3)
        assert x.min() >= -1.0 and x.max() <= 1.0
        np.testing.assert_array_equal(x[..., 0], x[..., 1])  # grey replicated
        np.testing.assert_array_equal(x[..., 0], x[..., 2])

        it = batch_iterator(src, 8, seed=0, num_steps=2)
        batches = list(it)
        assert len(batches) == 2 and all(bb["x"].shape == (8, 28, 28, 1) for bb in batches)


def test_tfds_mock_cifar10(no_network):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        src = get_source("cifar10", split="test")
        assert src.sample_shape == (32, 32, 3) and src.num_classes == 10
        rgb = src.get(np.arange(6))
        validate_images(rgb["x"], (32, 32, 3))
        assert ((rgb["label"] >= 0) & (rgb["label"] < 10)).all()

        grey = get_source("cifar10", split="test", channels=1).get(np.arange(6))
        assert grey["x"].shape == (6, 32, 32, 1)
        u8 = (rgb["x"] + 1.0) * 127.5
        luma = u8 @ np.array([0.299, 0.587, 0.114], np.float32)
        np.testing.assert_allclose((grey["x"][..., 0] + 1.0) * 127.5, luma, atol=1.01)

        small = get_source("cifar10", split="test", image_size=16).get(np.arange(2))
        assert small["x"].shape == (2, 16, 16, 3)
        # antialiased downsampling keeps the mean colour
        np.testing.assert_allclose(small["x"].mean(), rgb["x"][:2].mean(), atol=0.03)


def test_tfds_variable_size_needs_image_size(no_network):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(ValueError, match="image_size"):
            get_source("cycle_gan/horse2zebra", split="trainA")
        src = get_source("cycle_gan/horse2zebra", split="trainA", image_size=16)
        assert src.get(np.arange(4))["x"].shape == (4, 16, 16, 3)


def test_tfds_unknown_or_missing_dataset_is_a_clear_offline_error(no_network, tmp_path):
    with pytest.raises(ValueError, match="no_such_dataset") as e:
        get_source("no_such_dataset", data_dir=str(tmp_path))
    assert "digits" in str(e.value)  # points at the offline alternatives
    with pytest.raises(ValueError, match="mnst.*Did you mean mnist"):
        get_source("tfds:mnst")
    with pytest.raises(ValueError, match="horse2zebra"):  # lists the valid configs
        get_source("cycle_gan/no_such_config")
    with pytest.raises(ValueError, match="community"):
        get_source("huggingface:foo")
    # a real dataset that is not prepared under data_dir: says how to prepare it
    with pytest.raises(ValueError, match="tfds build mnist"):
        get_source("mnist", data_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())  # nothing written


def test_tfds_missing_image_feature(no_network):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ValueError, match="no image feature 'img'"):
            get_source("mnist", image_key="img")


# ----------------------------------------------------------------------------- folders


def _png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def test_folder_rgb_to_grey_crop_resize_and_labels(tmp_path):
    # 20 high x 30 wide: 5 black columns, 20 red, 5 black; the centre square is all red
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, 5:25] = (255, 0, 0)
    _png(tmp_path / "cats" / "a.png", img)
    _png(tmp_path / "cats" / "b.png", np.full((20, 30, 3), 255))
    _png(tmp_path / "dogs" / "c.png", np.zeros((40, 40, 3)))
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(tmp_path / "dogs" / "d.jpg")
    (tmp_path / "notes.txt").write_text("not an image")

    src = get_source(f"folder:{tmp_path}", image_size=8, channels=1, labels=True)
    assert len(src) == 4 and src.sample_shape == (8, 8, 1) and src.kind == "image"
    assert src.class_names == ["cats", "dogs"] and src.num_classes == 2
    b = src.get(np.arange(4))
    assert b["label"].tolist() == [0, 0, 1, 1]
    red_luma = round(255 * 299 / 1000)  # PIL's ITU-R 601 conversion of pure red
    np.testing.assert_allclose(b["x"][0], red_luma / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(b["x"][1], 1.0)
    np.testing.assert_allclose(b["x"][2], -1.0)
    np.testing.assert_allclose(b["x"][3], 0.0, atol=0.03)  # JPEG grey 128

    rgb = get_source(str(tmp_path), image_size=4)  # a plain directory path works too
    assert rgb.sample_shape == (4, 4, 3) and rgb.num_classes == 0
    x = rgb.get(np.array([0]))
    np.testing.assert_allclose(x["x"][0], np.broadcast_to([1.0, -1.0, -1.0], (4, 4, 3)))
    assert x["label"].tolist() == [-1]


def test_folder_native_size_and_channel_inference(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", np.full((6, 5), 50 * i))
    src = FolderSource(str(tmp_path))
    assert src.sample_shape == (6, 5, 1)  # all grey, kept at their size
    np.testing.assert_allclose(src.get(np.array([2]))["x"], 100 / 127.5 - 1.0, atol=1e-6)
    _png(tmp_path / "big.png", np.zeros((7, 7)))
    with pytest.raises(ValueError, match="differ in size"):
        FolderSource(str(tmp_path))
    assert FolderSource(str(tmp_path), image_size=3).sample_shape == (3, 3, 1)


def test_folder_errors_name_the_folder_or_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=f"{empty}.*no image files"):
        get_source(f"folder:{empty}")
    with pytest.raises(ValueError, match="does not exist"):
        get_source(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="does not exist"):
        get_source("./definitely/not/here")

    bad = tmp_path / "bad"
    _png(bad / "good.png", np.zeros((4, 4, 3)))
    (bad / "broken.png").write_bytes(b"this is not a PNG file")
    with pytest.raises(ValueError, match="broken.png"):
        get_source(f"folder:{bad}")

    truncated = tmp_path / "truncated"
    _png(truncated / "whole.png", np.random.default_rng(0).integers(0, 255, (32, 32, 3)))
    data = (truncated / "whole.png").read_bytes()
    (truncated / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.png"):
        get_source(f"folder:{truncated}")

    loose = tmp_path / "loose"
    _png(loose / "top.png", np.zeros((4, 4)))
    _png(loose / "cls" / "a.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="top.png"):
        FolderSource(str(loose), labels=True)


# ----------------------------------------------------------------------------- pipeline


def test_same_seed_same_batches_different_seed_different():
    src = RangeSource(50)
    a = [_ids(b) for b in batch_iterator(src, 8, seed=3, num_steps=10)]
    b = [_ids(b) for b in batch_iterator(src, 8, seed=3, num_steps=10, prefetch=0)]
    c = [_ids(b) for b in batch_iterator(src, 8, seed=4, num_steps=10)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert len(a) == 10 and all(len(x) == 8 for x in a)


def test_resume_equals_the_tail_of_a_fresh_run():
    src = RangeSource(37)
    fresh = [_ids(b) for b in batch_iterator(src, 10, seed=1, num_steps=12)]
    resumed = [_ids(b) for b in batch_iterator(src, 10, seed=1, start_step=5, num_steps=7)]
    for x, y in zip(fresh[5:], resumed, strict=True):
        np.testing.assert_array_equal(x, y)


def test_every_epoch_is_a_permutation_and_batches_wrap_around():
    n, bsz = 10, 4
    src = RangeSource(n)
    stream = np.concatenate([_ids(b) for b in batch_iterator(src, bsz, seed=0, num_steps=15)])
    assert len(stream) == 60
    epochs = stream.reshape(6, n)
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), np.arange(n))
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled every epoch
    # step 2 covers positions 8..11: the end of epoch 0 and the start of epoch 1
    np.testing.assert_array_equal(batch_indices(n, bsz, 2, 0), stream[8:12])

    big = [_ids(b) for b in batch_iterator(src, 25, seed=0, num_steps=2)]  # batch > dataset
    assert all(len(b) == 25 for b in big)
    whole = np.concatenate(big)
    for e in whole.reshape(5, n):
        np.testing.assert_array_equal(np.sort(e), np.arange(n))


def test_process_slices_concatenate_to_the_global_batch():
    n, bsz, procs = 23, 12, 4
    glob = [_ids(b) for b in batch_iterator(RangeSource(n), bsz, seed=7, num_steps=5)]
    parts = []
    for p in range(procs):
        src = RangeSource(n)
        it = batch_iterator(src, bsz, seed=7, process_index=p, process_count=procs, num_steps=5)
        parts.append([_ids(b) for b in it])
        # each process reads only its own slice from the source
        assert sum(len(r) for r in src.reads) == 5 * bsz // procs
    for s in range(5):
        assert all(len(parts[p][s]) == bsz // procs for p in range(procs))
        np.testing.assert_array_equal(np.concatenate([parts[p][s] for p in range(procs)]), glob[s])
    with pytest.raises(ValueError, match="divisible"):
        batch_iterator(RangeSource(n), 10, seed=0, process_count=4)
    with pytest.raises(ValueError, match="process_index"):
        batch_iterator(RangeSource(n), 12, seed=0, process_index=4, process_count=4)


def test_transform_rng_is_step_indexed():
    def jitter(batch, rng):
        return {**batch, "x": batch["x"] + rng.uniform(size=batch["x"].shape).astype(np.float32)}

    src = RangeSource(20)
    a = [b["x"] for b in batch_iterator(src, 4, seed=0, transform=jitter, num_steps=6)]
    b = [
        b["x"] for b in batch_iterator(src, 4, seed=0, transform=jitter, start_step=3, num_steps=3)
    ]
    for x, y in zip(a[3:], b, strict=True):
        np.testing.assert_array_equal(x, y)
    noise = [x - np.floor(x) for x in a]
    assert not np.allclose(noise[0], noise[1])  # a fresh draw each step
    p0 = next(batch_iterator(src, 4, seed=0, transform=jitter, process_count=2))["x"]
    p1 = next(batch_iterator(src, 4, seed=0, transform=jitter, process_index=1, process_count=2))
    assert not np.allclose(p0 - np.floor(p0), p1["x"] - np.floor(p1["x"]))


def test_iterator_errors_and_close():
    class Broken(RangeSource):
        def get(self, indices):
            raise RuntimeError("disk on fire")

    it = batch_iterator(Broken(5), 2, seed=0)
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(it)
    with pytest.raises(StopIteration):  # closed after the error
        next(it)
    with pytest.raises(ValueError, match="no examples"):
        batch_iterator(RangeSource(0), 2, seed=0)
    with pytest.raises(ValueError, match="seed"):
        batch_iterator(RangeSource(5), 2, seed=-1)
    with batch_iterator(RangeSource(5), 2, seed=0) as it:
        first = _ids(next(it))
        assert it.step == 1
    np.testing.assert_array_equal(first, batch_indices(5, 2, 0, 0))


def test_fixed_batch():
    digits = get_source("digits", split="test")
    a = fixed_batch(digits, 100, seed=0)
    b = fixed_batch(digits, 100, seed=0)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert a["x"].shape == (100, 8, 8, 1)
    ids = _ids(fixed_batch(RangeSource(30), 30, seed=2))
    np.testing.assert_array_equal(np.sort(ids), np.arange(30))  # distinct when n <= len
    assert len(_ids(fixed_batch(RangeSource(30), 45, seed=2))) == 45
    assert not np.array_equal(ids, _ids(fixed_batch(RangeSource(30), 30, seed=3)))


# ----------------------------------------------------------------------------- validation


def test_validate_images():
    good = np.zeros((2, 4, 4, 3), np.float32)
    assert validate_images(good) is not None
    validate_images(good + 1.0005)  # within the tolerance
    with pytest.raises(ValueError, match="rank 3"):
        validate_images(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="NCHW"):
        validate_images(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="wrong channels"):
        validate_images(good, expected_shape=(4, 4, 1))
    with pytest.raises(ValueError, match="wrong height"):
        validate_images(good, expected_shape=(8, 4, 3))
    with pytest.raises(ValueError, match="fake images"):
        validate_images(good, expected_shape=(8, 4, 3), name="fake images")
    bad = good.copy()
    bad[0, 0, 0, 0] = np.nan
    bad[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="2 of 96 values are NaN or infinite"):
        validate_images(bad)
    with pytest.raises(ValueError, match=r"\[-1, 1\].*max 1.5"):
        validate_images(good + 1.5)
    with pytest.raises(ValueError, match="127.5"):
        validate_images(np.zeros((1, 2, 2, 1), np.uint8))
