"""Planners over plain callables (pytorch_mppi style): nothing about the robot leaks into the optimiser.

dynamics(state [N,D], action [N,A]) -> next state [N,D]; with latent draws dynamics(state, action, z [N,Z])
cost(states [N,T,D], actions [N,T,A]) -> cost [N]

MPPI and CEM sample, Gradient descends through the dynamics, and any of them can hand its plan to a
few gradient steps (`refine_steps`): the hybrid. All share warm start, bounds and latent-draw risk.
"""

from ojepa_ros.core.planners.base import RISKS, Cost, DeadlineMissed, Dynamics, Planner, rollout
from ojepa_ros.core.planners.cem import CEM
from ojepa_ros.core.planners.gradient import Gradient
from ojepa_ros.core.planners.mppi import MPPI

__all__ = ["CEM", "MPPI", "RISKS", "Cost", "DeadlineMissed", "Dynamics", "Gradient", "Planner", "rollout"]
