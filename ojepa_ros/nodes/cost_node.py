"""cost_node: the discomfort of the current state, term by term.

Scores the current state embedding with the same cost terms the actor optimises (core's Objective:
guardrails + task objective), using the measured velocity as the action, and publishes the total on
/ojepa/cost and every weighted term on /ojepa/cost_terms, plus the simulator's or robot's bumper,
so the memory can record state-cost episodes and a user can see what the robot minds. A managed node
(nodes/lifecycle.py): the model loads in configure.
"""

from __future__ import annotations

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry
from ojepa_interfaces.msg import State
from std_msgs.msg import Bool, Float32

from ojepa_ros.core.costs import CostContext, Objective
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.actor_node import PARAMS as ACTOR_PARAMS
from ojepa_ros.nodes.convert import InputError, odometry_to_array
from ojepa_ros.nodes.diagnostics import diagnostic_array, hardware_id
from ojepa_ros.nodes.lifecycle import ManagedNode
from ojepa_ros.nodes.model_param import load_model, open_model, state_for_model
from ojepa_ros.nodes.qos import SENSOR
from ojepa_ros.nodes.runtime import run_node

PARAMS = {name: ACTOR_PARAMS[name] for name in ACTOR_PARAMS
          if name.startswith("weight_") or name in ("model_path", "goal_active", "goal_x", "goal_y", "hardware_id")}


class CostNode(ManagedNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("cost_node", **kwargs)
        self.p = P.declare(self, PARAMS, self._on_params)
        self.model = None
        self.objective = Objective()
        self._apply_weights()
        self.hardware_id = hardware_id(self, self.p["hardware_id"])
        self._velocity = torch.zeros(2)
        self._bumper = False
        self.cost_pub = self.create_publisher(Float32, "ojepa/cost", 10)
        self.terms_pub = self.create_publisher(DiagnosticArray, "ojepa/cost_terms", 10)
        self.create_subscription(State, "ojepa/state", self._on_state, 10)
        self.create_subscription(Odometry, "odom", self._on_odom, SENSOR)
        self.create_subscription(Bool, "collision", self._on_bumper, 10)

    def _apply_weights(self) -> None:
        self.objective.set_weights({k.removeprefix("weight_"): v for k, v in self.p.items() if k.startswith("weight_")})

    def configure(self) -> None:
        self.model = open_model(self.p["model_path"])

    def cleanup(self) -> None:
        self.model = None

    def _on_params(self, changed: set[str]) -> None:
        if "model_path" in changed and self.configured:
            self.model = load_model(self, self.p["model_path"])
        self._apply_weights()

    def _on_odom(self, msg: Odometry) -> None:
        try:
            self._velocity = torch.tensor(odometry_to_array(msg)[3:5], dtype=torch.float32)
        except InputError as err:
            self.get_logger().error(str(err), throttle_duration_sec=1.0)

    def _on_bumper(self, msg: Bool) -> None:
        self._bumper = msg.data

    def _on_state(self, msg: State) -> None:
        state = state_for_model(self, self.model, msg)
        if state is None:
            return
        goal = torch.tensor([self.p["goal_x"], self.p["goal_y"]]) if self.p["goal_active"] else None
        ctx = CostContext(self.model.pose, self.model.clearance, goal, self._velocity)
        with torch.no_grad():
            terms = self.objective.breakdown(state.view(1, 1, -1), self._velocity.view(1, 1, 2), ctx)
        values = {name: float(v[0]) for name, v in terms.items() if name != "goal_distance" or goal is not None}
        self.cost_pub.publish(Float32(data=sum(values.values())))
        report = DiagnosticStatus(name="cost_node: cost terms", message="weighted cost of the current state",
                                  level=DiagnosticStatus.WARN if self._bumper else DiagnosticStatus.OK,
                                  values=[KeyValue(key=k, value=f"{v:.4f}") for k, v in values.items()]
                                  + [KeyValue(key="bumper", value=str(self._bumper).lower())])
        self.terms_pub.publish(diagnostic_array(self, [report], self.hardware_id))


def main(args: list[str] | None = None) -> None:
    run_node(CostNode, args)


if __name__ == "__main__":
    main()
