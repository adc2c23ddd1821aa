"""Binary object masks: hysteresis, clean-up, one object tracked through time, soft edges.

Masks are (H,W) bool; a video's masks are (T,H,W) bool. OpenCV does the pixel work.
"""
import cv2
import numpy as np

PART_OF_MAIN = 0.25  # a detached piece at least this share of the object's area stays (a wing, a tail)
RADIUS_SHARE = 0.005  # the unit radius of the clean-up: this share of the frame's shorter side


def unit_radius(height: int, width: int) -> int:
    """The clean-up's unit radius in pixels for a frame of this size (at least 1): gaps closed,
    the soft-edge band and the tracking reach are small multiples of it."""
    return max(1, round(RADIUS_SHARE * min(height, width)))


def disk(radius: int) -> np.ndarray:
    """An elliptic structuring element of the given radius (pixels)."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, labels (H,W) int32, areas (count,)) of the 8-connected components; label 0 is the background."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return count, labels, stats[:, cv2.CC_STAT_AREA]


def hysteresis(region: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """(H,W) bool: the connected parts of ``region`` (a lenient threshold) holding a ``seeds`` pixel
    (a strict one). Faint pixels join the object only through a confident one, so noise alone never
    starts a blob, and the object's faint edges are not cut off by the strict threshold."""
    count, labels, _ = _components(region)
    seeded = np.zeros(count, bool)
    seeded[np.unique(labels[seeds])] = True
    seeded[0] = False
    return seeded[labels]


def fill_holes(mask: np.ndarray, max_share: float) -> np.ndarray:
    """Fill the holes (background not reachable from the border) smaller than ``max_share`` of the
    mask's area: specks of object colour close to the backdrop, not a handle's real opening."""
    count, labels, areas = _components(~mask)
    reach_border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = areas < max_share * mask.sum()
    small[reach_border] = False
    return mask | small[labels]


def smooth(mask: np.ndarray, radius: int) -> np.ndarray:
    """Close gaps narrower than a disk of ``radius`` pixels, then open away one-pixel whiskers.

    The opening stays at one pixel whatever ``radius`` is: a wider one would cut off thin parts
    (legs, a beak); larger specks are left to ``track_object``.
    """
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, disk(radius))
    return cv2.morphologyEx(closed, cv2.MORPH_OPEN, disk(1)).astype(bool)


def track_object(masks: np.ndarray, radius: int) -> np.ndarray:
    """(T,H,W) bool -> the same masks with only the object kept in each frame.

    The object is the component that overlaps the previous frame's object most (grown by
    ``radius`` pixels), or the largest one where nothing overlaps (the first frame, a jump).
    Pieces within ``radius`` of it and at least ``PART_OF_MAIN`` of its area stay with it (a
    wing cut off by a thin gap); specks and far blobs go. Following the object through time
    keeps a passing distractor, or a ghost the backdrop estimate left, from taking its place.
    """
    kept = np.zeros_like(masks)
    kernel = disk(radius)
    previous = None
    for t, mask in enumerate(masks):
        count, labels, areas = _components(mask)
        if count == 1:
            continue
        areas = areas.copy()
        areas[0] = 0
        main = int(np.argmax(areas))
        if previous is not None:
            overlap = np.bincount(labels[previous], minlength=count)
            overlap[0] = 0
            if overlap.max() > 0:
                main = int(np.argmax(overlap))
        near = np.zeros(count, bool)
        near[np.unique(labels[cv2.dilate((labels == main).astype(np.uint8), kernel).astype(bool)])] = True
        keep = near & (areas >= PART_OF_MAIN * areas[main])
        keep[main] = True
        keep[0] = False
        kept[t] = keep[labels]
        previous = cv2.dilate(kept[t].astype(np.uint8), kernel).astype(bool)
    return kept


def edge_band(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H,W) bool: pixels within ``radius`` of the mask's boundary, on either side."""
    kernel = disk(radius)
    grown = cv2.dilate(mask.astype(np.uint8), kernel)
    shrunk = cv2.erode(mask.astype(np.uint8), kernel)
    return (grown - shrunk).astype(bool)


def feather(mask: np.ndarray, width: float) -> np.ndarray:
    """(H,W) float32 alpha in [0,1] that ramps across the mask's edge over ``width`` pixels.

    The ramp follows the signed distance to the edge, so the 0.5 level stays on the binary
    boundary (the object keeps its size) and thin parts are not blurred away.
    """
    binary = mask.astype(np.uint8)
    inside = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3)
    signed = np.where(mask, inside - 0.5, 0.5 - outside)
    return np.clip(0.5 + signed / max(width, 1e-6), 0, 1).astype(np.float32)


def foreground_share(alpha: np.ndarray) -> np.ndarray:
    """(T,H,W) uint8 alpha -> (T,) share of each frame's pixels that are object (alpha >= 128)."""
    return (alpha >= 128).reshape(len(alpha), -1).mean(axis=1)
