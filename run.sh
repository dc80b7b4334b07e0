#!/usr/bin/env bash
# One entry point for newcomers and CI.
#   bash run.sh train [ARGS...]   set everything up, then train the seed's MLP on real data
#                                 (Fashion-MNIST, or MNIST when its files are present); ARGS go to
#                                 examples/mnist_mlp.py (e.g. --steps 9400 --lr 0.01 --momentum 0.9)
#   bash run.sh test [ARGS...]    set everything up, then run the test suite (ARGS go to pytest)
#   bash run.sh pretrain [ARGS...] the stacked RBMs (examples/mnist_rbm1-4.py), the autoencoder
#                                 fine-tuned from them (mnist_ae.py), and a logistic regression
#                                 on its 30-d codes (ae_codes.py); ARGS go to every stage
#                                 (e.g. --steps 200 --rbm-steps 200 for a quick run)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
    if [ ! -d /usr/share/datasets/fashion-mnist ]; then
        echo "== installing Debian's dataset-fashion-mnist (real data for the examples and tests)"
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist; } >/tmp/singa-apt.log 2>&1; then
            echo "warning: could not install dataset-fashion-mnist (see /tmp/singa-apt.log);" \
                 "set SINGA_FASHION_MNIST_DIR or SINGA_MNIST_DIR to the idx files instead" >&2
        fi
    fi
    if [ ! -f /usr/share/games/fortunes/computers ]; then
        # real English prose for char-rnn and rnnlm (singa/datasets/fortunes.py)
        echo "== installing Debian's fortunes (the text for the char-rnn and rnnlm examples and tests)"
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq fortunes; } >/tmp/singa-apt-fortunes.log 2>&1; then
            echo "warning: could not install fortunes (see /tmp/singa-apt-fortunes.log);" \
                 "set SINGA_FORTUNES_DIR to a folder of fortune files instead" >&2
        fi
    fi
    if ! command -v g++ >/dev/null 2>&1 && ! command -v c++ >/dev/null 2>&1; then
        # the CuPy stand-in's ElementwiseKernel compiles the CUDA C bodies as C++ (tests/test_fused_kernels.py)
        echo "== installing g++ (the GPU stand-in runs the fused kernels' bodies compiled as C++)"
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq g++; } >/tmp/singa-apt-gxx.log 2>&1; then
            echo "warning: could not install g++ (see /tmp/singa-apt-gxx.log); the stand-in GPU tests will fail" >&2
        fi
    fi
    if [ ! -x .venv/bin/python ]; then
        echo "== creating .venv"
        "$PY" -m venv .venv
    fi
    # Install only when something changed: the stamp holds a hash of the packaging files, the
    # extras and the interpreter, and `singa` must resolve to this checkout from another folder
    # (a moved checkout or an uninstalled singa reinstalls). SINGA_REINSTALL=1 forces it.
    local extras=dev,mpi stamp=.venv/.singa-install-stamp log=.venv/singa-install.log want
    want=$( { cat setup.cfg pyproject.toml; echo "extras=$extras"; .venv/bin/python -VV; } | sha256sum | cut -d' ' -f1)
    if [ "${SINGA_REINSTALL:-0}" = 0 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
        (here=$PWD && cd / && "$here/.venv/bin/python" -c 'import importlib.util as u, sys
s = u.find_spec("singa"); sys.exit(not (s and s.origin and s.origin.startswith(sys.argv[1])))' "$here/singa/") \
        >/dev/null 2>&1; then
        return 0
    fi
    echo "== installing singa and its dev tools into .venv (log: $log)"
    rm -f "$stamp"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    if ! .venv/bin/python -m pip install -q -e ".[$extras]" >"$log" 2>&1; then
        cat "$log" >&2
        echo "error: installing singa into .venv failed (the log above is in $log)" >&2
        exit 1
    fi
    # pip's own notes stay visible; only this machine's pip.conf noise about absent local indexes goes
    grep -v "^WARNING: Location '.*' is ignored" "$log" || true
    echo "$want" >"$stamp"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    train)
        setup
        exec .venv/bin/python examples/mnist_mlp.py "$@"
        ;;
    test)
        setup
        exec .venv/bin/python -m pytest -m "not slow" -q "$@"
        ;;
    pretrain)
        setup
        for stage in rbm1 rbm2 rbm3 rbm4 ae; do
            echo "== examples/mnist_$stage.py"
            .venv/bin/python "examples/mnist_$stage.py" "$@"
        done
        echo "== examples/ae_codes.py"
        exec .venv/bin/python examples/ae_codes.py
        ;;
    *)
        echo "usage: bash run.sh train [ARGS...] | bash run.sh test [PYTEST ARGS...] | bash run.sh pretrain [ARGS...]" >&2
        exit 2
        ;;
esac
