"""Where the package's share files (config, models, launch, rviz) live: found the ROS way.

On a ROS 2 install (colcon) the ament index has them. A pip venv is an ament prefix too, but its
AMENT_PREFIX_PATH is often not exported, so the venv's own share/ is the fallback. scripts/install.sh
links the checkout's files there (like `colcon build --symlink-install`), so edits take effect at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "ojepa_ros"


def share_dir() -> Path:
    """The directory holding config/, models/, launch/ and rviz/."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, OSError):
        venv_share = Path(sys.prefix) / "share" / PACKAGE
        if venv_share.is_dir():
            return venv_share
    raise FileNotFoundError(f"{PACKAGE} share files not found in AMENT_PREFIX_PATH nor in {venv_share}; "
                            "run scripts/install.sh or source your colcon install")


def ros_home() -> Path:
    """$ROS_HOME, or ~/.ros where it is unset (ROS 2's rule), as an absolute path: where the nodes keep their files
    (ojepa/episodes, ojepa/gazebo, ojepa/trt_cache)."""
    return Path(os.environ.get("ROS_HOME") or Path.home() / ".ros").expanduser().resolve()


def config_file(name: str = "agent.yaml") -> Path:
    return share_dir() / "config" / name


def task_file(task: str) -> Path:
    return share_dir() / "config" / "tasks" / f"{task}.yaml"


def default_model() -> Path:
    """The shipped world model, resolved through the install's per-file links: what is written beside it (the
    ONNX graphs, a roadmap) then lands beside the real file, not in the install's link folder."""
    return (share_dir() / "models" / "world_model.pt").resolve()
