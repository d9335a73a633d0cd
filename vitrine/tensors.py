"""``vitrine.v1.Tensor`` <-> numpy: raw little-endian float32 bytes plus a shape."""

from __future__ import annotations

import numpy as np

from vitrine.v1 import common_pb2


def to_tensor(array: np.ndarray) -> common_pb2.Tensor:
    a = np.ascontiguousarray(array, dtype="<f4")
    return common_pb2.Tensor(data=a.tobytes(), shape=list(a.shape))


def from_tensor(tensor: common_pb2.Tensor, field: str = "tensor") -> np.ndarray:
    """Decode a tensor, checking that the byte length matches the shape."""
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"{field}: negative dimension in shape {list(shape)}")
    expected = 4 * int(np.prod(shape, dtype=np.int64)) if shape else 4
    if len(tensor.data) != expected:
        raise ValueError(
            f"{field}: {len(tensor.data)} bytes do not match shape {list(shape)} "
            f"({expected} bytes of float32)"
        )
    return np.frombuffer(tensor.data, dtype="<f4").reshape(shape)
