#!/usr/bin/env python
"""The seed's MLP example: 784-2500-2000-1500-1000-500-10 with scaled tanh, trained with SGD.

    python examples/mnist_mlp.py                         # the seed script as written (1000 steps)
    python examples/mnist_mlp.py --steps 9400 --lr 0.01 --momentum 0.9 --test-freq 940

Uses real MNIST when its files are found (see singa.datasets), otherwise Fashion-MNIST, and says
which. The lines between the markers are the seed document's script.
"""
import argparse
import os
import sys

sys.path.append(os.path.join(os.path.dirname(__file__), '..'))
from singa.model import *  # noqa: E402,F403
from singa.utils.helptext import plain  # noqa: E402
from examples.datasets.choose import CHOICES, mnist_like  # noqa: E402

parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument('--dataset', choices=CHOICES, default='auto')
parser.add_argument('--steps', type=int, default=1000, help='training steps (nb_epoch); default as the seed')
parser.add_argument('--lr', type=float, default=0.001)
parser.add_argument('--lr-type', default='step', help="SGD lr_type (seed: 'step'; 'manual' uses --step/--step-lr)")
parser.add_argument('--step', type=int, nargs='+', default=[0], help="lr_type 'manual': steps where the lr changes")
parser.add_argument('--step-lr', type=float, nargs='+', default=[0.01], help="lr_type 'manual': lr from each step on")
parser.add_argument('--momentum', type=float, default=0.0)
parser.add_argument('--test-steps', type=int, default=10)
parser.add_argument('--test-freq', type=int, default=60)
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--device', type=int, nargs='+', default=None, help='GPU id(s): train with CuPy')
parser.add_argument('--history', metavar='PREFIX', help='save the metrics to PREFIX.csv and the curves to PREFIX.png')
parser.add_argument('--workspace', default=None)
args, singa_argv = parser.parse_known_args()

dataset = mnist_like(args.dataset)

# ---- the seed's script ----------------------------------------------------------------
X_train, X_test, workspace = dataset.load_data(workspace=args.workspace)

m = Sequential('mlp', [sys.argv[0]] + singa_argv)

m.add(Dense(2500, init='uniform', activation='stanh'))
m.add(Dense(2000, init='uniform', activation='stanh'))
m.add(Dense(1500, init='uniform', activation='stanh'))
m.add(Dense(1000, init='uniform', activation='stanh'))
m.add(Dense(500,  init='uniform', activation='stanh'))
m.add(Dense(10, init='uniform', activation='softmax'))

sgd = SGD(lr=args.lr, lr_type=args.lr_type, momentum=args.momentum, step=tuple(args.step), step_lr=tuple(args.step_lr))
topo = Cluster(workspace)
m.compile(loss='categorical_crossentropy', optimizer=sgd, cluster=topo)
m.fit(X_train, nb_epoch=args.steps, with_test=True, seed=args.seed, device=args.device)
result = m.evaluate(X_test, batch_size=100, test_steps=args.test_steps, test_freq=args.test_freq)
# ---------------------------------------------------------------------------------------

print('Final training metrics:', result.last('train'))
print('Final test metrics (%d test batches of 100):' % args.test_steps, result.last('test'))
if args.history:
    print('History:', m.history.to_csv(args.history + '.csv'), m.history.plot(args.history + '.png', title=m.jobconf.name))
