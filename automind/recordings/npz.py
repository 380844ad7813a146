"""Reading ``.npz`` files without running code from them and without trusting their sizes.

``np.load(allow_pickle=True)`` unpickles whatever a file holds, and a pickle can call any
Python function: reading a stranger's recording would run the stranger's code. This module
parses the zip members and their ``.npy`` headers itself and decodes the only pickled
content automind needs, the ragged per-unit spike arrays of the published AutoMIND example
layout (an object array of numeric arrays), with an unpickler that resolves no global but
numpy's array and dtype reconstruction. Those calls are intercepted: the arrays are built
here from the declared shape, a plain numeric dtype and bytes present in the file.
Anything else (another class, a structured dtype, nested object arrays) is refused with one
line naming it.

Sizes are checked before anything is allocated: a member may not declare more bytes than
it holds, nor decompress to more than :func:`max_array_bytes`, so a small hostile file
cannot make the reader allocate terabytes.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError

#: dtype kinds accepted in a plain (non-pickled) member: bool, integers, floats, complex,
#: byte and unicode strings
PLAIN_KINDS = "biufcSU"
#: dtype codes accepted inside a pickled object array (what numpy writes for numbers)
_PICKLED_CODES = re.compile(r"^(b1|[iu][1248]|f[248]|c(8|16)|O[48])$")
_BYTE_ORDERS = ("<", ">", "|", "=")


def max_array_bytes() -> int:
    """The most bytes one member may decode to: ``AUTOMIND_MAX_ARRAY_BYTES``, else half the RAM."""
    if os.environ.get("AUTOMIND_MAX_ARRAY_BYTES"):
        return int(os.environ["AUTOMIND_MAX_ARRAY_BYTES"])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30



def check_declared_size(dataset, path, what: str, decoded_itemsize: int = 0) -> None:
    """Refuse a dataset (h5py, or anything with ``shape`` and ``dtype``) that declares more
    bytes than :func:`max_array_bytes`, before it is read: a small compressed file can declare
    a huge shape. ``decoded_itemsize``: bytes per element after the reader's conversion, when
    larger than the stored type's."""
    shape = getattr(dataset, "shape", None)
    dtype = getattr(dataset, "dtype", None)
    if shape is not None and dtype is not None:
        itemsize = max(np.dtype(dtype).itemsize, decoded_itemsize)
        nbytes = int(np.prod(shape, dtype=object)) * itemsize
        if nbytes > max_array_bytes():
            raise UserError(f"{path}: {what} declares {nbytes} bytes, more than the "
                            f"{max_array_bytes()}-byte limit (AUTOMIND_MAX_ARRAY_BYTES)")

class SafeNpz:
    """The members of an ``.npz`` file as arrays, decoded on access (like ``np.load``'s NpzFile).

    An object array comes back as a 1-d object array of numeric arrays, and only when
    ``ragged`` names it; every other member must be a plain array.
    """

    def __init__(self, source: str | Path | bytes, name: str | None = None,
                 ragged: tuple[str, ...] = ()):
        self.name = name or str(source)
        self.ragged = ragged
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
            members = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
            raise UserError(f"{self.name}: not a readable .npz file ({_first_line(err)})") from None
        self._members = {m.filename[:-4]: m for m in members if m.filename.endswith(".npy")}
        self.files = list(self._members)

    def __contains__(self, key) -> bool:
        return key in self._members

    def __getitem__(self, key: str) -> np.ndarray:
        member = self._members[key]
        what = f"{self.name}: array {key!r}"
        limit = max_array_bytes()
        if member.file_size > limit:
            raise UserError(f"{what} declares {member.file_size} bytes, more than the "
                            f"{limit}-byte limit (AUTOMIND_MAX_ARRAY_BYTES)")
        try:
            with self._zip.open(member) as handle:
                return _read_npy(handle, member.file_size, what, key in self.ragged)
        except UserError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                RuntimeError) as err:  # a damaged member: bad CRC, truncated deflate stream, ...
            raise UserError(f"{what} is damaged ({_first_line(err)})") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def _read_npy(handle, size: int, what: str, ragged: bool) -> np.ndarray:
    """One ``.npy`` member: header parsed by numpy (literal_eval, no code), data sized first."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise UserError(f"{what}: unsupported .npy version {version}")
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 -- numpy raises ValueError, but literal_eval of a
        # damaged header can raise MemoryError or RecursionError too
        raise UserError(f"{what} has a damaged .npy header ({_first_line(err)})") from None
    if any(n < 0 for n in shape):
        raise UserError(f"{what}: negative dimension in shape {shape}")
    count = math.prod(shape)
    if dtype.hasobject:
        if dtype != np.dtype(object):
            raise UserError(f"{what}: structured dtype with objects ({dtype}) is not supported")
        if not ragged:
            raise UserError(f"{what} is a pickled object array; automind reads only arrays "
                            "of numbers here")
        return decode_object_array(handle.read(size), what)
    if dtype.kind not in PLAIN_KINDS or dtype.fields is not None or dtype.shape:
        raise UserError(f"{what}: unsupported dtype {dtype}")
    nbytes = count * dtype.itemsize
    if nbytes > size:
        raise UserError(f"{what} declares shape {shape} ({nbytes} bytes) but the file holds "
                        f"at most {size} bytes")
    buffer = bytearray(nbytes)
    got = handle.readinto(buffer) if nbytes else 0
    if got != nbytes:
        raise UserError(f"{what} is truncated: {got} of {nbytes} bytes")
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


# ---- pickled object arrays ----------------------------------------------------------------

class _Refused(pickle.UnpicklingError):
    """A pickle asked for something outside the admitted set."""


class _Marker:
    """Stands in for ``numpy.ndarray`` (a pickle may name it but never call it)."""


_NDARRAY = _Marker()


class _PendingDtype:
    code = None  # set by __init__; a pickle's NEWOBJ may skip it

    def __init__(self, code, align=False, copy=True):
        if not isinstance(code, str) or not _PICKLED_CODES.match(code):
            raise _Refused(f"dtype {code!r} (only plain numbers are admitted)")
        self.code, self.order = code, "|"

    def __setstate__(self, state):
        if (not isinstance(state, tuple) or len(state) < 5 or state[1] not in _BYTE_ORDERS
                or any(s is not None for s in state[2:5])):
            raise _Refused("a structured or sub-array dtype")
        self.order = state[1]

    def dtype(self) -> np.dtype:
        if self.code is None:
            raise UserError("a pickled dtype without its type code")
        return np.dtype(self.code).newbyteorder(self.order if self.order != "|" else "=")


class _PendingArray:
    """``numpy.core.multiarray._reconstruct(ndarray, ...)``: remembers the state it is given."""

    state = None

    def __init__(self, cls, shape, typecode):
        if cls is not _NDARRAY:
            raise _Refused(f"reconstruction of {type(cls).__name__} (only numpy.ndarray)")
        self.state = None

    def __setstate__(self, state):
        self.state = state


def _encode(text, encoding="latin1"):
    """``_codecs.encode``: how protocol-2 pickles store bytes (``str`` in latin-1)."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise _Refused("_codecs.encode other than str -> latin-1 bytes")
    return text.encode("latin1")


_ADMITTED = {
    ("numpy.core.multiarray", "_reconstruct"): _PendingArray,
    ("numpy._core.multiarray", "_reconstruct"): _PendingArray,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _PendingDtype,
    ("_codecs", "encode"): _encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise _Refused("a persistent reference")


def decode_object_array(data: bytes, what: str) -> np.ndarray:
    """A pickled 1-level object array of numeric arrays -> object array of ndarrays.

    The total of decoded bytes may not exceed the pickle's own size: a hostile stream
    cannot multiply one buffer by referring to it many times."""
    try:
        root = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _Refused as err:
        raise UserError(f"{what} holds a pickled {err}, which automind refuses to load: only "
                        "arrays of numbers are read from a pickle") from None
    except Exception as err:  # noqa: BLE001 -- a damaged pickle raises any of a dozen types
        raise UserError(f"{what} holds a damaged pickle ({type(err).__name__}: "
                        f"{_first_line(err)})") from None
    return _materialise(root, what, [len(data)], allow_objects=True)


def _materialise(obj, what: str, budget: list, allow_objects: bool) -> np.ndarray:
    budget[0] -= 1  # every item costs, so references to one empty array cannot multiply
    if budget[0] < 0:
        raise UserError(f"{what}: pickled arrays decode to more than the file holds")
    if not isinstance(obj, _PendingArray) or obj.state is None:
        raise UserError(f"{what}: a pickled {type(obj).__name__} where an array was expected")
    state = obj.state
    if not isinstance(state, tuple) or len(state) != 5:
        raise UserError(f"{what}: damaged pickled array state")
    _, shape, dtype, fortran, payload = state
    if (not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape)
            or not isinstance(dtype, _PendingDtype)):
        raise UserError(f"{what}: damaged pickled array (shape {shape!r})")
    dtype = dtype.dtype()
    count = math.prod(shape)
    if dtype.hasobject:
        if not allow_objects:
            raise UserError(f"{what}: object arrays nested in object arrays are not supported")
        if not isinstance(payload, list) or len(payload) != count:
            raise UserError(f"{what}: pickled object array of shape {shape} holds "
                            f"{len(payload) if isinstance(payload, list) else 'no'} items")
        out = np.empty(count, dtype=object)
        for k, item in enumerate(payload):
            out[k] = _materialise(item, what, budget, allow_objects=False)
        return out
    if isinstance(payload, str):
        payload = payload.encode("latin1")
    if not isinstance(payload, bytes) or len(payload) != count * dtype.itemsize:
        raise UserError(f"{what}: pickled array of shape {shape} and dtype {dtype} does not "
                        "hold its data")
    budget[0] -= len(payload)
    if budget[0] < 0:
        raise UserError(f"{what}: pickled arrays decode to more bytes than the file holds")
    array = np.frombuffer(bytearray(payload), dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
