"""Tensors on the data plane: numpy arrays (float32, float16) and torch tensors (float32,
float16, bfloat16) of shape ``[tokens, heads, head_dim]`` in the model's dtype, checked before
any RPC, and seen as numpy arrays of their raw elements without copying (torch tensors through
``Tensor.numpy()``, bfloat16 as int16). Outputs are made in the caller's type: a numpy array
for numpy inputs, a torch tensor (same dtype and device) for torch inputs.

torch is optional: it is imported only when a torch tensor is passed.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Tuple

import numpy as np

from kvtier.errors import InvalidArgument
from kvtier.v1 import common_pb2

# Per model dtype: its name, and the numpy dtype of its raw elements (bf16 as 16-bit ints).
_DTYPES = {
    common_pb2.DTYPE_FP32: ("fp32", np.dtype("<f4")),
    common_pb2.DTYPE_FP16: ("fp16", np.dtype("<f2")),
    common_pb2.DTYPE_BF16: ("bf16", np.dtype("<i2")),
}
_NUMPY_DTYPES = {common_pb2.DTYPE_FP32: np.float32, common_pb2.DTYPE_FP16: np.float16}


def dtype_name(dtype: int) -> str:
    """The model dtype's name (fp32, fp16, bf16)."""
    return _DTYPES[dtype][0]


def element_dtype(dtype: int) -> np.dtype:
    """The numpy dtype that holds the model dtype's raw elements."""
    return _DTYPES[dtype][1]


def _torch_dtype(dtype: int) -> Any:
    import torch
    return {common_pb2.DTYPE_FP32: torch.float32, common_pb2.DTYPE_FP16: torch.float16,
            common_pb2.DTYPE_BF16: torch.bfloat16}[dtype]


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _torch_elements(name: str, x: Any, dtype: int) -> np.ndarray:
    if x.dtype != _torch_dtype(dtype):
        raise InvalidArgument(f"{name}: expected a {_torch_dtype(dtype)} tensor (the model is "
                              f"{dtype_name(dtype)}), got {x.dtype}")
    if not x.is_contiguous():
        raise InvalidArgument(f"{name}: expected a contiguous tensor (call .contiguous()), "
                              f"got strides {tuple(x.stride())}")
    x = x.detach()
    if x.device.type != "cpu":
        x = x.cpu()
    if dtype == common_pb2.DTYPE_BF16:
        import torch
        x = x.view(torch.int16)
    return x.numpy()


def _numpy_elements(name: str, x: np.ndarray, dtype: int) -> np.ndarray:
    expected = _NUMPY_DTYPES.get(dtype)
    if expected is None:
        raise InvalidArgument(f"{name}: the model is {dtype_name(dtype)}, which numpy has no type "
                              f"for: pass a torch.bfloat16 tensor, got a numpy {x.dtype} array")
    if x.dtype != np.dtype(expected).newbyteorder("<"):
        raise InvalidArgument(f"{name}: expected a numpy {np.dtype(expected)} array (the model "
                              f"is {dtype_name(dtype)}), got {x.dtype}")
    if not x.flags.c_contiguous:
        raise InvalidArgument(f"{name}: expected a C-contiguous array (np.ascontiguousarray), "
                              f"got strides {x.strides}")
    return x


def elements(name: str, x: Any, dtype: int, shape: Tuple[int, int, int],
             what: str) -> np.ndarray:
    """``x``'s raw elements as a C-contiguous numpy array of ``shape``, without copying (a
    device tensor is copied to the host). InvalidArgument naming ``name`` for a wrong type,
    dtype, shape or layout; ``what`` says what the axes are."""
    if _is_torch(x):
        array = _torch_elements(name, x, dtype)
    elif isinstance(x, np.ndarray):
        array = _numpy_elements(name, x, dtype)
    else:
        raise InvalidArgument(f"{name}: expected a numpy array or a torch tensor, got "
                              f"{type(x).__name__}")
    if array.shape != shape:
        raise InvalidArgument(f"{name}: expected shape {list(shape)} ({what}), got "
                              f"{list(array.shape)}")
    return array


def output_like(like: Any, dtype: int, shape: Tuple[int, int, int],
                out: Any = None) -> Tuple[Any, np.ndarray, Callable[[Any], Any]]:
    """The output tensor for input ``like`` (``out`` when given, checked as an input is), the
    numpy view of its elements to fill in, and what to call on it once filled (moves a torch
    result to ``like``'s device)."""
    if out is not None:
        if _is_torch(out) and out.device.type != "cpu":
            raise InvalidArgument(f"out: expected a host tensor, got one on {out.device}")
        return out, elements("out", out, dtype, shape, "tokens, q heads, head_dim"), _same
    if not _is_torch(like):
        array = np.empty(shape, element_dtype(dtype))
        return array, array, _same
    import torch
    result = torch.empty(shape, dtype=_torch_dtype(dtype))
    view = result.view(torch.int16) if dtype == common_pb2.DTYPE_BF16 else result
    device = like.device
    return result, view.numpy(), (_same if device.type == "cpu" else lambda t: t.to(device))


def _same(x: Any) -> Any:
    return x
