"""The word on quality: each frame's foreground area, and the frames that look wrong.

A frame with no foreground is an error (the next stage crops to the object). A frame whose area
jumps away from the clip's median, or that is nearly all foreground, is most likely a matting
failure (a lost object, a backdrop that was not told apart): each gets one printed line.
"""
from dataclasses import dataclass

import numpy as np

from prepare.masks import foreground_share
from utils.errors import UserError

AREA_JUMP = 2.0  # a frame with more than 2x or less than 1/2x the median area is flagged
NEARLY_ALL = 0.95  # ... and one that is more than 95 % foreground


@dataclass(frozen=True)
class FrameCheck:
    """One output frame: its source frame, foreground share, and what looks wrong (empty if nothing)."""

    index: int
    source_index: int
    share: float
    problem: str = ""


def check_frames(alpha: np.ndarray, source_indices: list[int], where: str) -> list[FrameCheck]:
    """(T,H,W) uint8 alpha -> one FrameCheck per frame; frames without foreground raise a UserError
    naming them (``where`` names the input for the message)."""
    shares = foreground_share(alpha)
    empty = [i for i, share in enumerate(shares) if share == 0]
    if empty:
        names = ", ".join(f"{i} (source frame {source_indices[i]})" for i in empty[:10])
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise UserError(f"no foreground found in frame {names}{more} of {where}; try another --matting method, "
                        "or --start/--end to leave those frames out")
    median = float(np.median(shares))
    checks = []
    for i, share in enumerate(shares):
        problem = ""
        if share > NEARLY_ALL:
            problem = f"{share:.0%} of the frame is foreground: the backdrop was not told apart"
        elif share > AREA_JUMP * median or share < median / AREA_JUMP:
            problem = f"foreground {share:.1%} of the frame, {share / median:.2f}x the clip's median {median:.1%}"
        checks.append(FrameCheck(i, source_indices[i], float(share), problem))
    return checks


def summary(checks: list[FrameCheck]) -> dict:
    """JSON-ready: per-frame source index, foreground share and problem."""
    return {"frames": [{"frame": c.index, "source_frame": c.source_index, "foreground": round(c.share, 5),
                        "problem": c.problem} for c in checks]}
