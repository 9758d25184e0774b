"""Managed (lifecycle) nodes: the plumbing every node that owns a model, a device or a file shares.

A ManagedNode declares its parameters and creates its publishers, subscriptions, timers and services when it
is constructed, so `ros2 param` and the ROS graph see them before it is configured; what it owns (a model, the
simulator, a folder) opens in `configure()`. Its publishers are lifecycle publishers (enabled while active),
and its subscription and timer callbacks run only while it is active: an unconfigured or inactive node neither
reacts nor publishes. The states follow ROS 2's managed-node design (ros2/demos `lifecycle_py`):

  unconfigured --configure--> inactive --activate--> active --deactivate--> inactive --cleanup--> unconfigured

A failing `configure()` (it returns the problem, or raises) logs one line (the same failure again: at most every
10 s), releases what it opened and leaves the node unconfigured, alive, for the next try. `autostart: true`
brings the node up to active as it starts (runtime.run_nodes); by default the lifecycle manager does it, in order.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.timer import Timer

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
REPEAT_LOG_S = 10.0  # the same configure failure again (the manager retries every second) is logged this seldom
AUTOSTART = ("configure and activate at start-up (a node started on its own); false: wait for the lifecycle "
             "manager or `ros2 lifecycle set`")


class ManagedNode(LifecycleNode):
    """A lifecycle node whose subclass fills in configure / activate / deactivate / cleanup (all optional)."""

    def __init__(self, node_name: str, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.configured = False
        self.active = False
        self._managed_timers: list[Timer] = []
        self._held: dict[object, tuple] = {}  # latched subscription -> (callback, its last message while inactive)
        self._last_failure = ("", -float("inf"))  # the last configure failure logged, and when (monotonic s)
        self._managing = True  # from here on, publishers, subscriptions and timers follow the state
        self.declare_parameter("autostart", False, ParameterDescriptor(description=AUTOSTART, read_only=True))

    # -- what a subclass fills in -------------------------------------------------------------
    def configure(self) -> str | None:
        """Open what the node owns; the problem (one line) if it cannot, else None."""
        return None

    def activate(self) -> None:
        """Just before its timers and inputs start (its publishers already work)."""

    def deactivate(self) -> None:
        """Just before its timers and inputs stop (its publishers still work)."""

    def cleanup(self) -> None:
        """Release what configure() opened; also runs after a failed configure(), so it copes with half."""

    # -- entities that follow the state ---------------------------------------------------------
    def create_publisher(self, *args, **kwargs):
        """A lifecycle publisher (publishes only while active); rclpy's own, made during construction, stay plain."""
        if getattr(self, "_managing", False):
            return self.create_lifecycle_publisher(*args, **kwargs)
        return super().create_publisher(*args, **kwargs)

    def create_subscription(self, msg_type, topic: str, callback, *args, **kwargs):
        """The callback runs only while active; of a latched (transient-local) topic, the last message that came
        while inactive is the topic's current value, so it is handed over on activation (a goal latched before
        memory_node was active opened no episode). /clock is left alone: ROS's time source subscribes it here
        when use_sim_time is set at run time, and the clock must tick in every state."""
        if not getattr(self, "_managing", False) or topic == "/clock":
            return super().create_subscription(msg_type, topic, callback, *args, **kwargs)
        qos = args[0] if args else kwargs.get("qos_profile")
        if not (isinstance(qos, QoSProfile) and qos.durability == DurabilityPolicy.TRANSIENT_LOCAL):
            return super().create_subscription(msg_type, topic, self.when_active(callback), *args, **kwargs)
        key = object()

        def while_active_or_held(msg) -> None:
            if self.active:
                callback(msg)
            else:
                self._held[key] = (callback, msg)

        return super().create_subscription(msg_type, topic, while_active_or_held, *args, **kwargs)

    def when_active(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """`callback` run only while active (messages meanwhile are dropped): the node's own plain subscriptions,
        and those of its companion nodes (nodes/lane.py)."""
        def while_active(msg) -> None:
            if self.active:
                callback(msg)

        return while_active

    def create_timer(self, timer_period_sec: float, callback, *args, **kwargs) -> Timer:
        """A timer that runs only while active (cancelled otherwise, reset on activation)."""
        timer = super().create_timer(timer_period_sec, callback, *args, **kwargs)
        if getattr(self, "_managing", False):
            self._managed_timers.append(timer)
            if not self.active:
                timer.cancel()
        return timer

    def destroy_timer(self, timer: Timer) -> bool:
        if timer in self._managed_timers:
            self._managed_timers.remove(timer)
        return super().destroy_timer(timer)

    # -- transitions ------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            problem = self.configure()
        except Exception as err:  # noqa: BLE001 - whatever failed to load, the node stays up, unconfigured
            problem = str(err) or err.__class__.__name__
        if problem:
            self._log_failure(problem)
            self._release()
            return FAILURE
        self.configured = True
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # publishers first: a timer may fire as soon as it is reset
        self._hook(self.activate)
        self.active = True
        for timer in self._managed_timers:
            timer.reset()
        held, self._held = self._held, {}
        for callback, msg in held.values():
            callback(msg)
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._hook(self.deactivate)
        self.active = False
        for timer in self._managed_timers:
            timer.cancel()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.active:
            self.on_deactivate(state)
        if self.configured:
            self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised (logged by _hook): back to unconfigured, silent, with everything released."""
        self.active = False
        for timer in self._managed_timers:
            timer.cancel()
        super().on_deactivate(state)  # the publishers off
        try:
            self._release()
        except Exception:  # noqa: BLE001 - logged by _hook; unconfigured all the same
            pass
        return super().on_error(state)

    def _hook(self, hook) -> None:
        """Run a subclass's hook; what it raises is logged in one line (rclpy's transition would swallow it)."""
        try:
            hook()
        except Exception as err:
            self.get_logger().error(f"{hook.__name__} raised {err.__class__.__name__}: {err}")
            raise

    def _log_failure(self, problem: str) -> None:
        """One line per configure failure; the same one again at most every REPEAT_LOG_S."""
        now = time.monotonic()
        if problem != self._last_failure[0] or now - self._last_failure[1] >= REPEAT_LOG_S:
            self.get_logger().error(f"not configured: {problem}")
            self._last_failure = (problem, now)

    def _release(self) -> None:
        self.configured = False
        self._hook(self.cleanup)

    # -- bringing it up ---------------------------------------------------------------------------
    def bring_up(self) -> bool:
        """Configure, then activate; True once active (what `autostart` does, and the tests' helper)."""
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    def autostart(self) -> None:
        """Bring the node up if its `autostart` parameter says so."""
        if self.get_parameter("autostart").value:
            self.bring_up()
