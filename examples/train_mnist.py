#!/usr/bin/env python
"""SINGA v0.3's interactive training example (train_mnist.py): the seed's MLP trained by hand, one
layer call at a time, no fit(): feed a batch, ComputeFeature through the layers and the loss,
ComputeGradient back, and let the SGD updater Update each layer.

    python examples/train_mnist.py                 # one pass over the 60,000 training images, batch 64
    python examples/train_mnist.py --steps 200 --hidden 256

Uses real MNIST when found, else Fashion-MNIST. At the end the trained layer objects classify the
test images (the same objects, no checkpoint in between) and the params are saved in SINGA's
checkpoint format.
"""
import argparse
import os
import sys

import numpy as np

sys.path.append(os.path.join(os.path.dirname(__file__), '..'))
from singa.driver import Driver  # noqa: E402
from singa.layer import *  # noqa: E402,F403
from singa.model import *  # noqa: E402,F403
from singa.utils.helptext import plain  # noqa: E402
from examples.datasets.choose import CHOICES, mnist_like  # noqa: E402

parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument('--dataset', choices=CHOICES, default='auto')
parser.add_argument('--steps', type=int, default=None, help='batches to train on (default: one pass)')
parser.add_argument('--hidden', type=int, nargs='+', default=[2500, 2000, 1500, 1000, 500])
parser.add_argument('--lr', type=float, default=0.001)
parser.add_argument('--workspace', default='examples/mnist_interactive')
args, singa_argv = parser.parse_known_args()

(x, y), (x_test, y_test) = mnist_like(args.dataset).load_arrays()
x = (x.reshape(-1, 784).astype(np.float32) - 127.5) / 127.5
x_test = (x_test.reshape(-1, 784).astype(np.float32) - 127.5) / 127.5

# ---- SINGA v0.3's interactive script, as it was written ---------------------------------
d = Driver()
d.Init([sys.argv[0]] + singa_argv)

input = ImageInput(28, 28)
label = LabelInput()

nn = []
nn.append(input)
for n in args.hidden:
    nn.append(Dense(n, init='uniform'))
    nn.append(Activation('stanh'))
nn.append(Dense(10, init='uniform'))
loss = Loss('softmaxloss')

sgd = SGD(lr=args.lr, lr_type='step')

batchsize = 64
disp_freq = 10
steps = args.steps or x.shape[0] // batchsize

for i in range(steps):
    j = i % (x.shape[0] // batchsize)
    xb, yb = x[j * batchsize:(j + 1) * batchsize, :], y[j * batchsize:(j + 1) * batchsize]
    nn[0].Feed(xb)
    label.Feed(yb.reshape(-1, 1))
    for h in range(1, len(nn)):
        nn[h].ComputeFeature(nn[h - 1])
    loss.ComputeFeature(nn[-1], label)
    if (i + 1) % disp_freq == 0:
        print('  Step {:>3}: '.format(i + 1), end='')
        loss.display()
    loss.ComputeGradient()
    for h in range(len(nn) - 1, 0, -1):
        nn[h].ComputeGradient()
        sgd.Update(i + 1, nn[h])
# -----------------------------------------------------------------------------------------

# the trained objects on the test set: whole batches of 100, the predictions from the loss's output
correct = 0
for k in range(x_test.shape[0] // 100):
    nn[0].Feed(x_test[k * 100:(k + 1) * 100])
    label.Feed(y_test[k * 100:(k + 1) * 100])
    for h in range(1, len(nn)):
        nn[h].ComputeFeature(nn[h - 1])
    loss.ComputeFeature(nn[-1], label)
    correct += int((loss.GetData().reshape(100, 10).argmax(axis=1) == y_test[k * 100:(k + 1) * 100]).sum())
print('Test accuracy: %.4f (%d test images)' % (correct / (x_test.shape[0] // 100 * 100), x_test.shape[0] // 100 * 100))
print('Params saved to', save_model_parameter(steps, os.path.join(args.workspace, 'checkpoint'), nn[1:]))
