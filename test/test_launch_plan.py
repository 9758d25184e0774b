"""The launch description, without the launch packages: what `ros2 launch ojepa_ros agent.launch.py` starts for
given arguments comes from ojepa_ros.graph.launch_plan, and every bad value is refused before anything starts."""

from __future__ import annotations

import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ojepa_ros import graph
from ojepa_ros.paths import share_dir

SHARE = str(share_dir())
ROOT = Path(__file__).resolve().parents[1]


def plan(rviz_found: bool = False, gazebo_found: bool = False, **values):
    return graph.launch_plan(values, SHARE, rviz_found=rviz_found, gazebo_found=gazebo_found)


def by_name(processes):
    return {p.name: p for p in processes}


def test_defaults_start_the_simulator_and_the_six_modules_on_sim_time():
    processes, warnings = plan()
    assert [p.executable for p in processes] == [s.name for s in graph.nodes("rooms")]
    assert warnings == []
    for p in processes:
        assert p.package == "ojepa_ros" and p.name == p.executable and p.namespace == ""
        assert p.parameters == [f"{SHARE}/config/agent.yaml", {"use_sim_time": True}]
        assert p.ros_arguments == ["--log-level", "info"]


def test_without_an_embedded_simulator_time_is_wall_time_unless_asked():
    processes, _ = plan(sim="none")
    assert "sim_node" not in by_name(processes) and len(processes) == len(graph.AGENT)
    assert all(p.parameters[1]["use_sim_time"] is False for p in processes)
    processes, _ = plan(sim="none", use_sim_time="true")
    assert all(p.parameters[1]["use_sim_time"] is True for p in processes)
    processes, _ = plan(use_sim_time="False")
    assert all(p.parameters[1]["use_sim_time"] is False for p in processes)


def test_task_model_gym_and_log_level_reach_the_nodes_that_take_them(tmp_path):
    model = str(tmp_path / "m.pt")
    processes = by_name(plan(sim="gym", task="demo", model_path=model, log_level="DEBUG")[0])
    assert processes["configurator_node"].parameters[1]["task"] == "demo"
    assert processes["sim_node"].parameters[1]["world"] == "gym"
    assert processes["actor_node"].parameters[1]["effector"] == "float64_array"
    for name in graph.MODEL_USERS:
        assert processes[name].parameters[1]["model_path"] == model
    assert "model_path" not in processes["memory_node"].parameters[1]
    assert all(p.ros_arguments == ["--log-level", "debug"] for p in processes.values())


def test_a_namespace_moves_every_node_and_hands_each_its_own_parameters(tmp_path):
    params = tmp_path / "mine.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"answer": 42}},
                                      "actor_node": {"ros__parameters": {"control_rate": 5.0}}}))
    processes = by_name(plan(namespace="/robot1/", params_file=str(params))[0])
    assert {p.namespace for p in processes.values()} == {"/robot1"}
    # rcl applies a file's `actor_node:` section to /actor_node only, so the plan passes the values themselves
    assert processes["actor_node"].parameters[0] == {"answer": 42, "control_rate": 5.0}
    assert processes["sim_node"].parameters[0] == {"answer": 42}
    shipped = yaml.safe_load((ROOT / "config" / "agent.yaml").read_text())
    actor = by_name(plan(namespace="robot1")[0])["actor_node"]
    assert actor.parameters[0] == {**shipped["/**"]["ros__parameters"], **shipped["actor_node"]["ros__parameters"]}


def test_the_runner_rewrites_sections_to_match_in_any_namespace():
    doc = {"actor_node": {"ros__parameters": {"a": 1}}, "/**": {"ros__parameters": {"b": 2}}}
    assert graph.anywhere(doc) == {"/**/actor_node": {"ros__parameters": {"a": 1}}, "/**": {"ros__parameters": {"b": 2}}}
    assert graph.ros_arguments("robot1", "warn") == ["--log-level", "warn", "-r", "__ns:=/robot1"]
    assert graph.ros_arguments() == ["--log-level", "info"]


def test_robot_topics_are_renamed_for_every_node_after_its_own_remaps():
    processes = by_name(plan(odom_topic="/wheel/odometry", cmd_vel_topic="base/cmd_vel")[0])
    for p in processes.values():
        own = list({s.name: s for s in graph.ALL_NODES}[p.name].remaps)
        assert p.remappings == own + [("cmd_vel", "base/cmd_vel"), ("odom", "/wheel/odometry"), ("/clock", "clock")]
    assert processes["actor_node"].remappings[0] == ("cmd_vel", "cmd_vel_raw")  # the first rule that matches wins


def test_a_topic_rule_resolves_as_rcl_applies_it_first_match_first(ros):
    """The real rcl: the actor's own rename wins over a robot-topic rule given later or globally."""
    import rclpy
    from std_msgs.msg import Bool

    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "-r", "cmd_vel:=/base/cmd_vel", "-r", "odom:=/wheel/odometry"])
    try:
        actor = rclpy.create_node("remap_actor", context=context, cli_args=["--ros-args", "-r", "cmd_vel:=cmd_vel_raw"])
        monitor = rclpy.create_node("remap_monitor", context=context)
        process = rclpy.create_node("remap_process", context=context, use_global_arguments=False, cli_args=[
            "--ros-args", *graph.NodeSpec("a", "m", "C", remaps=(("cmd_vel", "cmd_vel_raw"),)).remap_args(),
            *graph.ros_arguments(remaps=[("cmd_vel", "/base/cmd_vel")])])
        names = [node.create_publisher(Bool, topic, 1).topic_name for node, topic in
                 ((actor, "cmd_vel"), (actor, "odom"), (monitor, "cmd_vel"), (process, "cmd_vel"))]
        assert names == ["/cmd_vel_raw", "/wheel/odometry", "/base/cmd_vel", "/cmd_vel_raw"]
    finally:
        rclpy.shutdown(context=context)


def test_each_namespaced_agent_runs_on_its_own_simulators_clock(ros):
    """The real rcl and time source: with the embedded simulator's clock rule, a node in /robot1 follows
    /robot1/clock and one in /robot2 follows /robot2/clock; two simulators on one domain would otherwise both
    publish /clock, and each node's time would jump between theirs. Gazebo's and no simulator's keep /clock."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock

    assert graph.clock_remaps("gazebo") == graph.clock_remaps("none") == []
    rule = [arg for src, dst in graph.clock_remaps("rooms") for arg in ("-r", f"{src}:={dst}")]
    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", *rule])
    executor = SingleThreadedExecutor(context=context)
    try:
        agents = {ns: rclpy.create_node("clock_user", namespace=ns, context=context,
                                        parameter_overrides=[Parameter("use_sim_time", value=True)])
                  for ns in ("robot1", "robot2")}
        sims = {ns: rclpy.create_node("clock_sim", namespace=ns, context=context) for ns in agents}
        publishers = {ns: sim.create_publisher(Clock, "/clock", 10) for ns, sim in sims.items()}
        assert [p.topic_name for p in publishers.values()] == ["/robot1/clock", "/robot2/clock"]
        for node in (*agents.values(), *sims.values()):
            executor.add_node(node)
        seconds = {"robot1": 100, "robot2": 500}
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(a.get_clock().now().nanoseconds == 0 for a in agents.values()):
            for ns, pub in publishers.items():
                msg = Clock()
                msg.clock.sec = seconds[ns]
                pub.publish(msg)
            executor.spin_once(timeout_sec=0.05)
        assert {ns: a.get_clock().now().nanoseconds // 10**9 for ns, a in agents.items()} == seconds
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)


@pytest.mark.parametrize("rule", ["odometry:=/x", "odom:=/9x", "odom:=a//b", "odom"])
def test_ojepa_agent_refuses_a_bad_remap_before_anything_starts(rule, capsys):
    from ojepa_ros.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["agent", "--remap", rule])
    assert stop.value.code == 2 and "--remap" in capsys.readouterr().err


@pytest.mark.parametrize("values, named", [
    ({"odom_topic": "odom topic"}, "odom_topic"), ({"image_topic": "/cam/"}, "image_topic"),
    ({"sim": "mujoco"}, "sim"), ({"log_level": "loud"}, "log_level"), ({"namespace": "1robot"}, "namespace"),
    ({"namespace": "robot one"}, "namespace"), ({"use_sim_time": "maybe"}, "use_sim_time"),
    ({"rviz": "sure"}, "rviz"), ({"params_file": "/no/such.yaml"}, "params_file"), ({"sims": "rooms"}, "sims"),
])
def test_a_bad_argument_is_refused_before_anything_starts(values, named):
    with pytest.raises(graph.LaunchError, match=named):
        plan(**values)


def test_gazebo_starts_gz_sim_with_the_generated_world_the_bridge_and_the_agent_on_sim_time(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_HOME", str(tmp_path))
    params = tmp_path / "mine.yaml"
    shipped = yaml.safe_load((ROOT / "config" / "agent.yaml").read_text())
    shipped["sim_node"]["ros__parameters"]["rooms_layout"] = "seed_7"
    params.write_text(yaml.safe_dump(shipped))
    processes, warnings = graph.launch_plan({"sim": "gazebo", "namespace": "robot1", "params_file": str(params)},
                                            SHARE, gazebo_found=True)
    gazebo, bridge, *frames = processes[:5]
    nodes = processes[5:]
    assert warnings == [] and isinstance(gazebo, graph.Include)
    assert (gazebo.package, gazebo.launch_file) == ("ros_gz_sim", "gz_sim.launch.py")
    flag, world_file = gazebo.arguments["gz_args"].split()
    assert flag == "-r" and Path(world_file) == tmp_path / "ojepa" / "gazebo" / "seed_7.sdf"
    assert ET.parse(world_file).getroot().find("world").get("name") == "seed_7"
    assert (bridge.package, bridge.executable, bridge.namespace) == ("ros_gz_bridge", "parameter_bridge", "/robot1")
    assert bridge.parameters == [{"config_file": f"{SHARE}/config/gz_bridge.yaml", "use_sim_time": True}]
    assert Path(bridge.parameters[0]["config_file"]).is_file()
    assert [p.name for p in nodes] == [s.name for s in graph.nodes("gazebo")]
    assert "sim_node" not in by_name(nodes) and "bumper_node" in by_name(nodes)
    assert all(p.parameters[1]["use_sim_time"] is True and p.namespace == "/robot1" for p in nodes)
    # The fixed frames sim_node publishes: the camera where the MuJoCo model mounts it, the scanner's height.
    from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv

    env = RoomsNavEnv(NavEnvConfig())
    sim = shipped["sim_node"]["ros__parameters"]
    frames = {(f.arguments[-3], f.arguments[-1]): f for f in frames}
    assert set(frames) == {(sim["base_frame"], sim["camera_frame"]), (sim["camera_frame"], sim["camera_optical_frame"]),
                           (sim["base_frame"], sim["scan_frame"])}
    for f in frames.values():
        assert (f.package, f.executable, f.namespace) == ("tf2_ros", "static_transform_publisher", "/robot1")
        assert f.parameters == [{"use_sim_time": True}] and f.remappings == [("/tf_static", "tf_static")]
    camera = dict(zip(*[iter(frames[(sim["base_frame"], sim["camera_frame"])].arguments[:14])] * 2))
    assert [float(camera[k]) for k in ("--x", "--y", "--z")] == pytest.approx(env.model.camera("robot_camera").pos)
    scan = dict(zip(*[iter(frames[(sim["base_frame"], sim["scan_frame"])].arguments[:14])] * 2))
    assert float(scan["--z"]) == env.config.scan_height
    env.close()


def test_gazebo_without_ros_gz_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_HOME", str(tmp_path))
    with pytest.raises(graph.LaunchError, match="ros_gz_sim"):
        plan(sim="gazebo", gazebo_found=False)
    assert not (tmp_path / "ojepa").exists()
    if not shutil.which("gz"):
        assert graph.gazebo_available() is False


def test_rviz_without_rviz2_warns_and_starts_the_agent_alone():
    processes, warnings = plan(rviz="true", rviz_found=False)
    assert "rviz2" not in by_name(processes) and len(processes) == len(graph.nodes("rooms"))
    assert len(warnings) == 1 and "rviz2 is not installed" in warnings[0]


def test_rviz_with_rviz2_gets_the_shipped_view_and_the_namespace():
    processes, warnings = plan(rviz="true", rviz_found=True, namespace="robot1", sim="none")
    rviz = by_name(processes)["rviz2"]
    assert warnings == [] and rviz.package == "rviz2" and rviz.namespace == "/robot1"
    assert rviz.arguments == ["-d", f"{SHARE}/rviz/agent.rviz"] and Path(rviz.arguments[1]).is_file()
    assert rviz.parameters == [{"use_sim_time": False}]


def test_rviz2_lookup_says_no_where_it_is_not_installed():
    if shutil.which("rviz2"):
        pytest.skip("rviz2 is installed here")
    assert graph.rviz_available() is False


def test_the_launch_file_declares_exactly_the_plan_arguments_and_readme_lists_them():
    source = (ROOT / "launch" / "agent.launch.py").read_text()
    assert "LAUNCH_ARGUMENTS.items()" in source and "launch_plan(values" in source
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Launch arguments"):]
    listed = re.findall(r"^\| `([a-z_]+)` \|", table[:table.index("\n\n", table.index("|"))], re.M)
    assert listed == list(graph.LAUNCH_ARGUMENTS)


def test_every_console_script_of_setup_py_has_an_entry_point():
    """setup.py's node executables start in ojepa_ros.nodes.entry (quiet Ctrl-C during start-up)."""
    from ojepa_ros.nodes import entry

    setup = (ROOT / "setup.py").read_text()
    assert "nodes.entry:{n}" in setup
    assert sorted(re.findall(r'"(\w+_node)"', setup[setup.index("NODES"):setup.index("]")])) == \
        sorted(s.name for s in graph.ALL_NODES)
    for spec in graph.ALL_NODES:
        assert callable(getattr(entry, spec.name))
    with pytest.raises(AttributeError):
        entry.no_such_node


def test_stamped_cmd_vel_reaches_every_node_that_sends_or_reads_velocity_and_the_bridge(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_HOME", str(tmp_path))
    processes = by_name(plan(enable_stamped_cmd_vel="true")[0])
    assert {n for n, p in processes.items() if p.parameters[1].get("enable_stamped_cmd_vel") is True} == \
        set(graph.VELOCITY_USERS)
    assert all("enable_stamped_cmd_vel" not in p.parameters[1] for p in by_name(plan()[0]).values())  # the file's
    assert all(p.parameters[1]["enable_stamped_cmd_vel"] is False
               for n, p in by_name(plan(enable_stamped_cmd_vel="false")[0]).items() if n in graph.VELOCITY_USERS)
    with pytest.raises(graph.LaunchError, match="enable_stamped_cmd_vel"):
        plan(enable_stamped_cmd_vel="stamped")

    def bridge_cmd_vel(**values):
        processes = graph.launch_plan({"sim": "gazebo", **values}, SHARE, gazebo_found=True)[0]
        (bridge,) = [p for p in processes if getattr(p, "name", "") == "gz_bridge"]
        entries = yaml.safe_load(Path(bridge.parameters[0]["config_file"]).read_text())
        (entry,) = [e for e in entries if e["ros_topic_name"] == "cmd_vel"]
        return entry["ros_type_name"], entry["gz_type_name"], len(entries)

    shipped = bridge_cmd_vel()
    assert shipped[:2] == ("geometry_msgs/msg/Twist", "gz.msgs.Twist")
    assert bridge_cmd_vel(enable_stamped_cmd_vel="true") == ("geometry_msgs/msg/TwistStamped", "gz.msgs.Twist",
                                                              shipped[2])
    params = tmp_path / "stamped.yaml"  # the params file's choice, when the argument is not given
    doc = yaml.safe_load((ROOT / "config" / "agent.yaml").read_text())
    doc["/**"]["ros__parameters"]["enable_stamped_cmd_vel"] = True
    params.write_text(yaml.safe_dump(doc))
    assert bridge_cmd_vel(params_file=str(params))[0] == "geometry_msgs/msg/TwistStamped"
