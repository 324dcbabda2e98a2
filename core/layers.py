"""Building blocks shared by the encoders and the generator: PONO, SPADE-style blocks."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from core.environment import reuse_heap
from core.precision import in_place_inference

BAND_ELEMENTS = 1 << 22  # modulation maps are computed this many elements at a time at inference


def positional_norm(x: torch.Tensor, eps: float = 1e-8, in_place: bool = False,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """Positional normalisation (PONO): zero mean, unit (unbiased) std over channels, per pixel.
    ``in_place`` (inference only): one full-size temporary instead of two; ``out`` (inference
    only): written there (e.g. the inside of a padded buffer), no temporary at all."""
    var, mean = torch.var_mean(x, dim=1, keepdim=True)
    std = var.add_(eps).sqrt_()  # (B, 1, H, W)
    if out is not None:
        return torch.sub(x, mean, out=out).div_(std)
    return (x - mean).div_(std) if in_place else (x - mean) / std


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """InstanceNorm (no affine) that keeps a channels_last input channels_last.

    PyTorch's own converts NHWC to NCHW (and its fast NHWC group_norm loses precision through
    E[x^2] - E[x]^2), so NHWC inputs take an exact two-pass mean/variance over the pixel rows.
    """
    if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last) or x.shape[1] == 1:
        return F.instance_norm(x, eps=eps)
    b, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, h * w, c).float()  # a view for fp32 NHWC
    centred = rows - rows.mean(1, keepdim=True)
    scale = torch.rsqrt(centred.square().mean(1, keepdim=True) + eps)
    return centred.mul_(scale).to(x.dtype).view(b, h, w, c).permute(0, 3, 1, 2)


class InstanceNorm(nn.Module):
    """Like ``nn.InstanceNorm2d`` without affine weights, but layout-preserving (``instance_norm``)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.eps = channels, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return instance_norm(x, self.eps)


def leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def resize_nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize that is a no-op at the same size (the official generator's choice)."""
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="nearest")


def nearest_rows(x: torch.Tensor, size: tuple[int, int], r: int, e: int) -> torch.Tensor:
    """Rows r..e-1 of ``resize_nearest(x, size)`` without resizing the whole map (a view at the
    same size); the source rows and columns are the ones ``F.interpolate`` picks."""
    (h, w), (hs, ws) = x.shape[-2:], size
    if (h, w) == (hs, ws):
        return x[:, :, r:e]
    f = hs // h
    if hs == f * h and ws == f * w:  # an integer factor: resize just the source rows of the band
        lo, hi = r // f, -(-e // f)
        band = F.interpolate(x[:, :, lo:hi], size=(f * (hi - lo), ws), mode="nearest")
        return band[:, :, r - f * lo:e - f * lo]
    rows, cols = _nearest_source(h, hs, x.device)[r:e], _nearest_source(w, ws, x.device)
    if x.is_contiguous(memory_format=torch.channels_last):  # gather whole pixels, keep the layout
        return x.permute(0, 2, 3, 1).index_select(1, rows).index_select(2, cols).permute(0, 3, 1, 2)
    return x.index_select(2, rows).index_select(3, cols)


def _nearest_source(n: int, m: int, device) -> torch.Tensor:
    """For each of m outputs of a nearest resize of n inputs, its source index (as F.interpolate)."""
    grid = torch.arange(n, dtype=torch.float32, device=device).view(1, 1, n)
    return F.interpolate(grid, size=m, mode="nearest").view(m).long()


def banded_inference(x: torch.Tensor, size: tuple[int, int] | None = None) -> bool:
    """Whether a modulated block takes its CPU inference path (bands of rows, in place): no
    autograd, on CPU, at least 2 x 2 pixels (reflection padding needs 2), and not while
    ``torch.compile`` traces (the band loop would break its graph; the compiled graph plans its
    own memory)."""
    h, w = size or x.shape[-2:]
    return (in_place_inference() and x.device.type == "cpu" and h >= 2 and w >= 2
            and not torch.compiler.is_compiling())


def memory_layout(x: torch.Tensor) -> torch.memory_format:
    """channels_last when x is stored NHWC, else contiguous: for buffers that must match x."""
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


class ModulatedNorm(nn.Module):
    """PONO, then a per-pixel scale and shift predicted from a guide map (SPADE with PONO)."""

    def __init__(self, channels: int, guide_channels: int, hidden: int = 128):
        super().__init__()
        # index 1 is the conv (0 is the padding): the official checkpoint's layout
        self.mlp_shared = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(guide_channels, hidden, 3),
                                        nn.ReLU(inplace=True))
        self.pad = nn.ReflectionPad2d(1)
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        if banded_inference(x):  # CPU inference: in bands, see ``bands``
            out = torch.empty_like(x)
            for _ in self.bands(x, guide, out=out):
                pass
            return out
        weight, bias = self._scale_shift()
        actv = self.pad(self.mlp_shared(resize_nearest(guide, x.shape[-2:])))  # (B, hidden, H + 2, W + 2)
        scale, shift = F.conv2d(actv, weight, bias).chunk(2, 1)
        if not in_place_inference():
            return torch.addcmul(shift, positional_norm(x), scale)
        return positional_norm(x, in_place=True).mul_(scale).add_(shift)

    def _scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma and beta read the same activation: one conv with 2C outputs (names unchanged),
        the "1 +" of the scale folded into its bias."""
        g, b = self.mlp_gamma, self.mlp_beta
        return torch.cat([g.weight, b.weight]), torch.cat([g.bias + 1, b.bias])

    def bands(self, x: torch.Tensor, guide: torch.Tensor, size: tuple[int, int] | None = None,
              out: torch.Tensor | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
        """CPU inference: ``self(resize_nearest(x, size), guide)`` band of rows by band, as
        (r, e, rows r..e-1), so that neither the hidden activation nor the 2C-channel scale/shift
        map (the largest tensors of the encoders and the generator otherwise), nor the resized x,
        nor, without ``out``, the result ever exists at full size. PONO is per pixel, so it is
        computed per band, after the nearest resize (the same numbers). With ``out`` (B, C, H, W)
        (e.g. the inside of a padded buffer) each band is written there and is a view of it;
        otherwise each band is a fresh tensor. The caller may change a band in place."""
        h, w = size or x.shape[-2:]
        weight, bias = self._scale_shift()
        padded_guide = self.mlp_shared[0](resize_nearest(guide, (h, w)))  # (B, guide, H + 2, W + 2): few channels
        rows = max(2, BAND_ELEMENTS // (weight.shape[0] * x.shape[0] * w))
        with reuse_heap():  # every band's temporaries have the same sizes: reused heap pages
            for r in range(0, h, rows):
                e = min(r + rows, h)
                scale, shift = F.conv2d(self._hidden_rows(padded_guide, r - 1, e + 1, h), weight, bias).chunk(2, 1)
                source = nearest_rows(x, (h, w), r, e)
                band = positional_norm(source, in_place=True, out=None if out is None else out[:, :, r:e])
                yield r, e, band.mul_(scale).add_(shift)

    def _hidden_rows(self, padded_guide: torch.Tensor, lo: int, hi: int, h: int) -> torch.Tensor:
        """Rows lo..hi-1 of the hidden activation, reflection-padded as ``self.pad`` would pad the
        whole map (row -1 is row 1, row h is row h - 2), with the columns padded too."""
        a, b = max(lo, 0), min(hi, h)
        band = self.mlp_shared[2](self.mlp_shared[1](padded_guide[:, :, a:b + 2]))  # hidden rows a..b-1
        parts = [band[:, :, 1:2]] if lo < 0 else []
        parts.append(band)
        if hi > h:
            parts.append(band[:, :, h - 2 - a:h - 1 - a])
        band = torch.cat(parts, 2) if len(parts) > 1 else band
        return F.pad(band, (1, 1, 0, 0), mode="reflect")


class ModulatedResBlock(nn.Module):
    """Residual block whose normalisations are modulated by a guide (SPADE ResBlock, PONO)."""

    def __init__(self, fin: int, fout: int, guide_channels: int, hidden: int = 128):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.pad = nn.ReflectionPad2d(1)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3))
        self.norm_0 = ModulatedNorm(fin, guide_channels, hidden)
        self.norm_1 = ModulatedNorm(fmid, guide_channels, hidden)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = ModulatedNorm(fin, guide_channels, hidden)

    def forward(self, x: torch.Tensor, guide: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """x (B, fin, h, w), resized (nearest) to ``size`` first when given; guide (B, G, *)."""
        if banded_inference(x, size):
            return self._banded(x, guide, tuple(size or x.shape[-2:]))
        x = x if size is None else resize_nearest(x, size)
        dx = self.conv_0(self.pad(F.leaky_relu(self.norm_0(x, guide), 0.2, inplace=True)))
        dx = self.conv_1(self.pad(F.leaky_relu(self.norm_1(dx, guide), 0.2, inplace=True)))
        # the shortcut last: it is not alive while the main branch's padded maps are (lower peak)
        shortcut = self.conv_s(self.norm_s(x, guide)) if self.learned_shortcut else x
        return dx.add_(shortcut)  # in place on the fresh conv output (autograd-safe)

    def _banded(self, x: torch.Tensor, guide: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """CPU inference, the same numbers with fewer full-size maps: x stays at its own size (the
        resize happens band by band), each modulation is written straight into its padded buffer
        (no separate padded copy), and the shortcut is added band by band (never at full size)."""
        dx = self.conv_0(self._activated_padded(self.norm_0, x, guide, size))
        dx = self.conv_1(self._activated_padded(self.norm_1, dx, guide, size))
        if self.learned_shortcut:
            for r, e, band in self.norm_s.bands(x, guide, size):
                dx[:, :, r:e].add_(self.conv_s(band))
        else:
            dx.add_(resize_nearest(x, size))
        return dx

    @staticmethod
    def _activated_padded(norm: ModulatedNorm, x: torch.Tensor, guide: torch.Tensor, size: tuple[int, int]
                          ) -> torch.Tensor:
        """``pad(leaky_relu(norm(resize_nearest(x, size), guide)))`` written into one buffer
        (B, C, H + 2, W + 2): the bands go inside, then the reflection rows and columns are copied."""
        (b, c), (h, w) = x.shape[:2], size
        buf = torch.empty(b, c, h + 2, w + 2, dtype=x.dtype, device=x.device, memory_format=memory_layout(x))
        for _, _, band in norm.bands(x, guide, size, out=buf[:, :, 1:h + 1, 1:w + 1]):
            F.leaky_relu(band, 0.2, inplace=True)
        buf[:, :, 0].copy_(buf[:, :, 2])  # row -1 is row 1, row h is row h - 2
        buf[:, :, h + 1].copy_(buf[:, :, h - 1])
        buf[:, :, :, 0].copy_(buf[:, :, :, 2])  # then the columns (the corners reflect both ways)
        buf[:, :, :, w + 1].copy_(buf[:, :, :, w - 1])
        return buf


class ResidualBlock(nn.Module):
    """Plain residual block: (reflect-pad, conv, InstanceNorm) twice, one shared PReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm = InstanceNorm(channels)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm(self.conv1(self.pad(x))))
        y = self.norm(self.conv2(self.pad(y)))
        return self.act(y.add_(x) if in_place_inference() else x + y)  # inference: no third full-size map


def conv_norm(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Spectral-normalised 3x3 conv (no bias) followed by InstanceNorm."""
    conv = spectral_norm(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False))
    return nn.Sequential(conv, InstanceNorm(cout))
