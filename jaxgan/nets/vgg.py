"""VGG19 features (Simonyan & Zisserman 2015) for perceptual losses, with a torchvision loader.

:class:`VGG19Features` is the convolutional part of torchvision's ``vgg19`` (configuration
"E": 16 convolutions 3x3 with ReLU, 5 max-pools 2x2), NHWC, computed only up to the deepest
layer asked for. Layers are named as in the papers: ``conv{b}_{i}`` (the convolution's
output, *before* its ReLU), ``relu{b}_{i}`` (after it) and ``pool{b}``, for blocks
``b = 1..5`` with 2, 2, 4, 4, 4 convolutions. SRGAN's VGG54 loss uses ``relu5_4`` (the
paper's "phi_5,4 ... after activation"); ESRGAN's uses ``conv5_4`` (before activation,
the change the ESRGAN paper argues for in Sec. 3.3).

Inputs are RGB images in ``input_range`` (default [0, 1]); with ``normalize=True`` they are
mapped to [0, 1] and standardised with the ImageNet mean and standard deviation that
torchvision's weights expect.

Weights: nothing is downloaded. :func:`load_vgg19_params` reads the usual ImageNet file in
torchvision's ``state_dict`` layout (``vgg19-dcbb9e9d.pth``: keys ``features.0.weight``,
``features.0.bias``, ..., ``features.34.bias``, ``classifier.{0,3,6}.{weight,bias}``)
through jaxgan's torch-free, restricted reader (:mod:`jaxgan.torch_weights`), or a ``.npz``
of the same keys. Every convolution key is required and shape-checked; the classifier keys
are optional and unused (the features never reach the classifier); any other key is an
error that names the file and the key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxgan.nets.layers import Conv

Array = jax.Array

#: Channels of the 16 convolutions, by block.
_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_table() -> tuple[list[str], dict[str, int], dict[str, tuple[int, int]]]:
    """Layer names in order; conv name -> torchvision ``features`` index; conv -> (in, out)."""
    names: list[str] = []
    torch_index: dict[str, int] = {}
    channels: dict[str, tuple[int, int]] = {}
    idx, cin = 0, 3
    for b, widths in enumerate(_BLOCKS, start=1):
        for i, cout in enumerate(widths, start=1):
            conv = f"conv{b}_{i}"
            names += [conv, f"relu{b}_{i}"]
            torch_index[conv] = idx
            channels[conv] = (cin, cout)
            idx += 2  # Conv2d, ReLU
            cin = cout
        names.append(f"pool{b}")
        idx += 1  # MaxPool2d
    return names, torch_index, channels


#: Every layer name of VGG19's features, in order.
VGG19_LAYERS, TORCH_INDEX, CONV_CHANNELS = _layer_table()


class VGG19Features(nn.Module):
    """VGG19 feature maps at ``layers`` (module docstring); returns a tuple in that order."""

    layers: Sequence[str] = ("conv5_4",)
    normalize: bool = True
    input_range: tuple[float, float] = (0.0, 1.0)

    @nn.compact
    def __call__(self, x: Array) -> tuple[Array, ...]:
        unknown = [name for name in self.layers if name not in VGG19_LAYERS]
        if unknown or not self.layers:
            got = unknown or "(none given)"
            raise ValueError(f"unknown VGG19 layers {got}; known: {VGG19_LAYERS}")
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"VGG19 needs NHWC RGB images (N, H, W, 3), got shape {x.shape}")
        if self.normalize:
            lo, hi = self.input_range
            x = (x - lo) / (hi - lo)
            x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
        last = max(VGG19_LAYERS.index(name) for name in self.layers)
        found: dict[str, Array] = {}
        for name in VGG19_LAYERS[: last + 1]:
            if name.startswith("conv"):
                x = Conv(CONV_CHANNELS[name][1], (3, 3), padding=((1, 1), (1, 1)), name=name)(x)
            elif name.startswith("relu"):
                x = nn.relu(x)
            else:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            found[name] = x
        return tuple(found[name] for name in self.layers)


def expected_torch_keys() -> dict[str, tuple[int, ...]]:
    """Every key the features need from a torchvision VGG19 state_dict, with its shape."""
    keys: dict[str, tuple[int, ...]] = {}
    for conv, idx in TORCH_INDEX.items():
        cin, cout = CONV_CHANNELS[conv]
        keys[f"features.{idx}.weight"] = (cout, cin, 3, 3)
        keys[f"features.{idx}.bias"] = (cout,)
    return keys


#: Optional keys of a torchvision file that the features do not use: name -> ndim.
UNUSED_TORCH_KEYS = {
    f"classifier.{i}.{p}": 2 if p == "weight" else 1 for i in (0, 3, 6) for p in ("weight", "bias")
}


def params_from_torch_state_dict(
    state_dict: Mapping[str, Any], source: str = "<state_dict>"
) -> dict[str, Any]:
    """Map a torchvision VGG19 ``state_dict`` to the ``params`` of :class:`VGG19Features`.

    ``features.{k}.weight`` ``(O, I, 3, 3)`` becomes ``{conv}/kernel`` ``(3, 3, I, O)`` and
    ``features.{k}.bias`` becomes ``{conv}/bias``, where ``k`` is the convolution's index in
    torchvision's ``features`` ``Sequential`` (:data:`TORCH_INDEX`: conv1_1 -> 0, conv1_2 -> 2,
    conv2_1 -> 5, ..., conv5_4 -> 34). The classifier keys are optional and ignored.

    Raises:
      ValueError: a missing key, an unexpected key (e.g. the BatchNorm keys of
        ``vgg19_bn``), a wrong shape or a non-float tensor, naming ``source`` and the key.
    """
    expected = expected_torch_keys()
    missing = [k for k in expected if k not in state_dict]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(
            f"{source}: missing key '{missing[0]}'{more}: not a torchvision VGG19 state_dict "
            "(keys features.0.weight ... features.34.bias)"
        )
    params: dict[str, Any] = {}
    by_index = {idx: conv for conv, idx in TORCH_INDEX.items()}
    for key, value in state_dict.items():
        value = np.asarray(value)
        if key in expected:
            if value.shape != expected[key]:
                raise ValueError(
                    f"{source}: key '{key}' has shape {value.shape}, expected {expected[key]}"
                )
            if not np.issubdtype(value.dtype, np.floating) and value.dtype.name != "bfloat16":
                raise ValueError(f"{source}: key '{key}' has dtype {value.dtype}, expected float")
            conv = by_index[int(key.split(".")[1])]
            arr = value.astype(np.float32)
            leaf = "kernel" if key.endswith("weight") else "bias"
            if leaf == "kernel":
                arr = arr.transpose(2, 3, 1, 0)
            params.setdefault(conv, {})[leaf] = np.ascontiguousarray(arr)
        elif key in UNUSED_TORCH_KEYS:
            if value.ndim != UNUSED_TORCH_KEYS[key]:
                raise ValueError(
                    f"{source}: key '{key}' has shape {value.shape}, expected "
                    f"{UNUSED_TORCH_KEYS[key]} dimensions"
                )
        else:
            hint = " (a vgg19_bn file? only plain vgg19 is supported)" if _bn_like(key) else ""
            raise ValueError(
                f"{source}: unexpected key '{key}': not part of torchvision's VGG19{hint}"
            )
    return params


def _bn_like(key: str) -> bool:
    """Whether ``key`` looks like a key of torchvision's ``vgg19_bn``."""
    parts = key.split(".")
    if "running_" in key or "num_batches_tracked" in key:
        return True
    return len(parts) == 3 and parts[0] == "features" and parts[1].isdigit()


def load_vgg19_params(path: str | os.PathLike) -> dict[str, Any]:
    """``params`` of :class:`VGG19Features` from a torchvision ``.pth`` or a ``.npz``.

    ``.pth`` files are read by :func:`jaxgan.torch_weights.load_torch_state_dict` (no torch,
    no arbitrary unpickling); ``.npz`` files with ``np.load(allow_pickle=False)``. Errors
    name the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such VGG19 weights file")
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                state_dict = {k: data[k] for k in data.files}
        except ValueError as e:
            raise ValueError(f"{path}: not a readable .npz of arrays ({e})") from e
    else:
        from jaxgan.torch_weights import load_torch_state_dict

        state_dict = load_torch_state_dict(path)
    return params_from_torch_state_dict(state_dict, source=path)


def make_feature_fn(
    params: Any,
    layers: Sequence[str] = ("conv5_4",),
    input_range: tuple[float, float] = (0.0, 1.0),
    feature_scale: float = 1.0,
) -> Callable[[Array], tuple[Array, ...]]:
    """``images -> tuple of feature maps`` for :func:`jaxgan.losses.perceptual_loss`.

    ``params`` are passed in at call time (not baked into a compiled program as
    constants); ``feature_scale`` multiplies every map (SRGAN rescales its VGG54 features
    by 1/12.75).
    """
    module = VGG19Features(layers=tuple(layers), input_range=tuple(input_range))
    last = max(VGG19_LAYERS.index(name) for name in layers)
    needed = {name for name in VGG19_LAYERS[: last + 1] if name.startswith("conv")}
    missing = sorted(needed - set(params))
    if missing:
        raise ValueError(f"VGG19 parameters lack {missing}")
    used = {k: params[k] for k in needed}  # only the convolutions the layers need

    def features(x: Array) -> tuple[Array, ...]:
        out = module.apply({"params": used}, x)
        return tuple(f * feature_scale for f in out) if feature_scale != 1.0 else out

    return features
