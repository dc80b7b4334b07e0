"""SINGA v0.3 updaters (optimisers) and learning-rate generators (SINGA-V0.md 6.10, 6.11).

    updater = create_updater(job.updater)
    state = updater.init_state(param.data)          # dict of arrays, checkpointable
    updater.apply(step, param.data, param.grad, state, lr_scale=..., wd_scale=...)
"""
from singa.updaters.lr import (LR_GENERATORS, ExpLRGen, FixedLRGen, FixedStepLRGen, InverseLRGen,
                               InverseTLRGen, LinearLRGen, LRGenerator, StepLRGen, create_lr_generator)
from singa.updaters.base import CHUNK, Updater, get_num_threads, set_num_threads
from singa.updaters.rules import (UPDATERS, AdaDeltaUpdater, AdaGradUpdater, AdamMaxUpdater, AdamUpdater,
                                  NesterovUpdater, RMSPropUpdater, SGDUpdater, create_updater)

__all__ = [
    "create_updater", "create_lr_generator", "set_num_threads", "get_num_threads",
    "Updater", "SGDUpdater", "NesterovUpdater", "AdaGradUpdater", "RMSPropUpdater", "AdaDeltaUpdater",
    "AdamUpdater", "AdamMaxUpdater", "UPDATERS", "CHUNK",
    "LRGenerator", "FixedLRGen", "InverseTLRGen", "InverseLRGen", "ExpLRGen", "LinearLRGen", "StepLRGen",
    "FixedStepLRGen", "LR_GENERATORS",
]
