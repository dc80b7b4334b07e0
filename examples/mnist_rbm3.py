#!/usr/bin/env python
"""Stage 3 of SINGA's stacked RBMs (examples/rbm/rbm3.conf), the seed's RBM example with rbmid = 3:
an RBM on the codes of the RBMs below it (their weights loaded from examples/rbm/rbm1..2), trained by contrastive divergence.

    python examples/mnist_rbm3.py [--steps 6000] [--dataset fashion_mnist]

See examples/_pretrain.py for the whole chain (rbm1 .. rbm4, then mnist_ae.py).
"""
import os
import sys

sys.path.append(os.path.join(os.path.dirname(__file__), '..'))
from singa.model import *  # noqa: E402,F403
from examples import _pretrain  # noqa: E402

args, singa_argv = _pretrain.parse(__doc__, _pretrain.RBM_STEPS)
rbmid = 3
X_train, X_test, workspace = _pretrain.load(args, nb_rbm=rbmid, workspace='examples/rbm/rbm%d' % rbmid)
m = Energy('rbm' + str(rbmid), [sys.argv[0]] + singa_argv)

out_dim = [1000, 500, 250]
m.add(RBM(out_dim, w_std=0.1, b_wd=0))

sgd = SGD(lr=0.1, decay=0.0002, momentum=0.8)
topo = Cluster(workspace)
m.compile(optimizer=sgd, cluster=topo)
m.fit(X_train, alg='cd', nb_epoch=args.steps, with_test=True, seed=args.seed, device=args.device)
result = m.evaluate(X_test, alg='cd', test_steps=args.test_steps, test_freq=args.test_freq)
print('Final training metrics:', result.last('train'))
print('Final test metrics:', result.last('test'))
