# covers: singa/updaters/base.py, singa/updaters/rules.py, singa/updaters/lr.py
"""Updaters and learning-rate generators against straightforward float64 references (SINGA-V0.md 6.10, 6.11).

One table (CASES) drives the update tests: each row is an updater config, an LR schedule and the
per-param scales; the implementation is compared over several steps with `reference_run`, written
directly from the formulas, for three array layouts (small float64, multi-chunk float32, and
non-contiguous float32 that takes the whole-array path).
"""
import io
import math

import numpy as np
import pytest
from google.protobuf import text_format

from singa.errors import ConfigError
from singa.proto import job_pb2
from singa.updaters import (CHUNK, base, create_lr_generator, create_updater, get_num_threads, rules,
                            set_num_threads)

STEPS = [0, 1, 2, 3, 4, 5]


def updater_proto(text):
    return text_format.Parse(text, job_pb2.UpdaterProto())


def lr_proto(text):
    return text_format.Parse(text, job_pb2.LRGenProto())


# ----------------------------------------------------------------------------------------------
# References, written from the tables of SINGA-V0.md 6.10/6.11 (float64, no tricks).

def reference_lr(p, step):
    t = p.type
    if t == job_pb2.kFixed:
        return p.base_lr
    if t == job_pb2.kInverseT:
        return p.base_lr / (1 + step / p.inverset_conf.final_lr)
    if t == job_pb2.kInverse:
        return p.base_lr * (1 + p.inverse_conf.gamma * step) ** (-p.inverse_conf.pow)
    if t == job_pb2.kExponential:
        return p.base_lr * 0.5 ** (step / p.exponential_conf.change_freq)
    if t == job_pb2.kLinear:
        r = step / p.linear_conf.change_freq
        return (1 - r) * p.base_lr + r * p.linear_conf.final_lr
    if t == job_pb2.kStep:
        return p.base_lr * p.step_conf.gamma ** math.floor(step / p.step_conf.change_freq)
    if t == job_pb2.kFixedStep:
        i = 0
        for k, s in enumerate(p.fixedstep_conf.step):
            if s <= step:
                i = k
        return p.fixedstep_conf.step_lr[i]
    raise AssertionError(t)


def reference_run(p, w, grads, steps, lr_scale=1.0, wd_scale=1.0, grad_scale=1.0):
    """Final weights and state after applying ``grads`` at ``steps``, in float64."""
    w = w.astype(np.float64)
    h = np.zeros_like(w)
    u = np.zeros_like(w)
    kind = p.type
    delta = 1e-8 if kind == job_pb2.kAdaGrad else p.delta   # SINGA's AdaGrad ignores `delta`
    for step, grad in zip(steps, grads):
        lr = reference_lr(p.learning_rate, step) * lr_scale
        wd = p.weight_decay * wd_scale
        g = grad.astype(np.float64)
        if kind in (job_pb2.kSGD, job_pb2.kNesterov, job_pb2.kAdaGrad, job_pb2.kRMSProp) \
                and p.clip_high > p.clip_low:
            g = np.clip(g, p.clip_low, p.clip_high)
        g = g * grad_scale
        if wd > 0:
            g = g + wd * w
        if kind == job_pb2.kSGD:
            if p.momentum > 0:
                h = p.momentum * h - lr * g
                w = w + h
            else:
                w = w - lr * g
        elif kind == job_pb2.kNesterov:
            h_prev = h
            h = p.momentum * h + lr * g
            w = w - ((1 + p.momentum) * h - p.momentum * h_prev)
        elif kind == job_pb2.kAdaGrad:
            h = h + g ** 2
            w = w - lr * g / np.sqrt(h + delta)
        elif kind == job_pb2.kRMSProp:
            rho = p.rmsprop_conf.rho
            h = rho * h + (1 - rho) * g ** 2
            w = w - lr * g / np.sqrt(h + delta)
        elif kind == job_pb2.kAdaDelta:
            rho = p.adadelta_conf.rho
            h = rho * h + (1 - rho) * g ** 2
            t = g * np.sqrt(u + delta) / np.sqrt(h + delta)
            u = rho * u + (1 - rho) * t ** 2
            w = w - lr * t
        elif kind == job_pb2.kAdam:
            b1, b2 = p.adam_conf.beta1, p.adam_conf.beta2
            h = b1 * h + (1 - b1) * g
            u = b2 * u + (1 - b2) * g ** 2
            w = w - lr * h / np.sqrt(u + delta)
        elif kind == job_pb2.kAdamMax:
            b1, b2 = p.adammax_conf.beta1, p.adammax_conf.beta2
            h = b1 * h + (1 - b1) * g
            u = np.maximum(b2 * u, np.abs(g)) + delta
            w = w - lr * h / u
        else:
            raise AssertionError(kind)
    return w, {"history": h, "update": u}


# ----------------------------------------------------------------------------------------------
# The table: id, updater config (learning_rate included), apply() keyword arguments.

LR_STEP = "learning_rate { type: kStep base_lr: 0.1 step_conf { change_freq: 2 gamma: 0.5 } }"
LR_EXP = "learning_rate { type: kExponential base_lr: 0.05 exponential_conf { change_freq: 3 } }"
LR_FIXED = "learning_rate { type: kFixed base_lr: 0.02 }"
CLIP = "clip_low: -0.4 clip_high: 0.6"
SCALES = dict(lr_scale=2.0, wd_scale=0.5, grad_scale=0.25)

CASES = [
    ("sgd", "type: kSGD " + LR_STEP, {}),
    ("sgd-wd-scales", "type: kSGD weight_decay: 0.05 " + LR_STEP, SCALES),
    ("sgd-clip", "type: kSGD %s %s" % (CLIP, LR_FIXED), dict(grad_scale=0.5)),
    ("sgd-momentum", "type: kSGD momentum: 0.9 " + LR_EXP, {}),
    ("sgd-momentum-wd-clip-scales", "type: kSGD momentum: 0.8 weight_decay: 0.01 %s %s" % (CLIP, LR_STEP),
     SCALES),
    ("sgd-wd-scale-zero", "type: kSGD momentum: 0.5 weight_decay: 0.3 " + LR_FIXED, dict(wd_scale=0.0)),
    ("nesterov", "type: kNesterov momentum: 0.9 " + LR_STEP, {}),
    ("nesterov-no-momentum", "type: kNesterov " + LR_FIXED, {}),
    ("nesterov-wd-clip-scales", "type: kNesterov momentum: 0.7 weight_decay: 0.02 %s %s" % (CLIP, LR_EXP),
     SCALES),
    ("adagrad", "type: kAdaGrad " + LR_STEP, {}),
    ("adagrad-delta-ignored-wd-clip", "type: kAdaGrad delta: 0.5 weight_decay: 0.01 %s %s" % (CLIP, LR_EXP),
     SCALES),
    ("rmsprop", "type: kRMSProp rmsprop_conf { rho: 0.9 } " + LR_FIXED, {}),
    ("rmsprop-delta-wd-clip-scales",
     "type: kRMSProp rmsprop_conf { rho: 0.8 } delta: 0.001 weight_decay: 0.01 %s %s" % (CLIP, LR_STEP),
     SCALES),
    ("adadelta", "type: kAdaDelta adadelta_conf { rho: 0.95 } delta: 0.000001 "
     "learning_rate { type: kFixed base_lr: 1.0 }", {}),
    ("adadelta-default-rho-wd-scales-clip-ignored", "type: kAdaDelta weight_decay: 0.01 %s %s" % (CLIP, LR_STEP),
     SCALES),
    ("adam", "type: kAdam adam_conf { beta1: 0.9 beta2: 0.999 } " + LR_FIXED, {}),
    ("adam-wd-scales-clip-ignored", "type: kAdam adam_conf { beta1: 0.8 beta2: 0.99 } delta: 0.0001 "
     "weight_decay: 0.02 %s %s" % (CLIP, LR_EXP), SCALES),
    ("adammax", "type: kAdamMax adammax_conf { beta1: 0.9 beta2: 0.999 } " + LR_FIXED, {}),
    ("adammax-defaults-wd-scales-clip-ignored", "type: kAdamMax delta: 0.001 weight_decay: 0.05 %s %s"
     % (CLIP, LR_STEP), SCALES),
]
CASE_IDS = [c[0] for c in CASES]

# Layouts: (shape, dtype, fortran order). The big one spans 3 chunks with a ragged last one; the
# Fortran-ordered one is not C-contiguous, so it takes the whole-array path (grad used as scratch).
LAYOUTS = {
    "small-f64": ((7, 5), np.float64, False),
    "chunked-f32": ((2, CHUNK + 1234), np.float32, False),
    "fortran-f32": ((60, 40), np.float32, True),
}
TOL = {np.float64: dict(rtol=1e-11, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}


def make_problem(shape, dtype, fortran, nsteps, seed=0):
    rng = np.random.default_rng(seed)
    order = "F" if fortran else "C"
    w = np.asarray(rng.uniform(-1, 1, size=shape), dtype=dtype, order=order)
    grads = [np.asarray(rng.standard_normal(shape), dtype=dtype, order=order) for _ in range(nsteps)]
    return w, grads


def run(updater, w, grads, steps, state=None, **scales):
    state = updater.init_state(w) if state is None else state
    for step, g in zip(steps, grads):
        updater.apply(step, w, g.copy(order="K"), state, **scales)
    return state


@pytest.fixture
def threads():
    saved = get_num_threads()
    yield set_num_threads
    set_num_threads(saved)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("case_id,conf,scales", CASES, ids=CASE_IDS)
def test_update_matches_reference(case_id, conf, scales, layout):
    shape, dtype, fortran = LAYOUTS[layout]
    p = updater_proto(conf)
    u = create_updater(p)
    w, grads = make_problem(shape, dtype, fortran, len(STEPS))
    w0 = w.copy()
    state = run(u, w, grads, STEPS, **scales)
    ref_w, ref_state = reference_run(p, w0, grads, STEPS, **scales)
    assert w.dtype == dtype and w.shape == shape
    np.testing.assert_allclose(w, ref_w, **TOL[dtype])
    assert not np.allclose(w, w0), "the update did nothing"
    for k, v in state.items():
        assert v.dtype == dtype and v.shape == shape
        np.testing.assert_allclose(v, ref_state[k], **TOL[dtype], err_msg="state %r" % k)


def test_state_names_follow_singa():
    expect = {"sgd": [], "sgd-momentum": ["history"], "nesterov-no-momentum": ["history"],
              "adagrad": ["history"], "rmsprop": ["history"], "adadelta": ["history", "update"],
              "adam": ["history", "update"], "adammax": ["history", "update"]}
    for case_id, conf, _ in CASES:
        if case_id in expect:
            state = create_updater(updater_proto(conf)).init_state(np.zeros((3, 2), np.float32))
            assert sorted(state) == expect[case_id], case_id
            assert all(v.dtype == np.float32 and v.shape == (3, 2) and not v.any() for v in state.values())


@pytest.mark.parametrize("case_id,conf,scales", CASES[::3] + [CASES[-3]], ids=CASE_IDS[::3] + [CASE_IDS[-3]])
def test_state_round_trip_continues_identically(case_id, conf, scales):
    """Snapshot after 3 steps, restore into fresh buffers (as a checkpoint does), continue: bit-identical."""
    shape, dtype, _ = LAYOUTS["chunked-f32"]
    w, grads = make_problem(shape, dtype, False, 6, seed=1)
    u = create_updater(updater_proto(conf))
    state = run(u, w, grads[:3], [0, 1, 2], **scales)
    buf = io.BytesIO()
    np.savez(buf, w=w, **{"updater/" + k: v for k, v in state.items()})
    run(u, w, grads[3:], [3, 4, 5], state, **scales)

    buf.seek(0)
    saved = np.load(buf)
    u2 = create_updater(updater_proto(conf))      # a new process would build a new updater
    w2 = np.zeros_like(w)
    w2[...] = saved["w"]
    state2 = u2.init_state(w2)
    for k in state2:
        state2[k][...] = saved["updater/" + k]
    run(u2, w2, grads[3:], [3, 4, 5], state2, **scales)
    np.testing.assert_array_equal(w2, w)
    for k in state:
        np.testing.assert_array_equal(state2[k], state[k])


@pytest.mark.parametrize("case_id", ["sgd-wd-scales", "adam-wd-scales-clip-ignored", "adadelta"])
def test_threads_give_bit_identical_results(case_id, threads):
    conf, scales = dict((c[0], c[1:]) for c in CASES)[case_id]
    shape = (CHUNK * 5 + 17,)
    results = []
    for n in (1, 3):
        threads(n)
        w, grads = make_problem(shape, np.float32, False, 3, seed=2)
        state = run(create_updater(updater_proto(conf)), w, grads, [0, 1, 2], **scales)
        results.append((w, state))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for k in results[0][1]:
        np.testing.assert_array_equal(results[0][1][k], results[1][1][k])


def test_adagrad_ignores_configured_delta():
    base = "type: kAdaGrad " + LR_FIXED
    w, grads = make_problem((4, 3), np.float64, False, 3)
    outs = []
    for extra in ("", " delta: 0.5"):
        w1 = w.copy()
        run(create_updater(updater_proto(base + extra)), w1, grads, [0, 1, 2])
        outs.append(w1)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_plain_sgd_learning_rate_and_scales():
    u = create_updater(updater_proto("type: kSGD " + LR_STEP))
    assert u.learning_rate(0) == pytest.approx(0.1) and u.learning_rate(2) == pytest.approx(0.05)
    assert u.init_state(np.zeros(3)) == {}
    w = np.ones(4)
    u.apply(2, w, np.full(4, 2.0), {}, lr_scale=3.0, grad_scale=0.5)
    np.testing.assert_allclose(w, 1 - 0.05 * 3.0 * 2.0 * 0.5)
    u.apply(2, w, np.full(4, 1e9), {}, lr_scale=0.0)     # a frozen param does not move
    np.testing.assert_allclose(w, 1 - 0.05 * 3.0 * 2.0 * 0.5)


# ----------------------------------------------------------------------------------------------
# Convergence smoke test: every rule reduces a badly scaled quadratic.

SMOKE = [
    "type: kSGD learning_rate { type: kFixed base_lr: 0.1 }",
    "type: kSGD momentum: 0.9 weight_decay: 0.0001 learning_rate { type: kFixed base_lr: 0.02 }",
    "type: kNesterov momentum: 0.9 learning_rate { type: kFixed base_lr: 0.02 }",
    "type: kAdaGrad learning_rate { type: kFixed base_lr: 0.3 }",
    "type: kRMSProp rmsprop_conf { rho: 0.9 } learning_rate { type: kFixed base_lr: 0.02 }",
    "type: kAdaDelta adadelta_conf { rho: 0.9 } delta: 0.0001 learning_rate { type: kFixed base_lr: 1 }",
    "type: kAdam learning_rate { type: kFixed base_lr: 0.05 }",
    "type: kAdamMax learning_rate { type: kFixed base_lr: 0.05 }",
]


@pytest.mark.parametrize("conf", SMOKE, ids=[c.split()[1] + ("-m" if "momentum" in c else "") for c in SMOKE])
def test_reduces_a_quadratic(conf):
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 5.0, size=(20, 10)).astype(np.float32)
    c = rng.standard_normal((20, 10)).astype(np.float32)
    w = np.zeros_like(c)
    u = create_updater(updater_proto(conf))
    state = u.init_state(w)
    loss = lambda: float(0.5 * np.sum(a * (w - c) ** 2))  # noqa: E731
    start = loss()
    for step in range(300):
        u.apply(step, w, a * (w - c), state)
    assert np.isfinite(w).all()
    assert loss() < 0.05 * start, (start, loss())


# ----------------------------------------------------------------------------------------------
# Learning-rate generators.

LR_CASES = [
    "type: kFixed base_lr: 0.3",
    "type: kInverseT base_lr: 0.1 inverset_conf { final_lr: 50 }",
    "type: kInverse base_lr: 0.01 inverse_conf { gamma: 0.0001 pow: 0.75 }",
    "type: kExponential base_lr: 0.2 exponential_conf { change_freq: 30 }",
    "type: kLinear base_lr: 0.1 linear_conf { change_freq: 100 final_lr: 0.001 }",
    "type: kStep base_lr: 0.1 step_conf { change_freq: 100 gamma: 0.1 }",
    "type: kFixedStep base_lr: 7 fixedstep_conf { step: 10 step_lr: 0.1 step: 50 step_lr: 0.01 "
    "step: 200 step_lr: 0.001 }",
]
LR_STEPS = [0, 1, 9, 10, 11, 49, 50, 99, 100, 101, 199, 200, 250, 1000, 123456]


@pytest.mark.parametrize("text", LR_CASES, ids=[t.split()[1] for t in LR_CASES])
def test_lr_generator_matches_formula(text):
    p = lr_proto(text)
    gen = create_lr_generator(p)
    for step in LR_STEPS:
        assert gen(step) == pytest.approx(reference_lr(p, step), rel=1e-12), step
        assert isinstance(gen(step), float)


def test_lr_step_is_a_staircase_and_linear_is_not_clamped():
    step = create_lr_generator(lr_proto(LR_CASES[5]))
    assert step(0) == step(99) == pytest.approx(0.1)
    assert step(100) == step(199) == pytest.approx(0.01)
    assert step(200) == pytest.approx(0.001)
    lin = create_lr_generator(lr_proto(LR_CASES[4]))
    base, final = np.float32(0.1), np.float32(0.001)
    assert lin(50) == pytest.approx((base + final) / 2)
    assert lin(100) == pytest.approx(final)
    assert lin(300) == pytest.approx(final + 2 * (final - base))   # keeps going, below zero
    assert lin(300) < 0


def test_fixed_step_before_at_after_thresholds():
    gen = create_lr_generator(lr_proto(LR_CASES[6]))
    expect = {0: 0.1, 9: 0.1, 10: 0.1, 49: 0.1, 50: 0.01, 51: 0.01, 199: 0.01, 200: 0.001, 10 ** 6: 0.001}
    for s, v in expect.items():
        assert gen(s) == pytest.approx(v), s


def test_fixed_step_equals_singa_stateful_generator_on_consecutive_steps():
    p = lr_proto(LR_CASES[6])
    steps, lrs = list(p.fixedstep_conf.step), list(p.fixedstep_conf.step_lr)
    idx = 0                       # SINGA: index starts at 0, advances by at most one per call
    gen = create_lr_generator(p)
    for s in range(0, 400):
        if idx < len(steps) - 1 and s >= steps[idx + 1]:
            idx += 1
        assert gen(s) == lrs[idx], s
    # and unlike SINGA's, ours is right straight after a resume at step 300
    assert create_lr_generator(p)(300) == lrs[2]


# ----------------------------------------------------------------------------------------------
# Errors.

def _raises(fn, *needles):
    with pytest.raises(ConfigError) as e:
        fn()
    msg = str(e.value)
    for n in needles:
        assert n in msg, (n, msg)
    return msg


@pytest.mark.parametrize("text,needles", [
    ("", ["`updater.type`", "kUserUpdater", "kSGD", "help:"]),
    ("user_type: 'mine'", ["`updater.user_type`", "'mine'", "registered from Python", "-module"]),
    ("type: kSGD", ["`updater.learning_rate.type`", "kUserChange", "help:"]),
    ("type: kRMSProp " + LR_FIXED, ["`updater.rmsprop_conf.rho`", "rmsprop_conf { rho: 0.9 }"]),
    ("type: kRMSProp rmsprop_conf { rho: 1.5 } " + LR_FIXED, ["`updater.rmsprop_conf.rho`", "[0, 1]", "1.5"]),
    ("type: kAdam adam_conf { beta1: 0.9 beta2: -0.1 } " + LR_FIXED, ["`updater.adam_conf.beta2`"]),
    ("type: kAdamMax adammax_conf { beta1: 2 beta2: 0.9 } " + LR_FIXED, ["`updater.adammax_conf.beta1`"]),
    ("type: kAdaDelta adadelta_conf { rho: -1 } " + LR_FIXED, ["`updater.adadelta_conf.rho`"]),
    ("type: kAdam delta: -1 " + LR_FIXED, ["`updater.delta`", ">= 0"]),
    # SINGA silently ignored a negative weight_decay (it applies only when > 0): refused now
    ("type: kSGD weight_decay: -0.5 " + LR_FIXED, ["`updater.weight_decay`", ">= 0", "-0.5", "help:"]),
], ids=["default-type", "user-type", "no-learning-rate", "rmsprop-no-rho", "rho-range", "adam-beta2",
        "adammax-beta1", "adadelta-rho", "negative-delta", "negative-wd"])
def test_updater_config_errors(text, needles):
    _raises(lambda: create_updater(updater_proto(text)), *needles)


@pytest.mark.parametrize("text,needles", [
    ("base_lr: 0.1", ["`updater.learning_rate.type`", "kUserChange", "kFixed", "help:"]),
    ("user_type: 'cosine'", ["`updater.learning_rate.user_type`", "'cosine'", "registered from Python"]),
    ("type: kStep", ["`updater.learning_rate.step_conf`", "change_freq"]),
    ("type: kLinear", ["`updater.learning_rate.linear_conf`"]),
    ("type: kExponential", ["`updater.learning_rate.exponential_conf`"]),
    ("type: kInverse", ["`updater.learning_rate.inverse_conf`"]),
    ("type: kInverseT", ["`updater.learning_rate.inverset_conf`"]),
    ("type: kFixedStep", ["`updater.learning_rate.fixedstep_conf`"]),
    ("type: kStep step_conf { gamma: 0.5 }", ["`updater.learning_rate.step_conf.change_freq`", "required"]),
    ("type: kLinear linear_conf { change_freq: 10 }", ["`updater.learning_rate.linear_conf.final_lr`"]),
    ("type: kStep step_conf { change_freq: 0 }", ["`updater.learning_rate.step_conf.change_freq`", "positive"]),
    ("type: kExponential exponential_conf { change_freq: -5 }", ["exponential_conf.change_freq`", "-5"]),
    ("type: kInverseT inverset_conf { final_lr: 0 }", ["inverset_conf.final_lr`", "positive"]),
    ("type: kInverse inverse_conf { gamma: -1 pow: 1 }", ["inverse_conf.gamma`", ">= 0"]),
    ("type: kFixedStep fixedstep_conf { step: 0 step: 10 step_lr: 0.1 }",
     ["`updater.learning_rate.fixedstep_conf`", "2 step, 1 step_lr"]),
    ("type: kFixedStep fixedstep_conf { }", ["fixedstep_conf`", "0 step, 0 step_lr"]),
    ("type: kFixedStep fixedstep_conf { step: 10 step_lr: 0.1 step: 5 step_lr: 0.01 }",
     ["fixedstep_conf.step`", "ascending", "step[1]=5"]),
], ids=["default-type", "user-type", "step-no-conf", "linear-no-conf", "exp-no-conf", "inv-no-conf",
        "invt-no-conf", "fixedstep-no-conf", "step-no-freq", "linear-no-final", "step-zero-freq",
        "exp-negative-freq", "invt-zero", "inv-negative-gamma", "fixedstep-lengths", "fixedstep-empty",
        "fixedstep-order"])
def test_lr_config_errors(text, needles):
    _raises(lambda: create_lr_generator(lr_proto(text)), *needles)


def test_wrong_argument_types_and_shapes():
    _raises(lambda: create_updater("type: kSGD"), "`updater`", "UpdaterProto", "str")
    _raises(lambda: create_lr_generator(job_pb2.UpdaterProto()), "LRGenProto")
    u = create_updater(updater_proto("type: kAdam " + LR_FIXED))
    w = np.zeros((3, 4), np.float32)
    _raises(lambda: u.apply(0, w, np.zeros((4, 3), np.float32), u.init_state(w)), "`grad`", "(3, 4)", "(4, 3)")
    _raises(lambda: u.apply(0, w, np.zeros_like(w), {"history": np.zeros_like(w)}), "`state`", "init_state",
            "'update'")
    _raises(lambda: u.apply(0, w, np.zeros_like(w), {"history": np.zeros(3), "update": np.zeros(3)}),
            "`state['history']`", "(3, 4)")
    _raises(lambda: set_num_threads(0), "`num_threads`")


def test_bad_thread_env(monkeypatch):
    monkeypatch.setenv("SINGA_UPDATER_THREADS", "many")
    _raises(base._default_threads, "`SINGA_UPDATER_THREADS`", "'many'")
    monkeypatch.setenv("SINGA_UPDATER_THREADS", "3")
    assert base._default_threads() == 3
    monkeypatch.delenv("SINGA_UPDATER_THREADS")
    assert base._default_threads() == 1
