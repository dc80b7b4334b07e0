#!/usr/bin/env python
"""A LeNet-style CNN, SINGA's examples/mnist/conv.conf written with the Python API.

    python examples/mnist_cnn.py                        # conv.conf's settings: 10000 steps, batch 64
    python examples/mnist_cnn.py --steps 2000 --test-freq 500
    python examples/mnist_cnn.py --steps 15000 --dropout 0.5 --lr-type manual \
        --step 0 10000 13000 --step-lr 0.01 0.001 0.0001     # annealed: the 91% run in the README

conv 20 k5 -> max-pool k2 s2 -> conv 50 k5 -> max-pool k2 s2 -> dense 500 relu -> dense 10 softmax;
weights uniform sqrt(3/fan_in), biases 0 with lr x2; SGD momentum 0.9, weight decay 0.0005,
lr 0.01 * (1 + 1e-4 step)^-0.75; inputs x/255. Uses real MNIST when found, else Fashion-MNIST.
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
parser.add_argument('--steps', type=int, default=10000)
parser.add_argument('--test-steps', type=int, default=100)
parser.add_argument('--test-freq', type=int, default=500)
parser.add_argument('--dropout', type=float, default=0.0, help='dropout ratio after the dense 500 layer (0: none, as conv.conf)')
parser.add_argument('--lr-type', default='inverse',
                    help="SGD lr_type (conv.conf: 'inverse'; 'manual' uses --step/--step-lr)")
parser.add_argument('--step', type=int, nargs='+', default=[0], help="lr_type 'manual': steps where the lr changes")
parser.add_argument('--step-lr', type=float, nargs='+', default=[0.01], help="lr_type 'manual': lr from each step on")
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--device', type=int, nargs='+', default=None, help='GPU id(s): train with CuPy')
parser.add_argument('--history', metavar='PREFIX', help='save the metrics to PREFIX.csv and the curves to PREFIX.png')
parser.add_argument('--workspace', default=None)
args, singa_argv = parser.parse_known_args()

dataset = mnist_like(args.dataset)

X_train, X_test, workspace = dataset.load_data(workspace=args.workspace, batchsize=64, shape=(1, 28, 28),
                                               std_value=255, random_skip=5000)
m = Sequential('conv', [sys.argv[0]] + singa_argv)
parw = Parameter(init='uniformsqrtfanin')
parb = Parameter(init='constant', value=0, lr=2)
m.add(Convolution2D(20, 5, 1, 0, w_param=parw, b_param=parb))
m.add(MaxPooling2D(pool_size=(2, 2), stride=2))
m.add(Convolution2D(50, 5, 1, 0, w_param=parw, b_param=parb))
m.add(MaxPooling2D(pool_size=(2, 2), stride=2))
m.add(Dense(500, w_param=parw, b_param=parb, activation='relu'))
if args.dropout > 0:
    m.add(Dropout(args.dropout))
m.add(Dense(10, w_param=parw, b_param=parb, activation='softmax'))

if args.lr_type == 'inverse':
    sgd = SGD(lr=0.01, momentum=0.9, decay=0.0005, lr_type='inverse', gamma=0.0001, pow=0.75)
else:
    sgd = SGD(lr=args.step_lr[0], momentum=0.9, decay=0.0005, lr_type=args.lr_type, step=tuple(args.step),
              step_lr=tuple(args.step_lr))
m.compile(loss='categorical_crossentropy', optimizer=sgd, cluster=Cluster(workspace))
m.fit(X_train, nb_epoch=args.steps, with_test=True, seed=args.seed, device=args.device)
result = m.evaluate(X_test, batch_size=100, test_steps=args.test_steps, test_freq=args.test_freq)

print('Final training metrics:', result.last('train'))
print('Final test metrics (%d test batches of 100):' % args.test_steps, result.last('test'))
if args.history:
    print('History:', m.history.to_csv(args.history + '.csv'), m.history.plot(args.history + '.png', title=m.jobconf.name))
