#!/usr/bin/env python
"""How good are the autoencoder's 30-d codes? Encode the train and test images with a checkpoint
of examples/mnist_ae.py and fit a multinomial logistic regression on the codes (train images),
reporting its test accuracy (Hinton & Salakhutdinov 2006 used such codes for retrieval and
classification).

    python examples/ae_codes.py [--checkpoint examples/rbm/autoencoder/checkpoint/step12200-worker0]

Without --checkpoint it takes the latest one in examples/rbm/autoencoder/checkpoint.

The encoder is the autoencoder's first half: sigmoid(x W1^T + b12) ... -> x W4^T + b42 (linear
code), with x = pixels / 255 and the param names of the Python examples (w1..w4, b12..b42).
"""
import argparse
import os
import sys

import numpy as np

sys.path.append(os.path.join(os.path.dirname(__file__), '..'))
from examples.datasets.choose import CHOICES, mnist_like  # noqa: E402
from singa.io import checkpoint as ckpt  # noqa: E402
from singa.io.record import load_record_file  # noqa: E402
from singa.utils.helptext import plain  # noqa: E402


def read_records(path):
    values, labels = load_record_file(path, 784)
    return values.astype(np.float32) / 255.0, np.asarray(labels)


def encode(params, x, batch=1000):
    out = []
    for i in range(0, len(x), batch):
        h = x[i:i + batch]
        for k in range(1, 5):
            h = h @ params['w%d' % k].T + params['b%d2' % k]
            if k < 4:
                h = 1.0 / (1.0 + np.exp(-h))
        out.append(h)
    return np.concatenate(out)


def logistic_regression(x, y, x_test, y_test, steps=500, lr=0.5, seed=0):
    """Softmax regression by full-batch gradient descent with momentum on standardised codes."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, x_test = (x - mu) / sd, (x_test - mu) / sd
    n, d = x.shape
    k = int(y.max()) + 1
    W = np.zeros((d, k))
    b = np.zeros(k)
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    onehot = np.eye(k)[y]
    for _ in range(steps):
        z = x @ W + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        vW = 0.9 * vW - lr * (x.T @ g + 1e-4 * W)
        vb = 0.9 * vb - lr * g.sum(0)
        W += vW
        b += vb
    return float(np.mean((x @ W + b).argmax(1) == y)), float(np.mean((x_test @ W + b).argmax(1) == y_test))


def main():
    ap = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dataset', choices=CHOICES, default='auto')
    ap.add_argument('--checkpoint', default=None,
                    help='default: the latest checkpoint in examples/rbm/autoencoder/checkpoint')
    ap.add_argument('--steps', type=int, default=500, help='gradient steps of the logistic regression')
    args = ap.parse_args()
    if args.checkpoint is None:
        step = ckpt.latest_checkpoint_step('examples/rbm/autoencoder')
        if step is None:
            sys.exit('no checkpoint in examples/rbm/autoencoder/checkpoint: run examples/mnist_ae.py first')
        args.checkpoint = ckpt.checkpoint_file('examples/rbm/autoencoder', step, 0)
    print('Checkpoint: %s' % args.checkpoint)
    params = {name: values for name, values, _ in ckpt.read_checkpoint(args.checkpoint)}
    missing = [n for n in ('w1', 'w2', 'w3', 'w4', 'b12', 'b22', 'b32', 'b42') if n not in params]
    if missing:
        sys.exit('%s holds no %s: pass a checkpoint written by examples/mnist_ae.py' % (args.checkpoint, missing))
    train_path, test_path = mnist_like(args.dataset).DATASET.locate()
    x, y = read_records(train_path)
    xt, yt = read_records(test_path)
    codes, codes_t = encode(params, x), encode(params, xt)
    train_acc, test_acc = logistic_regression(codes, y, codes_t, yt, steps=args.steps)
    print('codes: %d train x %d, %d test' % (codes.shape[0], codes.shape[1], codes_t.shape[0]))
    print('logistic regression on the codes: train accuracy %.4f, test accuracy %.4f' % (train_acc, test_acc))


if __name__ == '__main__':
    main()
