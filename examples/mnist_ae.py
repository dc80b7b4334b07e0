#!/usr/bin/env python
"""The deep autoencoder 784-1000-500-250-30 with tied (transposed) decoder weights, initialised
from the four RBMs (examples/rbm/rbm1..4) and fine-tuned with back-propagation on the squared
reconstruction error: the seed's AutoEncoder example (SINGA's examples/rbm/autoencoder.conf).

    python examples/mnist_ae.py [--steps 12200] [--dataset fashion_mnist]
    python examples/mnist_ae.py --no-pretrain      # the same net from random weights, to compare

See examples/_pretrain.py for the whole chain.
"""
import os
import sys

sys.path.append(os.path.join(os.path.dirname(__file__), '..'))
from singa.model import *  # noqa: E402,F403
from examples import _pretrain  # noqa: E402

sys.argv, extra = sys.argv[:1] + [a for a in sys.argv[1:] if a != '--no-pretrain'], '--no-pretrain' in sys.argv
args, singa_argv = _pretrain.parse(__doc__, _pretrain.AE_STEPS)
rbmid = 4
X_train, X_test, workspace = _pretrain.load(args, nb_rbm=0 if extra else rbmid + 1,
                                            workspace='examples/rbm/autoencoder' + ('-random' if extra else ''))
m = Sequential('autoencoder', [sys.argv[0]] + singa_argv)

hid_dim = [1000, 500, 250, 30]
m.add(Autoencoder(hid_dim, out_dim=784, activation='sigmoid', param_share=True))
if extra:
    # The baseline: nothing to load, so every owner param gets the RBMs' initialisation instead
    # (weights gaussian(0, 0.1), biases 0).
    from singa.proto import job_pb2
    for layer in m.layers:
        for p in getattr(layer, 'layer', job_pb2.LayerProto()).param:
            if not p.share_from:
                p.init.type = job_pb2.kGaussian if p.name.startswith('w') else job_pb2.kConstant
                if p.name.startswith('w'):
                    p.init.std = 0.1

agd = AdaGrad(lr=0.01)
topo = Cluster(workspace)
m.compile(loss='mean_squared_error', optimizer=agd, cluster=topo)
m.fit(X_train, alg='bp', nb_epoch=args.steps, with_test=True, seed=args.seed, device=args.device)
result = m.evaluate(X_test, test_steps=args.test_steps, test_freq=args.test_freq)
print('Final training metrics:', result.last('train'))
print('Final test metrics:', result.last('test'))
