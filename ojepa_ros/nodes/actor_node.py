"""actor_node: Mode-2 model-predictive control through the world model, at a fixed control rate.

Every tick it plans from the latest state embedding toward the goal (set through its parameters by
the configurator, or given as an image on /goal_image: what the camera should see there) and publishes the
first action, after core's CommandLimiter. It commands a stop when
there is no goal or the goal is reached (ramped at the comfort acceleration limit), and the safety stop
(ramped at `safe_stop_deceleration`) when the model or a planning file is missing, a plan is invalid or
planning raised, or the watchdog finds the state or odometry captured longer than `watchdog_timeout` ago.

The watchdog judges capture stamps (the odometry's and the state's headers) against
this node's clock carried forward between its updates (core.safety.CarriedClock: under load a sim-time clock's
/clock messages come late, and the data they date would look as if from the future), fed from an input lane
(nodes/lane.py) that goes on while a step plans; it is checked before each step, after it (a plan is sent only
if the inputs are still fresh) and by a guard timer every GUARD_PERIOD between ticks, so the first braking
command follows an input going stale within GUARD_PERIOD plus at most one planning step. Odometry outside
`world_bounds` or stamped in the future is refused (one log line a second) and counts as stale at once.

When the planner makes no progress (core/recovery.py), bounded recovery behaviours drive instead, through the
same limiter; each start is one status line `recovery: <behaviour> #n (why ...)`, and a goal given up is
`failed: stuck ...` (goal_active is then set false).

While someone subscribes to /ojepa/candidates (RViz), it also draws the planner's candidate rollouts there;
unwatched, that costs nothing (Nav2's MPPI does the same).

A managed node (nodes/lifecycle.py): configure loads the world model and fails without it, so the actor is
only ever activated with its model loaded (a planning file it cannot use holds the robot stopped, as above);
deactivate sends a zero command before the control loop stops.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

import cv2
import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Odometry, Path
from ojepa_interfaces.msg import State
from rosgraph_msgs.msg import Clock as ClockMsg
from rclpy.clock import Clock, ClockType
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, LaserScan
from std_msgs.msg import Bool, ColorRGBA, Empty, Float64MultiArray, Header, String
from visualization_msgs.msg import Marker, MarkerArray

from ojepa_ros.core.costs import default_terms
from ojepa_ros.core.model_io import ModelFileError
from ojepa_ros.core.mpc import CHECKS, DEFAULTS, RANGES, MpcPolicy, joint_problem, rollout_budget_problem
from ojepa_ros.core.onnx_runtime import OnnxModelError
from ojepa_ros.core.roadmap import RoadmapFileError
from ojepa_ros.core.safety import CarriedClock, Watchdog, ramp_to_zero, within_bounds
from ojepa_ros.nodes import params as P
from ojepa_ros.core.formats import rgb_from_image
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.nodes.halt_lane import HALT_QOS, HALT_TOPIC
from ojepa_ros.nodes.lane import Lane
from ojepa_ros.nodes.diagnostics import HARDWARE_ID_PARAM, diagnostic_array, hardware_id
from ojepa_ros.nodes.convert import InputError, odometry_to_array, scan_to_points, stamp_to_sec, yaw_to_quaternion
from ojepa_ros.nodes.lifecycle import ManagedNode
from ojepa_ros.nodes.model_param import (BACKENDS, ENGINE_PARAMS, MODEL_PARAM, load_engine, load_model, open_model,
                                         state_for_model)
from ojepa_ros.nodes.qos import LATCHED, SENSOR
from ojepa_ros.nodes.runtime import run_node
from ojepa_ros.nodes.velocity import STAMPED_PARAM, velocity_message, velocity_type
from ojepa_ros.paths import default_model

FLOORS = {f"weight_{t.name}": t.floor for t in default_terms()}
WORLD_BOUNDS = P.Param([0.0, 0.0, 8.0, 8.0], "xmin, ymin, xmax, ymax (m, odom frame): odometry outside is refused "
                       "and the robot stopped", P.valid_bounds, "must be 4 finite numbers with xmin < xmax and "
                       "ymin < ymax")
GUARD_PERIOD = 0.02  # s between watchdog checks outside the control tick
MAX_FUTURE_STAMP = 0.05  # s; an input stamped further ahead of this node's clock is refused (clocks disagree)
CANDIDATES_TOPIC = "ojepa/candidates"
SUBGOALS_TOPIC = "ojepa/subgoals"


def _planner_param(name: str, default: float | int | str) -> P.Param:
    if name in RANGES:
        return P.ranged(default, *RANGES[name], "planner / limit setting (see config/agent.yaml)")
    if name in CHECKS:
        check, requirement = CHECKS[name]
        return P.Param(default, "planner setting (see config/agent.yaml)", check, requirement)
    if name in FLOORS:
        floor = FLOORS[name]
        return P.Param(float(default), f"cost weight (floor {floor:g}: guardrails cannot be switched off)",
                       lambda v, f=floor: math.isfinite(v) and v >= f, f"must be a finite number >= {floor:g}")
    if isinstance(default, int):
        return P.Param(default, "planner setting", lambda v: 1 <= v <= 100_000, "must be an integer in 1..100000")
    return P.positive(float(default), "planner / limit setting (SI units)")


PARAMS = {
    "model_path": MODEL_PARAM,
    "backend": P.one_of("torch", "where the planner's rollouts run: torch, or onnxruntime (the graphs `ojepa "
                                 "export` wrote; planner mppi or cem at float32)", BACKENDS),
    **{name: ENGINE_PARAMS[name] for name in ENGINE_PARAMS if name.startswith(("onnx_", "trt_"))},
    "effector": P.one_of("twist", "twist: geometry_msgs/Twist (or TwistStamped) on /cmd_vel; float64_array: "
                         "std_msgs/Float64MultiArray on /commands", ("twist", "float64_array")),
    "enable_stamped_cmd_vel": STAMPED_PARAM,
    "hardware_id": HARDWARE_ID_PARAM,
    "control_rate": P.ranged(10.0, 1.0, 100.0, "Hz at which a command is published"),
    "watchdog_timeout": P.ranged(0.2, 0.05, 1.0, "s; state or odometry captured longer ago -> safety stop"),
    "world_bounds": WORLD_BOUNDS,
    "goal_active": P.Param(False, "whether to drive to (goal_x, goal_y)"),
    "goal_x": P.finite(0.0, "goal x in odom frame, m"),
    "goal_y": P.finite(0.0, "goal y in odom frame, m"),
    "goal_yaw_active": P.Param(False, "whether to turn to goal_yaw once at (goal_x, goal_y), within "
                               "yaw_goal_tolerance, before the goal counts as reached"),
    "goal_yaw": P.finite(0.0, "goal heading in odom frame, rad (with goal_yaw_active)"),
    "odom_frame": P.Param("odom", "frame of the published plan"),
    "roadmap_path": P.Param("", "the high level's roadmap (`ojepa roadmap`), used when hierarchical; empty: "
                                "beside the model, <model_path without .pt>.roadmap.npz"),
    "mode1_path": P.Param("", "the Mode-1 policy (`ojepa distill`), used unless mode1 is none; empty: beside the "
                              "model, <model_path without .pt>.mode1.pt"),
    "critic_path": P.Param("", "the trainable critic (`ojepa critic`), used when weight_critic > 0; empty: beside "
                               "the model, <model_path without .pt>.critic.pt"),
    "locator_path": P.Param("", "the goal locator (`ojepa locator`) image goals are homed with; empty: beside the "
                                "model, <model_path without .pt>.locator.pt, if it is there (else image goals are "
                                "steered by the features' divergence)"),
    "max_candidate_markers": P.Param(32, f"most candidate rollouts drawn on {CANDIDATES_TOPIC} (only while "
                                     "subscribed): the cheapest half, then an even spread of the rest",
                                     lambda v: 1 <= v <= 1000, "must be an integer in 1..1000"),
    **{name: _planner_param(name, default) for name, default in DEFAULTS.items()},
}
GOAL_PARAMS = {"goal_active", "goal_x", "goal_y", "goal_yaw_active", "goal_yaw"}  # a change sets the goal again


def candidate_rows(costs: np.ndarray, limit: int) -> np.ndarray:
    """Indices of at most `limit` finite-cost candidates, in order of cost: the cheapest half of the budget,
    then an even spread over the rest up to the dearest, so RViz shows what won and what was rejected."""
    order = np.argsort(costs, kind="stable")
    order = order[np.isfinite(costs[order])]  # an infeasible rollout has no trajectory worth drawing
    if order.size <= limit:
        return order
    cheapest = limit - limit // 2
    rest = order[cheapest:]
    spread = np.linspace(0, rest.size - 1, limit - cheapest).round().astype(int)  # distinct: rest.size > count
    return np.concatenate([order[:cheapest], rest[spread]])


def settings_problem(p: dict) -> str | None:
    """What is wrong with these parameter values together (core's joint check and the compute budget)."""
    return joint_problem(p) or rollout_budget_problem(p, p["control_rate"])


class ActorNode(ManagedNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("actor_node", **kwargs)
        self.p = P.declare(self, PARAMS, self._on_params, joint_check=settings_problem)
        self._fault = ""
        self.hardware_id = hardware_id(self, self.p["hardware_id"])
        self.model = None
        self.policy: MpcPolicy | None = None
        self.watchdog = Watchdog(self.p["watchdog_timeout"], ("state", "odom"))
        self._carried = CarriedClock()
        self._refused: dict[str, str] = {}  # input -> why its latest message was refused (shown in the status)
        self._unstamped: set[str] = set()  # inputs already warned about carrying no stamp
        self._state: torch.Tensor | None = None
        self._odom: np.ndarray | None = None
        self._image_goal = False  # driving toward a goal image (until reached or goal_active is set false)
        self._contact = False  # the bumper's latest word: touching something (its points go into the plan)
        self._scan: tuple[np.ndarray, float] | None = None  # the latest scan's base-frame points and capture time
        self._failed = ""  # why the last goal was given up (stuck), shown as the status until the next goal
        self._recoveries = 0  # recovery behaviours started since the node started
        self._last_cmd = np.zeros(2)  # what was last published, and when (monotonic s)
        self._last_pub = time.monotonic()
        # The halt lane's thread publishes too: every command goes out under this lock, and a planned command is
        # dropped once a halt was heard during its step (_halted stays set until the tick has ended the goal).
        self._command_lock = threading.Lock()
        self._halted = False
        self._status = ""
        self._plan_ms: deque[float] = deque(maxlen=200)
        self._chosen: tuple[str, dict[str, float]] = ("", {})  # (source, weighted cost per term) of the last plan
        self._ticks: deque[float] = deque(maxlen=200)
        if self.p["effector"] == "twist":
            self.cmd_pub = self.create_publisher(velocity_type(self.p["enable_stamped_cmd_vel"]), "cmd_vel", 10)
        else:
            self.cmd_pub = self.create_publisher(Float64MultiArray, "commands", 10)
        self.plan_pub = self.create_publisher(Path, "ojepa/plan", 5)
        self.candidates_pub = self.create_publisher(MarkerArray, CANDIDATES_TOPIC, 1)
        self.subgoals_pub = self.create_publisher(MarkerArray, SUBGOALS_TOPIC, 1)
        self.candidate_arrays = 0  # MarkerArrays built: stays 0 while nobody subscribes
        self._candidates_shown = False
        # Latched: a node that (re)starts hears the status at once (a restarted actor's `idle` is what makes the
        # configurator set its goal again), not at the next 1 Hz repeat.
        self.status_pub = self.create_publisher(String, "ojepa/actor_status", LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        # The robot's inputs are handled on a lane of their own (nodes/lane.py), so they feed the watchdog while
        # a step plans: the check after the step then judges what came meanwhile, not the stamps from before it
        # (with those, every step longer than the watchdog's margin was thrown away on a slow computer).
        # The node's sim-time clock moves only as this thread handles /clock, behind the step as well: the lane
        # hears /clock too, and _now() takes the later reading, or lane-fed inputs would seem from the future.
        self._clock_lock = threading.Lock()  # _now() is read from both threads
        self._lane_clock = -math.inf  # s: the newest /clock the input lane heard
        self.input_lane = Lane(self, "inputs", [
            (State, "ojepa/state", self.when_active(self._on_state), 10),
            (Odometry, "odom", self.when_active(self._on_odom), SENSOR),
            (Bool, "collision", self.when_active(self._on_bumper), 10),
            (LaserScan, "scan", self.when_active(self._on_scan), SENSOR),
            (ClockMsg, "/clock", self._on_lane_clock, SENSOR)])
        self.create_subscription(Image, "goal_image", self._on_goal_image, 1)
        self._timer = self.create_timer(1.0 / self.p["control_rate"], self._tick)
        # The guard runs on steady time: with sim time, a clock whose /clock messages stop (a simulator that died,
        # or their callbacks starved) would stop a timer on the node clock, the watchdog's last check with it.
        self.create_timer(GUARD_PERIOD, self._guard, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.create_timer(1.0, self._publish_diagnostics)
        self.halt_lane = Lane(self, "halt", [(Empty, HALT_TOPIC, lambda _msg: self._on_halt(), HALT_QOS)])
        # nodes of this one's making (README tables, test_readme_tables)
        self.companions = [self.halt_lane.node, self.input_lane.node]

    # -- configuration ----------------------------------------------------------------------
    def configure(self) -> None:
        self.model = open_model(self.p["model_path"])
        self.policy = self._build_policy()

    def deactivate(self) -> None:
        self._publish_command(np.zeros(2))  # the last word to the base before the control loop stops
        if self.policy is not None:  # it restarts from rest
            self.policy.limiter.reset()
            self.policy.planner.reset()

    def cleanup(self) -> None:
        self.model = self.policy = None

    def _build_policy(self) -> MpcPolicy | None:
        """The policy, or None (the robot is then held stopped) after logging why: no model, or a roadmap,
        Mode-1 policy or critic the settings ask for is unusable (planning without it would be a guess at what
        the user wanted)."""
        if self.model is None:
            self._fault = "no world model"
            return None
        problem = settings_problem(self.p)  # set checks it on every change; this is for the parameters file
        if problem:
            self.get_logger().error(f"{problem}; holding the robot stopped")
            self._fault = "the planner settings do not fit together (see the log)"
            return None
        onnx = None
        if self.p["backend"] == "onnxruntime":
            onnx = load_engine(self, self.p)  # logs why not
            if onnx is None:
                self._fault = "the ONNX graphs are unusable (see the log)"
                return None
        try:
            policy = MpcPolicy.from_files(self.model, self.p["model_path"] or default_model(), self.p, onnx=onnx)
        except (RoadmapFileError, ModelFileError, OnnxModelError) as err:
            self.get_logger().error(f"{err}; holding the robot stopped (or turn that part off: hierarchical: "
                                    "false, mode1: none, weight_critic: 0, backend: torch)")
            self._fault = "a planning file is unusable (see the log)"
            return None
        except ValueError as err:  # settings that are valid one by one but not together
            self.get_logger().error(f"{err}; holding the robot stopped")
            self._fault = "the planner settings do not fit together (see the log)"
            return None
        if self.p["goal_active"]:
            policy.set_goal((self.p["goal_x"], self.p["goal_y"]), self._goal_yaw())
        return policy

    def _goal_yaw(self) -> float | None:
        return self.p["goal_yaw"] if self.p["goal_yaw_active"] else None

    def _on_params(self, changed: set[str]) -> None:
        if changed & GOAL_PARAMS:  # a goal set or dropped after a halt: the halt is over
            self._halted = False
        if "model_path" in changed and self.configured:
            self.model = load_model(self, self.p["model_path"])
        if changed & (set(DEFAULTS) | set(ENGINE_PARAMS) | {"roadmap_path", "mode1_path", "critic_path",
                                                                          "locator_path"}):
            self.policy = self._build_policy()
            if self.policy is not None:  # the new limiter starts from what the base is doing, not from rest
                self.policy.limiter.last = self._last_cmd.copy()
        elif self.policy is not None and changed & GOAL_PARAMS:
            self._image_goal = False
            if self.p["goal_active"]:
                self._failed = ""
                self.policy.set_goal((self.p["goal_x"], self.p["goal_y"]), self._goal_yaw())
            else:  # cancelled: the stop starts now, not at the next tick
                self.policy.clear_goal()
                self._calm_stop()
        if "watchdog_timeout" in changed:
            self.watchdog.timeout_s = self.p["watchdog_timeout"]
        if "control_rate" in changed:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / self.p["control_rate"], self._tick)

    # -- inputs -----------------------------------------------------------------------------
    def _now(self) -> float:
        """The time inputs are judged against: this node's clock, carried forward while it stands still (a sim-time
        clock whose /clock messages are late: core.safety.CarriedClock)."""
        reading = self.get_clock().now().nanoseconds * 1e-9
        if self.get_clock().ros_time_is_active:
            reading = max(reading, self._lane_clock)
        with self._clock_lock:
            return self._carried.now(reading, time.monotonic())

    def _clock_heard(self) -> bool:
        """Whether a /clock message has reached this node or its input lane (a sim-time clock reads 0 before)."""
        return self._lane_clock > -math.inf or self.get_clock().now().nanoseconds > 0

    def _on_lane_clock(self, msg: ClockMsg) -> None:
        self._lane_clock = msg.clock.sec + msg.clock.nanosec * 1e-9

    def _captured(self, name: str, stamp: float | None, now: float) -> float:
        """When input `name` was captured: its stamp, or (no stamp) its arrival, said once. InputError for a
        stamp from the future."""
        if stamp is None or stamp <= 0.0:
            if name not in self._unstamped:
                self._unstamped.add(name)
                self.get_logger().warning(f"{name} carries no capture stamp; its age is measured from arrival")
            return now
        if stamp > now + MAX_FUTURE_STAMP:
            if self.get_clock().ros_time_is_active and not self._clock_heard():
                raise InputError(f"{name} came before any /clock message (use_sim_time is on): its age cannot be "
                                 "told yet")
            raise InputError(f"{name} is stamped {stamp - now:.3f} s in the future; refused (clocks disagree?)")
        return min(stamp, now)

    def _refuse(self, name: str, reason: str) -> None:
        self.get_logger().error(f"{name} refused: {reason}; stopping the robot", throttle_duration_sec=1.0)
        self._refused[name] = reason
        self.watchdog.invalidate(name)

    def _on_state(self, msg: State) -> None:
        state = state_for_model(self, self.model, msg)
        if state is None:
            return
        try:
            captured = self._captured("state", stamp_to_sec(msg.header.stamp), self._now())
        except InputError as err:
            self._refuse("state", str(err))
            return
        self._state = state
        self._refused.pop("state", None)
        self.watchdog.feed("state", captured)

    def _on_odom(self, msg: Odometry) -> None:
        try:
            odom = odometry_to_array(msg)
            if not within_bounds(odom[:2], self.p["world_bounds"]):
                raise InputError(f"position ({odom[0]:.3g}, {odom[1]:.3g}) is outside world_bounds "
                                 f"{list(self.p['world_bounds'])}")
            captured = self._captured("odom", stamp_to_sec(msg.header.stamp), self._now())
        except InputError as err:
            self._refuse("odom", str(err))
            return
        self._odom = odom
        self._refused.pop("odom", None)
        self.watchdog.feed("odom", captured)

    def _on_bumper(self, msg: Bool) -> None:
        self._contact = bool(msg.data)

    def _on_scan(self, msg: LaserScan) -> None:
        """The range scan, for the obstacle memory and the recovery's back-up (the collision monitor guards every
        command with it as well)."""
        try:
            self._scan = scan_to_points(msg, self._now(), MAX_FUTURE_STAMP)
        except InputError as err:
            self.get_logger().error(f"scan refused: {err}", throttle_duration_sec=1.0)
            self._scan = None

    def _fresh_scan(self) -> np.ndarray | None:
        """The latest scan's points if captured within watchdog_timeout, else None (then no back-up)."""
        if self._scan is None or self._now() - self._scan[1] > self.p["watchdog_timeout"]:
            return None
        return self._scan[0]

    def _on_goal_image(self, msg: Image) -> None:
        """A goal given as an image (rgb8/bgr8, any size: resized to the model's): encoded with the actor's model,
        it replaces any pose goal; a bad image is refused with one line and changes nothing."""
        if self.policy is None:
            self.get_logger().error("goal image refused: no usable model", throttle_duration_sec=1.0)
            return
        try:
            rgb = rgb_from_image(msg.encoding, msg.width, msg.height, msg.step, msg.data)
        except ValueError as err:
            self.get_logger().error(f"goal image refused: {err}", throttle_duration_sec=1.0)
            return
        size = self.model.cfg.image_size
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            state = self.model.encode(torch.from_numpy(rgb)[None], torch.from_numpy(proprio_from_odom(np.zeros(5)))[None])
        if self.p["goal_active"]:  # the pose goal no longer applies (this clears it through _on_params)
            self.set_parameters([Parameter("goal_active", value=False)])
        self.policy.set_goal_image(state[0])
        self._image_goal = True
        self._halted = False
        self._failed = ""
        self.get_logger().info("goal set as an image")

    # -- control loop -------------------------------------------------------------------------
    def _stale(self) -> list[str]:
        """The watched inputs that are stale now, each with the reason its last message was refused, if any."""
        refused = dict(self._refused)  # the input lane may change it meanwhile
        return [f"{name} ({refused[name]})" if name in refused else name for name in self.watchdog.stale(self._now())]

    def _calm_stop(self) -> None:
        """One step of the stop for no goal: toward zero at the comfort deceleration over the time since the last
        command went out (at most a tick), so a cancel's immediate step, the halt lane's and the next tick's never
        brake harder together."""
        with self._command_lock:
            if np.any(self._last_cmd != 0):
                self.policy.limiter.last = self._last_cmd.copy()  # the halt lane may have sent one since
                dt = min(1.0 / self.p["control_rate"], time.monotonic() - self._last_pub)
                self._send(self.policy.stop("no_goal", dt).command)

    def _brake(self) -> None:
        """One step of the safety stop: toward zero at safe_stop_deceleration over the time since the last
        command went out (the guard and the tick may both brake; together they never brake harder)."""
        with self._command_lock:
            dt = time.monotonic() - self._last_pub
            if self.policy is not None:
                self.policy.planner.reset()
                self.policy.limiter.last = self._last_cmd.copy()
                command = self.policy.limiter.brake(dt)
            else:  # no limiter to hold the state: ramp from what was last sent
                command = ramp_to_zero(self._last_cmd, (self.p["safe_stop_deceleration"],
                                                        self.p["safe_stop_angular_deceleration"]), dt)
            self._send(command)

    def _on_halt(self) -> None:
        """On the halt lane's thread (a cancel, configurator ~/cancel_goal): the calm stop's first step goes out
        now, and the command of a planning step in progress is not sent. The next tick ends the goal."""
        if not self.active:
            return
        with self._command_lock:
            self._halted = True
            if np.any(self._last_cmd != 0):
                dt = min(1.0 / self.p["control_rate"], time.monotonic() - self._last_pub)
                self._send(ramp_to_zero(self._last_cmd, (self.p["max_linear_acceleration"],
                                                         self.p["max_angular_acceleration"]), dt))

    def _end_halted_goal(self) -> None:
        """The tick after a halt: the goal ends as a cancel ends it, and the calm stop goes on."""
        self._image_goal = False
        if self.p["goal_active"]:  # _on_params then clears the goal and the halt, and takes the stop's next step
            self.set_parameters([Parameter("goal_active", value=False)])
        else:
            self._halted = False
            self.policy.clear_goal()
            self._calm_stop()

    def _guard(self) -> None:
        """Between ticks: start the safety stop as soon as an input goes stale while the robot moves."""
        if self.p["goal_active"] and np.any(self._last_cmd != 0):
            stale = self._stale()
            if stale:
                self._set_status("stale: " + ", ".join(stale))
                self._brake()

    def _tick(self) -> None:
        self._ticks.append(time.monotonic())
        started = self.get_clock().now().to_msg()  # the plan is for this instant: /ojepa/plan's stamp
        dt = 1.0 / self.p["control_rate"]
        if self.policy is None:
            self._set_status(f"fault: {self._fault}")
            self._brake()
            return
        if self._halted:
            self._end_halted_goal()
            self._publish_candidates(show=False)
            return
        if not (self.p["goal_active"] or self._image_goal):
            self._set_status(f"failed: {self._failed}" if self._failed else "idle")
            self._calm_stop()
            self._publish_candidates(show=False)
            return
        stale = self._stale()
        if stale:
            self._set_status("stale: " + ", ".join(stale))
            self._brake()
            self._publish_candidates(show=False)
            return
        try:
            step = self.policy.act(self._state, self._odom[3:5], odom_xy=self._odom[:2], dt=dt,
                                   contact=self._contact, scan=self._fresh_scan(), heading=float(self._odom[2]))
        except Exception as err:  # noqa: BLE001 - whatever broke in planning, the base gets the safety stop
            self.get_logger().error(f"planning raised {err.__class__.__name__}: {err}", throttle_duration_sec=1.0)
            self._set_status(f"fault: planning raised {err.__class__.__name__}")
            self._brake()
            return
        stale = self._stale()  # the inputs may have gone stale while it planned: then the plan is not sent
        if stale:
            self._set_status("stale: " + ", ".join(stale))
            self.policy.limiter.last = self._last_cmd.copy()  # the planned command never went out
            self._brake()
            return
        if not self._publish_planned(step.command):  # a halt came while it planned: the stop goes on instead
            self.policy.limiter.last = self._last_cmd.copy()
            return
        # The command went out first: what follows only informs people, the base must not wait.
        if step.status == "reached":
            self._set_status("reached")
            self._image_goal = False
            if self.p["goal_active"]:
                self.set_parameters([Parameter("goal_active", value=False)])
        elif step.status == "ok":
            self._set_status("active")
            if step.source == "mode2":
                self._plan_ms.append(step.plan_ms)
            self._chosen = (step.source, step.cost_terms)
            self._publish_plan(step.plan_poses, started)
            self._publish_subgoals(step.route, step.subgoal)
        elif step.status == "recovery":
            if "#" in step.recovery:  # a behaviour starts: "<behaviour> #n (why ...)", one status line each
                self._recoveries += 1
                self._set_status(f"recovery: {step.recovery}")
                self.get_logger().warning(f"recovery: {step.recovery}")
        elif step.status == "failed":
            self._failed = step.recovery
            self._set_status(f"failed: {step.recovery}")
            self.get_logger().error(f"goal given up: {step.recovery}")
            self._image_goal = False
            if self.p["goal_active"]:
                self.set_parameters([Parameter("goal_active", value=False)])
        else:
            self._set_status(f"fault: {step.status}")
        self._publish_candidates(show=step.status == "ok" and step.source == "mode2")

    def _publish_command(self, command: np.ndarray) -> None:
        with self._command_lock:
            self._send(command)

    def _publish_planned(self, command: np.ndarray) -> bool:
        """Send a planned command unless a halt was heard; whether it went out."""
        with self._command_lock:
            if self._halted:
                return False
            self._send(command)
            return True

    def _send(self, command: np.ndarray) -> None:
        """Publish (v, w); the caller holds _command_lock."""
        self._last_cmd = np.asarray(command, dtype=float).copy()
        self._last_pub = time.monotonic()
        v, w = float(command[0]), float(command[1])
        if self.p["effector"] == "twist":
            msg = velocity_message(self, v, w, self.p["enable_stamped_cmd_vel"])
        else:
            msg = Float64MultiArray(data=[v, w])
        self.cmd_pub.publish(msg)

    def _publish_plan(self, poses: np.ndarray, stamp) -> None:
        path = Path()
        path.header.stamp = stamp
        path.header.frame_id = self.p["odom_frame"]
        for x, y, yaw in poses:
            pose = PoseStamped()
            pose.header = path.header
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            pose.pose.orientation = yaw_to_quaternion(float(yaw))
            path.poses.append(pose)
        self.plan_pub.publish(path)

    def _publish_candidates(self, show: bool) -> None:
        """Draw this step's candidate rollouts (show) or just clear the last drawing, only while subscribed.

        One LINE_STRIP per candidate through model.pose of its predicted states (latent draw 0), coloured by
        cost rank from green (cheapest) to red (dearest): rank, not value, so one colliding candidate does not
        paint all others green. A DELETEALL leads every array so candidates from an earlier step vanish.
        """
        if self.candidates_pub.get_subscription_count() == 0 or not (show or self._candidates_shown):
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p["odom_frame"])
        markers = [Marker(header=header, action=Marker.DELETEALL)]
        if show:
            planner = self.policy.planner
            costs = planner.last_costs.detach().cpu().numpy()
            draws = planner.last_samples.shape[0] // costs.shape[0]  # rows n*K + k: candidate n under draw k
            rows = candidate_rows(costs, self.p["max_candidate_markers"])
            with torch.no_grad():
                poses = self.model.pose(planner.last_samples[torch.as_tensor(rows * draws)]).cpu().numpy()
            shown = [p for p in poses if np.isfinite(p[:, :2]).all()]
            for i, path in enumerate(shown):
                red = i / max(len(shown) - 1, 1)
                line = Marker(header=header, ns="candidates", id=i, type=Marker.LINE_STRIP, action=Marker.ADD,
                              color=ColorRGBA(r=red, g=1.0 - red, b=0.0, a=0.8),
                              points=[Point(x=float(x), y=float(y)) for x, y, _ in path])
                line.pose.orientation.w = 1.0
                line.scale.x = 0.02  # m
                markers.append(line)
        self.candidates_pub.publish(MarkerArray(markers=markers))
        self.candidate_arrays += 1
        self._candidates_shown = show

    def _publish_subgoals(self, route: np.ndarray, subgoal: np.ndarray | None) -> None:
        """The high level's remaining route (small blue spheres) and the low level's current target (a large
        orange one), only while subscribed and only when the high level runs."""
        if subgoal is None or self.subgoals_pub.get_subscription_count() == 0:
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p["odom_frame"])
        markers = [Marker(header=header, action=Marker.DELETEALL)]
        for i, (points, size, color) in enumerate(((route, 0.1, ColorRGBA(r=0.2, g=0.4, b=1.0, a=0.8)),
                                                   (subgoal[None], 0.25, ColorRGBA(r=1.0, g=0.5, b=0.0, a=0.9)))):
            sphere = Marker(header=header, ns="subgoals", id=i, type=Marker.SPHERE_LIST, action=Marker.ADD,
                            color=color, points=[Point(x=float(x), y=float(y)) for x, y in points])
            sphere.pose.orientation.w = 1.0
            sphere.scale.x = sphere.scale.y = sphere.scale.z = size  # m
            markers.append(sphere)
        self.subgoals_pub.publish(MarkerArray(markers=markers))

    def _set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self.status_pub.publish(String(data=status))
            if status.startswith(("stale", "fault")):
                self.get_logger().warning(f"stopping the robot: {status}")

    def _publish_diagnostics(self) -> None:
        self.status_pub.publish(String(data=self._status))
        ticks = np.diff(list(self._ticks))  # list(): one atomic copy of a deque the control loop appends to
        plan_ms = np.asarray(list(self._plan_ms))
        values = {
            "control_rate_hz": 1.0 / ticks.mean() if ticks.size else 0.0,
            "plan_ms_median": float(np.median(plan_ms)) if plan_ms.size else 0.0,
            "plan_ms_p99": float(np.percentile(plan_ms, 99)) if plan_ms.size else 0.0,
            "mode1_fallbacks": float(self.policy.fallbacks) if self.policy is not None else 0.0,
            "recoveries": float(self._recoveries),
            **self._progress(),
        }
        level = (DiagnosticStatus.OK if self._status in ("idle", "active", "reached")
                 else DiagnosticStatus.ERROR if self._status.startswith("failed") else DiagnosticStatus.WARN)
        status = DiagnosticStatus(level=level, name="actor_node: control", message=self._status,
                                  values=[KeyValue(key=k, value=f"{v:.2f}") for k, v in values.items()])
        source, terms = self._chosen  # one tuple swap by the control loop: read whole, never half-updated
        plan = DiagnosticStatus(level=DiagnosticStatus.OK, name="actor_node: chosen plan",
                                message=f"weighted cost per term of the last plan ({source or 'none yet'})",
                                values=[KeyValue(key=k, value=f"{v:.4f}") for k, v in terms.items()])
        self.diag_pub.publish(diagnostic_array(self, [status, plan], self.hardware_id))

    def _progress(self) -> dict[str, float]:
        """The progress checker's figures: s without progress, recoveries in a row (none without recovery)."""
        recovery = self.policy.recovery if self.policy is not None else None
        if recovery is None:
            return {}
        return {"no_progress_s": recovery.checker.stalled_s, "recoveries_in_a_row": float(recovery.in_a_row)}

    def stop(self) -> None:
        """Shutdown: the last word to the base is zero velocity."""
        self._publish_command(np.zeros(2))

    def destroy_node(self) -> None:
        self.halt_lane.close()
        self.input_lane.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(ActorNode, args)


if __name__ == "__main__":
    main()
