"""Managed nodes and the lifecycle manager, with real rclpy nodes over real DDS (ROS 2's lifecycle services)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

from geometry_msgs.msg import Twist
from lifecycle_msgs.msg import Transition, TransitionEvent
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import Odometry
from ojepa_interfaces.msg import State
from rclpy.node import Node
from std_srvs.srv import Trigger

from ojepa_ros import graph as ojepa_graph
from ojepa_ros.core.critic import critic_beside
from ojepa_ros.core.mode1 import mode1_beside
from ojepa_ros.core.roadmap import roadmap_beside
from ojepa_ros.nodes.actor_node import ActorNode
from ojepa_ros.nodes.cost_node import CostNode
from ojepa_ros.nodes.lifecycle_manager_node import LifecycleManagerNode
from ojepa_ros.nodes.memory_node import MemoryNode
from ojepa_ros.nodes.perception_node import PerceptionNode
from ojepa_ros.nodes.sim_node import SimNode
from ojepa_ros.nodes.world_model_node import WorldModelNode
from ojepa_ros.supervisor import Supervisor
from test_nodes import Feeder, overrides, pump


class Lifecycle:
    """ROS 2's lifecycle services of the nodes under test, as `ros2 lifecycle get/set` and `ros2 service call`
    use them, from a probe node of its own."""

    def __init__(self, graph) -> None:
        self.graph = graph
        self.node = graph.add(Node(f"lifecycle_probe_{time.monotonic_ns()}"))
        self._clients: dict[str, object] = {}

    def _call(self, srv_type, name: str, request, timeout: float = 15.0, retry: bool = False):
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            assert retry, f"no service {name}"
            return None
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done():
            client.remove_pending_request(future)
            assert retry, f"no answer from {name} in {timeout} s"
        return future.result()

    def state(self, node: str) -> str:
        """Its state's label; "" if it is not there or did not answer in 2 s (a request to a process that
        restarted can be lost)."""
        response = self._call(GetState, f"/{node}/get_state", GetState.Request(), timeout=2.0, retry=True)
        return "" if response is None else response.current_state.label

    def set(self, node: str, transition: int) -> bool:
        return self._call(ChangeState, f"/{node}/change_state",
                          ChangeState.Request(transition=Transition(id=transition))).success

    def trigger(self, service: str, manager: str = "lifecycle_manager_node") -> Trigger.Response:
        return self._call(Trigger, f"/{manager}/{service}", Trigger.Request(), timeout=30.0)

    def wait_state(self, node: str, label: str, timeout: float) -> None:
        self.graph.wait_for(lambda: self.state(node) == label, timeout, f"{node} {label}")


def _manager(graph, names: list[str], **values):
    return graph.add(LifecycleManagerNode(parameter_overrides=overrides(node_names=names, retry_period=0.3,
                                                                        **values)))


def _actor(graph, model_path, **values) -> ActorNode:
    values = {"model_path": str(model_path), "num_samples": 64, "horizon": 8, **values}
    return graph.add(ActorNode(parameter_overrides=overrides(**values)), bring_up=False)


def test_the_manager_configures_all_then_activates_all_in_order(graph, tiny_model_path, tmp_path):
    model = {"model_path": str(tiny_model_path)}
    nodes = [SimNode(parameter_overrides=overrides(start_pose=[2.0, 2.0, 0.0])),
             PerceptionNode(parameter_overrides=overrides(**model)),
             WorldModelNode(parameter_overrides=overrides(**model)), CostNode(parameter_overrides=overrides(**model)),
             MemoryNode(parameter_overrides=overrides(output_dir=str(tmp_path))),
             ActorNode(parameter_overrides=overrides(**model, num_samples=64, horizon=8))]
    names = [n.get_name() for n in nodes]
    assert names == list(ojepa_graph.MANAGED)  # the order the manager's default node_names gives
    events: list[tuple[str, str]] = []
    probe = graph.add(Node(f"events_{time.monotonic_ns()}"))
    for name in names:
        probe.create_subscription(TransitionEvent, f"/{name}/transition_event",
                                  lambda msg, n=name: events.append((n, msg.goal_state.label)), 10)
    for node in nodes:
        graph.add(node, bring_up=False)
    lifecycle = Lifecycle(graph)
    assert {lifecycle.state(name) for name in names} == {"unconfigured"}
    odom = graph.collect(Odometry, "/odom")
    time.sleep(0.5)  # the subscriptions connect
    assert all(n.get_parameter("autostart").value is False for n in nodes)  # they wait for the manager
    assert odom == []  # an unconfigured simulator publishes nothing
    _manager(graph, names)
    graph.wait_for(lambda: sum(label == "active" for _, label in events) == len(names), 30.0, "all active")
    configured = [n for n, label in events if label == "inactive"]
    activated = [n for n, label in events if label == "active"]
    assert configured == names and activated == names
    assert events.index((names[-1], "inactive")) < events.index((names[0], "active"))  # all configured first
    assert [lifecycle.state(name) for name in names] == ["active"] * len(names)
    graph.wait_for(lambda: odom, 5.0, "the simulator's odometry once active")


def test_the_actor_stays_inactive_until_its_model_file_appears(graph, tiny_model_path, tmp_path):
    later = tmp_path / "later.pt"
    for beside in (roadmap_beside, mode1_beside, critic_beside):  # the planning files first, the model last
        shutil.copy(beside(tiny_model_path), beside(later))
    world_model = graph.add(WorldModelNode(parameter_overrides=overrides(model_path=str(tiny_model_path))),
                            bring_up=False)
    actor = _actor(graph, later, goal_active=True, goal_x=5.0, goal_y=5.0)
    twists = graph.collect(Twist, "/cmd_vel")
    lifecycle = Lifecycle(graph)
    _manager(graph, ["world_model_node", "actor_node"])
    lifecycle.wait_state("world_model_node", "inactive", 10.0)  # configured; not activated while the actor fails
    time.sleep(1.0)  # three retries
    assert lifecycle.state("actor_node") == "unconfigured" and lifecycle.state("world_model_node") == "inactive"
    assert twists == [] and not world_model.active and graph.spinner.alive()
    shutil.copy(tiny_model_path, later)
    lifecycle.wait_state("actor_node", "active", 10.0)
    assert lifecycle.state("world_model_node") == "active" and actor.model is not None
    graph.wait_for(lambda: len(twists) >= 3, 5.0, "commands from the active actor (stopping: no inputs here)")


def test_deactivate_sends_zero_then_silence_and_pause_resume_go_through_the_manager(graph, tiny_model_path):
    actor = _actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0, hierarchical=False)
    twists = graph.collect(Twist, "/cmd_vel")
    feed = Feeder(graph)
    lifecycle = Lifecycle(graph)
    assert lifecycle.set("actor_node", Transition.TRANSITION_CONFIGURE)  # `ros2 lifecycle set /actor_node configure`
    assert lifecycle.set("actor_node", Transition.TRANSITION_ACTIVATE)

    def inputs():
        feed.send_odom()
        feed.state.publish(State(data=[0.1] * 16))

    def moving() -> bool:
        return bool(twists) and (twists[-1].linear.x, twists[-1].angular.z) != (0.0, 0.0)

    pump(graph, inputs, moving, timeout=10.0, what="a moving command")
    assert lifecycle.set("actor_node", Transition.TRANSITION_DEACTIVATE)
    count = len(twists)
    assert (twists[-1].linear.x, twists[-1].angular.z) == (0.0, 0.0)  # the last word: zero
    for _ in range(10):
        inputs()
        time.sleep(0.05)
    assert len(twists) == count and not actor.active and lifecycle.state("actor_node") == "inactive"

    # A manager whose graph should be active brings it back; then its ~/pause, ~/resume, ~/shutdown, ~/startup.
    _manager(graph, ["actor_node"])
    lifecycle.wait_state("actor_node", "active", 5.0)
    pump(graph, inputs, moving, timeout=10.0, what="moving again")
    paused = lifecycle.trigger("pause")
    assert paused.success, paused.message
    assert lifecycle.state("actor_node") == "inactive" and (twists[-1].linear.x, twists[-1].angular.z) == (0.0, 0.0)
    time.sleep(1.0)  # the manager's looks every 0.3 s must not undo a pause
    assert lifecycle.state("actor_node") == "inactive"
    resumed = lifecycle.trigger("resume")
    assert resumed.success and lifecycle.state("actor_node") == "active", resumed.message
    assert lifecycle.trigger("shutdown").success and lifecycle.state("actor_node") == "unconfigured"
    assert actor.model is None and actor.policy is None  # released
    assert lifecycle.trigger("startup").success and lifecycle.state("actor_node") == "active"


def test_a_node_started_on_its_own_comes_up_with_autostart(graph, tmp_path):
    lifecycle = Lifecycle(graph)
    processes = {}
    for autostart, expected in (("false", "unconfigured"), ("true", "active")):
        name = f"memory_autostart_{autostart}"
        processes[name] = subprocess.Popen([sys.executable, "-m", "ojepa_ros.nodes.entry", "memory_node", "--ros-args",
                                            "-r", f"__node:={name}", "-p", f"output_dir:={tmp_path}",
                                            "-p", f"autostart:={autostart}"])
    try:
        for name, expected in (("memory_autostart_false", "unconfigured"), ("memory_autostart_true", "active")):
            graph.wait_for(lambda: lifecycle.state(name) == expected, 60.0, f"{name} {expected}")
        time.sleep(0.5)
        assert lifecycle.state("memory_autostart_false") == "unconfigured"  # without autostart it waits
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGINT)
        assert [p.wait(timeout=10) for p in processes.values()] == [0, 0]


def test_a_node_the_supervisor_restarts_is_brought_back_to_active_by_the_manager(graph, tmp_path):
    name = "memory_restarted"  # a name of its own: the killed process lingers in DDS discovery for a while
    command = [sys.executable, "-m", "ojepa_ros.nodes.entry", "memory_node", "--ros-args", "-r", f"__node:={name}",
               "-p", f"output_dir:={tmp_path}"]
    supervisor = Supervisor({name: command}, log=lambda line: None)
    supervisor.start()
    lifecycle = Lifecycle(graph)
    _manager(graph, [name])
    try:
        lifecycle.wait_state(name, "active", 60.0)
        first = supervisor.children[name].process
        first.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not supervisor.respawned:
            supervisor.poll()
            time.sleep(0.05)
        assert supervisor.respawned == 1 and supervisor.children[name].process is not first
        graph.wait_for(lambda: lifecycle.state(name) == "active", 60.0, "the restarted node active")
        assert supervisor.children[name].process.poll() is None
    finally:
        supervisor.stop()


def test_a_node_that_does_not_answer_holds_up_only_the_nodes_after_it(graph, tmp_path):
    """A node silent on get_state (not started, or busy) keeps the nodes after it in bring-up order (the actor, last)
    unconfigured, but not the ones before it: a restarted sim_node comes back while a later node is slow to answer."""
    memory = overrides(output_dir=str(tmp_path))
    before = graph.add(MemoryNode(namespace="silent_after", parameter_overrides=memory), bring_up=False)
    after = graph.add(MemoryNode(namespace="silent_before", parameter_overrides=memory), bring_up=False)
    for namespace, names in (("silent_after", ["memory_node", "nobody_node"]),
                             ("silent_before", ["nobody_node", "memory_node"])):
        graph.add(LifecycleManagerNode(namespace=namespace, parameter_overrides=overrides(node_names=names,
                                                                                        retry_period=0.3)))
    lifecycle = Lifecycle(graph)
    lifecycle.wait_state("silent_after/memory_node", "active", 30.0)
    time.sleep(1.5)  # the other manager has had more than one look
    assert before.active and not after.configured and lifecycle.state("silent_before/memory_node") == "unconfigured"


def test_a_silent_node_last_heard_active_does_not_hold_up_a_restarted_node_after_it(graph, tmp_path):
    """A node that was active and then stops answering (busy, or its requests lost) is taken to be active still: a
    node after it in bring-up order that fell back (a restarted one) is brought up again all the same."""
    from ojepa_ros.nodes.runtime import NodeSpinner

    memory = overrides(output_dir=str(tmp_path))
    busy = MemoryNode(namespace="busy", parameter_overrides=memory)
    busy_spinner = NodeSpinner()  # its own, so that it can go silent while the rest spins
    busy_spinner.add(busy)
    later = graph.add(MemoryNode(namespace="busy", cli_args=["--ros-args", "-r", "__node:=memory_later"],
                                 parameter_overrides=memory), bring_up=False)
    graph.add(LifecycleManagerNode(namespace="busy", parameter_overrides=overrides(
        node_names=["memory_node", "memory_later"], retry_period=0.3)))
    lifecycle = Lifecycle(graph)
    try:
        lifecycle.wait_state("busy/memory_later", "active", 30.0)
        busy_spinner.stop()  # from here on its services take requests but never answer
        assert lifecycle.set("busy/memory_later", Transition.TRANSITION_DEACTIVATE)
        graph.wait_for(lambda: later.active, 10.0, "the node after the silent one active again")
    finally:
        busy_spinner.shutdown()
        busy.destroy_node()


def test_the_manager_works_inside_a_namespace(graph, tiny_model_path):
    """node_names are relative: under /robot1 the manager brings up /robot1/world_model_node, not /world_model_node."""
    model = overrides(model_path=str(tiny_model_path))
    inside = graph.add(WorldModelNode(namespace="robot1", parameter_overrides=model), bring_up=False)
    outside = graph.add(WorldModelNode(parameter_overrides=model), bring_up=False)
    graph.add(LifecycleManagerNode(namespace="robot1", parameter_overrides=overrides(node_names=["world_model_node"])))
    lifecycle = Lifecycle(graph)
    lifecycle.wait_state("robot1/world_model_node", "active", 10.0)
    assert inside.active and not outside.configured and lifecycle.state("world_model_node") == "unconfigured"
    response = lifecycle.trigger("pause", manager="robot1/lifecycle_manager_node")
    assert response.success and lifecycle.state("robot1/world_model_node") == "inactive"


def test_a_failing_configure_says_so_once_and_the_node_lives_on(graph, tmp_path, capfd):
    """The manager retries every second: the node's line is not repeated for every retry."""
    node = graph.add(CostNode(parameter_overrides=overrides(model_path=str(tmp_path / "absent.pt"))), bring_up=False)
    capfd.readouterr()
    for _ in range(5):
        assert not node.bring_up()
    time.sleep(0.2)  # rcutils writes stderr itself
    lines = [line for line in capfd.readouterr().err.splitlines() if "[cost_node]" in line]
    assert len(lines) == 1 and "not configured" in lines[0] and "absent.pt" in lines[0], lines
    assert not node.configured and node.model is None and graph.spinner.alive()


def test_the_launch_plan_starts_the_manager_with_the_nodes_it_can_find():
    """Every managed node the graph starts is in the manager's node_names, and no node it does not start."""
    import yaml

    from ojepa_ros.paths import config_file

    in_file = yaml.safe_load(config_file().read_text())["lifecycle_manager_node"]["ros__parameters"]["node_names"]
    assert in_file == list(ojepa_graph.MANAGED)
    for sim in ojepa_graph.LAUNCH_SIMS:
        started = {spec.name for spec in ojepa_graph.nodes(sim)}
        names = ojepa_graph.overrides(sim).get("lifecycle_manager_node", {}).get("node_names", in_file)
        assert "lifecycle_manager_node" in started
        assert set(names) <= started and set(ojepa_graph.MANAGED) & started == set(names), sim


def test_a_transition_that_raises_is_logged_and_leaves_the_node_unconfigured_and_silent(graph, tiny_model_path, capfd):
    actor = _actor(graph, tiny_model_path)
    twists = graph.collect(Twist, "/cmd_vel")
    lifecycle = Lifecycle(graph)
    assert lifecycle.set("actor_node", Transition.TRANSITION_CONFIGURE)
    actor.activate = lambda: 1 / 0  # a hook that breaks
    capfd.readouterr()
    assert not lifecycle.set("actor_node", Transition.TRANSITION_ACTIVATE)
    assert lifecycle.state("actor_node") == "unconfigured" and not actor.active and actor.model is None
    actor.stop()  # what the process does on exit: publish a zero command, here into a disabled publisher
    time.sleep(0.3)
    assert twists == [] and graph.spinner.alive()
    assert "<lambda> raised ZeroDivisionError" in capfd.readouterr().err


class SlowMemoryNode(MemoryNode):
    """A memory node whose configure takes 1.5 s (a model or world that loads slowly on a busy machine)."""

    def configure(self) -> str | None:
        time.sleep(1.5)
        return super().configure()


def test_a_configure_slower_than_the_timeout_is_said_as_such_and_the_node_comes_up(graph, tmp_path, capfd):
    """The manager's line says the node did not answer in time (not that it failed), and its next look finds the
    node configured and activates it."""
    node = graph.add(SlowMemoryNode(namespace="slow", parameter_overrides=overrides(output_dir=str(tmp_path))),
                     bring_up=False)
    capfd.readouterr()
    graph.add(LifecycleManagerNode(namespace="slow", parameter_overrides=overrides(
        node_names=["memory_node"], transition_timeout=0.5, retry_period=0.3)))
    Lifecycle(graph).wait_state("slow/memory_node", "active", 30.0)
    time.sleep(0.2)  # rcutils writes stderr itself
    lines = [line for line in capfd.readouterr().err.splitlines() if "[slow.lifecycle_manager_node]" in line]
    assert any("memory_node: configure not answered within transition_timeout (0.5 s)" in line for line in lines), lines
    assert not any("failed" in line for line in lines), lines
    assert node.active


def test_a_latched_message_that_came_while_inactive_is_handed_over_on_activation(graph, tmp_path):
    """As a late joiner gets a latched topic's current value: a goal latched before memory_node was active still
    opens its episode once it is; a plain topic's messages while inactive are dropped."""
    from geometry_msgs.msg import PoseStamped

    from ojepa_ros.nodes.qos import LATCHED

    memory = graph.add(MemoryNode(parameter_overrides=overrides(output_dir=str(tmp_path))), bring_up=False)
    heard: list = []
    memory.create_subscription(Twist, "lifecycle_probe_plain", heard.append, 10)
    source = graph.add(Node("latched_goal_source"))
    goal_pub = source.create_publisher(PoseStamped, "ojepa/goal", LATCHED)
    plain_pub = source.create_publisher(Twist, "lifecycle_probe_plain", 10)
    goal = PoseStamped()
    goal.pose.position.x, goal.pose.orientation.w = 3.0, 1.0
    goal_pub.publish(goal)
    graph.wait_for(lambda: memory.count_publishers("ojepa/goal") and memory.count_publishers(
        "lifecycle_probe_plain"), 10.0, "discovery")
    plain_pub.publish(Twist())
    time.sleep(0.5)  # delivered to the inactive node
    assert memory.episode is None and not heard
    assert memory.bring_up()
    assert memory.episode is not None and memory._goal_xy == (3.0, 0.0)
    assert not heard
