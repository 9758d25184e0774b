"""CommandLimiter property tests over many random command streams, and the Watchdog (core, no ROS).

`hypothesis` is not in the venv, so the properties are checked over many numpy-seeded random streams.
"""

from __future__ import annotations

import numpy as np
import pytest

from ojepa_ros.core.safety import (CarriedClock, CommandLimiter, Watchdog, ramp_to_zero, stopping_time,
                                   within_bounds)

V, W, AV, AW = 0.5, 1.5, 1.0, 3.0
EPS = 1e-12


def random_stream(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Commands mixing sane values, huge values, NaN/inf and wrong shapes' worth of garbage; dts incl. 0, <0, NaN."""
    cmds = rng.normal(0.0, rng.choice([0.1, 1.0, 100.0]), size=(n, 2))
    bad = rng.random((n, 2))
    cmds[bad < 0.05] = np.nan
    cmds[(bad >= 0.05) & (bad < 0.08)] = np.inf
    cmds[(bad >= 0.08) & (bad < 0.1)] = -np.inf
    dts = rng.choice([rng.uniform(0.0, 0.5), 0.1, 0.02], size=n)
    odd = rng.random(n)
    dts[odd < 0.03] = 0.0
    dts[(odd >= 0.03) & (odd < 0.05)] = -0.1
    dts[(odd >= 0.05) & (odd < 0.06)] = np.nan
    return cmds, dts


@pytest.mark.parametrize("seed", range(200))
def test_output_never_exceeds_velocity_or_accel_limits_and_is_always_finite(seed):
    rng = np.random.default_rng(seed)
    limiter = CommandLimiter(V, W, AV, AW)
    cmds, dts = random_stream(rng, 100)
    previous = np.zeros(2)
    for cmd, dt in zip(cmds, dts):
        out = limiter.limit(cmd, dt)
        assert out.shape == (2,) and np.isfinite(out).all()
        assert abs(out[0]) <= V + EPS and abs(out[1]) <= W + EPS
        allowed = np.array([AV, AW]) * (dt if np.isfinite(dt) and dt > 0 else 0.0)
        assert (np.abs(out - previous) <= allowed + EPS).all()
        if np.isfinite(cmd).all():
            assert limiter.fault is None
            # It moves as far toward the (clamped) request as the limits allow, not less.
            target = np.clip(cmd, [-V, -W], [V, W])
            np.testing.assert_allclose(np.abs(out - previous), np.minimum(np.abs(target - previous), allowed),
                                       atol=1e-9)
        else:
            assert "invalid command" in limiter.fault
        previous = out


def test_non_finite_command_becomes_a_stop_ramped_at_the_accel_limit():
    limiter = CommandLimiter(V, W, AV, AW)
    for _ in range(20):
        limiter.limit(np.array([0.5, 1.0]), 0.1)
    np.testing.assert_allclose(limiter.last, [0.5, 1.0])
    out = limiter.limit(np.array([np.nan, 0.3]), 0.1)
    np.testing.assert_allclose(out, [0.4, 0.7])  # braking toward zero at 1 m/s^2 and 3 rad/s^2
    assert limiter.faults == 1 and "invalid command" in limiter.fault
    out = limiter.limit(np.array([0.0, 0.0]), 1.0)
    np.testing.assert_allclose(out, [0.0, 0.0])
    assert limiter.fault is None and limiter.faults == 1


def test_wrong_shape_is_refused_and_reset_returns_to_standstill():
    limiter = CommandLimiter(V, W, AV, AW)
    limiter.limit(np.array([0.3, 0.0]), 1.0)
    assert limiter.limit(np.array([1.0, 2.0, 3.0]), 1.0).tolist() == [0.0, 0.0]
    limiter.limit(np.array([0.3, 0.0]), 1.0)
    limiter.reset()
    assert limiter.last.tolist() == [0.0, 0.0] and limiter.faults == 0
    np.testing.assert_allclose(limiter.limit(np.array([0.5, 0.0]), 0.1), [0.1, 0.0])


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        CommandLimiter(V, W, 0.0, AW)
    with pytest.raises(ValueError):
        CommandLimiter(float("nan"), W, AV, AW)


def test_watchdog_reports_never_seen_and_stale_inputs():
    dog = Watchdog(0.2, names=("state", "odom"))
    assert dog.stale(0.0) == ["state", "odom"]
    dog.feed("state", 1.0)
    dog.feed("odom", 1.1)
    assert dog.stale(1.15) == []
    assert dog.stale(1.25) == ["state"]
    assert dog.stale(1.35) == ["state", "odom"]
    dog.feed("state", 1.3)
    assert dog.stale(1.35) == ["odom"]
    dog.feed("goal", 1.3)  # an input first seen on feed is watched from then on
    assert dog.stale(1.6) == ["state", "odom", "goal"]
    dog.reset()
    assert dog.stale(1.3) == ["state", "odom", "goal"]


def test_brake_stops_at_its_own_deceleration_never_past_zero():
    limiter = CommandLimiter(V, W, AV, AW, stop_accel=(2.0, 6.0))
    for _ in range(20):
        limiter.limit(np.array([0.5, -1.5]), 0.1)
    np.testing.assert_allclose(limiter.brake(0.1), [0.3, -0.9])  # 2 m/s^2 and 6 rad/s^2, twice the comfort ramp
    np.testing.assert_allclose(limiter.brake(0.1), [0.1, -0.3])
    np.testing.assert_allclose(limiter.brake(0.1), [0.0, 0.0])  # not past zero
    np.testing.assert_allclose(limiter.brake(float("nan")), [0.0, 0.0])
    assert CommandLimiter(V, W, AV, AW).stop_accel.tolist() == [AV, AW]  # default: the comfort limits
    with pytest.raises(ValueError):
        CommandLimiter(V, W, AV, AW, stop_accel=(0.0, 1.0))


@pytest.mark.parametrize("seed", range(50))
def test_ramp_to_zero_only_slows_down(seed):
    rng = np.random.default_rng(seed)
    last = rng.normal(0, 2, 2)
    decel, dt = rng.uniform(0.1, 5, 2), rng.choice([0.0, -1.0, np.nan, rng.uniform(0, 0.5)])
    out = ramp_to_zero(last, decel, dt)
    assert (np.abs(out) <= np.abs(last)).all() and (out * last >= 0).all()
    good_dt = dt if np.isfinite(dt) and dt > 0 else 0.0
    np.testing.assert_allclose(np.abs(last) - np.abs(out), np.minimum(np.abs(last), decel * good_dt), atol=1e-12)
    assert ramp_to_zero([np.nan, np.inf], decel, 0.1).tolist() == [0.0, 0.0]
    assert stopping_time([0.5, -1.5], [2.0, 6.0]) == pytest.approx(0.25)


def test_within_bounds_refuses_outside_and_non_finite():
    bounds = (0.0, 0.0, 8.0, 8.0)
    assert within_bounds((0.0, 8.0), bounds) and within_bounds((4.0, 4.0), bounds)
    for xy in ((-0.01, 4.0), (4.0, 8.01), (1e30, 4.0), (float("nan"), 4.0), (4.0, float("-inf"))):
        assert not within_bounds(xy, bounds)


def test_watchdog_invalidate_and_age():
    dog = Watchdog(0.2, names=("odom",))
    assert dog.age("odom", 5.0) == float("inf")
    dog.feed("odom", 4.9)
    assert dog.age("odom", 5.0) == pytest.approx(0.1) and dog.stale(5.0) == []
    dog.invalidate("odom")  # its latest message was refused: stale at once, not after the timeout
    assert dog.stale(5.0) == ["odom"]


def test_a_carried_clock_moves_on_while_its_reading_stands_still_and_follows_each_new_one():
    clock = CarriedClock()
    assert clock.now(10.0, 100.0) == 10.0
    assert clock.now(10.0, 100.6) == pytest.approx(10.6)  # /clock late: carried forward at the steady rate
    assert clock.now(10.5, 100.7) == 10.5  # a new reading wins, even one behind the carried time
    assert clock.now(10.5, 100.7) == 10.5
    assert clock.now(3.0, 101.0) == 3.0  # a simulator reset: back with it
    assert clock.now(3.0, 100.0) == 3.0  # a steady clock never runs back; if it did, no negative carry
