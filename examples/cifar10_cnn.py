#!/usr/bin/env python
"""The seed's CNN example: SINGA's examples/cifar10/job.conf network, on CIFAR-10.

    python examples/cifar10_cnn.py                 # as the seed: 1000 steps, test 30 x 1000 images every 300
    python examples/cifar10_cnn.py --steps 20000 --test-freq 1000

CIFAR-10 is looked for where SINGA looked (examples/cifar10/ under the working directory) and in
the places singa.datasets.cifar10 lists; pass --data-dir to point at cifar-10-binary.tar.gz or its
unpacked folder. The lines between the markers are the seed document's script with its two typos
fixed: compile() names the loss (the seed's `compile(updater=sgd, ...)` builds a net without one,
which cannot train) and evaluate() gets the batch size by keyword (the seed's positional 1000 lands
in `alg`). SINGA's own examples/cifar10_cnn.py did the same.
"""
import argparse
import os
import sys

sys.path.append(os.path.join(os.path.dirname(__file__), '..'))
from singa.model import *  # noqa: E402,F403
from singa.utils.helptext import plain  # noqa: E402
from examples.datasets import cifar10  # noqa: E402

parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument('--steps', type=int, default=1000, help='training steps (nb_epoch); default as the seed')
parser.add_argument('--test-steps', type=int, default=30)
parser.add_argument('--test-freq', type=int, default=300)
parser.add_argument('--test-batch', type=int, default=1000)
parser.add_argument('--momentum', type=float, default=0.9, help="SINGA's example and job.conf use 0.9")
parser.add_argument('--data-dir', default=None)
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--device', type=int, nargs='+', default=None, help='GPU id(s): train with CuPy')
args, singa_argv = parser.parse_known_args()

# ---- the seed's script ----------------------------------------------------------------
X_train, X_test, workspace = cifar10.load_data(data_dir=args.data_dir)

m = Sequential('cnn', [sys.argv[0]] + singa_argv)

m.add(Convolution2D(32, 5, 1, 2, w_std=0.0001, b_lr=2))
m.add(MaxPooling2D(pool_size=(3,3), stride=2))
m.add(Activation('relu'))
m.add(LRN2D(3, alpha=0.00005, beta=0.75))

m.add(Convolution2D(32, 5, 1, 2, b_lr=2))
m.add(Activation('relu'))
m.add(AvgPooling2D(pool_size=(3,3), stride=2))
m.add(LRN2D(3, alpha=0.00005, beta=0.75))

m.add(Convolution2D(64, 5, 1, 2))
m.add(Activation('relu'))
m.add(AvgPooling2D(pool_size=(3,3), stride=2))

m.add(Dense(10, w_wd=250, b_lr=2, b_wd=0, activation='softmax'))

sgd = SGD(decay=0.004, momentum=args.momentum, lr_type='manual', step=(0,60000,65000), step_lr=(0.001,0.0001,0.00001))
topo = Cluster(workspace)
m.compile(loss='categorical_crossentropy', updater=sgd, cluster=topo)
m.fit(X_train, nb_epoch=args.steps, with_test=True, seed=args.seed, device=args.device)
result = m.evaluate(X_test, batch_size=args.test_batch, test_steps=args.test_steps, test_freq=args.test_freq)
# ---------------------------------------------------------------------------------------

print('Final training metrics:', result.last('train'))
print('Final test metrics (%d test batches of %d):' % (args.test_steps, args.test_batch), result.last('test'))
