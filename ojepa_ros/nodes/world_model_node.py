"""world_model_node: owns the world model at run time and reports its surprise.

Each new state s[t] is compared with Pred(s[t-dt], a[t-dt]), the model's prediction from the state one
model step earlier and the command then in force. The normalised error is published on /ojepa/surprise:
high surprise means the world no longer behaves as the model learned (a push, a new obstacle, a
sensor fault), a signal the configurator or an operator can act on. The predictor runs on torch or,
with `backend: onnxruntime`, on the exported graphs without torch. A managed node (nodes/lifecycle.py): the
model loads in configure.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from ojepa_interfaces.msg import State
from std_msgs.msg import Float32

from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.lifecycle import ManagedNode
from ojepa_ros.nodes.model_param import ENGINE_PARAMS, Engine, load_engine, open_engine, state_array
from ojepa_ros.nodes.velocity import STAMPED_PARAM, velocity_of, velocity_type

PARAMS = {**ENGINE_PARAMS, "enable_stamped_cmd_vel": STAMPED_PARAM}


class WorldModelNode(ManagedNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("world_model_node", **kwargs)
        self.p = P.declare(self, PARAMS, self._on_params)
        self.model: Engine | None = None
        self._history: deque[tuple[float, np.ndarray, np.ndarray]] = deque(maxlen=64)
        self._action = np.zeros(2, np.float32)
        self.surprise_pub = self.create_publisher(Float32, "ojepa/surprise", 10)
        self.create_subscription(State, "ojepa/state", self._on_state, 10)
        self.create_subscription(velocity_type(self.p["enable_stamped_cmd_vel"]), "cmd_vel", self._on_cmd, 10)

    def configure(self) -> None:
        self.model = open_engine(self, self.p)

    def cleanup(self) -> None:
        self.model = None
        self._history.clear()

    def _on_params(self, changed: set[str]) -> None:
        if changed & ENGINE_PARAMS.keys() and self.configured:
            self.model = load_engine(self, self.p)
            self._history.clear()

    def _on_cmd(self, msg) -> None:
        action = np.array(velocity_of(msg), dtype=np.float32)
        if np.all(np.isfinite(action)):
            self._action = action

    def _on_state(self, msg: State) -> None:
        state = state_array(self, self.model, msg)
        if state is None:
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        self._history.append((now, state, self._action))
        dt = self.model.cfg.dt
        past = min(self._history, key=lambda h: abs(now - h[0] - dt))
        if abs(now - past[0] - dt) > dt / 2:
            return
        predicted = self.model.next(past[1][None], past[2][None])[0]
        surprise = np.mean((predicted - state) ** 2) / max(float(np.mean(state ** 2)), 1e-6)
        self.surprise_pub.publish(Float32(data=float(surprise)))


def main(args: list[str] | None = None) -> None:
    from ojepa_ros.nodes.runtime import run_node

    run_node(WorldModelNode, args)


if __name__ == "__main__":
    main()
