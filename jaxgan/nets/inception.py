"""InceptionV3 as used for FID: the pytorch-fid port of TensorFlow's 2015-12-05 graph.

This is the network behind the reference FID implementations (TTUR's TensorFlow code and
``pytorch-fid``, whose weights file ``pt_inception-2015-12-05-6726825d.pth`` this module
loads). It differs from torchvision's InceptionV3 in the ways the TF graph does:

* every 3x3 average pool inside Mixed_5b..5d, 6b..6e and 7b is taken with
  ``count_include_pad=False`` (TF's ``SAME`` average ignores the padding);
* the pool branch of the last block, Mixed_7c, is a 3x3 *max* pool (stride 1, pad 1);
* BatchNorm has ``eps=1e-3`` and is used in inference mode (running statistics);
* there is no auxiliary classifier; the 1008-way ``fc`` layer exists in the weights file
  but FID does not use it.

Conventions of this module (jaxgan-wide): images are NHWC, values in ``[-1, 1]``. The input
is resized with bilinear interpolation to 299x299 (``jax.image.resize(..., "bilinear",
antialias=False)``, which equals ``torch.nn.functional.interpolate(..., mode="bilinear",
align_corners=False)`` for both up- and downscaling) and then mapped from ``input_range`` to
``[-1, 1]``. pytorch-fid feeds ``[0, 1]`` images and computes ``2x - 1`` after the resize; set
``input_range=(0.0, 1.0)`` to reproduce that bit for bit. Because the resize is linear, the
order only matters to within float rounding.

Outputs follow pytorch-fid's ``dims`` choice: 2048 (pool3, the FID default), 768 (after
Mixed_6e), 192 (after the second max pool) or 64 (after the first max pool), each averaged
over space. The network stops at the block it needs.

Parameter names mirror the PyTorch ``state_dict``: the torch key
``Mixed_5b.branch5x5_1.conv.weight`` is ``params/Mixed_5b/branch5x5_1/conv/kernel`` here, and
``...bn.weight/bias/running_mean/running_var`` are ``params/.../bn/scale``, ``params/.../bn/bias``,
``batch_stats/.../bn/mean`` and ``batch_stats/.../bn/var``. See
:func:`params_from_torch_state_dict`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FID_DIMS",
    "INPUT_SIZE",
    "UNUSED_TORCH_KEYS",
    "InceptionV3",
    "expected_torch_keys",
    "load_inception_variables",
    "params_from_torch_state_dict",
    "preprocess",
    "save_inception_npz",
]

INPUT_SIZE = 299
FID_DIMS = (64, 192, 768, 2048)
#: Keys of the pytorch-fid weights file that the FID network does not use.
UNUSED_TORCH_KEYS = ("fc.weight", "fc.bias")
#: Key suffix of BatchNorm counters (PyTorch >= 0.4.1 state_dicts); ignored when present.
UNUSED_TORCH_SUFFIX = ".num_batches_tracked"

Precision = Any  # None, a string such as "highest", or a jax.lax.Precision


def preprocess(
    x: jax.Array,
    input_range: tuple[float, float] = (-1.0, 1.0),
    resize: bool = True,
    size: int = INPUT_SIZE,
) -> jax.Array:
    """Resize NHWC RGB images to ``size`` (bilinear, half-pixel centres, no antialiasing) and
    map their values from ``input_range`` to ``[-1, 1]``, in float32.

    The order (resize, then rescale) is pytorch-fid's; for ``input_range=(0, 1)`` the rescale
    is its ``2 * x - 1``.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected NHWC RGB images (N, H, W, 3), got shape {x.shape}")
    if resize and x.shape[1:3] != (size, size):
        x = jax.image.resize(x, (x.shape[0], size, size, 3), method="bilinear", antialias=False)
    lo, hi = (float(v) for v in input_range)
    if not hi > lo:
        raise ValueError(f"input_range must be (low, high) with low < high, got {input_range}")
    if (lo, hi) != (-1.0, 1.0):
        x = (x - lo) * (2.0 / (hi - lo)) - 1.0
    return x


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3, running statistics), ReLU."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ph, pw = self.padding
        x = nn.Conv(
            self.features,
            self.kernel_size,
            strides=self.strides,
            padding=((ph, ph), (pw, pw)),
            use_bias=False,
            precision=self.precision,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
        return nn.relu(x)


def _avg_pool_same(x: jax.Array) -> jax.Array:
    """3x3 stride-1 average pool that, like TF, averages only over the real (unpadded) inputs."""
    return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class FIDInceptionA(nn.Module):
    """Mixed_5b/5c/5d: 1x1, 5x5, double 3x3 and (pad-excluding) average-pool branches."""

    pool_features: int
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = partial(BasicConv2d, precision=self.precision)
        b1 = conv(64, (1, 1), name="branch1x1")(x)
        b5 = conv(48, (1, 1), name="branch5x5_1")(x)
        b5 = conv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        b3 = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = conv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_same(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """Mixed_6a: grid reduction 35 -> 17 (strided 3x3, double 3x3, max pool)."""

    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = partial(BasicConv2d, precision=self.precision)
        b3 = conv(384, (3, 3), strides=(2, 2), name="branch3x3")(x)
        bd = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        bd = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = conv(96, (3, 3), strides=(2, 2), name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class FIDInceptionC(nn.Module):
    """Mixed_6b..6e: factorised 7x7 branches and a (pad-excluding) average-pool branch."""

    channels_7x7: int
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = partial(BasicConv2d, precision=self.precision)
        c7 = self.channels_7x7
        b1 = conv(192, (1, 1), name="branch1x1")(x)
        b7 = conv(c7, (1, 1), name="branch7x7_1")(x)
        b7 = conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = conv(c7, (1, 1), name="branch7x7dbl_1")(x)
        bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = conv(192, (1, 1), name="branch_pool")(_avg_pool_same(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """Mixed_7a: grid reduction 17 -> 8."""

    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = partial(BasicConv2d, precision=self.precision)
        b3 = conv(192, (1, 1), name="branch3x3_1")(x)
        b3 = conv(320, (3, 3), strides=(2, 2), name="branch3x3_2")(b3)
        b7 = conv(192, (1, 1), name="branch7x7x3_1")(x)
        b7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = conv(192, (3, 3), strides=(2, 2), name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (``pool="avg"``, pad-excluding) and Mixed_7c (``pool="max"``, as the TF graph)."""

    pool: str = "avg"
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = partial(BasicConv2d, precision=self.precision)
        b1 = conv(320, (1, 1), name="branch1x1")(x)
        b3 = conv(384, (1, 1), name="branch3x3_1")(x)
        b3 = jnp.concatenate(
            [
                conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
            ],
            axis=-1,
        )
        bd = conv(448, (1, 1), name="branch3x3dbl_1")(x)
        bd = conv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate(
            [
                conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
            ],
            axis=-1,
        )
        if self.pool == "avg":
            pooled = _avg_pool_same(x)
        elif self.pool == "max":
            pooled = nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))
        else:
            raise ValueError(f"pool must be 'avg' or 'max', got {self.pool!r}")
        bp = conv(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
    """The FID InceptionV3 (see the module docstring), NHWC, returning ``(N, dims)`` features.

    Attributes:
      dims: 2048 (pool3, default), 768, 192 or 64: which block's spatially averaged output.
      resize_input: bilinearly resize the input to 299x299 first (pytorch-fid's default).
      input_range: value range of the input images; mapped to ``[-1, 1]`` after resizing.
      precision: matmul/conv precision; ``"highest"`` keeps float32 accuracy on GPUs and TPUs
        (no TF32 / bfloat16 passes), which FID parity needs.

    Every top-level layer output is sown into the ``"intermediates"`` collection under
    ``"<layer>_out"`` (``"Conv2d_4a_3x3_out"``, ``"maxpool2_out"``, ``"Mixed_6e_out"``, ...,
    ``"pool_out"``), for debugging and parity tests: ``apply(..., mutable=["intermediates"])``.
    """

    dims: int = 2048
    resize_input: bool = True
    input_range: tuple[float, float] = (-1.0, 1.0)
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.dims not in FID_DIMS:
            raise ValueError(f"dims must be one of {FID_DIMS}, got {self.dims}")
        x = preprocess(x, self.input_range, self.resize_input)
        p = self.precision
        conv = partial(BasicConv2d, precision=p)

        def run(layer: nn.Module | str, x: jax.Array) -> jax.Array:
            if isinstance(layer, str):  # a parameter-free 3x3 stride-2 max pool
                name, y = layer, _max_pool_3x3_s2(x)
            else:
                name, y = layer.name, layer(x)
            self.sow("intermediates", f"{name}_out", y)
            return y

        def head(x: jax.Array) -> jax.Array:
            y = jnp.mean(x, axis=(1, 2))
            self.sow("intermediates", "pool_out", y)
            return y

        x = run(conv(32, (3, 3), strides=(2, 2), name="Conv2d_1a_3x3"), x)
        x = run(conv(32, (3, 3), name="Conv2d_2a_3x3"), x)
        x = run(conv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3"), x)
        x = run("maxpool1", x)
        if self.dims == 64:
            return head(x)
        x = run(conv(80, (1, 1), name="Conv2d_3b_1x1"), x)
        x = run(conv(192, (3, 3), name="Conv2d_4a_3x3"), x)
        x = run("maxpool2", x)
        if self.dims == 192:
            return head(x)
        for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = run(FIDInceptionA(pool_features, precision=p, name=name), x)
        x = run(InceptionB(precision=p, name="Mixed_6a"), x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160)):
            x = run(FIDInceptionC(c7, precision=p, name=name), x)
        x = run(FIDInceptionC(192, precision=p, name="Mixed_6e"), x)
        if self.dims == 768:
            return head(x)
        x = run(InceptionD(precision=p, name="Mixed_7a"), x)
        x = run(FIDInceptionE("avg", precision=p, name="Mixed_7b"), x)
        x = run(FIDInceptionE("max", precision=p, name="Mixed_7c"), x)
        return head(x)


# --------------------------------------------------------------------------------------------
# Weights: PyTorch state_dict (pytorch-fid layout) <-> Flax variables.

_BN_FIELDS = {
    # flax (collection, name) -> torch suffix
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


def _variable_shapes() -> dict[tuple[str, ...], tuple[int, ...]]:
    """Paths (collection, module..., leaf) -> shape of every variable of the full network."""
    model = InceptionV3(resize_input=False)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 75, 75, 3)))
    flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
    return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


_SHAPES_CACHE: dict[str, dict[tuple[str, ...], tuple[int, ...]]] = {}


def _torch_key_table() -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    """torch key -> (flax variable path, flax shape), for every variable of the network."""
    if "shapes" not in _SHAPES_CACHE:
        _SHAPES_CACHE["shapes"] = _variable_shapes()
    table = {}
    for path, shape in _SHAPES_CACHE["shapes"].items():
        collection, *modules, leaf = path
        if modules[-1] == "conv" and leaf == "kernel":
            suffix = "weight"
        else:
            suffix = _BN_FIELDS[(collection, leaf)]
        table[".".join([*modules, suffix])] = (path, shape)
    return table


def _torch_shape(flax_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Conv kernels are (kh, kw, in, out) in Flax and (out, in, kh, kw) in PyTorch."""
    if len(flax_shape) == 4:
        kh, kw, cin, cout = flax_shape
        return (cout, cin, kh, kw)
    return flax_shape


def expected_torch_keys() -> dict[str, tuple[int, ...]]:
    """Every key the FID network needs from a pytorch-fid state_dict, with its torch shape.

    A weights file holds exactly these keys plus, optionally, :data:`UNUSED_TORCH_KEYS`
    (``fc.weight`` ``(1008, 2048)``, ``fc.bias`` ``(1008,)``) and one
    ``<bn>.num_batches_tracked`` per BatchNorm; those are checked for shape and then ignored.
    """
    return {k: _torch_shape(shape) for k, (_, shape) in _torch_key_table().items()}


def params_from_torch_state_dict(
    state_dict: Mapping[str, np.ndarray], source: str = "<state_dict>"
) -> dict[str, Any]:
    """Map a pytorch-fid InceptionV3 ``state_dict`` to Flax variables for :class:`InceptionV3`.

    Every key is accounted for: each conv weight ``<module>.conv.weight`` ``(O, I, kh, kw)``
    becomes ``params/<module>/conv/kernel`` ``(kh, kw, I, O)``; ``<module>.bn.weight``,
    ``.bn.bias``, ``.bn.running_mean`` and ``.bn.running_var`` become ``params/.../bn/scale``,
    ``params/.../bn/bias``, ``batch_stats/.../bn/mean`` and ``batch_stats/.../bn/var``. The
    unused keys are ``fc.weight``/``fc.bias`` (the 1008-way classifier; optional, shape
    checked) and ``*.bn.num_batches_tracked`` (BatchNorm counters; optional). A missing key,
    an unexpected key or a wrong shape raises ``ValueError`` naming ``source`` and the key.

    Returns ``{"params": ..., "batch_stats": ...}`` as float32 numpy arrays.
    """
    table = _torch_key_table()
    missing = [k for k in table if k not in state_dict]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(
            f"{source}: missing key '{missing[0]}'{more}: not a pytorch-fid InceptionV3 state_dict"
        )
    bn_modules = {k[: -len(".running_mean")] for k in table if k.endswith(".running_mean")}
    optional_shapes = {"fc.weight": (None, 2048), "fc.bias": (None,)}
    variables: dict[str, Any] = {"params": {}, "batch_stats": {}}
    for key, value in state_dict.items():
        value = np.asarray(value)
        if key in table:
            path, flax_shape = table[key]
            want = _torch_shape(flax_shape)
            if value.shape != want:
                raise ValueError(f"{source}: key '{key}' has shape {value.shape}, expected {want}")
            if not np.issubdtype(value.dtype, np.floating) and value.dtype.name != "bfloat16":
                raise ValueError(f"{source}: key '{key}' has dtype {value.dtype}, expected float")
            arr = value.astype(np.float32)
            if arr.ndim == 4:
                arr = arr.transpose(2, 3, 1, 0)
            node = variables
            for name in path[:-1]:
                node = node.setdefault(name, {})
            node[path[-1]] = np.ascontiguousarray(arr)
        elif key in optional_shapes:
            want = optional_shapes[key]
            if value.ndim != len(want) or (want[-1] is not None and value.shape[-1] != want[-1]):
                raise ValueError(f"{source}: key '{key}' has shape {value.shape}, expected {want}")
        elif key.endswith(UNUSED_TORCH_SUFFIX) and key[: -len(UNUSED_TORCH_SUFFIX)] in bn_modules:
            if value.size != 1:
                raise ValueError(f"{source}: key '{key}' has shape {value.shape}, expected ()")
        else:
            raise ValueError(
                f"{source}: unexpected key '{key}': not part of the pytorch-fid InceptionV3"
            )
    return variables


def save_inception_npz(
    state_dict: Mapping[str, np.ndarray], path: str | os.PathLike, source: str = "<state_dict>"
) -> None:
    """Validate a pytorch-fid state_dict and save the keys the network uses as a float32 ``.npz``.

    The ``.npz`` keeps the PyTorch key names and layouts (so it is checked by the same
    :func:`params_from_torch_state_dict` on load) and needs neither torch nor pickle to read.
    """
    params_from_torch_state_dict(state_dict, source=source)
    arrays = {k: np.asarray(state_dict[k], np.float32) for k in expected_torch_keys()}
    np.savez(path, **arrays)


def load_inception_variables(path: str | os.PathLike) -> dict[str, Any]:
    """Flax variables for :class:`InceptionV3` from a pytorch-fid ``.pth`` or a converted ``.npz``.

    ``.pth`` files are read by :func:`jaxgan.torch_weights.load_torch_state_dict` (no torch, no
    arbitrary unpickling); ``.npz`` files (from :func:`save_inception_npz` or
    ``python -m jaxgan.fid convert``) by ``np.load(allow_pickle=False)``. Errors name the file.
    """
    path = os.fspath(path)
    if path.endswith(".npz"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such weights file")
        try:
            with np.load(path, allow_pickle=False) as data:
                state_dict = {k: data[k] for k in data.files}
        except ValueError as e:
            raise ValueError(f"{path}: not a readable .npz of arrays ({e})") from e
    else:
        from jaxgan.torch_weights import load_torch_state_dict

        state_dict = load_torch_state_dict(path)
    return params_from_torch_state_dict(state_dict, source=path)
