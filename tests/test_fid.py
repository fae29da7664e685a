"""FID: torch-free weights reader, InceptionV3 parity with a PyTorch reference, streaming
statistics, the Frechet distance, and the command line.

torch is a test-only dependency: it writes the weight files and runs the reference network
(``torch_fid_reference.py``, the pytorch-fid architecture with random weights). jaxgan reads
those files with its own loader.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from PIL import Image
from torch_fid_reference import random_fid_inception

from jaxgan import fid as fid_cli
from jaxgan.metrics.fid import (
    FeatureStats,
    InceptionFeatures,
    compute_stats,
    fid_from_stats,
    load_inception,
    load_stats,
    resize_images,
    save_stats,
)
from jaxgan.metrics.frechet import frechet_distance
from jaxgan.nets.inception import (
    UNUSED_TORCH_KEYS,
    InceptionV3,
    expected_torch_keys,
    load_inception_variables,
    params_from_torch_state_dict,
)
from jaxgan.torch_weights import load_torch_state_dict

torch.set_num_threads(2)


# --------------------------------------------------------------------------------------------
# Fixtures: one random reference network, its weights file, and the converted variables.


@pytest.fixture(scope="module")
def ref_model():
    return random_fid_inception(seed=0)


@pytest.fixture(scope="module")
def state_dict(ref_model):
    return ref_model.state_dict()


@pytest.fixture(scope="module")
def weights_file(state_dict, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "pt_inception_random.pth"
    torch.save(state_dict, path)
    return str(path)


@pytest.fixture(scope="module")
def variables(weights_file):
    return load_inception_variables(weights_file)


def _nhwc(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    return (t.permute(0, 2, 3, 1) if t.ndim == 4 else t).numpy()


def _rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# --------------------------------------------------------------------------------------------
# jaxgan.torch_weights


def _tricky_state_dict() -> collections.OrderedDict:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    return collections.OrderedDict(
        contiguous=torch.randn(3, 4, generator=g),
        transposed=base.t(),  # non-contiguous view
        sliced=base[2:5, 1:4],  # shares base's storage, offset 11, strides (5, 1)
        expanded=torch.randn(3, 1, generator=g).expand(3, 4),  # stride 0
        half=torch.randn(2, 3, generator=g).half(),
        bf16=torch.randn(5, generator=g).bfloat16(),
        int64=torch.arange(20, dtype=torch.int64)[7:15:2],  # offset 7, stride 2
        flag=torch.tensor([True, False, True]),
        scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 3),
    )


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_load_torch_state_dict_matches_torch(tmp_path, zip_format):
    sd = _tricky_state_dict()
    path = tmp_path / "tricky.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    theirs = torch.load(path, weights_only=True)
    ours = load_torch_state_dict(path)
    assert list(ours) == list(sd)
    for key, t in theirs.items():
        got = ours[key]
        assert got.shape == tuple(t.shape), key
        assert got.flags.c_contiguous and got.flags.owndata, key
        want_dtype = "bfloat16" if t.dtype == torch.bfloat16 else _as_numpy(t).dtype.name
        assert got.dtype.name == want_dtype, key
        np.testing.assert_array_equal(got.astype(_as_numpy(t).dtype), _as_numpy(t), err_msg=key)
    # Tensors sharing a storage are independent copies, not aliases of one buffer.
    assert not np.shares_memory(ours["transposed"], ours["sliced"])


def test_load_torch_state_dict_big_endian_zip(tmp_path):
    sd = collections.OrderedDict(w=torch.randn(3, 4).t(), b=torch.arange(5, dtype=torch.int64))
    little = tmp_path / "little.pth"
    torch.save(sd, little)
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(little) as zin, zipfile.ZipFile(big, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in name:  # storage 0 is w (float32), storage 1 is b (int64)
                unit = ">f4" if name.endswith("/0") else ">i8"
                data = np.frombuffer(data, unit.replace(">", "<")).astype(unit).tobytes()
            zout.writestr(name, data)
    ours = load_torch_state_dict(big)
    np.testing.assert_array_equal(ours["w"], sd["w"].numpy())
    np.testing.assert_array_equal(ours["b"], sd["b"].numpy())
    assert ours["w"].dtype.isnative and ours["b"].dtype.isnative


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _zip_with_pickle(path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")


@pytest.mark.parametrize("container", ["zip", "legacy"])
@pytest.mark.parametrize("how", ["reduce", "handwritten"])
def test_malicious_pickle_is_rejected_without_running(tmp_path, container, how):
    sentinel = tmp_path / "pwned"
    if how == "reduce":
        payload = pickle.dumps(collections.OrderedDict(x=_Evil(str(sentinel))), protocol=2)
        global_name = f"{os.system.__module__}.system"
    else:
        payload = f"cos\nsystem\n(S'touch {sentinel}'\ntR.".encode()
        global_name = "os.system"
    path = tmp_path / "evil.pth"
    if container == "zip":
        _zip_with_pickle(path, payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(ValueError) as err:
        load_torch_state_dict(path)
    assert str(path) in str(err.value) and global_name in str(err.value)
    assert not sentinel.exists()


def test_load_torch_state_dict_rejects_non_state_dicts(tmp_path):
    whole_model = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 3), whole_model)
    with pytest.raises(ValueError, match=r"model\.pth.*torch\.nn\.modules\.linear\.Linear"):
        load_torch_state_dict(whole_model)
    nested = tmp_path / "ckpt.pth"
    torch.save({"model": torch.nn.Linear(2, 3).state_dict(), "step": 3}, nested)
    with pytest.raises(ValueError, match=r"ckpt\.pth: entry 'model' is not a tensor"):
        load_torch_state_dict(nested)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x02K\x07.")  # a pickle of the int 7
    with pytest.raises(ValueError, match="garbage.pth: not a PyTorch file"):
        load_torch_state_dict(garbage)


# --------------------------------------------------------------------------------------------
# Weight conversion: every key accounted for, clear errors otherwise.


def _flax_path(key: str) -> tuple[str, ...]:
    *modules, layer, field = key.split(".")
    names = {
        ("conv", "weight"): ("params", "kernel"),
        ("bn", "weight"): ("params", "scale"),
        ("bn", "bias"): ("params", "bias"),
        ("bn", "running_mean"): ("batch_stats", "mean"),
        ("bn", "running_var"): ("batch_stats", "var"),
    }
    collection, leaf = names[(layer, field)]
    return (collection, *modules, layer, leaf)


def test_every_key_of_the_state_dict_is_mapped(state_dict, variables):
    in_file = set(state_dict)
    unused = set(UNUSED_TORCH_KEYS) | {k for k in in_file if k.endswith(".num_batches_tracked")}
    assert len(unused) == 2 + 94  # fc + one counter per BatchNorm of the 94 conv layers
    expected = expected_torch_keys()
    assert set(expected) == in_file - unused
    n_leaves = len(jax.tree_util.tree_leaves(variables))
    assert n_leaves == len(expected) == 94 * 5
    for key, torch_shape in expected.items():
        value = state_dict[key].numpy()
        assert value.shape == torch_shape, key
        node = variables
        for name in _flax_path(key):
            node = node[name]
        want = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
        np.testing.assert_array_equal(node, want, err_msg=key)


def test_conversion_errors_name_file_and_key(state_dict, tmp_path):
    sd = {k: v.numpy() for k, v in state_dict.items()}
    missing = dict(sd)
    del missing["Mixed_6c.branch7x7dbl_3.bn.running_var"]
    with pytest.raises(ValueError, match=r"w\.pth: missing key 'Mixed_6c\.branch7x7dbl_3\.bn"):
        params_from_torch_state_dict(missing, source="w.pth")
    extra = {**sd, "Mixed_5b.branch9x9.conv.weight": np.zeros((1, 1, 1, 1), np.float32)}
    with pytest.raises(ValueError, match=r"w\.pth: unexpected key 'Mixed_5b\.branch9x9"):
        params_from_torch_state_dict(extra, source="w.pth")
    wrong = {**sd, "Mixed_7c.branch3x3_2a.conv.weight": np.zeros((384, 384, 3, 1), np.float32)}
    with pytest.raises(ValueError, match=r"'Mixed_7c\.branch3x3_2a\.conv\.weight' has shape"):
        params_from_torch_state_dict(wrong, source="w.pth")
    bad_fc = {**sd, "fc.weight": np.zeros((1008, 100), np.float32)}
    with pytest.raises(ValueError, match=r"'fc\.weight' has shape \(1008, 100\)"):
        params_from_torch_state_dict(bad_fc, source="w.pth")
    # The state_dict of another network, through the file loader: the error names the file.
    other = tmp_path / "resnet_like.pth"
    torch.save(
        torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).state_dict(), other
    )
    with pytest.raises(ValueError, match=r"resnet_like\.pth: missing key"):
        load_inception_variables(other)


def test_convert_to_npz_and_load(weights_file, variables, tmp_path, capsys):
    out = tmp_path / "inception.npz"
    fid_cli.main(["convert", weights_file, str(out)])
    assert "wrote" in capsys.readouterr().out
    with np.load(out) as data:
        assert set(data.files) == set(expected_torch_keys())
    again = load_inception_variables(out)
    jax.tree.map(np.testing.assert_array_equal, again, variables)


# --------------------------------------------------------------------------------------------
# Network parity with the PyTorch reference.


def test_layer_by_layer_parity_without_resize(ref_model, variables):
    x = torch.rand(2, 3, 75, 75, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = ref_model(x, resize=False)
    model = InceptionV3(resize_input=False, input_range=(0.0, 1.0))
    feats, state = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(
        variables, _nhwc(x)
    )
    inter = state["intermediates"]
    assert set(inter) == set(ref)
    errors = {}
    for name, t in ref.items():
        want = _nhwc(t)
        got = np.asarray(inter[name][0])
        assert got.shape == want.shape, name
        assert np.abs(want).max() > 0.5, name  # non-trivial activations
        errors[name] = _rel_err(got, want)
    print("relative max errors (75x75):", json.dumps({k: f"{v:.1e}" for k, v in errors.items()}))
    assert max(errors.values()) < 1e-4, errors
    np.testing.assert_array_equal(feats, inter["pool_out"][0])


@pytest.mark.parametrize("size", [(32, 32), (64, 80), (400, 350), (299, 299)])
def test_resize_matches_torch_interpolate(size):
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(2))
    want = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    got = resize_images(_nhwc(x))
    np.testing.assert_allclose(got, _nhwc(want), rtol=0, atol=2e-6)


def test_feature_fn_parity_with_resize_in_both_input_conventions(ref_model, variables):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = ref_model(x)["pool_out"].numpy()
    unit = InceptionFeatures(jax.device_put(variables), input_range=(0.0, 1.0))
    got = unit(_nhwc(x))
    assert got.shape == (2, 2048) and got.dtype == jnp.float32
    err_unit = _rel_err(got, want)
    # jaxgan's own convention: the same images in [-1, 1].
    signed = InceptionFeatures(unit.variables)
    err_signed = _rel_err(signed(2.0 * _nhwc(x) - 1.0), want)
    print(
        f"pool3 relative max error, 32->299 resize: [0,1] {err_unit:.1e}, [-1,1] {err_signed:.1e}"
    )
    assert err_unit < 1e-4 and err_signed < 1e-4
    with pytest.raises(ValueError, match="NHWC"):
        unit(_nhwc(x).transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="floats"):
        unit((_nhwc(x) * 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# Streaming statistics.


def test_feature_stats_match_numpy_with_padding_and_offset():
    rng = np.random.default_rng(0)
    # A large common offset: the naive float32 E[xx^T] - mu mu^T would lose all digits.
    feats = (1000.0 + rng.normal(size=(37, 6)) * rng.uniform(0.1, 2.0, size=6)).astype(np.float32)
    stats = FeatureStats()
    for start in range(0, 37, 10):
        chunk = feats[start : start + 10]
        padded = np.concatenate([chunk, np.full((10 - len(chunk), 6), 1e6, np.float32)])
        stats.update(padded, n_valid=len(chunk))
    mu, sigma = stats.mean_cov()
    ref = feats.astype(np.float64)
    assert stats.count == 37 and mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, ref.mean(0), rtol=1e-9)
    np.testing.assert_allclose(sigma, np.cov(ref, rowvar=False), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="5 dims, earlier batches had 6"):
        stats.update(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="at least 2"):
        FeatureStats().mean_cov()


class _CountingFeatures:
    """A stand-in feature function: flattened pixels of the first 8 positions."""

    input_range = (-1.0, 1.0)

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return jnp.asarray(images).reshape(images.shape[0], -1)[:, :8]


def test_compute_stats_pads_last_batch_and_checks_range_first():
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, size=(11, 4, 4, 3)).astype(np.float32)
    fn = _CountingFeatures()
    mu, sigma = compute_stats(fn, [images[:4], images[4:8], images[8:]], progress=False)
    flat = images.reshape(11, -1)[:, :8].astype(np.float64)
    np.testing.assert_allclose(mu, flat.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sigma, np.cov(flat, rowvar=False), rtol=1e-5, atol=1e-7)
    fn = _CountingFeatures()
    with pytest.raises(ValueError, match=r"span \[0, 2\]"):
        compute_stats(
            fn, [np.linspace(0, 2, 48, dtype=np.float32).reshape(1, 4, 4, 3)], progress=False
        )
    with pytest.raises(ValueError, match="uint8"):
        compute_stats(fn, [np.zeros((2, 4, 4, 3), np.uint8)], progress=False)
    assert fn.calls == 0


def test_stats_npz_roundtrip_uses_pytorch_fid_keys(tmp_path):
    mu, sigma = np.arange(3.0), np.eye(3)
    save_stats(tmp_path / "s.npz", mu, sigma)
    with np.load(tmp_path / "s.npz") as data:
        assert sorted(data.files) == ["mu", "sigma"]
    got_mu, got_sigma = load_stats(tmp_path / "s.npz")
    np.testing.assert_array_equal(got_mu, mu)
    np.testing.assert_array_equal(got_sigma, sigma)
    np.savez(tmp_path / "bad.npz", m=mu, s=sigma)
    with pytest.raises(ValueError, match=r"bad\.npz: statistics file has no 'mu'"):
        load_stats(tmp_path / "bad.npz")


def test_sharded_batches_on_an_explicit_mesh(weights_file, tmp_path):
    """Features and stats from batches sharded over 2 (CPU) devices equal unsharded ones."""
    script = textwrap.dedent(
        f"""
        import numpy as np, jax
        from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
        from jaxgan.metrics.fid import FeatureStats, load_inception
        assert jax.device_count() == 2
        mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
        fn = load_inception({weights_file!r}, dims=64, sharding=NamedSharding(mesh, P()))
        x = np.random.default_rng(0).uniform(-1, 1, (4, 40, 40, 3)).astype(np.float32)
        xs = jax.device_put(x, NamedSharding(mesh, P("data")))
        plain, sharded = FeatureStats(), FeatureStats()
        f_plain = np.asarray(fn(x))
        plain.update(f_plain)
        f_sharded = fn(xs)
        assert f_sharded.sharding.spec[0] == "data", f_sharded.sharding
        sharded.update(f_sharded, n_valid=3)
        np.testing.assert_allclose(np.asarray(f_sharded), f_plain, rtol=1e-5, atol=1e-5)
        mu, sigma = sharded.mean_cov()
        ref = f_plain[:3].astype(np.float64)
        np.testing.assert_allclose(mu, ref.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sigma, np.cov(ref, rowvar=False), rtol=1e-4, atol=1e-6)
        print("OK")
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]


# --------------------------------------------------------------------------------------------
# Frechet distance against an independent computation.


def _frechet_by_eigh(mu1, s1, mu2, s2) -> float:
    """Tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))), all symmetric PSD."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_covmean = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def test_frechet_distance_matches_eigendecomposition_and_sqrtm():
    rng = np.random.default_rng(0)
    d = 12
    a, b = rng.normal(size=(d, 3 * d)), rng.normal(size=(d, 3 * d))
    s1, s2 = a @ a.T / (3 * d), b @ b.T / (3 * d) + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    want = _frechet_by_eigh(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)
    # A second independent route: scipy's sqrtm of a symmetric positive definite matrix.
    root2 = scipy.linalg.sqrtm(s2).real
    direct = np.trace(scipy.linalg.sqrtm(root2 @ s1 @ root2).real)
    assert want == pytest.approx(
        ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2) - 2 * direct, rel=1e-9
    )
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_frechet_distance_singular_covariances():
    rng = np.random.default_rng(1)
    d = 16
    x, y = rng.normal(size=(3, d)), rng.normal(size=(4, d)) + 0.5  # fewer samples than dims
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    assert np.linalg.matrix_rank(s1) == 2 and np.linalg.matrix_rank(s2) == 3
    got = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(got)
    assert got == pytest.approx(_frechet_by_eigh(mu1, s1, mu2, s2), rel=1e-4, abs=1e-5)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-5)


# --------------------------------------------------------------------------------------------
# Command line.


def _write_images(folder, sizes, seed, ext="png"):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    arrays = []
    for i, (h, w) in enumerate(sizes):
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{i}.{ext}")
        arrays.append(arr)
    return arrays


def _torch_fid_stats(ref_model, arrays):
    """pytorch-fid's recipe for --dims 64, image by image: /255, resize, 2x-1, block 0, mean."""
    feats = []
    with torch.no_grad():
        for arr in arrays:
            x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255.0
            feats.append(ref_model(x, upto="maxpool1")["pool_out"].numpy()[0])
    f = np.asarray(feats, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_cli_fid_between_folders_and_saved_stats(ref_model, weights_file, tmp_path, capsys):
    a = _write_images(tmp_path / "a", [(32, 32), (32, 32), (40, 24)], seed=0)
    b = _write_images(tmp_path / "b", [(32, 32), (30, 36)], seed=1)
    stats_a = tmp_path / "a_stats.npz"
    # --dims 64 keeps the run and the 64x64 matrix square root fast on CPU.
    common = ["--weights", weights_file, "--batch-size", "2", "--dims", "64", "--no-progress"]
    value = fid_cli.main(
        [str(tmp_path / "a"), str(tmp_path / "b"), *common, "--save-stats", str(stats_a)]
    )
    assert f"FID: {value}" in capsys.readouterr().out
    assert np.isfinite(value) and value > 0
    # The same FID from pytorch-fid's recipe run through the PyTorch reference network.
    want = frechet_distance(*_torch_fid_stats(ref_model, a), *_torch_fid_stats(ref_model, b))
    print(f"CLI FID {value:.9g} vs PyTorch reference recipe {want:.9g}")
    assert value == pytest.approx(want, rel=1e-3)
    mu_a, sigma_a = load_stats(stats_a)
    mu_ref, _ = _torch_fid_stats(ref_model, a)
    assert _rel_err(mu_a, mu_ref) < 1e-4
    same = fid_cli.main([str(stats_a), str(tmp_path / "a"), *common])
    assert abs(same) < 1e-3 * value
    fid_cli.main(["stats", str(tmp_path / "b"), str(tmp_path / "b.npz"), *common])
    assert fid_cli.main([str(stats_a), str(tmp_path / "b.npz")]) == pytest.approx(value, rel=1e-9)


def test_cli_errors_name_the_folder_or_file(weights_file, tmp_path):
    (tmp_path / "empty").mkdir()
    _write_images(tmp_path / "ok", [(8, 8), (8, 8)], seed=2)
    args = ["--weights", weights_file, "--no-progress"]
    with pytest.raises(ValueError, match=r"empty: no image files"):
        fid_cli.main([str(tmp_path / "ok"), str(tmp_path / "empty"), *args])
    bad = tmp_path / "bad"
    _write_images(bad, [(8, 8)], seed=3)
    (bad / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(ValueError, match=r"broken\.png: unreadable image"):
        fid_cli.main([str(tmp_path / "ok"), str(bad), *args])
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        fid_cli.main(
            [str(tmp_path / "ok"), str(tmp_path / "ok"), "--weights", str(tmp_path / "nothing.pth")]
        )
    with pytest.raises(ValueError, match=r"--weights"):
        fid_cli.main([str(tmp_path / "ok"), str(tmp_path / "ok")])


def test_load_inception_rejects_bad_options(weights_file):
    with pytest.raises(ValueError, match="dims"):
        load_inception(weights_file, dims=100)
    with pytest.raises(ValueError, match="input_range"):
        load_inception(weights_file, input_range=(1.0, 0.0))


def test_stats_npz_with_pickled_objects_is_refused(tmp_path):
    """A stats file holding a pickled object array is refused (np.load allow_pickle=False)."""
    path = tmp_path / "obj.npz"
    np.savez(path, mu=np.array([{"a": 1}], dtype=object), sigma=np.eye(1))
    with pytest.raises(ValueError, match=r"obj\.npz"):
        load_stats(path)


def test_in_training_inception_fid_hook(weights_file, tmp_path):
    """A run configured with Inception weights reports FID in eval.json and metrics.jsonl."""
    import json

    from experiments import dcgan

    wd = tmp_path / "run"
    dcgan.main(
        ["--smoke", "--workdir", str(wd), "--steps", "2", "--tensorboard", "false"]
        + ["--fid_weights", weights_file, "--fid_samples", "6", "--fid_dims", "64"]
    )
    with open(wd / "eval.json") as fh:
        scores = json.load(fh)
    assert np.isfinite(scores["fid"]) and scores["fid"] > 0
    rows = [json.loads(line) for line in open(wd / "metrics.jsonl")]
    assert rows[-1]["eval/fid"] == pytest.approx(scores["fid"])
    with pytest.raises(FileNotFoundError, match="no_such_weights"):
        dcgan.main(
            ["--smoke", "--workdir", str(tmp_path / "bad"), "--fid_weights", "no_such_weights.pth"]
        )
