"""README.md's "Nodes, topics, services, parameters" tables against what the nodes really declare.

Parameters come from each node module's `PARAMS` (what ojepa_ros.nodes.params.declare declares), plus any
other parameter the started node holds. Topics, services, clients and actions come from the ROS
graph: each node of ojepa_ros.graph is started for real (with the tiny model where it needs one), once per
configuration that changes what it creates, and a probe node reads what it publishes, subscribes, serves and
calls. Both directions fail with the entry's name: a declared entry the README lacks, and a README row that
nothing declares. Types are compared too, where a row gives one.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ojepa_ros import graph

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Nodes, topics, services, parameters"
KINDS = ("pub", "sub", "srv", "client", "action", "param")
KIND_WORDS = {"pub": "publishes", "sub": "subscribes to", "srv": "serves", "client": "calls",
              "action": "serves the action", "param": "declares parameter"}

# What ROS gives every node: not the project's to document.
BUILTIN_PARAMS = {"use_sim_time", "start_type_description_service"}
BUILTIN_TOPICS = {"/parameter_events", "/rosout"}
# Each node looked at gets a namespace of its own (+ its variant's index): the graph answers "by node" for the
# first node of the name it knows, and in one process a destroyed node of the same name can linger there with
# no entities (Fast DDS), so a second node of one name and namespace was often read as declaring nothing.
NAMESPACE = "/readme_check_"
BUILTIN_SERVICES = ("describe_parameters", "get_parameter_types", "get_parameters", "get_type_description",
                    "list_parameters", "set_parameters", "set_parameters_atomically")

# Documented, but published only where tf2_msgs imports (a ROS 2 distro; the PyPI wheels lack it).
def _optional_topics() -> set[str]:
    from ojepa_ros.nodes.sim_node import TFMessage

    return set() if TFMessage is not None else {"/tf", "/tf_static"}


# Parameter values that change which topics and services a node creates; each is started once per entry
# and the README must cover the union (its notes say which configuration a row belongs to).
VARIANTS: dict[str, list[dict]] = {
    "sim_node": [{"world": "rooms"}, {"world": "gym", "gym_env_id": "InvertedPendulum-v5"}],
    "actor_node": [{"effector": "twist"}, {"effector": "float64_array"}],
    # The stamped choice rides along with another variant (fewer nodes to build); test_velocity_commands.py
    # covers it for every node.
    "memory_node": [{"record_images": False}, {"record_images": True, "enable_stamped_cmd_vel": True}],
    "world_model_node": [{}, {"enable_stamped_cmd_vel": True}],
    "collision_monitor_node": [{}, {"enable_stamped_cmd_vel": True}],
}


# -- the README side ------------------------------------------------------------------------------------------

@dataclass
class Row:
    node: str
    kind: str
    names: list[str]
    types: list[str]  # one per name; "" where the row gives none
    line: int


@dataclass
class Tables:
    rows: list[Row] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)  # the `### <node>` headings, in order
    problems: list[str] = field(default_factory=list)  # rows that cannot be read


def _cells(line: str) -> list[str]:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return cells[:3] + [" | ".join(cells[3:])] if len(cells) > 4 else cells


def _names(cell: str, node: str, kind: str = "param") -> list[str]:
    """The backticked names of a cell; `~/x` is node-private (/<node>/x), `<placeholder>` matches anything.
    A topic or service written without a leading / is relative (the README's convention, so a namespace moves
    it): the nodes here run in no namespace, where it resolves to /x."""
    names = []
    for name in re.findall(r"`([^`]+)`", cell):
        if name.startswith("~/"):
            name = f"/{node}/{name[2:]}"
        elif kind != "param" and not name.startswith("/"):
            name = f"/{name}"
        names.append(re.sub(r"<[^>]*>", "*", name))
    return names


def _types(cell: str, count: int) -> list[str] | None:
    """The type cell spread over `count` names: one type for all, one per name, or a list ending in `…`
    (the last one repeats). "as above" (or an empty cell) gives no type. None: the counts do not fit."""
    if not cell or cell.lower().startswith("as "):
        return [""] * count
    types = [t.strip() for t in cell.split(",")]
    if len(types) == 1:
        return types * count
    if types[-1].endswith(("…", "...")):
        types[-1] = types[-1].rstrip(".…").strip()
        types += [types[-1]] * max(0, count - len(types))
    return types if len(types) == count else None


def parse_tables(text: str) -> Tables:
    out = Tables()
    lines = text.splitlines()
    try:
        start = lines.index(SECTION)
    except ValueError:
        out.problems.append(f"README has no {SECTION!r} section")
        return out
    node = None
    for number, line in enumerate(lines[start + 1:], start + 2):
        if line.startswith("## "):
            break
        if line.startswith("### "):
            node = line[4:].split()[0]
            out.nodes.append(node)
            continue
        if not line.startswith("|") or node is None:
            continue
        cells = _cells(line)
        kind = cells[0]
        if kind in ("kind", "") or set(kind) <= set("-: "):
            continue  # header or separator
        where = f"README.md:{number} ({node})"
        if kind not in KINDS or len(cells) < 3:
            out.problems.append(f"{where}: row kind {kind!r} is not one of {KINDS}: {line}")
            continue
        names = _names(cells[1], node, kind)
        types = _types(cells[2], len(names))
        if not names:
            out.problems.append(f"{where}: no backticked name in {cells[1]!r}")
        elif types is None:
            out.problems.append(f"{where}: {len(names)} names but the type cell {cells[2]!r} does not fit them")
        else:
            out.rows.append(Row(node, kind, names, types, number))
    return out


# -- the code side --------------------------------------------------------------------------------------------

def _param_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)) and value:
        return f"{_param_type(value[0])}[{len(value)}]"
    return type(value).__name__


@dataclass
class Declared:
    """node -> kind -> name -> the types it is declared with (a topic may be declared with two in two
    configurations). Topic and service types as ROS spells them (std_msgs/msg/Bool); a parameter's as the
    README does, from its default (double, string[], double[3])."""

    entries: dict[str, dict[str, dict[str, set[str]]]] = field(default_factory=dict)

    def add(self, node: str, kind: str, name: str, type_: str) -> None:
        self.entries.setdefault(node, {k: {} for k in KINDS})[kind].setdefault(name, set()).add(type_)


def _builtin(node: str, kind: str, name: str) -> bool:
    if kind in ("pub", "sub"):
        return name in BUILTIN_TOPICS
    if kind == "srv":
        return name in {f"/{node}/{s}" for s in BUILTIN_SERVICES}
    return False


def _hidden(name: str) -> bool:
    """Topics and services ROS hides (an action's /_action/ plumbing is listed as the action)."""
    return any(part.startswith("_") for part in name.split("/"))


def _graph_view(probe, node, rosout: bool = True) -> dict[str, list[tuple[str, list[str]]]]:
    """What the ROS graph says `node` creates, once it lists everything the node object holds (in one process
    the graph learns of local entities at once; the wait only guards against a slow middleware)."""
    from rclpy.action import ActionServer
    from rclpy.action.graph import get_action_server_names_and_types_by_node

    name, namespace = node.get_name(), node.get_namespace()
    want = {"pub": len({p.topic_name for p in node.publishers}) + rosout,  # + /rosout, made below rclpy
            "sub": len({s.topic_name for s in node.subscriptions}),
            "srv": len({s.srv_name for s in node.services}),
            "client": len({c.srv_name for c in node.clients}),
            "action": len([w for w in node.waitables if isinstance(w, ActionServer)])}
    deadline = time.monotonic() + 5.0
    while True:
        view = {"pub": probe.get_publisher_names_and_types_by_node(name, namespace),
                "sub": probe.get_subscriber_names_and_types_by_node(name, namespace),
                "srv": probe.get_service_names_and_types_by_node(name, namespace),
                "client": probe.get_client_names_and_types_by_node(name, namespace),
                "action": get_action_server_names_and_types_by_node(probe, name, namespace)}
        seen = {kind: len([n for n, _ in entries if not _hidden(n)]) for kind, entries in view.items()}
        if all(seen[kind] >= count for kind, count in want.items()):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"the ROS graph lists {seen} for {name}, its node object holds {want}")
        time.sleep(0.05)


def collect_declared(model_path: Path, output_dir: Path) -> Declared:
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    declared = Declared()
    probe = Node(f"readme_probe_{time.monotonic_ns()}")
    try:
        for spec in graph.ALL_NODES:
            module = importlib.import_module(spec.module)
            params = module.PARAMS
            for name, p in params.items():
                declared.add(spec.name, "param", name, _param_type(p.default))
            base = {"model_path": str(model_path)} if spec.name in graph.MODEL_USERS else {}
            if spec.name == "memory_node":
                base["output_dir"] = str(output_dir)
            for index, variant in enumerate(VARIANTS.get(spec.name, [{}])):
                values = {**base, **variant}
                namespace = f"{NAMESPACE}{index}"
                node = getattr(module, spec.cls)(namespace=namespace,
                                                 parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
                try:
                    # A parameter declared outside PARAMS must be documented too.
                    for name in set(node.list_parameters([], 0).names) - set(params) - BUILTIN_PARAMS:
                        declared.add(spec.name, "param", name, _param_type(node.get_parameter(name).value))
                    # A node's companions (the actor's halt lane) are documented as the node's own.
                    companions = getattr(node, "companions", [])
                    for part in (node, *companions):
                        for kind, entries in _graph_view(probe, part, rosout=part is node).items():
                            for name, types in entries:
                                name = name.removeprefix(namespace)  # as the node names it in the root namespace
                                if not _hidden(name) and not _builtin(part.get_name(), kind, name):
                                    for t in types:
                                        declared.add(spec.name, kind, name, t)
                finally:
                    node.destroy_node()
    finally:
        probe.destroy_node()
    return declared


# -- comparing ------------------------------------------------------------------------------------------------

def _type_fits(kind: str, documented: str, actual: str) -> bool:
    if not documented:
        return True
    if kind == "param":
        if documented.endswith("[]"):  # an array of any length
            return actual.split("[")[0] == documented[:-2] and actual.endswith("]")
        return actual == documented
    package, _, name = actual.partition("/")
    name = name.rpartition("/")[2]  # std_msgs/msg/Bool -> Bool
    return documented in (name, f"{package}/{name}")


def compare(tables: Tables, declared: Declared) -> list[str]:
    problems = list(tables.problems)
    expected_nodes = [spec.name for spec in graph.ALL_NODES]
    for node in expected_nodes:
        if node not in tables.nodes:
            problems.append(f"README has no `### {node}` table (ojepa_ros/graph.py starts it)")
    for node in tables.nodes:
        if node not in expected_nodes:
            problems.append(f"README has a `### {node}` table, but ojepa_ros/graph.py starts no such node")

    # "as above": the type another row gives the same topic.
    documented_type = {(r.kind in ("pub", "sub"), n): t for r in tables.rows for n, t in zip(r.names, r.types) if t}

    used: set[tuple[int, str]] = set()  # (row line, pattern) that matched something declared
    for node, kinds in declared.entries.items():
        rows = [r for r in tables.rows if r.node == node]
        for kind, names in kinds.items():
            kind_rows = [r for r in rows if r.kind == kind]
            for name, actual_types in sorted(names.items()):
                exact = [(r, n, t) for r in kind_rows for n, t in zip(r.names, r.types) if n == name]
                hits = exact or [(r, n, t) for r in kind_rows for n, t in zip(r.names, r.types)
                                 if fnmatch.fnmatchcase(name, n)]
                if not hits:
                    problems.append(f"{node} {KIND_WORDS[kind]} {name} but README has no {kind} row for it")
                    continue
                if len(exact) > 1:
                    problems.append(f"README lists {kind} {name} for {node} more than once "
                                    f"(lines {', '.join(str(r.line) for r, _, _ in exact)})")
                for row, pattern, documented in hits:
                    used.add((row.line, pattern))
                    documented = documented or documented_type.get((kind in ("pub", "sub"), name), "")
                    wrong = [a for a in actual_types if not _type_fits(kind, documented, a)]
                    if wrong and len(wrong) == len(actual_types):
                        problems.append(f"README.md:{row.line} gives {node}'s {kind} {name} the type {documented!r}, "
                                        f"the code declares it as {', '.join(sorted(wrong))}")
    optional = _optional_topics()
    for row in tables.rows:
        for pattern in row.names:
            if (row.line, pattern) not in used and not (row.kind == "pub" and pattern in optional):
                problems.append(f"README.md:{row.line} lists {row.kind} {pattern} for {row.node}, "
                                f"but {row.node} does not declare it")
    return problems


# -- the tests ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def declared(ros, tiny_model_path, tmp_path_factory) -> Declared:
    return collect_declared(tiny_model_path, tmp_path_factory.mktemp("memory"))


def test_readme_tables_match_what_the_nodes_declare(declared):
    problems = compare(parse_tables(README.read_text()), declared)
    assert not problems, "README.md and the nodes disagree:\n" + "\n".join(problems)


def test_the_check_names_missing_and_extra_entries(declared):
    """The comparison itself: a dropped row, a dropped name, a row for nothing and a wrong type are each named."""
    text = README.read_text()
    assert compare(parse_tables(text), declared) == []
    cases = [  # (README text, what it becomes, the problem that must be named)
        ("| param | `scan_rate` | double | Hz |\n", "",
         "sim_node declares parameter scan_rate but README has no param row"),
        ("`odom_frame`, `base_frame`, ", "`odom_frame`, ",
         "sim_node declares parameter base_frame but README has no param row"),
        ("| srv | `~/reset` |", "| srv | `~/restart` |", "sim_node serves /sim_node/reset but README has no srv row"),
        ("| pub | `ojepa/surprise` |", "| pub | `ojepa/surprised` |",
         "world_model_node publishes /ojepa/surprise but README has no pub row"),
        ("| sub | `goal_pose` |", "| sub | `goal` |",
         "configurator_node subscribes to /goal_pose but README has no sub row"),
        ("| action | `navigate_to_pose` |", "| action | `navigate` |",
         "navigator_node serves the action /navigate_to_pose but README has no action row"),
    ]
    for old, new, message in cases:
        assert text.count(old) == 1, old
        problems = compare(parse_tables(text.replace(old, new)), declared)
        assert any(message in p for p in problems), (old, problems)

    extra = text.replace("| param | `scan_rate` | double | Hz |\n",
                         "| param | `scan_rate` | double | Hz |\n| param | `laser_range` | double | m |\n"
                         "| pub | `/sim/depth` | sensor_msgs/Image | |\n| srv | `~/pause` | std_srvs/Trigger | |\n")
    problems = compare(parse_tables(extra), declared)
    for message in ("lists param laser_range for sim_node, but sim_node does not declare it",
                    "lists pub /sim/depth for sim_node, but sim_node does not declare it",
                    "lists srv /sim_node/pause for sim_node, but sim_node does not declare it"):
        assert any(message in p for p in problems), (message, problems)

    twice = text.replace("| param | `scan_rate` | double | Hz |\n", "| param | `scan_rate` | double | Hz |\n" * 2)
    assert any("README lists param scan_rate for sim_node more than once" in p
               for p in compare(parse_tables(twice), declared))

    wrong_type = text.replace("| pub | `/clock` | rosgraph_msgs/Clock |", "| pub | `/clock` | std_msgs/Float64 |")
    wrong_type = wrong_type.replace("| param | `scan_rate` | double |", "| param | `scan_rate` | int |")
    wrong_type = wrong_type.replace("| action | `navigate_to_pose` | NavigateToPose |",
                                    "| action | `navigate_to_pose` | NavigateThroughPoses |")
    problems = compare(parse_tables(wrong_type), declared)
    assert any("sim_node's pub /clock the type 'std_msgs/Float64'" in p for p in problems), problems
    assert any("sim_node's param scan_rate the type 'int', the code declares it as double" in p
               for p in problems), problems
    assert any("navigator_node's action /navigate_to_pose the type 'NavigateThroughPoses'" in p
               for p in problems), problems
