"""``shapes10``: a CIFAR-shaped dataset generated procedurally, for offline classrooms and CI.

Each image is 32×32 RGB and shows one of ten shapes or textures (:data:`SHAPES10_CLASSES`) drawn with
anti-aliased edges over a cluttered background. What varies *within* a class, so that a network has to learn
the shape and not a shortcut:

* position (the centre anywhere such that most of the shape stays in view) and scale (radius 5–12 px);
* orientation (free for rotation-invariant classes, ±12° for square/diamond/cross, which rotation would mix);
* colours (random hue/saturation; light-on-dark or dark-on-light with random brightness);
* background: a linear gradient between two random colours, low-frequency blotches, an optional stray line,
  and per-pixel Gaussian noise of random strength.

Everything is computed with batched tensor operations from one ``torch.Generator`` seeded by ``seed``, so the
same ``(n, seed)`` always gives the same images, and 10 000 images take a few seconds on a CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from resnet_course.data.containers import ImageTensors

__all__ = ["SHAPES10_CLASSES", "make_shapes10"]

SHAPES10_CLASSES: list[str] = [
    "circle",
    "square",
    "triangle",
    "cross",
    "ring",
    "star",
    "stripes",
    "diamond",
    "crescent",
    "checker",
]
_UPRIGHT = (1, 3, 7)  # square, cross, diamond: orientation defines the class, so only small rotations
_SIZE = 32
_CHUNK = 256  # images rendered at once: small tensors stay in cache


def _sdf(label: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance (shape-radius units, negative inside) of class ``label`` at ``(u, v)``."""
    r = torch.sqrt(u * u + v * v)
    au, av = u.abs(), v.abs()
    box = torch.maximum(au, av) - 0.8
    if label == 0:  # circle
        return r - 0.9
    if label == 1:  # square
        return torch.maximum(au, av) - 0.72
    if label == 2:  # triangle, circumradius 1
        return torch.maximum(v, 0.8660254 * au - 0.5 * v) - 0.5
    if label == 3:  # cross (plus sign)
        arm_h = torch.maximum(au - 0.92, av - 0.27)
        arm_v = torch.maximum(au - 0.27, av - 0.92)
        return torch.minimum(arm_h, arm_v)
    if label == 4:  # ring
        return (r - 0.68).abs() - 0.2
    if label == 5:  # five-pointed star
        phi = torch.atan2(v, u)
        t = (torch.remainder(phi * (5 / (2 * math.pi)), 1.0) - 0.5).abs() * 2  # 1 at a point, 0 between
        return (r - (0.38 + 0.62 * t)) * 0.6
    if label == 6:  # stripes in a square patch
        freq = 3.2 * math.pi
        return torch.maximum(box, -torch.sin(freq * u) / freq)
    if label == 7:  # diamond
        return (au + av - 1.0) * 0.7071
    if label == 8:  # crescent: a disc minus an offset disc
        inner = torch.sqrt((u - 0.42) ** 2 + v * v) - 0.72
        return torch.maximum(r - 0.9, -inner)
    if label == 9:  # checkerboard patch
        freq = 2.4 * math.pi
        return torch.maximum(box, -torch.sin(freq * u) * torch.sin(freq * v) / freq)
    raise ValueError(f"shapes10 has classes 0..9, got {label}")


def _colours(n: int, bright: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``n`` RGB colours in [0, 1] with random hue and saturation and the given brightness ``(n,)``."""
    hue = torch.rand(n, 3, generator=g)
    hue = hue / hue.amax(dim=1, keepdim=True).clamp_min(1e-3)
    sat = torch.rand(n, 1, generator=g) * 0.9
    return bright[:, None] * ((1 - sat) + sat * hue)


def _render(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = labels.numel()
    s = _SIZE
    coords = torch.arange(s, dtype=torch.float32) + 0.5
    ys, xs = coords.view(1, s, 1), coords.view(1, 1, s)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    # geometry: radius, centre, rotation
    radius = 5.0 + 7.0 * rand(n)
    margin = 0.55 * radius
    cx = margin + (s - 2 * margin) * rand(n)
    cy = margin + (s - 2 * margin) * rand(n)
    angle = rand(n) * 2 * math.pi
    upright = torch.zeros(n, dtype=torch.bool)
    for k in _UPRIGHT:
        upright |= labels == k
    angle = torch.where(upright, (rand(n) - 0.5) * math.radians(24), angle)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    dx, dy = xs - cx.view(n, 1, 1), ys - cy.view(n, 1, 1)
    rad = radius.view(n, 1, 1)
    u = (cos * dx + sin * dy) / rad
    v = (-sin * dx + cos * dy) / rad

    dist = torch.empty(n, s, s)
    for k in range(len(SHAPES10_CLASSES)):
        idx = (labels == k).nonzero(as_tuple=True)[0]
        if idx.numel():
            dist[idx] = _sdf(k, u[idx], v[idx])
    alpha = (0.5 - dist * rad).clamp(0, 1).unsqueeze(1)  # one-pixel anti-aliased edge

    # colours: light shape on a dark background or the reverse, never the same brightness
    light_fg = rand(n) < 0.5
    hi, lo = 0.55 + 0.45 * rand(n), 0.05 + 0.35 * rand(n)
    fg = _colours(n, torch.where(light_fg, hi, lo), g)
    bg_a = _colours(n, torch.where(light_fg, lo, hi), g)
    bg_b = (bg_a + 0.35 * (rand(n, 3) - 0.5)).clamp(0, 1)

    # background: gradient along a random direction + low-frequency blotches
    theta = rand(n) * 2 * math.pi
    ramp = (
        torch.cos(theta).view(n, 1, 1) * (xs - s / 2) + torch.sin(theta).view(n, 1, 1) * (ys - s / 2)
    ) / s + 0.5
    ramp = ramp.clamp(0, 1).unsqueeze(1)
    background = bg_a.view(n, 3, 1, 1) * (1 - ramp) + bg_b.view(n, 3, 1, 1) * ramp
    blotches = F.interpolate(rand(n, 3, 4, 4) - 0.5, size=(s, s), mode="bicubic", align_corners=False)
    background = background + 0.25 * rand(n).view(n, 1, 1, 1) * blotches

    # a stray line behind the shape in half of the images
    line_angle = rand(n) * math.pi
    nx, ny = torch.cos(line_angle).view(n, 1, 1), torch.sin(line_angle).view(n, 1, 1)
    px, py = (s * rand(n)).view(n, 1, 1), (s * rand(n)).view(n, 1, 1)
    line_dist = (nx * (xs - px) + ny * (ys - py)).abs()
    line_alpha = (1.0 + 0.6 * rand(n).view(n, 1, 1) - line_dist).clamp(0, 1)
    line_alpha = (line_alpha * (rand(n) < 0.5).view(n, 1, 1)).unsqueeze(1)
    line_colour = _colours(n, 0.2 + 0.8 * rand(n), g).view(n, 3, 1, 1)
    background = background * (1 - line_alpha) + line_colour * line_alpha

    shading = 1 + 0.25 * (ramp - 0.5)  # the shape is lit a little unevenly too
    image = background * (1 - alpha) + (fg.view(n, 3, 1, 1) * shading) * alpha
    noise_level = 0.1 * rand(n).view(n, 1, 1, 1)
    image = image + noise_level * torch.randn(n, 3, s, s, generator=g)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def make_shapes10(n: int = 10_000, seed: int = 0) -> ImageTensors:
    """Generate ``n`` images of ``shapes10`` (balanced classes, shuffled) deterministically from ``seed``.

    Returns :class:`~resnet_course.data.containers.ImageTensors` with uint8 images ``(n, 3, 32, 32)``, int64 labels and
    the class names :data:`SHAPES10_CLASSES`.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of images, got {n!r}")
    g = torch.Generator().manual_seed(int(seed))
    n_classes = len(SHAPES10_CLASSES)
    labels = (torch.arange(n) % n_classes)[torch.randperm(n, generator=g)]
    # Many small element-wise ops: one thread is fastest (thread start-up costs more than it saves,
    # badly so on a busy machine). The result does not depend on the number of threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        chunks = [_render(labels[i : i + _CHUNK], g) for i in range(0, n, _CHUNK)]
    finally:
        torch.set_num_threads(threads)
    return ImageTensors(torch.cat(chunks), labels.to(torch.int64), list(SHAPES10_CLASSES))
