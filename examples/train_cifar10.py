#!/usr/bin/env python
"""SINGA v0.3's interactive training example (train_cifar10.py): the CIFAR-10 CNN of the seed
(conv/pool/relu/LRN x3, dense 10) trained by hand, one layer call at a time.

    python examples/train_cifar10.py [--steps 500] [--data-dir DIR]

The images minus the mean image (as SINGA's CIFAR-10 stores), batch 100; prints the loss and
accuracy every 10 steps and the accuracy of the trained objects on the first test images.
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
from examples.datasets import cifar10  # noqa: E402

parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument('--steps', type=int, default=500)
parser.add_argument('--test-images', type=int, default=1000)
parser.add_argument('--data-dir', default=None)
args, singa_argv = parser.parse_known_args()

(x, y), (x_test, y_test), mean = cifar10.load_arrays(data_dir=args.data_dir)
x = x.astype(np.float32) - mean
x_test = x_test.astype(np.float32) - mean

d = Driver()
d.Init([sys.argv[0]] + singa_argv)

input = ImageInput(32, 32, 3)
label = LabelInput()

nn = []
nn.append(input)
nn.append(Convolution2D(32, 5, 1, 2, w_std=0.0001, b_lr=2))
nn.append(MaxPooling2D(pool_size=(3, 3), stride=2))
nn.append(Activation('relu'))
nn.append(LRN2D(3, alpha=0.00005, beta=0.75))
nn.append(Convolution2D(32, 5, 1, 2, b_lr=2))
nn.append(Activation('relu'))
nn.append(AvgPooling2D(pool_size=(3, 3), stride=2))
nn.append(LRN2D(3, alpha=0.00005, beta=0.75))
nn.append(Convolution2D(64, 5, 1, 2))
nn.append(Activation('relu'))
nn.append(AvgPooling2D(pool_size=(3, 3), stride=2))
nn.append(Dense(10, w_wd=250, b_lr=2, b_wd=0))
loss = Loss('softmaxloss')

sgd = SGD(decay=0.004, momentum=0.9, lr_type='manual', step=(0, 60000, 65000), step_lr=(0.001, 0.0001, 0.00001))

batchsize = 100
disp_freq = 10
nb = x.shape[0] // batchsize
for i in range(args.steps):
    j = i % nb
    nn[0].Feed(x[j * batchsize:(j + 1) * batchsize])
    label.Feed(y[j * batchsize:(j + 1) * batchsize])
    for h in range(1, len(nn)):
        nn[h].ComputeFeature(nn[h - 1])
    loss.ComputeFeature(nn[-1], label)
    if (i + 1) % disp_freq == 0:
        print('  Step {:>3}: '.format(i + 1), end='')
        loss.display()
    loss.ComputeGradient()
    for h in range(len(nn) - 1, 0, -1):
        nn[h].ComputeGradient()
        sgd.Update(i, nn[h])

n = min(args.test_images, x_test.shape[0]) // batchsize * batchsize
correct = 0
for k in range(n // batchsize):
    nn[0].Feed(x_test[k * batchsize:(k + 1) * batchsize])
    label.Feed(y_test[k * batchsize:(k + 1) * batchsize])
    for h in range(1, len(nn)):
        nn[h].ComputeFeature(nn[h - 1])
    loss.ComputeFeature(nn[-1], label)
    pred = loss.GetData().reshape(batchsize, 10).argmax(axis=1)
    correct += int((pred == y_test[k * batchsize:(k + 1) * batchsize]).sum())
if n:
    print('Test accuracy: %.4f (%d test images)' % (correct / n, n))
