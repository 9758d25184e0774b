"""Any Gymnasium env with a Box action space, seen as (image, state vector): a second test bed for the world model.

The agent's perception only takes images, so the env's own rendering becomes the camera.
"""
from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces


def _make(env_id: str, width: int, height: int) -> gym.Env:
    """Make the env rendering rgb_array, at the image size where it accepts one (saves render time)."""
    try:
        try:
            return gym.make(env_id, render_mode="rgb_array", width=width, height=height)
        except TypeError:  # this env takes no width/height
            return gym.make(env_id, render_mode="rgb_array")
    except (gym.error.Error, ImportError, TypeError) as e:
        raise ValueError(f"cannot make Gymnasium env {env_id!r}: {e}") from e


class GymImageSim:
    """Resets and steps a Gymnasium env, returning resized RGB frames and the flattened observation."""

    def __init__(self, env_id: str, image_width: int = 64, image_height: int = 64, seed: int | None = None):
        self.env_id = env_id
        self._size = (image_width, image_height)
        self._seed = seed
        self._env = _make(env_id, image_width, image_height)
        if not isinstance(self._env.action_space, spaces.Box):
            self._env.close()
            raise ValueError(f"Gymnasium env {env_id!r} has action space {self._env.action_space}; "
                             "GymImageSim needs a continuous Box action space")
        try:  # one probe frame: a missing renderer dependency must fail here, not mid-episode
            if "rgb_array" not in self._env.metadata.get("render_modes", []):
                raise gym.error.UnsupportedMode("'rgb_array' is not in its render_modes")
            self._env.reset(seed=seed)
            self._image()
        except (gym.error.Error, ImportError) as e:
            self._env.close()
            raise ValueError(f"Gymnasium env {env_id!r} cannot render rgb_array images: {e}") from e

    @property
    def action_low(self) -> np.ndarray:
        return self._env.action_space.low.astype(np.float64).ravel()

    @property
    def action_high(self) -> np.ndarray:
        return self._env.action_space.high.astype(np.float64).ravel()

    @property
    def action_dim(self) -> int:
        return int(np.prod(self._env.action_space.shape))

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(image, obs vector); the constructor's seed applies to the first reset unless one is given."""
        seed, self._seed = (self._seed if seed is None else seed), None
        obs, _ = self._env.reset(seed=seed)
        return self._image(), self._vector(obs)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """One env step with the action clipped to bounds; the caller resets after done."""
        space = self._env.action_space
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(space.shape), space.low, space.high)
        obs, reward, terminated, truncated, _ = self._env.step(a.astype(space.dtype))
        return self._image(), self._vector(obs), float(reward), bool(terminated or truncated)

    def close(self) -> None:
        self._env.close()

    def _image(self) -> np.ndarray:
        # Gymnasium's MuJoCo renderer makes its GL context current only when created: once any other
        # renderer in the process (another env, RoomsNavEnv) is used or closed, its frames come back black.
        viewer = getattr(getattr(self._env.unwrapped, "mujoco_renderer", None), "viewer", None)
        if viewer is not None:
            viewer.make_context_current()
        frame = self._env.render()
        if frame is None:
            raise gym.error.UnsupportedMode(f"{self.env_id!r} rendered nothing in rgb_array mode")
        frame = np.asarray(frame, dtype=np.uint8)[..., :3]
        if frame.shape[1::-1] != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame)

    def _vector(self, obs) -> np.ndarray:
        return spaces.flatten(self._env.observation_space, obs).astype(np.float64)
