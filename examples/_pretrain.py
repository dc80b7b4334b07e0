"""What the RBM and autoencoder examples share: their command line and SINGA's data settings.

Each stage is one script, as in SINGA (mnist_rbm1.py .. mnist_rbm4.py, mnist_ae.py); a stage
loads the checkpoints the earlier stages wrote under examples/rbm/ (relative to the working
directory, as SINGA's helper did), so run them in order from one directory:

    for s in rbm1 rbm2 rbm3 rbm4 ae; do python examples/mnist_$s.py || break; done
"""
import argparse

from examples.datasets.choose import CHOICES, mnist_like
from singa.utils.helptext import plain

RBM_STEPS, AE_STEPS = 6000, 12200      # SINGA's rbm*.conf / autoencoder.conf


def parse(description, steps):
    ap = argparse.ArgumentParser(description=plain(description), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dataset', choices=CHOICES, default='auto')
    ap.add_argument('--steps', type=int, default=steps, help='training steps of this stage (default %(default)s)')
    ap.add_argument('--rbm-steps', type=int, default=RBM_STEPS,
                    help='steps the earlier RBM stages ran: their checkpoints step<N>-worker0 are loaded')
    ap.add_argument('--test-steps', type=int, default=100)
    ap.add_argument('--test-freq', type=int, default=500)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', type=int, nargs='+', default=None, help='GPU id(s): train with CuPy')
    args, singa_argv = ap.parse_known_args()
    return args, singa_argv


def load(args, nb_rbm, workspace):
    """SINGA's settings for these examples: batch 100, 784 pixels scaled by 1/255, the earlier
    stages' checkpoints (newest first, SINGA-107's order)."""
    dataset = mnist_like(args.dataset)
    return dataset.load_data(workspace=workspace, nb_rbm=nb_rbm, checkpoint_steps=args.rbm_steps,
                             batchsize=100, shape=784, std_value=255)
