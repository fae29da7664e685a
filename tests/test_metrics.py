"""Tests for the weight-free metrics: digits classifier scores, KID, IS, precision/recall, modes."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from jax.tree_util import tree_leaves

from jaxgan.data.mixtures import mixture_centers, sample_mixture
from jaxgan.metrics import (
    classification_accuracy,
    digits_fid,
    digits_inception_score,
    evaluate_samples,
    inception_score,
    kernel_inception_distance,
    load_digits_classifier,
    mode_counts,
    mode_coverage,
    precision_recall,
)
from jaxgan.metrics import digits as digits_mod


@pytest.fixture(scope="module")
def split():
    return digits_mod.digits_split()


@pytest.fixture(scope="module")
def clf():
    return load_digits_classifier()


def _upsample(images: np.ndarray, size: int, method: str = "bicubic") -> np.ndarray:
    return np.asarray(digits_mod.upsample(jnp.asarray(images), size, method))


# ----------------------------------------------------------------------------- digits


def test_split_is_last_297(split):
    train_x, train_y, test_x, test_y = split
    assert train_x.shape == (1500, 8, 8, 1) and test_x.shape == (297, 8, 8, 1)
    assert train_x.min() == -1.0 and train_x.max() == 1.0
    all_x, all_y = digits_mod.load_digit_arrays()
    np.testing.assert_array_equal(test_x, all_x[-297:])
    np.testing.assert_array_equal(test_y, all_y[-297:])


def test_shipped_classifier_accuracy_8x8(clf, split):
    _, _, test_x, test_y = split
    assert np.mean(clf.predict(test_x) == test_y) >= 0.97


@pytest.mark.parametrize(
    "size,method", [(32, "bilinear"), (32, "bicubic"), (16, "bicubic"), (64, "bicubic")]
)
def test_shipped_classifier_accuracy_upsampled(clf, split, size, method):
    _, _, test_x, test_y = split
    up = _upsample(test_x, size, method)
    assert up.shape == (297, size, size, 1)
    assert classification_accuracy(up, test_y) >= 0.95


def test_outputs_shapes_and_batching(clf, split):
    _, _, test_x, _ = split
    feats = clf.features(test_x)
    logits = clf.logits(test_x)
    probs = clf.probs(test_x)
    assert feats.shape == (297, 64) and logits.shape == (297, 10)
    # Pre-activation features: full-rank covariance, so FID is well conditioned.
    all_feats = clf.features(digits_mod.real_digits(8))
    assert np.linalg.matrix_rank(np.cov(all_feats, rowvar=False)) == 64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(test_x), logits.argmax(axis=1))
    # Small batches (several padded chunks) give the same numbers as one batch.
    small = digits_mod.DigitsClassifier(clf.params, batch_size=64)
    np.testing.assert_allclose(small.features(test_x), feats, rtol=1e-5, atol=1e-5)
    assert load_digits_classifier() is clf  # cached


def test_bad_images_rejected(clf, split):
    _, _, test_x, _ = split
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        clf.predict((test_x + 1.0) * 127.5)
    with pytest.raises(ValueError, match="shape"):
        clf.predict(test_x[..., 0])
    with pytest.raises(ValueError, match="shape"):
        clf.predict(np.zeros((4, 8, 16, 1), np.float32))
    with pytest.raises(ValueError, match="shape"):
        clf.predict(np.zeros((4, 8, 8, 2), np.float32))
    # Grey repeated over three channels is read as one channel.
    np.testing.assert_array_equal(clf.predict(np.repeat(test_x, 3, axis=-1)), clf.predict(test_x))
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 8, 8, 1), np.nan, np.float32))


def test_upsample_matches_data_source_resize():
    # The data source resizes with PIL bicubic and clips; upsample("bicubic") must agree.
    from PIL import Image

    x = digits_mod.load_digit_arrays()[0][:20]
    pil = np.stack(
        [
            np.asarray(Image.fromarray(i[..., 0], mode="F").resize((32, 32), Image.BICUBIC))
            for i in x
        ]
    ).clip(-1, 1)
    np.testing.assert_allclose(_upsample(x, 32)[..., 0], pil, atol=1e-5)
    np.testing.assert_array_equal(digits_mod.real_digits(8), digits_mod.load_digit_arrays()[0])


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # the repeated digit
def test_digits_fid_orders_sets(split):
    train_x, _, test_x, _ = split
    real = digits_fid(test_x, train_x)
    rng = np.random.default_rng(0)
    noise = digits_fid(rng.uniform(-1, 1, test_x.shape).astype(np.float32), train_x)
    repeated = digits_fid(np.repeat(test_x[:1], 297, axis=0), train_x)
    assert 0 <= real < 0.1 * min(noise, repeated)
    # Default real set = all 1,797 digits at the fakes' resolution.
    assert digits_fid(test_x) < 0.1 * noise
    up = _upsample(test_x, 32)
    fid_up = digits_fid(up)
    assert fid_up == pytest.approx(digits_fid(up, digits_mod.real_digits(32)), rel=1e-9)
    noise_32 = rng.uniform(-1, 1, (297, 32, 32, 1)).astype(np.float32)
    assert fid_up < 0.1 * digits_fid(noise_32)
    # Comparing 32x32 digits with 8x8 originals adds the resize round trip's blur.
    assert digits_fid(up, digits_mod.real_digits(8)) > fid_up


def test_digits_inception_score(split):
    _, _, test_x, _ = split
    mean, std = digits_inception_score(test_x, splits=1)
    assert 8.0 < mean <= 10.0 and std == 0.0
    one = digits_inception_score(np.repeat(test_x[:1], 50, axis=0), splits=1)[0]
    assert one == pytest.approx(1.0, abs=1e-6)


def test_weights_round_trip_and_clear_errors(tmp_path, clf):
    path = str(tmp_path / "w.npz")
    digits_mod.save_params(clf.params, path)
    loaded = digits_mod.load_params(path)
    for a, b in zip(tree_leaves(loaded), tree_leaves(clf.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with np.load(path) as f:
        bad = {k: f[k] for k in f.files}
    bad["Dense_1/kernel"] = np.zeros((3, 3), np.float32)
    np.savez(path, **bad)
    with pytest.raises(ValueError, match="Dense_1/kernel"):
        digits_mod.load_params(path)
    with pytest.raises(FileNotFoundError, match="--train"):
        digits_mod.load_params(str(tmp_path / "missing.npz"))


def test_training_is_deterministic():
    kwargs = dict(epochs=1, batch_size=32, max_steps=2, evaluate=False, round_trip_sizes=(16,))
    p1, m1 = digits_mod.train_digits_classifier(seed=0, **kwargs)
    p2, _ = digits_mod.train_digits_classifier(seed=0, **kwargs)
    p3, _ = digits_mod.train_digits_classifier(seed=1, **kwargs)
    leaves1, leaves2 = tree_leaves(p1), tree_leaves(p2)
    assert m1 == {}
    for a, b in zip(leaves1, leaves2, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    diff = [
        np.abs(np.asarray(a) - np.asarray(c)).max()
        for a, c in zip(leaves1, tree_leaves(p3), strict=True)
    ]
    assert max(diff) > 0


# ----------------------------------------------------------------------------- KID


def _direct_kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3, written out term by term."""
    m, d = x.shape
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (m * m)


def test_kid_matches_direct_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 5))
    y = rng.normal(loc=0.5, size=(12, 5))
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=100)
    assert mean == pytest.approx(_direct_kid(x, y), rel=1e-10)
    assert std == 0.0
    # Subset size is capped at the smaller set: 12 of 20 rows, so the subsets vary.
    y_big = rng.normal(size=(20, 5))
    m2, s2 = kernel_inception_distance(x, y_big, num_subsets=5, subset_size=100, seed=3)
    assert s2 > 0 and np.isfinite(m2)
    assert kernel_inception_distance(x, y_big, num_subsets=5, seed=3) == (m2, s2)


def test_kid_same_vs_shifted_distribution():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2000, 16))
    b = rng.normal(size=(2000, 16))
    same, _ = kernel_inception_distance(a, b, num_subsets=20, subset_size=500)
    shifted, _ = kernel_inception_distance(a, b + 0.5, num_subsets=20, subset_size=500)
    assert abs(same) < 0.01
    assert shifted > 0.1 and shifted > 20 * abs(same)


def test_kid_rejects_bad_input():
    with pytest.raises(ValueError, match="dimensions"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# ----------------------------------------------------------------------------- IS


def test_inception_score_extremes():
    onehot = np.eye(10)[np.arange(1000) % 10]
    mean, std = inception_score(onehot, splits=10)
    assert mean == pytest.approx(10.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    same = np.tile([[0.1, 0.2, 0.7]], (90, 1))
    assert inception_score(same, splits=3) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-12))


def test_inception_score_formula():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(40, 4)) * 2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = []
    for part in (p[:20], p[20:]):
        py = part.mean(axis=0)
        expected.append(math.exp(np.mean([np.sum(r * np.log(r / py)) for r in part])))
    mean, std = inception_score(p, splits=2)
    assert mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert std == pytest.approx(np.std(expected), rel=1e-9)


def test_inception_score_rejects_logits():
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.random.default_rng(0).normal(size=(10, 3)).clip(0), splits=1)
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.eye(3), splits=4)


# ----------------------------------------------------------------------------- P/R


def test_precision_recall_identical_and_far():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(300, 8))
    assert precision_recall(a, a.copy(), k=3) == (1.0, 1.0)
    assert precision_recall(a, a + 100.0, k=3) == (0.0, 0.0)


def test_precision_recall_hand_checked():
    # Reals on a line at 0, 1, 3, 6; with k=1 their radii are 1, 1, 2, 3.
    real = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [6.0, 0.0]])
    # Fakes at 2.5 (in ball of 3), 10 (out), -0.5 (in ball of 0), 9.5 (out): precision 1/2.
    # Fake radii (k=1): 3, 0.5, 3, 0.5; reals 0, 1, 3 lie in the ball of 2.5, 6 in none.
    fake = np.array([[2.5, 0.0], [10.0, 0.0], [-0.5, 0.0], [9.5, 0.0]])
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == 0.5 and recall == 0.75


def test_precision_recall_blocks_agree():
    from jaxgan.metrics import scores

    rng = np.random.default_rng(5)
    a = rng.normal(size=(50, 3))
    np.testing.assert_allclose(scores.knn_radii(a, 3, block=7), scores.knn_radii(a, 3))
    brute = np.sort(np.linalg.norm(a[:, None] - a[None], axis=-1), axis=1)[:, 3]
    np.testing.assert_allclose(scores.knn_radii(a, 3), brute, atol=1e-9)


# ----------------------------------------------------------------------------- modes


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mode_coverage_at_centres(name):
    centers = mixture_centers(name)
    out = mode_coverage(np.repeat(centers, 4, axis=0), name)
    assert out["modes"] == len(centers)
    assert out["high_quality"] == 1.0
    assert out["kl"] == pytest.approx(0.0, abs=1e-12)


def test_mode_coverage_three_modes_and_far_points():
    centers = mixture_centers("grid25")
    pts = np.concatenate([np.repeat(centers[i : i + 1], 10, axis=0) for i in (0, 7, 12)])
    out = mode_coverage(pts + 0.01, "grid25")
    assert out["modes"] == 3 and out["high_quality"] == 1.0
    assert out["kl"] == pytest.approx(math.log(25 / 3))
    far = mode_coverage(np.full((50, 2), 100.0), "grid25")
    assert far == {"modes": 0, "high_quality": 0.0, "kl": pytest.approx(math.log(25))}
    # Halfway between two centres of the ring is far from both (std 0.02): not high quality.
    half = mode_coverage(mixture_centers("ring8")[:2].mean(axis=0, keepdims=True), "ring8")
    assert half["high_quality"] == 0.0


def test_mode_coverage_threshold_and_min_count():
    centers = mixture_centers("ring8")
    std = 0.02
    # 2.9 std away counts, 3.1 std away does not.
    pts = np.stack([centers[0] + [2.9 * std, 0], centers[1] + [0, 3.1 * std]])
    np.testing.assert_array_equal(mode_counts(pts, "ring8"), [1] + [0] * 7)
    pts = np.concatenate(
        [np.repeat(centers[i : i + 1], c, axis=0) for i, c in [(0, 1), (1, 5), (2, 30)]]
    )
    assert mode_coverage(pts, "ring8")["modes"] == 3
    assert mode_coverage(pts, "ring8", min_count=5)["modes"] == 2
    assert mode_coverage(pts, "ring8", min_count=20)["modes"] == 1


def test_mode_coverage_real_samples():
    # For an isotropic 2D Gaussian P(r < 3 std) = 1 - exp(-9/2) = 0.98889.
    for name, n_modes in [("ring8", 8), ("grid25", 25)]:
        pts, _ = sample_mixture(name, 20000, seed=0)
        out = mode_coverage(pts, name)
        assert out["modes"] == n_modes
        assert out["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.003)
        assert out["kl"] < 0.01


def test_mode_coverage_bad_input():
    with pytest.raises(ValueError, match="shape"):
        mode_coverage(np.zeros((5, 3)), "ring8")
    with pytest.raises(ValueError, match="unknown mixture"):
        mode_coverage(np.zeros((5, 2)), "ring9")


# ----------------------------------------------------------------------------- dispatch


def test_evaluate_samples_dispatch(split):
    _, _, test_x, test_y = split
    out = evaluate_samples("digits", _upsample(test_x, 16), test_y)
    assert set(out) == {"digits_fid", "digits_is", "class_accuracy"}
    assert all(isinstance(v, float) for v in out.values())
    assert out["class_accuracy"] >= 0.95 and out["digits_is"] > 7.0
    assert set(evaluate_samples("digits", test_x)) == {"digits_fid", "digits_is"}
    pts, _ = sample_mixture("grid25", 2500, seed=1)
    out = evaluate_samples("grid25", pts)
    assert set(out) == {"modes", "high_quality", "kl"} and out["modes"] == 25.0
    assert all(isinstance(v, float) for v in out.values())
    assert evaluate_samples("celeba", np.zeros((4, 64, 64, 3))) == {}


def test_kid_and_pr_on_digit_features(clf, split):
    # The scores work on classifier features: real vs real is close, real vs noise is not.
    train_x, _, test_x, _ = split
    f_train, f_test = clf.features(train_x), clf.features(test_x)
    f_noise = clf.features(np.random.default_rng(0).uniform(-1, 1, test_x.shape).astype(np.float32))
    kid_real, _ = kernel_inception_distance(f_test, f_train, num_subsets=10)
    kid_noise, _ = kernel_inception_distance(f_noise, f_train, num_subsets=10)
    assert kid_noise > 10 * max(kid_real, 1e-3)
    p_real, r_real = precision_recall(f_train, f_test)
    p_noise, _ = precision_recall(f_train, f_noise)
    assert p_real > 0.6 and r_real > 0.6 and p_noise < 0.5 * p_real
