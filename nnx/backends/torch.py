"""The PyTorch backend: tensors on PyTorch's default device, through array-api-compat's torch namespace."""

from __future__ import annotations

from nnx.backends._base import Backend, BackendUnavailableError
from nnx.backends.array_api import ArrayApiBackend


class TorchBackend(ArrayApiBackend):
    """PyTorch on its default device (``torch.set_default_device``); nnx never records autograd history."""

    def __init__(self, torch, xp):
        self._torch = torch
        super().__init__("torch", xp, f"{torch.get_default_device()} (torch {torch.__version__})")

    def to_numpy(self, x):
        return super().to_numpy(self.plain(x))

    def plain(self, x, what: str = "inputs"):
        """`x` without autograd history: nnx computes its own gradients, so a tensor that requires grad is read as
        its values."""
        return x.detach() if getattr(x, "requires_grad", False) else x

    def synchronize(self) -> None:
        if self.array_device.type == "cuda":
            self._torch.cuda.synchronize(self.array_device)


def load() -> Backend:
    try:
        import torch
    except ImportError as error:
        raise BackendUnavailableError(
            f"backend 'torch' is not available: PyTorch is not installed ({error}). Install it with: pip install torch"
        ) from error
    import array_api_compat.torch as xp

    return TorchBackend(torch, xp)
