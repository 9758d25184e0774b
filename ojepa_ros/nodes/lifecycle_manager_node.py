"""lifecycle_manager_node: brings the managed nodes up in order and keeps them in the state the graph should be in.

As Nav2's lifecycle_manager: it configures every node of `node_names` in order, then activates them in order; the
actor, listed last, is activated only once every node has configured, itself included (its world model loaded).
Every node is asked its state at once; one that does not answer holds up the nodes after it in that order (and a
pause or shutdown), not those before it, unless it was at the goal state when last heard from: a node busy for a
moment, or a request lost on its way, does not keep a restarted node behind it down. A node that fails a transition
stops the sequence there, with one log line naming it and what failed; every `retry_period` s the manager looks
again, so a model file that appears later brings the graph up.
The same look finds a node that restarted (back in `unconfigured`) and brings it to the graph's state. A restart is
also noticed at once: every WATCH_PERIOD s the manager reads (from the local DDS graph, no round trip) which
processes publish each node's `transition_event`, and a new one starts a look then, not up to `retry_period` later
(and, while it is not up yet, another every STATE_RESEND s for FRESH_S).

~/startup and ~/resume bring every node to active, ~/pause deactivates them in reverse order, ~/shutdown
deactivates and cleans them up in reverse order (their processes stay, unconfigured: ~/startup brings them back).
Each answers when the sequence has run: success when every node reached the state.

Its service clients (`<node>/get_state`, `<node>/change_state`, relative: in this node's namespace) live on a
hidden helper node, `_lifecycle_manager_node_client`, that a thread of its own spins while it waits for answers,
so this node's own executor stays free for the services above.
"""

from __future__ import annotations

import threading
import time

import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.client import Client
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger

from ojepa_ros.graph import MANAGED
from ojepa_ros.nodes import params as P

ACTIVE, INACTIVE = State.PRIMARY_STATE_ACTIVE, State.PRIMARY_STATE_INACTIVE
UNCONFIGURED = State.PRIMARY_STATE_UNCONFIGURED
LABELS = {ACTIVE: "active", INACTIVE: "inactive", UNCONFIGURED: "unconfigured"}
# (from, to) -> the transition that takes a node one step there
STEPS = {(UNCONFIGURED, INACTIVE): Transition.TRANSITION_CONFIGURE, (INACTIVE, ACTIVE): Transition.TRANSITION_ACTIVATE,
         (ACTIVE, INACTIVE): Transition.TRANSITION_DEACTIVATE, (INACTIVE, UNCONFIGURED): Transition.TRANSITION_CLEANUP}
# get_state is answered at once; a node that restarted under kill -9 can miss a request sent while it was being
# discovered, so the manager asks again every STATE_RESEND s, for at most STATE_TIMEOUT, then at its next look.
STATE_TIMEOUT = 1.0
STATE_RESEND = 0.2
WATCH_PERIOD = 0.05  # s between looks at the graph for a node process that (re)appeared
# For this long after a node process appeared, a look that did not bring the graph to its state is repeated every
# STATE_RESEND s rather than every retry_period: the new process is still being discovered, or still starting.
FRESH_S = 5.0
STEP_NAMES = {Transition.TRANSITION_CONFIGURE: "configure", Transition.TRANSITION_ACTIVATE: "activate",
              Transition.TRANSITION_DEACTIVATE: "deactivate", Transition.TRANSITION_CLEANUP: "cleanup"}


def _node_names_ok(names: list[str]) -> bool:
    return bool(names) and len(set(names)) == len(names) and all(n and not n.startswith("/") for n in names)


PARAMS = {
    "node_names": P.Param(list(MANAGED), "the managed nodes in bring-up order, relative (in this node's namespace); "
                          "activated in this order, deactivated in reverse", _node_names_ok,
                          "must be distinct relative node names, at least one", read_only=True),
    "autostart": P.Param(True, "bring every node to active at start-up", read_only=True),
    "retry_period": P.ranged(1.0, 0.1, 60.0, "s between looks at the nodes' states: a failed bring-up is retried, a "
                             "restarted node brought back"),
    "transition_timeout": P.ranged(10.0, 0.5, 300.0, "s a node has to answer one get_state or change_state"),
}


class LifecycleManagerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("lifecycle_manager_node", **kwargs)
        self.p = P.declare(self, PARAMS)
        self._caller = rclpy.create_node(f"_{self.get_name()}_client", namespace=self.get_namespace(),
                                         context=self.context, use_global_arguments=False,
                                         start_parameter_services=False)
        self._lifecycle_clients = {name: (self._caller.create_client(GetState, f"{name}/get_state"),
                                          self._caller.create_client(ChangeState, f"{name}/change_state"))
                                   for name in self.p["node_names"]}
        self._caller_executor = SingleThreadedExecutor(context=self.context)
        self._caller_executor.add_node(self._caller)
        self._cv = threading.Condition()
        self._goal: int | None = ACTIVE if self.p["autostart"] else None  # the state every node should be in
        self._asked = int(self.p["autostart"])  # requests for a pass (autostart: one at once), and passes run
        self._answered = 0
        self._outcome = (False, "")
        self._closing = False
        self._reported = ""
        for name, goal in (("startup", ACTIVE), ("resume", ACTIVE), ("pause", INACTIVE), ("shutdown", UNCONFIGURED)):
            self.create_service(Trigger, f"~/{name}", lambda _req, resp, g=goal: self._request(g, resp))
        self._events = {name: self._caller.resolve_topic_name(f"{name}/transition_event")
                        for name in self.p["node_names"]}
        self._seen: dict[str, set[bytes]] = {}  # node -> the endpoint ids of its transition_event publishers
        self._known: dict[str, int] = {}  # node -> the state it was in when last heard from
        self._worker = threading.Thread(target=self._run, daemon=True, name="lifecycle manager")
        self._worker.start()

    # -- services ---------------------------------------------------------------------------------
    def _request(self, goal: int, resp: Trigger.Response) -> Trigger.Response:
        """Set the graph's goal state, wait for one pass to run toward it, and say how it went."""
        names = self.p["node_names"]
        with self._cv:
            self._goal = goal
            self._asked += 1
            ticket = self._asked
            self._cv.notify_all()
            answered = self._cv.wait_for(lambda: self._answered >= ticket or self._closing,
                                         timeout=2 * len(names) * self.p["transition_timeout"] + 1.0)
            resp.success, resp.message = self._outcome if answered else (False, "no answer in time")
        return resp

    # -- the worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        last_look = fresh_until = -float("inf")
        outcome = (True, "")
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(lambda: self._asked > self._answered or self._closing, timeout=WATCH_PERIOD)
                    if self._closing:
                        return
                    goal, ticket, asked = self._goal, self._asked, self._asked > self._answered
                now = time.monotonic()
                appeared = self._appeared()  # every time: it also keeps the record of what was seen up to date
                if appeared:
                    fresh_until, last_look = now + FRESH_S, -float("inf")
                    for name in appeared:  # a new process starts unconfigured, whatever the old one was
                        self._known.pop(name, None)
                period = STATE_RESEND if not outcome[0] and now < fresh_until else self.p["retry_period"]
                if not (asked or now - last_look >= period):
                    continue
                last_look = now
                outcome = (True, "nothing asked") if goal is None else self._steer(goal)
                with self._cv:
                    self._answered, self._outcome = ticket, outcome
                    self._cv.notify_all()
        except Exception as err:  # noqa: BLE001 - the context went away under a call: only at shutdown
            if not self._closing and rclpy.ok(context=self.context):
                self.get_logger().error(f"lifecycle manager stopped: {err.__class__.__name__}: {err}")

    def _steer(self, goal: int) -> tuple[bool, str]:
        """One pass: each node's state, then the transitions toward `goal` in order (reverse order going down)."""
        names = list(self.p["node_names"])
        states = self._get_states(names)
        self._known.update({name: state for name, state in states.items() if state is not None})
        odd = [name for name in names if states[name] is not None and states[name] not in LABELS]
        if odd:
            return self._report(False, f"{odd[0]} is in state {states[odd[0]]} (finalized, or in a transition); "
                                       "left alone")
        silent = [name for name in names if states[name] is None]
        waiting = self._report(False, f"waiting for {silent[0]}: no answer on {silent[0]}/get_state (not started "
                                      "yet?)", warn=True) if silent else None
        if silent and goal != ACTIVE:
            return waiting
        holding = [name for name in silent if self._known.get(name) != goal]
        if holding:  # the nodes before it in bring-up order come up all the same (a restarted sim_node, the others busy)
            names = names[:names.index(holding[0])]
        order = names if goal == ACTIVE else names[::-1]
        passes = ((UNCONFIGURED, INACTIVE), (INACTIVE, ACTIVE)) if goal == ACTIVE else \
            ((ACTIVE, INACTIVE),) + (((INACTIVE, UNCONFIGURED),) if goal == UNCONFIGURED else ())
        for start, end in passes:  # all configured before any is activated; all deactivated before any cleanup
            for name in order:
                if states[name] == start:
                    step = STEPS[(start, end)]
                    problem = self._change(name, step)
                    if problem is not None:
                        return self._report(False, f"{name}: {STEP_NAMES[step]} {problem}; "
                                                   f"trying again every {self.p['retry_period']:g} s")
                    states[name] = self._known[name] = end
                    self.get_logger().info(f"{name} {LABELS[end]}")
        if waiting is not None:
            return waiting
        behind = [f"{name} {LABELS[states[name]]}" for name in names if states[name] != goal]
        if behind:  # pausing leaves an unconfigured node as it is
            return self._report(False, f"not every node {LABELS[goal]}: {', '.join(behind)}")
        return self._report(True, f"{len(names)} nodes {LABELS[goal]}: {', '.join(names)}")

    def _appeared(self) -> list[str]:
        """The nodes with a process new since the last call: a transition_event publisher not seen before (a
        process killed with SIGKILL lingers in the graph until its lease ends, so a count could stay the same)."""
        new = []
        for name, topic in self._events.items():
            ids = {bytes(info.endpoint_gid) for info in self._caller.get_publishers_info_by_topic(topic)}
            if ids - self._seen.get(name, set()):
                new.append(name)
            self._seen[name] = ids
        return new

    def _report(self, success: bool, message: str, warn: bool = False) -> tuple[bool, str]:
        """Log a pass's outcome when it differs from the last one's (a retry that fails again says nothing new):
        info on success, a warning for a node not there yet (usual while a graph starts), else an error."""
        if message != self._reported:
            self._reported = message
            if success:
                self.get_logger().info(message)
            elif warn:
                self.get_logger().warning(message)
            else:
                self.get_logger().error(message)
        return success, message

    def _get_states(self, names: list[str]) -> dict[str, int | None]:
        """Each node's state id, asked of all at once so that one slow to answer holds up no other's answer; None
        for a node that gave none within STATE_TIMEOUT (asked again every STATE_RESEND s)."""
        states: dict[str, int | None] = dict.fromkeys(names)
        deadline = time.monotonic() + min(STATE_TIMEOUT, self.p["transition_timeout"])
        while not self._closing and time.monotonic() < deadline and None in states.values():
            clients = {name: self._lifecycle_clients[name][0] for name in names if states[name] is None}
            asked = {name: client.call_async(GetState.Request()) for name, client in clients.items()
                     if client.service_is_ready()}
            round_end = min(deadline, time.monotonic() + STATE_RESEND)
            if not asked:
                time.sleep(0.05)  # no service found yet: look again in a moment
            while asked and not self._closing and time.monotonic() < round_end and not all(
                    f.done() for f in asked.values()):
                self._caller_executor.spin_once(timeout_sec=0.05)
            for name, future in asked.items():
                if future.done() and future.result() is not None:
                    states[name] = future.result().current_state.id
                elif not future.done():
                    clients[name].remove_pending_request(future)
        return states

    def _change(self, name: str, transition: int) -> str | None:
        """Ask `name` for `transition`: None once it is done, else what went wrong (for the log line)."""
        request = ChangeState.Request(transition=Transition(id=transition))
        response = self._call(self._lifecycle_clients[name][1], request, self.p["transition_timeout"])
        if response is None:  # busy, or gone; a transition that ends later is seen at the next look
            return f"not answered within transition_timeout ({self.p['transition_timeout']:g} s)"
        return None if response.success else "failed (its log says why)"

    def _call(self, client: Client, request, timeout: float):
        """The response, or None if the service is not there or does not answer within `timeout` s."""
        found_by = time.monotonic() + min(1.0, timeout)
        while not client.service_is_ready():  # in slices, so that stop() never waits on it
            if self._closing or time.monotonic() > found_by:
                return None
            time.sleep(0.05)
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and not self._closing and time.monotonic() < deadline:
            self._caller_executor.spin_until_future_complete(future, timeout_sec=0.1)
        if not future.done():
            client.remove_pending_request(future)
            return None
        return future.result()

    # -- stopping ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """End the worker (a call in flight is given up within 0.1 s)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._worker.join(timeout=1.0)

    def destroy_node(self) -> None:
        self.stop()
        self._caller_executor.shutdown(timeout_sec=0.5)
        self._caller.destroy_node()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    from ojepa_ros.nodes.runtime import run_node

    run_node(LifecycleManagerNode, args)


if __name__ == "__main__":
    main()
