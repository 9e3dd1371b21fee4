"""Y-shaped FeatCNN of SUITS (Blendowski et al. 2020, Table 1).

Two modality-specific stems (layers 1-2: 5³ kernel with dilation 2, then 3³), three shared
layers (the third one with stride 2), instance norm and ReLU after layers 1-4, sigmoid output
with as many channels as MIND-SSC (12 in 3D, 4 in 2D) so that it can first be trained to
replicate MIND. Table 1 as printed gives 97,484 weights in 3D, not the ≈155k of the text; the
table is followed. One stride-2 layer gives features at half the input resolution; the descent
brings them to its 4x coarser update grid (``methods.suits.descent.to_coarse``).
"""

from __future__ import annotations

from torch import Tensor, nn


def _block(dims: int, cin: int, cout: int, k: int, dilation: int = 1, stride: int = 1,
           last: bool = False) -> nn.Sequential:
    conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(
        cin, cout, k, stride=stride, padding=dilation * (k - 1) // 2, dilation=dilation)
    if last:
        return nn.Sequential(conv, nn.Sigmoid())
    norm = (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(cout, affine=True)
    return nn.Sequential(conv, norm, nn.ReLU(inplace=True))


class FeatCNN(nn.Module):
    """``forward(image, modality)``: ``(N, 1, *S)`` → ``(N, K, *S/2)`` features in (0, 1).

    ``modality`` 0 or 1 picks the stem (e.g. 0 for the moving contrast, 1 for the fixed one).
    """

    def __init__(self, dims: int = 3, out_channels: int | None = None) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.dims = dims
        self.out_channels = out_channels or (12 if dims == 3 else 4)
        self.stems = nn.ModuleList(
            nn.Sequential(_block(dims, 1, 16, 5, dilation=2), _block(dims, 16, 32, 3))
            for _ in range(2))
        self.shared = nn.Sequential(
            _block(dims, 32, 32, 3, stride=2), _block(dims, 32, 32, 3),
            _block(dims, 32, self.out_channels, 3, last=True))

    def forward(self, image: Tensor, modality: int) -> Tensor:
        if modality not in (0, 1):
            raise ValueError(f"modality must be 0 or 1, got {modality}")
        if image.ndim != self.dims + 2 or image.shape[1] != 1:
            raise ValueError(f"expected (N, 1, *spatial) with {self.dims} spatial dims, got "
                             f"{tuple(image.shape)}")
        return self.shared(self.stems[modality](image))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["FeatCNN", "count_parameters"]
