"""Pure decoders shared by the nodes (rclpy messages) and training (rosbags messages): one place each.

Both message libraries give an Image the same fields and a file header the same keys, so the checks
live here once, with no ROS or torch import, and callers only choose the exception to raise.
"""

from __future__ import annotations

import numpy as np

ENCODINGS = ("rgb8", "bgr8")


def rgb_from_image(encoding: str, width: int, height: int, step: int, data: bytes | np.ndarray) -> np.ndarray:
    """An rgb8/bgr8 image (rows possibly padded to `step`) as a [H, W, 3] uint8 RGB array; ValueError otherwise."""
    if encoding not in ENCODINGS:
        raise ValueError(f"image encoding '{encoding}' is not supported; expected one of {ENCODINGS}")
    if step < 3 * width or len(data) != step * height:
        raise ValueError(f"image data is {len(data)} bytes with step {step}; "
                         f"expected {height} rows of at least {3 * width} bytes")
    rows = np.frombuffer(memoryview(data), dtype=np.uint8).reshape(height, step)
    rgb = rows[:, : 3 * width].reshape(height, width, 3)
    return np.ascontiguousarray(rgb[..., ::-1] if encoding == "bgr8" else rgb)


def header_problem(header: object, what: str, expected_format: str, expected_version: int) -> str | None:
    """Why a file's header dict (keys "format", "version") is not one this ojepa_ros reads, or None."""
    found = header.get("format") if isinstance(header, dict) else type(header).__name__
    if found != expected_format:
        return f"{what} has format {found!r}, expected {expected_format!r}"
    if header.get("version") != expected_version:
        return f"{what} is version {header.get('version')!r}, this ojepa_ros reads version {expected_version}"
    return None
