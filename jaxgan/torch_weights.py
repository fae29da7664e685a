"""Read a PyTorch ``state_dict`` file into numpy arrays without torch and without unpickling.

A ``.pth`` file written by ``torch.save`` is a pickle, and unpickling runs whatever
callables the file names. :func:`load_torch_state_dict` uses a restricted
:class:`pickle.Unpickler` instead: its ``find_class`` resolves only the handful of globals a
plain ``state_dict`` needs, each mapped to a small numpy-building function of this module:

* ``collections.OrderedDict`` (the container; its ``_metadata`` attribute is dropped);
* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_tensor_v3`` (a tensor: storage, offset,
  size, stride) and ``_rebuild_parameter`` / ``_rebuild_parameter_with_state`` (a
  ``nn.Parameter`` wrapping one, read as the plain tensor);
* the storage types ``torch.FloatStorage``, ``torch.HalfStorage``, ... and
  ``torch.storage.UntypedStorage``, which only name a dtype;
* dtype markers such as ``torch.float32`` (used by ``_rebuild_tensor_v3``).

Any other global (``os.system``, ``builtins.eval``, a model class, ...) is refused with a
``ValueError`` that names the file and the global, before anything is called. Tensor data is
never executed: storages are raw bytes read into numpy with the dtype and byte order the file
records, and every tensor view (offset, size, strides) is bounds-checked against its storage
before it is copied out as a contiguous array.

Two container formats are read:

* the zip format, default since PyTorch 1.6: ``<root>/data.pkl`` is the pickle,
  ``<root>/data/<key>`` the raw storages, ``<root>/byteorder`` the byte order (little
  endian when absent, as written before PyTorch 2.1);
* the legacy format (``torch.save(..., _use_new_zipfile_serialization=False)`` and every
  file written before PyTorch 1.6, such as many published weight files): a sequence of
  pickles (magic number, protocol version, system info, the object, the storage keys)
  followed by each storage as a little-endian int64 element count and its raw bytes.

The pre-2017 tar format of PyTorch 0.1.x is not supported (a clear error says so). Values are
returned as a flat ``dict[str, np.ndarray]`` in the file's order; a file whose top-level object
is not a mapping from strings to tensors (a whole pickled model, a checkpoint dict with
optimizer state, ...) is rejected with an error naming the offending entry.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

__all__ = ["load_torch_state_dict"]

# torch.save's legacy-format magic number and protocol version.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
}

# torch dtype names (as pickled: ``torch.<name>``) that have a numpy equivalent.
_TORCH_DTYPES: dict[str, str] = {
    "float64": "float64",
    "double": "float64",
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "short": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "bool": "bool",
    "complex128": "complex128",
    "complex64": "complex64",
}


_NUMPY_DTYPE_NAMES = frozenset(_TORCH_DTYPES.values()) | frozenset(_STORAGE_DTYPES.values())


def _np_dtype(name: str) -> np.dtype:
    """The numpy dtype for a torch dtype name (bfloat16 comes from ml_dtypes, a jax dependency)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stands for a pickled ``torch.<X>Storage`` class: only its element dtype matters."""

    dtype_name: str | None  # None: untyped (bytes; the tensor's dtype comes from _rebuild_v3)


@dataclass(frozen=True, slots=True)
class _DType:
    """Stands for a pickled ``torch.<dtype>`` object."""

    name: str


class _Storage:
    """One storage: raw bytes (filled in when read), element dtype and byte order."""

    __slots__ = ("key", "dtype_name", "numel", "raw", "little_endian")

    def __init__(self, key: str, dtype_name: str | None, numel: int) -> None:
        self.key = key
        self.dtype_name = dtype_name
        self.numel = numel
        self.raw: bytes | None = None
        self.little_endian = True


@dataclass(frozen=True, slots=True)
class _LazyTensor:
    """A tensor view on a storage, materialised once every storage has been read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype_name: str | None = None  # overrides the storage's dtype (untyped storages)


def _rebuild_tensor_v2(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any
) -> _LazyTensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records the view, reads nothing."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("_rebuild_tensor_v2 expects a storage as first argument")
    return _LazyTensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    *_ignored: Any,
) -> _LazyTensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v3`` (untyped storage + explicit dtype)."""
    if not isinstance(storage, _Storage) or not isinstance(dtype, _DType):
        raise pickle.UnpicklingError("_rebuild_tensor_v3 expects a storage and a dtype")
    return _LazyTensor(storage, storage_offset, tuple(size), tuple(stride), dtype.name)


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter[_with_state]``: the tensor itself."""
    if not isinstance(data, _LazyTensor):
        raise pickle.UnpicklingError("_rebuild_parameter expects a tensor")
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "UntypedStorage"): _StorageType(None),
    ("torch.storage", "UntypedStorage"): _StorageType(None),
    **{("torch", name): _StorageType(dt) for name, dt in _STORAGE_DTYPES.items()},
    **{("torch", name): _DType(dt) for name, dt in _TORCH_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of a plain state_dict (see module docstring)."""

    def __init__(
        self, file: IO[bytes], path: str, persistent: Callable[[Any], Any] | None = None
    ) -> None:
        super().__init__(file)
        self._path = path
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ValueError(
                f"{self._path}: refusing to load the global '{module}.{name}': only tensors in "
                "plain (Ordered)dicts are allowed in a state_dict file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError("unexpected persistent id")
        return self._persistent(pid)


def _restricted_load(file: IO[bytes], path: str, persistent: Callable[[Any], Any] | None) -> Any:
    try:
        return _RestrictedUnpickler(file, path, persistent).load()
    except ValueError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: not a readable PyTorch state_dict ({e})") from e


def _storage_type_of(pid: tuple, path: str) -> _StorageType:
    storage_type = pid[1]
    if not isinstance(storage_type, _StorageType):
        raise ValueError(f"{path}: bad storage record {pid!r}")
    return storage_type


def _as_key(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _materialise(t: _LazyTensor, path: str, key: str) -> np.ndarray:
    """Copy one tensor view out of its storage, with bounds checks and byte-order fix."""
    if not isinstance(t.storage, _Storage) or not isinstance(t.storage.raw, bytes):
        raise ValueError(f"{path}: tensor '{key}' does not refer to a storage with data")
    dtype_name = t.dtype_name or t.storage.dtype_name
    if dtype_name is None:
        raise ValueError(f"{path}: tensor '{key}' has an untyped storage and no dtype")
    if dtype_name not in _NUMPY_DTYPE_NAMES:
        raise ValueError(f"{path}: tensor '{key}' has an unsupported dtype {dtype_name!r}")
    dtype = _np_dtype(dtype_name)
    ints = (t.offset, *t.size, *t.stride)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        raise ValueError(f"{path}: tensor '{key}' has a non-integer offset, size or stride")
    if t.offset < 0 or any(s < 0 for s in t.size) or any(s < 0 for s in t.stride):
        raise ValueError(f"{path}: tensor '{key}' has a negative offset, size or stride")
    if len(t.size) != len(t.stride):
        raise ValueError(f"{path}: tensor '{key}' has mismatched size and stride lengths")
    raw = np.frombuffer(t.storage.raw, dtype=np.uint8)
    if raw.size % dtype.itemsize:
        raise ValueError(
            f"{path}: storage {t.storage.key} of tensor '{key}' holds {raw.size} bytes, "
            f"not a multiple of {dtype} ({dtype.itemsize} bytes)"
        )
    n_avail = raw.size // dtype.itemsize
    if 0 in t.size:
        return np.zeros(t.size, dtype=dtype)
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True))
    if last >= n_avail:
        raise ValueError(
            f"{path}: tensor '{key}' (offset {t.offset}, size {t.size}, stride {t.stride}) "
            f"reaches element {last} of a storage with {n_avail} elements"
        )
    # Raw bytes -> elements in the file's byte order -> native order, then the view.
    unit = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
    if unit > 1:
        order = "<" if t.storage.little_endian else ">"
        swapped = raw.view(np.dtype(f"{order}u{unit}")).astype(np.dtype(f"=u{unit}"))
        elements = swapped.view(dtype)
    else:
        elements = raw.view(dtype)
    view = np.lib.stride_tricks.as_strided(
        elements[t.offset :],
        shape=t.size,
        strides=tuple(s * dtype.itemsize for s in t.stride),
        writeable=False,
    )
    return np.array(view, copy=True, order="C")


def _flatten(obj: Any, path: str) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path}: the file holds a {type(obj).__name__}, not a state_dict (a mapping of "
            "names to tensors)"
        )
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: state_dict key {key!r} is not a string")
        if not isinstance(value, _LazyTensor):
            raise ValueError(
                f"{path}: entry '{key}' is not a tensor ({type(value).__name__}); pass a plain "
                "state_dict (e.g. checkpoint['state_dict'] saved on its own)"
            )
        out[key] = _materialise(value, path, key)
    return out


def _load_zip(path: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise ValueError(f"{path}: zip file without a single '<root>/data.pkl' record")
        root = pkl[0][: -len("data.pkl")]
        little = True
        if root + "byteorder" in names:
            order = zf.read(root + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise ValueError(f"{path}: unknown byte order {order!r}")
            little = order == "little"
        storages: dict[str, _Storage] = {}

        def persistent(pid: Any) -> _Storage:
            if not isinstance(pid, tuple) or len(pid) != 5 or _as_key(pid[0]) != "storage":
                raise ValueError(f"{path}: unexpected persistent record {pid!r}")
            storage_type = _storage_type_of(pid, path)
            key = _as_key(pid[2])
            if key not in storages:
                name = f"{root}data/{key}"
                if name not in names:
                    raise ValueError(f"{path}: storage record '{name}' is missing")
                st = _Storage(key, storage_type.dtype_name, int(pid[4]))
                st.raw = zf.read(name)
                st.little_endian = little
                storages[key] = st
            return storages[key]

        obj = _restricted_load(io.BytesIO(zf.read(pkl[0])), path, persistent)
        return _flatten(obj, path)


def _load_legacy(path: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        magic = _restricted_load(f, path, None)
        if magic != _LEGACY_MAGIC:
            raise ValueError(
                f"{path}: not a PyTorch file (neither a zip archive nor the legacy format; the "
                "pre-1.0 tar format is not supported)"
            )
        protocol = _restricted_load(f, path, None)
        if protocol != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy protocol version {protocol!r}")
        sys_info = _restricted_load(f, path, None)
        little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
        storages: dict[str, _Storage] = {}

        def persistent(pid: Any) -> _Storage:
            if not isinstance(pid, tuple) or len(pid) != 6 or _as_key(pid[0]) != "storage":
                raise ValueError(f"{path}: unexpected persistent record {pid!r}")
            storage_type = _storage_type_of(pid, path)
            key, numel, view = _as_key(pid[2]), int(pid[4]), pid[5]
            if view is not None:
                raise ValueError(f"{path}: storage views (PyTorch < 0.4 files) are not supported")
            if key not in storages:
                storages[key] = _Storage(key, storage_type.dtype_name, numel)
            return storages[key]

        obj = _restricted_load(f, path, persistent)
        keys = _restricted_load(f, path, None)
        if not isinstance(keys, list):
            raise ValueError(f"{path}: bad storage key list")
        for key in keys:
            st = storages.get(_as_key(key))
            if st is None:
                raise ValueError(f"{path}: storage key {key!r} is not used by any tensor")
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"{path}: file ends inside storage {st.key}")
            (numel,) = struct.unpack("<q" if little else ">q", head)
            itemsize = 1 if st.dtype_name is None else _np_dtype(st.dtype_name).itemsize
            st.raw = f.read(numel * itemsize)
            st.little_endian = little
            if numel < 0 or len(st.raw) != numel * itemsize:
                raise ValueError(f"{path}: file ends inside storage {st.key}")
        missing = [k for k, st in storages.items() if st.raw is None]
        if missing:
            raise ValueError(f"{path}: storages {missing} have no data")
        return _flatten(obj, path)


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the ``state_dict`` saved by ``torch.save`` at ``path`` as numpy arrays.

    Needs no torch and executes nothing from the file (see the module docstring for what the
    restricted unpickler accepts). Returns ``{name: array}`` in file order, each array a
    contiguous copy in native byte order with the tensor's dtype (bfloat16 as
    ``ml_dtypes.bfloat16``). Raises ``ValueError`` naming the file (and the global, record or
    key) for anything that is not a plain state_dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if is_zip:
        return _load_zip(path)
    return _load_legacy(path)
