"""The ``background`` matting method: a still camera, a backdrop, and an object that differs from it.

1. The backdrop is estimated: ``border`` takes each frame's colour around its edge (a plain
   backdrop; the object may stand still), ``median`` takes each pixel's median over many frames of
   the clip (any still backdrop; the object must move off every pixel for most of the clip).
   ``auto`` takes ``border`` when the edge of the frames is plain, else ``median``.
2. Each pixel's colour distance to the backdrop, smoothed a little against sensor noise, is
   compared with the noise of the backdrop itself (measured on the frame's edge): hysteresis
   between two thresholds, morphology, small holes filled, the object tracked through time.
3. GrabCut (``refine="grabcut"``) settles the edge by colour within a few pixels of it.
4. The soft edge: across the boundary, alpha is solved from ``pixel = a * object + (1 - a) * backdrop``
   with the known backdrop and the nearby object colour, and the edge pixels get that object colour
   (no backdrop fringe). Where object and backdrop look alike, alpha ramps geometrically instead.

Frames are (T,H,W,3) uint8 RGB; the result is (T,H,W,4) uint8 RGBA.
"""
import cv2
import numpy as np

from prepare.masks import disk, edge_band, feather, fill_holes, hysteresis, smooth, track_object, unit_radius
from utils.errors import UserError

MODELS = ("auto", "median", "border")
REFINES = ("grabcut", "none")
BORDER = 0.03  # the edge ring is this share of the frame's shorter side (at least 2 px)
SPREAD_BLUR = 1.5  # Gaussian sigma (pixels) before measuring how plain the edge ring is
PLAIN_SPREAD = 16.0  # grey levels: a border ring within this of its colour (90th percentile) is plain
NOISE_SMOOTH = 1.0  # Gaussian sigma (pixels) on the colour difference
LOW_NOISE, HIGH_NOISE = 2.0, 4.0  # hysteresis thresholds, in multiples of the backdrop's noise...
LOW_MIN, HIGH_MIN = 10.0, 24.0  # ...and at least these colour distances (0..441)
HOLE_SHARE = 0.01  # holes under this share of the object are filled (not the gap between two legs)
MIN_CONTRAST = 24.0  # colour distance below which object and backdrop are too alike to solve alpha
GRABCUT_ITERATIONS = 2


def _ring(frames: np.ndarray) -> np.ndarray:
    """(T,H,W,C) -> (T,P,C): the pixels of each frame's edge ring."""
    width = max(2, round(BORDER * min(frames.shape[1:3])))
    ring = np.ones(frames.shape[1:3], bool)
    ring[width:-width, width:-width] = False
    return frames[:, ring]


def border_spread(frames: np.ndarray) -> float:
    """How far the edge ring strays from its per-frame colour (90th percentile, grey levels),
    measured on blurred frames: a backdrop's pattern counts, its sensor noise hardly."""
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), SPREAD_BLUR) for f in frames])
    ring = _ring(blurred).astype(np.float32)
    colour = np.median(ring, axis=1, keepdims=True)
    return float(np.percentile(np.abs(ring - colour).max(axis=2), 90))


def choose_model(frames: np.ndarray, model: str) -> str:
    """``auto`` -> ``border`` if the frames' edge is plain, else ``median``; other names pass."""
    if model not in MODELS:
        raise UserError(f"--background must be one of {', '.join(MODELS)}, got {model!r}")
    if model != "auto":
        return model
    return "border" if border_spread(frames) <= PLAIN_SPREAD else "median"


def estimate_backdrop(frames: np.ndarray, samples: np.ndarray, model: str) -> np.ndarray:
    """The backdrop behind each frame, float32, broadcastable to frames: (T,1,1,3) for ``border``
    (each frame's edge colour, which follows exposure changes), (1,H,W,3) for ``median`` (over
    ``samples``, (K,H,W,3) frames spread over the clip)."""
    if model == "border":
        return np.median(_ring(frames), axis=1)[:, None, None, :].astype(np.float32)
    return np.median(samples, axis=0, keepdims=True).astype(np.float32)


def colour_distance(frames: np.ndarray, backdrop: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """(T,H,W) float32: Euclidean RGB distance to the backdrop, after smoothing the difference with
    a Gaussian of ``sigma`` pixels if given (noise averages out over neighbours, an edge does not)."""
    distance = np.empty(frames.shape[:3], np.float32)
    for t, frame in enumerate(frames):
        diff = frame.astype(np.float32) - backdrop[min(t, len(backdrop) - 1)]
        if sigma:
            diff = cv2.GaussianBlur(diff, (0, 0), sigma)
        distance[t] = np.sqrt((diff ** 2).sum(axis=2))
    return distance


def _noise(distance: np.ndarray) -> float:
    """The backdrop's typical distance to its own estimate: the median over the edge ring."""
    return float(np.percentile(_ring(distance[..., None]), 90))


def _grabcut(frame: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """Let GrabCut's colour models decide the pixels within ``radius`` of the mask's edge."""
    kernel = disk(radius)
    inner = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    outer = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    if not inner.any():
        return mask  # too thin to have a sure interior
    labels = np.full(mask.shape, cv2.GC_BGD, np.uint8)
    labels[outer] = cv2.GC_PR_BGD
    labels[mask] = cv2.GC_PR_FGD
    labels[inner] = cv2.GC_FGD
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(frame), labels, None, background, foreground, GRABCUT_ITERATIONS,
                cv2.GC_INIT_WITH_MASK)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def _soft_edge(frame: np.ndarray, backdrop: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """(H,W,4) uint8 RGBA with a solved alpha across the mask's edge (see the module docstring)."""
    image = frame.astype(np.float32)
    band = edge_band(mask, radius)
    core = mask & ~band
    # the object colour next to each edge pixel: the core's colours spread outwards by a normalised blur
    weight = cv2.GaussianBlur(core.astype(np.float32), (0, 0), 2.0 * radius)
    spread = cv2.GaussianBlur(image * core[..., None], (0, 0), 2.0 * radius)
    colour = np.where(weight[..., None] > 1e-3, spread / np.maximum(weight, 1e-3)[..., None], image)
    towards = colour - backdrop
    contrast = (towards ** 2).sum(axis=2)
    solved = ((image - backdrop) * towards).sum(axis=2) / np.maximum(contrast, 1e-6)
    geometric = feather(mask, 1.0)
    alpha = np.where(band & (contrast > MIN_CONTRAST ** 2) & (weight > 1e-3), np.clip(solved, 0, 1), geometric)
    rgb = np.where((band & (alpha < 1))[..., None] & (weight[..., None] > 1e-3), colour, image)
    return np.dstack([np.round(np.clip(rgb, 0, 255)), np.round(alpha * 255)]).astype(np.uint8)


def matte(frames: np.ndarray, samples: np.ndarray, model: str = "auto", refine: str = "grabcut",
          log=print) -> np.ndarray:
    """(T,H,W,3) uint8 frames -> (T,H,W,4) uint8 RGBA. ``samples``: (K,H,W,3) frames spread over
    the clip, for the ``median`` backdrop (the chosen frames alone may be too few)."""
    if refine not in REFINES:
        raise UserError(f"--refine must be one of {', '.join(REFINES)}, got {refine!r}")
    model = choose_model(frames, model)
    backdrop = estimate_backdrop(frames, samples, model)
    # confident seeds from the smoothed distance (noise averaged out), the object's extent from the
    # raw one (smoothing would spread a strong edge a pixel or two into the backdrop)
    raw, smoothed = colour_distance(frames, backdrop), colour_distance(frames, backdrop, NOISE_SMOOTH)
    low, high = max(LOW_NOISE * _noise(raw), LOW_MIN), max(HIGH_NOISE * _noise(smoothed), HIGH_MIN)
    log(f"background: {model} backdrop, colour-distance thresholds {low:.1f} (extent) / {high:.1f} (seeds)")
    radius = unit_radius(*frames.shape[1:3])
    masks = np.stack([fill_holes(smooth(hysteresis(r > low, s > high), radius), HOLE_SHARE)
                      for r, s in zip(raw, smoothed)])
    masks = track_object(masks, 4 * radius)
    if refine == "grabcut":
        masks = np.stack([_grabcut(f, m, 2 * radius) if m.any() else m for f, m in zip(frames, masks)])
    return np.stack([_soft_edge(f, backdrop[min(t, len(backdrop) - 1)], m, 2 * radius)
                     for t, (f, m) in enumerate(zip(frames, masks))])
