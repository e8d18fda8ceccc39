"""Restoring an image in overlapping tiles: layout, blending window, noise cropping, memory.

An image too large for memory is restored tile by tile: each tile is one whole restoration
(the full sampler run on that tile), and the tiles are blended back with a smooth window.
Everything here acts on the *padded* image (the network's multiple already applied).

**Layout** ([`tile_grid`][mrs_numerics.restoration.tiling.tile_grid]). Along each axis of
size N (a multiple of m, the network's ``required_multiple``) tiles of side T (a multiple of
m) start at multiples of m, evenly spread from 0 to N − T, as few as keep every overlap
≥ the overlap asked for (rounded up to a multiple of m). Starting tiles on multiples of m keeps
a tile's down-sampling lattice that of the whole image. The tiles are the product of the row
and column spans.

**Blending window** ([`Span.weights`][mrs_numerics.restoration.tiling.Span.weights]). Along an
axis, a tile's weight is 1 except over its overlaps with the previous and the next tile, where
it ramps with the raised cosine (Hann) ramp of the overlap's length L,

    r_L(j) = sin²(π/2 · (j + ½) / L),   j = 0 … L − 1,

rising over the overlap with the previous tile and falling (r_L(L − 1 − j) = cos²(π/2 ·
(j + ½) / L)) over the overlap with the next. Two neighbours share an overlap of the same
length, so across it their weights are sin² + cos² = 1. A tile's 2-D window is the outer
product W = w_rows ⊗ w_cols; on a grid Σ_k W_k = (Σ w_rows)(Σ w_cols) = 1. The blend
([`Blender`][mrs_numerics.restoration.tiling.Blender]) is

    x = Σ_k W_k · x_k / Σ_k W_k,

the normalisation making the weights sum to one exactly also where three tiles overlap (a
short last stretch); every r_L(j) > 0, so every covered pixel has a positive weight.

**Noise cropping** ([`TileNoise`][mrs_numerics.restoration.tiling.TileNoise]). A tile's
prior noise and SDE noise are crops of ONE full-size draw per image: the prior ξ is drawn at
the full padded size and cropped, and a tile's noise source draws each z_j at the full size
from a copy of the generator (in its state right after the prior) and crops the tile's region.
Every run calls its noise source once per stochastic stage, in plan order, whatever the size of
the state, so the j-th full-size draw is the same in every tile and in the untiled run:

    ξ_tile = crop_tile(ξ),   z_{j, tile} = crop_tile(z_j).

Tiling changes what the network sees (a tile's border), never the noise. The price is one
full-size draw per stochastic stage per tile.

**Memory** ([`estimate_bytes`][mrs_numerics.restoration.tiling.estimate_bytes],
[`choose_tile`][mrs_numerics.restoration.tiling.choose_tile]). A run's peak is estimated from
the pixels of one network call (a tile) and of the whole image; see the constants below for
how they were measured.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from mrs_numerics.models.unet import ConditionalUNet
from mrs_numerics.solvers.randomness import Generators, randn

BYTES_PER_PIXEL_PER_WIDTH = 72
"""Peak bytes of one [`ConditionalUNet`][mrs_numerics.models.unet.ConditionalUNet] call
(float32, ``channel_mults=(1, 2, 2)``) per pixel of its input and per channel of its first level
(``base_channels``): 72 × 32 = 2304 B/px for the shipped networks.

Measured on the CPU as the rise of the process's peak resident memory (``ru_maxrss``) over one
``inference_mode`` forward pass of a shipped network on a fresh process, one thread: 2015 B/px
at 256², 2152 at 512², 1674 at 1024² (the allocator returns large blocks to the system between
layers, so bigger inputs cost a little less per pixel). 2304 is the largest measured value
plus 7 %. Activations grow linearly with the width, hence the scaling with ``base_channels``.
"""

DEFAULT_NETWORK_BYTES_PER_PIXEL = BYTES_PER_PIXEL_PER_WIDTH * 32
"""The estimate for a network that is not a ``ConditionalUNet`` and declares no
``bytes_per_pixel`` attribute: that of the shipped width (2304 B/px)."""

STATE_BYTES_PER_PIXEL = 256
"""Bytes per pixel of one run held besides the network call: the sampler's state, μ, the
start, the model outputs of the current step and its history, a noise draw (about 20 float32
tensors of 3 channels). With it a whole untiled 512² ``mrs-sde-2-data`` run at 2 NFE is
estimated at 671 MB, the peak rise measured as above."""

IMAGE_BYTES_PER_PIXEL = 96
"""Bytes per pixel of the whole image held while tiles run: the input, the padded μ, the prior
start, the blend's sum and weight, a full-size noise draw and the result (8 float32 tensors
of 3 channels). Measured tiled runs stay below the estimate: 1024² in 25 tiles of 256², 255 MB
(estimated 268 MB); 1024² under ``max_memory="600MB"``, 9 tiles of 440², 526 MB (596 MB)."""

MIN_TILE = 32
"""The smallest tile side [`choose_tile`][mrs_numerics.restoration.tiling.choose_tile] picks;
a budget that does not fit it is refused."""

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY_UNITS = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_memory(size: int | str) -> int:
    """Bytes of a memory size: an integer, or text such as ``"4GB"``, ``"512MB"``, ``"2GiB"``.

    ``K``, ``M``, ``G``, ``T`` (with or without ``B``) are powers of 1000; ``KiB``, ``MiB``,
    ``GiB``, ``TiB`` powers of 1024; case and a space before the unit do not matter.

    Raises:
        ValueError: For malformed text or a size that is not positive.
    """
    if isinstance(size, bool):
        raise ValueError(f"a memory size must be bytes or text such as '4GB', got {size!r}")
    if isinstance(size, int):
        value = size
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]i?)?b?\s*", str(size), re.IGNORECASE)
        if match is None:
            raise ValueError(f"unknown memory size {size!r}; write e.g. 4GB, 512MB or 2GiB")
        unit = (match.group(2) or "").lower()
        scale = _BINARY_UNITS[unit] if unit.endswith("i") else _UNITS[unit]
        value = int(float(match.group(1)) * scale)
    if value <= 0:
        raise ValueError(f"a memory size must be positive, got {size!r}")
    return value


def network_bytes_per_pixel(model: object) -> int:
    """Estimated peak bytes of one call of ``model`` per input pixel (batch of one).

    A model's own ``bytes_per_pixel`` attribute wins; a
    [`ConditionalUNet`][mrs_numerics.models.unet.ConditionalUNet] costs
    [`BYTES_PER_PIXEL_PER_WIDTH`][mrs_numerics.restoration.tiling.BYTES_PER_PIXEL_PER_WIDTH]
    × its ``base_channels``; any other model
    [`DEFAULT_NETWORK_BYTES_PER_PIXEL`][mrs_numerics.restoration.tiling.DEFAULT_NETWORK_BYTES_PER_PIXEL].
    """
    declared = getattr(model, "bytes_per_pixel", None)
    if declared is not None:
        return int(declared)
    if isinstance(model, ConditionalUNet):
        return BYTES_PER_PIXEL_PER_WIDTH * model.input_conv.out_channels
    return DEFAULT_NETWORK_BYTES_PER_PIXEL


def estimate_bytes(batch: int, image_pixels: int, tile_pixels: int | None, network_bpp: int) -> int:
    """Estimated peak bytes of restoring ``batch`` images of ``image_pixels`` (padded) pixels.

    Untiled (``tile_pixels`` None): batch · P · (network + state). In tiles of p pixels:
    batch · (p · (network + state) + P · image buffers), see the module's constants.
    """
    per_run = network_bpp + STATE_BYTES_PER_PIXEL
    if tile_pixels is None:
        return batch * image_pixels * per_run
    return batch * (tile_pixels * per_run + image_pixels * IMAGE_BYTES_PER_PIXEL)


def choose_tile(
    height: int, width: int, batch: int, multiple: int, network_bpp: int, max_memory: int
) -> int | None:
    """The largest tile side whose run fits in ``max_memory`` bytes; None if no tiling is needed.

    ``height`` and ``width`` are the padded sizes. The side is a multiple of ``multiple`` of
    at least [`MIN_TILE`][mrs_numerics.restoration.tiling.MIN_TILE].

    Raises:
        ValueError: If even the smallest tile does not fit.
    """
    if estimate_bytes(batch, height * width, None, network_bpp) <= max_memory:
        return None
    smallest = _round_up(MIN_TILE, multiple)
    for side in range(_round_up(max(height, width), multiple), smallest - 1, -multiple):
        pixels = min(side, height) * min(side, width)
        if estimate_bytes(batch, height * width, pixels, network_bpp) <= max_memory:
            return side
    need = estimate_bytes(batch, height * width, smallest * smallest, network_bpp)
    raise ValueError(
        f"a memory budget of {max_memory / 1e6:.0f} MB is too small for {batch} image(s) of "
        f"{height}×{width} pixels: even {smallest}-pixel tiles need about {need / 1e6:.0f} MB"
    )


def default_overlap(tile: int, multiple: int = 1) -> int:
    """The overlap used when none is given: a quarter of the tile, rounded up to the network's
    multiple, and at most the tile less one multiple (a tile of one multiple: no overlap), so
    that the default always leaves a stride."""
    return min(_round_up(max(tile // 4, 1), multiple), max(tile - multiple, 0))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class Span:
    """One tile's extent along one axis, and the pixels it shares with its neighbours.

    Attributes:
        start: The first pixel.
        stop: One past the last pixel.
        before: Pixels shared with the previous tile (0 for the first).
        after: Pixels shared with the next tile (0 for the last).
    """

    start: int
    stop: int
    before: int
    after: int

    def weights(self) -> torch.Tensor:
        """The blending weights along the span (float64): 1, with Hann ramps over the overlaps.

        w(i) = r_B(i) · r_A(n − 1 − i) with r_L(j) = sin²(π/2 · (j + ½)/L) for j < L and 1
        beyond, B = ``before``, A = ``after``, n the span's length.
        """
        weights = torch.ones(self.stop - self.start, dtype=torch.float64)
        if self.before:
            weights[: self.before] *= hann_ramp(self.before)
        if self.after:
            weights[-self.after :] *= hann_ramp(self.after).flip(0)
        return weights


def hann_ramp(length: int) -> torch.Tensor:
    """r_L(j) = sin²(π/2 · (j + ½) / L), j = 0 … L − 1: rises from near 0 to near 1.

    r_L(j) + r_L(L − 1 − j) = 1, and every value is positive.
    """
    j = torch.arange(length, dtype=torch.float64)
    return torch.sin(math.pi / 2 * (j + 0.5) / length) ** 2


def spans(size: int, tile: int, overlap: int, multiple: int = 1) -> tuple[Span, ...]:
    """The tiles along an axis of ``size`` pixels: side ``tile``, overlaps ≥ ``overlap``.

    Starts are multiples of ``multiple``, evenly spread from 0 to size − tile, and as few as
    keep each overlap ≥ ``overlap`` rounded up to a multiple of ``multiple``. A tile at least
    as long as the axis covers it whole.

    Raises:
        ValueError: If ``size`` or ``tile`` is not a multiple of ``multiple`` or the rounded
            overlap is not shorter than the tile.
    """
    if tile >= size:
        return (Span(0, size, 0, 0),)
    if size % multiple or tile % multiple or tile <= 0:
        raise ValueError(f"size {size} and tile {tile} must be positive multiples of {multiple}")
    units, tile_units = size // multiple, tile // multiple
    stride = tile_units - _round_up(max(overlap, 0), multiple) // multiple
    if stride <= 0:
        raise ValueError(
            f"an overlap of {overlap} pixels (rounded up to a multiple of {multiple}) leaves no "
            f"stride in a tile of {tile}; use a smaller overlap"
        )
    count = 1 + -(-(units - tile_units) // stride)
    starts = [k * (units - tile_units) // (count - 1) * multiple for k in range(count)]
    stops = [start + tile for start in starts]
    return tuple(
        Span(
            start,
            stop,
            stops[k - 1] - start if k > 0 else 0,
            stop - starts[k + 1] if k < count - 1 else 0,
        )
        for k, (start, stop) in enumerate(zip(starts, stops, strict=True))
    )


@dataclass(frozen=True)
class Tile:
    """One tile of a grid: a span of rows and a span of columns.

    Attributes:
        rows: The tile's rows.
        cols: The tile's columns.
    """

    rows: Span
    cols: Span

    @property
    def size(self) -> tuple[int, int]:
        """(h, w): the tile's height and width."""
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start

    def crop(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tile's region of ``[..., H, W]`` (a view)."""
        return tensor[..., self.rows.start : self.rows.stop, self.cols.start : self.cols.stop]

    def window(self, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """The 2-D blending window ``[h, w]``: W = w_rows ⊗ w_cols."""
        return torch.outer(self.rows.weights(), self.cols.weights()).to(dtype=dtype, device=device)


def tile_grid(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """The tiles covering a ``height`` × ``width`` (padded) image, row by row (see `spans`)."""
    rows, cols = spans(height, tile, overlap, multiple), spans(width, tile, overlap, multiple)
    return [Tile(row, col) for row in rows for col in cols]


class Blender:
    """Accumulates tiles into x = Σ_k W_k · x_k / Σ_k W_k (``W_k`` each tile's window).

    Args:
        shape: The full (padded) shape ``[..., H, W]``.
        dtype: The dtype of the sum.
        device: Where the sum lives.
    """

    def __init__(self, shape: Sequence[int], dtype: torch.dtype, device=None):
        self.total = torch.zeros(tuple(shape), dtype=dtype, device=device)
        self.weight = torch.zeros(tuple(shape[-2:]), dtype=dtype, device=device)

    def add(self, tile: Tile, x: torch.Tensor) -> None:
        """Add tile ``x`` (the tile's region, ``[..., h, w]``) with its window."""
        window = tile.window(self.total.dtype, self.total.device)
        tile.crop(self.total).add_(window * x.to(self.total.dtype))
        tile.crop(self.weight).add_(window)

    def result(self) -> torch.Tensor:
        """The blended image; every pixel must have been covered by a tile.

        Raises:
            ValueError: If a pixel has no tile.
        """
        if not bool((self.weight > 0).all()):
            raise ValueError(f"{int((self.weight <= 0).sum())} pixels are covered by no tile")
        return self.total / self.weight


def fork(generator: Generators) -> Generators:
    """A copy of ``generator`` (or of each in a list) in its current state."""
    if generator is None:
        raise ValueError("tiling needs a seeded generator, so that every tile replays its noise")
    if isinstance(generator, Sequence):
        return [_fork_one(g) for g in generator]
    return _fork_one(generator)


def _fork_one(generator: torch.Generator) -> torch.Generator:
    copy = torch.Generator(generator.device)
    copy.set_state(generator.get_state())
    return copy


class TileNoise:
    """A noise source that replays full-size draws of a generator and crops one tile's region.

    Call j returns crop_tile(z_j), z_j = ``randn(full_shape, generator)`` the j-th draw of the
    generator from its state at construction: the same z_j as the j-th call of a
    [`GeneratorNoise`][mrs_numerics.solvers.randomness.GeneratorNoise] on the whole image
    started from that state.

    Args:
        generator: The generator (or one per sample) in the state after the prior draw; every
            call advances it (give each tile its own
            [`fork`][mrs_numerics.restoration.tiling.fork]).
        full_shape: The whole image's (padded) shape ``[batch, C, H, W]``.
        tile: The tile whose region is returned.
    """

    def __init__(self, generator: Generators, full_shape: Sequence[int], tile: Tile):
        self.generator = generator
        self.full_shape = tuple(full_shape)
        self.tile = tile
        self.shape = (*self.full_shape[:-2], *tile.size)

    def __call__(self, step, t_from, t_to, shape, dtype, device) -> torch.Tensor:
        """The tile's region of the next full-size standard normal draw."""
        if tuple(shape) != self.shape:
            raise ValueError(f"noise of shape {tuple(shape)} asked for a tile of {self.shape}")
        full = randn(self.full_shape, self.generator, dtype, device)
        return self.tile.crop(full).contiguous()


def sample_in_tiles(
    run: Callable[[torch.Tensor, torch.Tensor, TileNoise], torch.Tensor],
    mu: torch.Tensor,
    x_start: torch.Tensor,
    generator: Generators,
    tiles: Sequence[Tile],
    progress: bool = False,
) -> torch.Tensor:
    """Run ``run(mu_tile, x_start_tile, noise)`` on every tile and blend the results.

    Args:
        run: One whole restoration of a tile: its condition, its start state (the crop of
            ``x_start``) and its noise source; returns the tile's result.
        mu: The condition, full (padded) size ``[batch, C, H, W]``.
        x_start: The prior sample at full size, drawn from ``generator``.
        generator: The generator in its state right after drawing ``x_start``; each tile gets
            a fork, so the generator itself is not advanced.
        tiles: The tiles (see [`tile_grid`][mrs_numerics.restoration.tiling.tile_grid]).
        progress: Show a tqdm bar over the tiles.

    Returns:
        The blended result, full size, in ``x_start``'s dtype.
    """
    blender = Blender(mu.shape, torch.promote_types(x_start.dtype, torch.float32), mu.device)
    for tile in tqdm(tiles, desc="tiles", unit="tile", disable=not progress, leave=False):
        noise = TileNoise(fork(generator), mu.shape, tile)
        blender.add(tile, run(tile.crop(mu).contiguous(), tile.crop(x_start).contiguous(), noise))
    return blender.result().to(x_start.dtype)
