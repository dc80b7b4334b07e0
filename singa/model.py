"""SINGA v0.3's keras-like Python API: ``from singa.model import *``.

``Sequential`` / ``Energy`` models collect layers, ``compile()`` adds the updater, the cluster and
the loss, ``fit()`` / ``evaluate()`` add the data layers and the step settings, assemble the
JobProto (``m.jobconf``, text via ``m.display()``) and run it with ``singa.driver.Driver``.
Semantics are SINGA-V0.md 1.3 and 1.7; ``nb_epoch`` counts mini-batch steps, not epochs.

Differences to SINGA v0.3, on purpose (the rest is as SINGA):

* errors are ConfigErrors with a hint instead of asserts, prints or silent no-ops: unknown
  ``lr_type``, ``loss``, init, activation or keyword argument, ``compile()`` without optimizer
  or cluster, ``fit()``/``evaluate()`` without data, test-only ``evaluate()`` without checkpoint,
  ``Cluster()`` without workspace, ``Energy.add`` of something that is no RBM or Data layer
  (SINGA dropped it), duplicate layer or param names in the built net;
* ``compile(updater=...)`` is accepted for ``optimizer=`` (python.md's CNN example uses it);
* ``batch_size=`` in fit()/evaluate() really replaces the store's batch size (v0.3 appended a
  second value that was never used);
* an explicit ``checkpoint_freq=`` in fit() is kept (v0.3 overwrote it with nb_epoch);
* ``device=`` replaces ``JobProto.gpu`` (v0.3 appended, so fit+evaluate doubled it) and layer
  types are NOT rewritten to cuDNN types: the engine runs the same layer types on CuPy;
* ``evaluate()`` after a ``fit()`` that already ran is test-only and loads the checkpoint that
  fit wrote (``m.last_checkpoint_path``, which includes the ``checkpoint/`` folder); an explicit
  ``checkpoint_path`` is also honoured when evaluate trains (v0.3 ignored it there);
* ``evaluate()`` keeps fit()'s ``alg`` unless given (v0.3 reset it to 'bp');
* ``show_acc``'s softmax reads the loss layer's prediction input (v0.3 took the last layer
  object, the same thing in its examples but the loss itself after an appended Loss);
* the name counters restart with every Model, and data layers made before the Model take the
  name of the model's other data layers or ``data0`` (see ``singa.utils.utility``);
* more updaters (Nesterov, RMSProp, AdaDelta, Adam, AdamMax) and lr schedules
  ('exponential', 'inverse', 'inverset'; 'fixedstep' = 'manual');
* ``to_jobproto()`` / ``from_jobproto()`` convert between models and JobProtos (job.conf).
"""
import math
import numbers
import sys  # exported: SINGA v0.3's model.py had no __all__, so `from singa.model import *` gave sys

import numpy

from google.protobuf import text_format

from singa.errors import ConfigError
from singa.layer import *  # noqa: F401,F403
from singa.cluster import mpi as _mpi
from singa.layer import (Accuracy, Autoencoder, Dense, Layer, Loss, Parameter, RBM,
                         replace_fields)
from singa.layer import __all__ as _layer_all
from singa.proto import job_pb2
from singa.results import Results
from singa.utils.message import (enumAlgType, enumPhase, enumUpdaterType, field_names, setval,
                                 unknown_field_error)
from singa.utils.utility import generate_name, name_epoch, reset_names

_JOB_FIELDS = tuple(field_names(job_pb2.JobProto))
_LOSS_NAMES = ("categorical_crossentropy", "mean_squared_error")
_LOSS_TYPES = (job_pb2.kSoftmaxLoss, job_pb2.kEuclideanLoss, job_pb2.kCudnnSoftmaxLoss)

# Under mpiexec, join the MPI world as soon as a script imports the API: an exception anywhere in
# the script (loading data, building the model) then aborts every rank instead of leaving the
# others waiting for it in a collective.
if _mpi.launched_by_mpiexec():
    _mpi.world()


def _say(msg):
    """A note for the user, printed once per job (by rank 0 under mpiexec)."""
    comm = _mpi.world() if _mpi.launched_by_mpiexec() else None
    if comm is None or comm.rank == 0:
        print(msg, flush=True)


def _short(v):
    r = repr(v) if not isinstance(v, numpy.ndarray) else "array of shape %s" % (v.shape,)
    return r if len(r) < 60 else r[:57] + "..."


def _checkpoint_step(path):
    from singa.io.checkpoint import step_of
    return step_of(path) or 0


def _layer_type_name(t):
    return job_pb2.LayerType.Name(t) if t in job_pb2.LayerType.values() else str(t)


def _check_job_kwargs(method, fields, extra):
    for key, val in fields.items():
        if key not in _JOB_FIELDS and key not in extra:
            raise ConfigError(
                "Invalid value for `%s` (a keyword argument of %s). Expected one of %s or a JobProto field "
                "(%s). Received: %s=%r\nhelp: check the spelling; SINGA v0.3 silently ignored unknown keywords"
                % (key, method, ", ".join(extra), ", ".join(_JOB_FIELDS), key, val))


def _is_array(x):
    return isinstance(x, (numpy.ndarray, list, tuple)) and not getattr(x, "is_datalayer", False)


def _positive_int(v, name, method):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ConfigError("Invalid value for `%s` of %s(). Expected a positive integer. Received: %r" % (name, method, v))
    return int(v)


def _alg_value(alg, method):
    valid = {"bp": job_pb2.kBP, "cd": job_pb2.kCD, "bptt": job_pb2.kBPTT}
    if isinstance(alg, str):
        key = alg.lower()
        key = key[1:] if key[:1] == "k" and key[1:] in valid else key
        if key in valid:
            return valid[key]
    elif isinstance(alg, numbers.Integral) and not isinstance(alg, bool) and alg in valid.values():
        return int(alg)
    hint = "pass alg='bp' (back-propagation), 'cd' (contrastive divergence) or 'bptt'"
    if isinstance(alg, numbers.Integral):
        hint += "; to set the batch size use the keyword: %s(X, batch_size=%d)" % (method, alg)
    raise ConfigError("Invalid value for `alg` of %s(). Expected 'bp', 'cd' or 'bptt'. Received: %r\nhelp: %s"
                      % (method, alg, hint))


def _paths(value, name):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError("Invalid value for `%s`. Expected a path or a list of paths. Received: %r" % (name, value))


def _gpu_ids(device):
    ids = [device] if isinstance(device, numbers.Integral) else device
    if not isinstance(ids, (list, tuple)) or not all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise ConfigError("Invalid value for `device`. Expected a GPU id or a list of GPU ids (ints >= 0). "
                          "Received: %r\nhelp: device=0 or device=[0]" % (device,))
    return [int(i) for i in ids]


class _ConfLayer(Layer):
    """A LayerProto taken verbatim from a JobProto (``Model.from_jobproto``): build() copies it as is."""
    _verbatim = True
    checkpoint = None

    def __init__(self, proto):
        self.layer = job_pb2.LayerProto()
        self.layer.CopyFrom(proto)
        self.is_datalayer = not proto.srclayers and (100 <= proto.type < 200 or proto.user_type == "kData")
        self._name_epoch = name_epoch()
        self._auto_named = False


class Model:
    """A job under construction: ``jobconf`` (the JobProto) and ``layers`` (the layer objects).

    ``Model(name='my model', argv=None, label=False)``; ``argv`` (e.g. ``sys.argv``) goes to the
    Driver; ``label`` (deprecated) adds a kLabel layer. Constructing a Model restarts the name
    counters, so every model gets SINGA's default names (layer1, w1, ...).
    """

    def __init__(self, name="my model", argv=None, label=False):
        self._name_epoch = reset_names()
        self.jobconf = job_pb2.JobProto(name=name)
        self.layers = []
        self.label = label
        self.argv = list(argv) if argv else []
        self.result = None
        self.last_checkpoint_path = None
        self.cudnn = False        # set when device= is given; kept for SINGA compatibility only
        self.accuracy = False
        self.testonly = False     # whether the last evaluate() configured a test-only job
        self._net_template = None
        self._trained = False
        self._seed = 0
        self._callbacks, self._terminate_on_nan, self._verbose = [], True, 1
        self._resume_from = None  # a checkpoint the next training run continues (fit(x, y) after fit(x, y))
        self._array_fitted = False
        self.history = None       # a singa.history.History once training ran

    # -- layers -----------------------------------------------------------------
    def add(self, layer):
        """Append a layer (Data layers are copied so the model owns its store settings)."""
        self._append(layer)

    def _append(self, layer, index=None):
        if not isinstance(getattr(layer, "layer", None), job_pb2.LayerProto):
            raise ConfigError("Invalid value for `layer` of %s.add(). Expected a layer object (Dense(...), "
                              "Activation(...), Data(...), ...). Received: %r" % (type(self).__name__, layer))
        if layer.is_datalayer:
            layer = self._adopt_data(layer)
        if index is None:
            self.layers.append(layer)
        else:
            self.layers.insert(index, layer)
        return layer

    def _adopt_data(self, data):
        data = data._copy() if hasattr(data, "_copy") else data
        if getattr(data, "_auto_named", False):
            existing = [l.layer.name for l in self.layers if l.is_datalayer]
            if existing:
                data.layer.name = existing[0]     # one name for all phases, so srclayers resolve
            elif getattr(data, "_name_epoch", self._name_epoch) < self._name_epoch:
                data.layer.name = "data0"         # made before this model: SINGA's fresh-process name
        return data

    def exist_datalayer(self, phase):
        """Whether a data layer of ``phase`` ('train', 'val', 'test') has been added."""
        p = enumPhase(phase)
        return any(l.is_datalayer and p in l.layer.include for l in self.layers)

    def _data_layers(self, phase):
        p = enumPhase(phase)
        return [l for l in self.layers if l.is_datalayer and p in l.layer.include]

    def size(self):
        return len(self.layers)

    def layer_by_id(self, k):
        return self.layers[k]

    def layer_by_name(self, name):
        for l in self.layers:
            if l.layer.name == name:
                return l
        raise ConfigError("Invalid value for `name`. Expected one of the model's layer names (%s). Received: %r"
                          % (", ".join(l.layer.name for l in self.layers), name))

    def show(self):
        for l in self.layers:
            print(text_format.MessageToString(l.layer))

    # -- compile ----------------------------------------------------------------
    def compile(self, optimizer=None, cluster=None, loss=None, topk=1, updater=None, **kwargs):
        """Set the updater (``optimizer``, or ``updater``) and cluster, and the loss layer.

        ``loss='categorical_crossentropy'`` turns a final softmax into kSoftmaxLoss (``topk``)
        or appends a ``Loss('softmaxloss')``; ``'mean_squared_error'`` likewise gives
        kEuclideanLoss; ``None`` adds no loss (RBM models).
        """
        if kwargs:
            key = next(iter(kwargs))
            raise ConfigError("Invalid value for `%s` (a keyword argument of compile()). Expected optimizer, "
                              "updater, cluster, loss or topk. Received: %s=%r" % (key, key, kwargs[key]))
        if optimizer is not None and updater is not None and optimizer is not updater:
            raise ConfigError("Invalid value for `updater`. Expected it only as another name for `optimizer`. "
                              "Received both optimizer=%r and updater=%r\nhelp: pass one of them"
                              % (optimizer, updater))
        optimizer = optimizer if optimizer is not None else updater
        if optimizer is None:
            raise ConfigError("Invalid value for `optimizer` of compile(). Expected an Updater such as SGD(...). "
                              "Received: None\nhelp: m.compile(optimizer=SGD(lr=0.001), cluster=Cluster(workspace))")
        if cluster is None:
            raise ConfigError("Invalid value for `cluster` of compile(). Expected a Cluster. Received: None\n"
                              "help: m.compile(optimizer=sgd, cluster=Cluster(workspace='examples/mnist'))")
        upd = optimizer.proto if hasattr(optimizer, "proto") else optimizer
        if not isinstance(upd, job_pb2.UpdaterProto):
            raise ConfigError("Invalid value for `optimizer` of compile(). Expected an Updater (SGD, AdaGrad, ...). "
                              "Received: %r" % (optimizer,))
        clu = cluster.proto if hasattr(cluster, "proto") else cluster
        if not isinstance(clu, job_pb2.ClusterProto):
            raise ConfigError("Invalid value for `cluster` of compile(). Expected a Cluster. Received: %r\n"
                              "help: cluster=Cluster(workspace='examples/mnist')" % (cluster,))
        if loss is not None and loss not in _LOSS_NAMES:
            raise ConfigError("Invalid value for `loss` of compile(). Expected one of %s (or None). Received: %r"
                              % (", ".join("'%s'" % n for n in _LOSS_NAMES), loss))
        self.jobconf.updater.CopyFrom(upd)
        self.jobconf.cluster.CopyFrom(clu)
        if loss is None:
            self._default_loss(topk)
        else:
            self._set_loss(loss, topk)
        if self.layers:
            self.build()      # names and wiring are checked now, in the user's terms, not at fit()

    def _set_loss(self, loss, topk):
        last = [l for l in self.layers if not l.is_datalayer]
        if not last:
            raise ConfigError("compile(loss=%r) needs the model's layers first.\nhelp: m.add(Dense(...)) "
                              "before m.compile(...)" % (loss,))
        last = last[-1]
        ly = last.mask if last.mask is not None else last.layer
        if ly.type == job_pb2.kSoftmax or ly.type in _LOSS_TYPES:
            # retype the final softmax (or an earlier compile's loss) in place, as SINGA did
            if loss == "categorical_crossentropy":
                ly.type = job_pb2.kSoftmaxLoss
                ly.softmaxloss_conf.topk = topk
            else:
                ly.type = job_pb2.kEuclideanLoss
                ly.ClearField("softmaxloss_conf")
        elif loss == "categorical_crossentropy":
            self.add(Loss("softmaxloss", topk=topk))
        else:
            self.add(Loss("euclideanloss"))

    def _default_loss(self, topk):
        """compile() without ``loss``: a feed-forward net ending in a softmax trains with the softmax
        loss (what SINGA's cifar10 job.conf and the seed's CNN example mean), said aloud; one that
        ends elsewhere without any loss layer is refused here, not at training."""
        layers = [l for l in self.layers if not l.is_datalayer]
        if isinstance(self, Energy) or not layers:
            return
        protos = [p for l in layers for p in (l.layer, l.mask, l.bidirect) if p is not None]
        if any(p.type in _LOSS_TYPES for p in protos):
            return
        last = layers[-1]
        ly = last.mask if last.mask is not None else last.layer
        if getattr(last, "_verbatim", False) or ly.type != job_pb2.kSoftmax:
            raise ConfigError(
                "compile() got no `loss` and the model's last layer %r (%s) is not a softmax, so back-propagation "
                "would have nothing to minimise.\nhelp: m.compile(loss='categorical_crossentropy', ...) for "
                "classification or loss='mean_squared_error' for regression/reconstruction"
                % (ly.name, _layer_type_name(ly.type)))
        ly.type = job_pb2.kSoftmaxLoss
        ly.softmaxloss_conf.topk = topk
        _say("compile(): no loss given and the net ends in a softmax (layer %r): training it with the softmax "
             "loss, as loss='categorical_crossentropy' would" % ly.name)

    def _check_compiled(self, method, need_updater=True):
        if (need_updater and not self.jobconf.HasField("updater")) or not self.jobconf.HasField("cluster"):
            raise ConfigError("%s() needs the updater and the cluster.\nhelp: call m.compile(optimizer=SGD(...), "
                              "cluster=Cluster(workspace)) first" % method)

    # -- build ------------------------------------------------------------------
    def build(self):
        """Assemble ``jobconf.neuralnet`` from the layers (SINGA's Model.build, SINGA-V0.md 1.3)."""
        if not self.layers:
            raise ConfigError("the model has no layers.\nhelp: m.add(Dense(...)) and give data to fit()/evaluate()")
        net = job_pb2.NetProto()
        if self._net_template is not None:
            net.CopyFrom(self._net_template)
        data = [l for l in self.layers if l.is_datalayer]
        first_data = data[0].layer.name if data else None
        slyname = first_data
        lastly, last_owner, emitted = None, None, []
        for l in self.layers:
            ly = net.layer.add()
            ly.CopyFrom(l.layer)
            verbatim = getattr(l, "_verbatim", False)
            emitted.append((ly, l.is_datalayer, verbatim))
            if verbatim:
                lastly = None
                if not l.is_datalayer:
                    slyname = ly.name
                continue
            if l.is_datalayer:
                continue
            lastly, last_owner = ly, l
            if slyname is not None:
                ly.srclayers.append(slyname)
            slyname = ly.name
            if l.mask is not None:
                mly = net.layer.add()
                mly.CopyFrom(l.mask)
                mly.srclayers.append(slyname)
                emitted.append((mly, False, False))
                lastly, slyname = mly, mly.name
            if l.bidirect is not None:
                bly = net.layer.add()
                bly.CopyFrom(l.bidirect)
                bly.srclayers.append(ly.name)
                emitted.append((bly, False, False))

        if self.label:
            lab = net.layer.add(name="label", type=job_pb2.kLabel)
            if first_data is not None:
                lab.srclayers.append(first_data)
            emitted.append((lab, False, False))
            if lastly is not None:
                lastly.srclayers.append("label")
        elif lastly is not None:
            if lastly.type == job_pb2.kRBMVis and last_owner.bidirect is not None:
                lastly.srclayers.append(last_owner.bidirect.name)
            elif first_data is not None:
                lastly.srclayers.append(first_data)

        if self.accuracy:
            sm = net.layer.add(name="softmax", type=job_pb2.kSoftmax)
            sm.include.append(job_pb2.kTest)
            # the prediction: what the loss layer reads (SINGA took layers[-1], the same in its examples)
            if lastly is not None and lastly.type in _LOSS_TYPES and lastly.srclayers:
                sm.srclayers.append(lastly.srclayers[0])
            else:
                sm.srclayers.append(self.layers[-1].layer.name)
            acc = net.layer.add()
            acc.CopyFrom(Accuracy().layer)
            acc.include.append(job_pb2.kTest)
            acc.srclayers.append("softmax")
            if first_data is not None:
                acc.srclayers.append(first_data)
            emitted += [(sm, False, False), (acc, False, False)]

        self._check_names(emitted)
        self.jobconf.neuralnet.CopyFrom(net)
        return self.jobconf

    @staticmethod
    def _check_names(emitted):
        seen, params = {}, {}
        for ly, is_data, verbatim in emitted:
            for other, o_data, o_verbatim in seen.get(ly.name, []):
                if verbatim and o_verbatim:
                    continue
                disjoint = is_data and o_data and ly.include and other.include and \
                    not set(ly.include) & set(other.include)
                if not disjoint:
                    raise ConfigError(
                        "Invalid value for `name` of layer %r (%s). Expected a name no other layer of the net "
                        "has. Received: %r, also used by a %s layer\nhelp: layers made before the Model was "
                        "constructed keep their old default names (each Model restarts the counters); make "
                        "the Model first or pass name=... to the layer"
                        % (ly.name, _layer_type_name(ly.type), ly.name, _layer_type_name(other.type)))
            seen.setdefault(ly.name, []).append((ly, is_data, verbatim))
            for p in ly.param:
                prev = params.get(p.name)
                if prev is not None and not (verbatim and prev[1]):
                    raise ConfigError(
                        "Invalid value for param name %r of layer %r. Expected a name no other param has. "
                        "Received: %r, also a param of layer %r\nhelp: give each Parameter its own name; to "
                        "share values use Parameter(name=..., share_from='<owner name>')"
                        % (p.name, ly.name, p.name, prev[0]))
                params[p.name] = (ly.name, verbatim)

    # -- fit / evaluate ---------------------------------------------------------
    def _configure_fit(self, data=None, alg="bp", nb_epoch=0, device=None, **fields):
        """Add the training data and step settings to ``jobconf`` (fit() without running)."""
        _check_job_kwargs("fit()", fields, ("batch_size", "validate_data"))
        self._check_compiled("fit")
        if isinstance(nb_epoch, bool) or not isinstance(nb_epoch, numbers.Integral) or nb_epoch <= 0:
            raise ConfigError("Invalid value for `nb_epoch` of fit(). Expected a positive number of training "
                              "steps (mini-batches, not epochs). Received: %r\nhelp: m.fit(X_train, nb_epoch=1000)"
                              % (nb_epoch,))
        nb_epoch = int(nb_epoch)
        if data is not None:
            self._check_data(data, "train", "fit", "data")
            if not self.exist_datalayer("train"):
                self._append(data, 0)
        elif not self.exist_datalayer("train"):
            raise ConfigError("fit() needs training data.\nhelp: m.fit(X_train, nb_epoch=...) with X_train a "
                              "Data layer (e.g. from load_data()), or m.add(Data(load='recordinput', "
                              "phase='train', conf=Store(...))) before fit()")
        fields = dict(fields)
        if "batch_size" in fields:
            self._set_batchsize("train", fields.pop("batch_size"), "fit")
        job = self.jobconf
        job.train_steps = nb_epoch
        job.disp_freq = nb_epoch // 10
        validate = fields.pop("validate_data", None)
        if validate is not None:
            self._check_data(validate, "val", "fit", "validate_data")
            if not self.exist_datalayer("val"):
                self._append(validate, 1)
        if self.exist_datalayer("val"):
            # validation data means validation rounds: 10 batches every nb_epoch // 10 steps (and
            # after the last step) unless given; SINGA's validate_steps 0 silently ran none
            job.validate_freq = nb_epoch // 10
            if not job.validate_steps:
                job.validate_steps = 10
        setval(job, **fields)
        for l in self._data_layers("train"):
            for path in _paths(getattr(l, "checkpoint", None), "checkpoint"):
                if path not in job.checkpoint_path:
                    job.checkpoint_path.append(path)
        if "checkpoint_freq" not in fields:
            job.checkpoint_freq = nb_epoch
        self.last_checkpoint_path = "%s/checkpoint/step%d-worker0" % (
            job.cluster.workspace.rstrip("/"), job.train_steps)
        job.train_one_batch.CopyFrom(Algorithm(type=_alg_value(alg, "fit")).proto)
        self._set_device(device)
        return job

    def fit(self, data=None, alg="bp", nb_epoch=0, with_test=False, execpath="", device=None, seed=0,
            callbacks=None, terminate_on_nan=True, verbose=1, batch_size=None, epochs=None, validation_data=None,
            validation_split=0.0, shuffle=True, resume=False, y=None, **fields):
        """Train the model: on a Data layer (SINGA's API) or on NumPy arrays (Keras's).

        SINGA's API, ``fit(X_train, nb_epoch=1000, with_test=False, ...)`` with ``X_train`` a Data
        layer (from load_data()): configures training and, unless ``with_test``, runs it now and
        returns the Results (training metrics by step). ``nb_epoch`` is the number of training
        steps (mini-batches); ``disp_freq`` defaults to nb_epoch//10 and ``checkpoint_freq`` to
        nb_epoch. ``alg``: 'bp' or 'cd' (RBMs). ``validate_data``: a phase='val' Data layer,
        validated ``validate_steps`` (default 10) batches every ``validate_freq`` (nb_epoch//10)
        steps and after the last. ``batch_size`` replaces the store's. ``resume=True`` continues
        from the workspace's newest checkpoint up to nb_epoch steps in all (as ``-resume`` on the
        command line). Any JobProto field (``disp_freq``, ``checkpoint_path``, ...) is accepted.
        With ``with_test=True`` nothing runs until ``evaluate()``, which trains and tests.

        Keras's API, ``fit(x, y, batch_size=32, epochs=1, validation_data=None,
        validation_split=0.0, shuffle=True)`` with NumPy arrays: ``epochs`` passes over x (shuffled
        once with ``seed`` unless ``shuffle=False``), a display and validation per epoch.
        ``validation_split=f`` holds out the last fraction f of x and y (before shuffling, as
        Keras) for validation. A later fit(x, y, ...) on the same model continues from the weights,
        updater state and step the previous one ended with and trains ``epochs`` more epochs
        (Keras's behaviour; SINGA's API starts afresh). ``resume=True`` (e.g. in a new process
        after Ctrl-C) continues the workspace's newest checkpoint up to ``epochs`` epochs in all,
        and refuses when that checkpoint has already reached them.

        Both: ``device``: GPU id(s). ``seed`` seeds the engine. ``callbacks``: singa.callbacks
        objects (EarlyStopping, ModelCheckpoint, CSVLogger, LearningRateScheduler, ...); a NaN or
        infinite loss stops the run unless ``terminate_on_nan=False``. ``m.history`` keeps the
        run's metrics by step. ``verbose``: 0 silent, 1 a progress bar on a terminal (SINGA's lines
        otherwise), 2 lines. ``execpath`` is accepted and unused.
        """
        if _is_array(data):
            if y is None and not isinstance(alg, str):
                y = alg            # fit(x, y): the labels arrive where SINGA's API has alg
            return self._fit_arrays(data, y, batch_size=32 if batch_size is None else batch_size,
                                    epochs=1 if epochs is None else epochs, validation_data=validation_data,
                                    validation_split=validation_split, shuffle=shuffle, seed=seed, resume=resume,
                                    callbacks=callbacks, terminate_on_nan=terminate_on_nan, verbose=verbose,
                                    device=device, **fields)
        for name, val, default in (("epochs", epochs, None), ("validation_data", validation_data, None),
                                   ("validation_split", validation_split, 0.0), ("y", y, None)):
            if val is not default:
                raise ConfigError("Invalid value for `%s` of fit(). Expected it only with NumPy arrays (fit(x, y, "
                                  "...)). Received: %s=%r with a %s as data\nhelp: with Data layers use nb_epoch="
                                  "(steps) and validate_data=X_valid" % (name, name, _short(val),
                                                                         type(data).__name__))
        if not shuffle:
            raise ConfigError("Invalid value for `shuffle` of fit(). Expected it only with NumPy arrays. Received: "
                              "False with a Data layer\nhelp: a Data layer reads its records in order; leave its "
                              "Store's random_skip out (0) for a fixed start")
        if batch_size is not None:
            fields["batch_size"] = batch_size
        if resume:
            fields["resume"] = True
        from singa.callbacks import CallbackList
        self._callbacks = CallbackList(callbacks).callbacks
        from singa.progress import resolve_verbose
        self._terminate_on_nan, self._verbose = bool(terminate_on_nan), resolve_verbose(verbose)
        self._configure_fit(data=data, alg=alg, nb_epoch=nb_epoch, device=device, **fields)
        self._seed = seed
        if with_test:
            return None
        self.build()
        self.result = self._run(test=False, seed=seed)
        self._trained = True
        return self.result

    def _fit_arrays(self, x, y, batch_size, epochs, validation_data, validation_split, shuffle, seed, resume,
                    **kwargs):
        """fit(x, y, ...) on NumPy arrays (see fit): ``epochs * ceil(N / batch_size)`` steps."""
        import os
        from singa.io import checkpoint as ckpt
        from singa.layers.input import array_store
        if y is None:
            raise ConfigError("Invalid value for `y` of fit(). Expected the labels of x (class indices, shape (N,)). "
                              "Received: None\nhelp: m.fit(x_train, y_train, batch_size=64, epochs=5)")
        self._check_compiled("fit")
        x, y = numpy.asarray(x), numpy.asarray(y)
        batch_size = _positive_int(batch_size, "batch_size", "fit")
        epochs = _positive_int(epochs, "epochs", "fit")
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) or \
                not 0 <= validation_split < 1:
            raise ConfigError("Invalid value for `validation_split` of fit(). Expected a fraction in [0, 1). "
                              "Received: %r\nhelp: validation_split=0.1 holds out the last 10%% of x" %
                              (validation_split,))
        if validation_split:
            if validation_data is not None:
                raise ConfigError("Invalid value for `validation_split` of fit(). Expected it or validation_data, "
                                  "not both. Received: validation_split=%r and validation_data" % (validation_split,))
            n_all = x.shape[0] if x.ndim else 0
            cut = n_all - int(n_all * validation_split)
            if not 0 < cut < n_all:
                raise ConfigError("Invalid value for `validation_split` of fit(). Expected a fraction that leaves "
                                  "samples on both sides of %d. Received: %r" % (n_all, validation_split))
            x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
        n = x.shape[0] if x.ndim else 0
        if n and batch_size > n:
            batch_size = n
        order = numpy.random.default_rng(seed).permutation(n) if shuffle and n else slice(None)
        path, store = array_store(x[order], y[order] if y.shape[:1] == (n,) else y)
        self._array_stores = [store]
        per_epoch = -(-n // batch_size)
        self.layers = [l for l in self.layers if not (l.is_datalayer and (enumPhase("train") in l.layer.include or
                                                                          enumPhase("val") in l.layer.include))]
        train = Data(load="recordinput", phase="train", conf=Store(path=path, backend="kvfile", batchsize=batch_size,
                                                                   shape=tuple(x.shape[1:])))
        fields = dict(kwargs)
        fields.setdefault("disp_freq", per_epoch)
        if validation_data is not None:
            try:
                xv, yv = validation_data
            except (TypeError, ValueError):
                raise ConfigError("Invalid value for `validation_data` of fit(). Expected a pair (x_val, y_val). "
                                  "Received: %r" % (type(validation_data).__name__,)) from None
            xv = numpy.asarray(xv)
            vpath, vstore = array_store(xv, yv)
            self._array_stores.append(vstore)
            vb = min(batch_size, xv.shape[0])
            fields["validate_data"] = Data(load="recordinput", phase="val", conf=Store(
                path=vpath, backend="kvfile", batchsize=vb, shape=tuple(xv.shape[1:])))
            fields.setdefault("validate_steps", -(-xv.shape[0] // vb))
            fields.setdefault("validate_freq", per_epoch)
        start, self._resume_from = 0, None
        if resume:
            ws = self.jobconf.cluster.workspace
            start = ckpt.latest_checkpoint_step(ws)
            if start is None:
                raise ConfigError("Invalid value for `resume` of fit(). Expected a checkpoint to resume in %s. "
                                  "Received: resume=True, but there is none\nhelp: fit without resume=True first"
                                  % os.path.join(ws, "checkpoint"))
            if start >= per_epoch * epochs:
                raise ConfigError(
                    "Invalid value for `epochs` of fit(resume=True). Expected the number of epochs in all, more than "
                    "the checkpoint has done. Received: epochs=%d (%d steps of batch %d), but the newest checkpoint, "
                    "%s, is at step %d (%.3g epochs): nothing left to train\nhelp: epochs=%d trains one more epoch; "
                    "without resume=True, fit() trains `epochs` more epochs from the current weights"
                    % (epochs, per_epoch * epochs, batch_size, ckpt.checkpoint_file(ws, start, 0), start,
                       start / per_epoch, -(-start // per_epoch) + 1))
            self._resume_from = ckpt.checkpoint_file(ws, start, 0)
        elif self._trained and self.last_checkpoint_path and os.path.isfile(self.last_checkpoint_path) and \
                self._array_fitted:
            # a later fit(x, y): continue from where the previous one ended (Keras)
            self._resume_from = self.last_checkpoint_path
            start = _checkpoint_step(self.last_checkpoint_path)
        try:
            # resume: `epochs` in all (the interrupted run's target); a later fit: `epochs` more
            total = per_epoch * epochs if resume else start + per_epoch * epochs
            result = self.fit(train, nb_epoch=total, seed=seed, **fields)
        finally:
            self._resume_from = None
        self._array_fitted = True
        return result

    def predict(self, x, batch_size=100, checkpoint_path=None):
        """The model's outputs for the samples of NumPy array ``x``, one row each: the class
        probabilities for a softmax loss, the reconstruction for a Euclidean loss. Uses the last
        checkpoint fit() wrote (or ``checkpoint_path``) and the normalisation of the model's data
        layer."""
        return self._predictor(x, None, batch_size, checkpoint_path, "predict").predict()

    def export_onnx(self, path, checkpoint_path=None, preprocess=True, opset=17):
        """Write the trained model as ONNX (input: raw samples as predict() takes them, output:
        what predict() returns); see singa.onnx_export. Needs the onnx package."""
        from singa.inference import reference_input
        from singa.onnx_export import export
        if self.layers:
            self.build()
        shape = tuple(reference_input(self.jobconf.neuralnet).store_conf.shape)
        pred = self._predictor(numpy.zeros((1,) + shape, numpy.float32), None, 1, checkpoint_path, "export_onnx")
        return export(self.jobconf, pred, path, preprocess=preprocess, opset=opset)

    def _predictor(self, x, y, batch_size, checkpoint_path, method):
        from singa.backends import Backend
        from singa.inference import Predictor
        paths = _paths(checkpoint_path, "checkpoint_path") or (
            [self.last_checkpoint_path] if self.last_checkpoint_path else list(self.jobconf.checkpoint_path))
        if not paths:
            raise ConfigError("Invalid value for `checkpoint_path` of %s(). Expected the checkpoint of the trained "
                              "params. Received: None\nhelp: fit() the model first, or pass checkpoint_path="
                              "workspace + '/checkpoint/step1000-worker0'" % method)
        if self.layers:
            self.build()
        gpus = list(self.jobconf.gpu)
        return Predictor(self.jobconf, paths, x, y, batch_size=batch_size,
                         backend=Backend(gpus[0]) if gpus else None, seed=self._seed)

    def _configure_evaluate(self, data=None, alg=None, checkpoint_path=None, device=None, show_acc=False,
                            **fields):
        """Add the test data and settings to ``jobconf`` and build it (evaluate() without running)."""
        _check_job_kwargs("evaluate()", fields, ("batch_size",))
        if data is not None:
            self._check_data(data, "test", "evaluate", "data")
            if not self.exist_datalayer("test"):
                self._append(data, 0)
        elif not self.exist_datalayer("test"):
            raise ConfigError("evaluate() needs test data.\nhelp: m.evaluate(X_test, ...) with X_test a Data "
                              "layer of phase 'test' (e.g. from load_data())")
        fields = dict(fields)
        if "batch_size" in fields:
            self._set_batchsize("test", fields.pop("batch_size"), "evaluate")
        job = self.jobconf
        self.testonly = self._trained or not self.exist_datalayer("train")
        self._check_compiled("evaluate", need_updater=not self.testonly)
        paths = _paths(checkpoint_path, "checkpoint_path")
        if self.testonly and not paths:
            if self._trained and self.last_checkpoint_path:
                paths = [self.last_checkpoint_path]
            elif not job.checkpoint_path:
                raise ConfigError(
                    "Invalid value for `checkpoint_path` of evaluate(). Expected the checkpoint(s) to test, since "
                    "the model has no training data (test-only run). Received: None\nhelp: "
                    "m.evaluate(X_test, checkpoint_path=workspace + '/checkpoint/step100-worker0'), or call "
                    "m.fit(X_train, ..., with_test=True) before evaluate() to train and test")
        for path in paths:
            if path not in job.checkpoint_path:
                job.checkpoint_path.append(path)
        job.test_steps = fields.pop("test_steps", 10)
        setval(job, **fields)
        if alg is not None or not job.HasField("train_one_batch"):
            job.train_one_batch.CopyFrom(Algorithm(type=_alg_value("bp" if alg is None else alg, "evaluate")).proto)
        self._set_device(device)
        self.accuracy = bool(show_acc)
        self.build()
        return job

    def evaluate(self, data=None, alg=None, checkpoint_path=None, execpath="", device=None, show_acc=False,
                 seed=None, **fields):
        """Configure testing and run: train-with-test after ``fit(with_test=True)``, else test only.
        Returns the Results of the test rounds, keyed by step (the training metrics of the same
        run in ``.train``, validation in ``.validation``).

        ``test_steps`` defaults to 10; with ``test_freq`` 0 (the default) the test runs once,
        after the last training step, otherwise every ``test_freq`` steps as well. A number as
        the second argument (the seed's ``m.evaluate(X_test, 1000, ...)``) is the batch size.
        Keywords: ``batch_size``, ``test_freq``, ``test_steps``, ``test_after``, any JobProto field.
        Test-only runs (no training data, or after a fit() that ran) load ``checkpoint_path`` (a
        path or list; default after fit(): ``m.last_checkpoint_path``). ``alg`` defaults to the one
        fit() set (SINGA reset it to 'bp', which broke fit(alg='cd', with_test=True)). ``show_acc`` adds
        test-only softmax + accuracy layers. ``seed`` defaults to the one given to fit().
        """
        if _is_array(data):       # evaluate(x, y): exact test metrics over every sample of the arrays
            y = fields.pop("y", None) if isinstance(alg, (str, type(None))) else alg
            if y is None:
                raise ConfigError("Invalid value for `y` of evaluate(). Expected the labels of x. Received: None\n"
                                  "help: m.evaluate(x_test, y_test)")
            unknown = set(fields) - {"batch_size"}
            if unknown:
                raise ConfigError("Invalid keyword(s) %s for evaluate(x, y). Expected batch_size (and checkpoint_path)."
                                  % sorted(unknown))
            pred = self._predictor(data, y, fields.get("batch_size", 100), checkpoint_path, "evaluate")
            m = pred.metrics()
            path = (_paths(checkpoint_path, "checkpoint_path") or [self.last_checkpoint_path or ""])[-1]
            self.result = Results("test", test={_checkpoint_step(path): m})
            return self.result
        if isinstance(alg, numbers.Integral) and not isinstance(alg, bool) and alg > 3 and "batch_size" not in fields:
            # the seed's CNN example, m.evaluate(X_test, 1000, ...): SINGA's second argument is alg, the
            # number can only mean the batch size
            _say("evaluate(): taking the second argument, %d, as batch_size (SINGA's evaluate(data, alg, ...) "
                 "has alg there; write batch_size=%d to say so)" % (alg, alg))
            alg, fields["batch_size"] = None, int(alg)
        job = self._configure_evaluate(data=data, alg=alg, checkpoint_path=checkpoint_path, device=device,
                                       show_acc=show_acc, **fields)
        seed = self._seed if seed is None else seed
        self.result = self._run(test=self.testonly, seed=seed)
        if not self.testonly:
            self._trained = True
            # evaluate() is about the test: its Results are the test rounds, the training in .train
            self.result = self.result.as_phase("test")
        return self.result

    def _run(self, test, seed):
        from singa.driver import Driver   # imported here so building a job needs no engine
        from singa.history import History
        driver = Driver(argv=self.argv, seed=seed, verbose=self._verbose)
        if test:
            return driver.test(self.jobconf)
        self.history = History()
        from singa.interrupt import TrainingInterrupted
        try:
            result = driver.train(self.jobconf, resume=self._resume_from or False,
                              callbacks=[self.history] + list(self._callbacks),
                                  terminate_on_nan=self._terminate_on_nan)
        except TrainingInterrupted as e:   # Ctrl-C / SIGTERM: m.history and the checkpoint stay usable
            self.result = e.results
            if e.checkpoint:
                self.last_checkpoint_path = e.checkpoint
            raise
        if result.checkpoint:       # the newest checkpoint written (the last good one if the run diverged)
            self.last_checkpoint_path = result.checkpoint
        return result

    def _check_data(self, data, phase, method, arg):
        if not getattr(data, "is_datalayer", False) or not isinstance(getattr(data, "layer", None),
                                                                       job_pb2.LayerProto):
            raise ConfigError("Invalid value for `%s` of %s(). Expected a Data layer (e.g. from load_data()). "
                              "Received: %r" % (arg, method, data))
        if enumPhase(phase) not in data.layer.include:
            got = [job_pb2.Phase.Name(p)[1:].lower() for p in data.layer.include]
            raise ConfigError("Invalid value for `%s` of %s(). Expected a Data layer of phase '%s'. Received: "
                              "a Data layer of phase %s\nhelp: Data(load='recordinput', phase='%s', conf=Store(...))"
                              % (arg, method, phase, got or "none", phase))

    def _set_batchsize(self, phase, batch_size, method):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ConfigError("Invalid value for `batch_size` of %s(). Expected a positive integer. Received: %r"
                              % (method, batch_size))
        for l in self._data_layers(phase):
            replace_fields(l.layer.store_conf, batchsize=int(batch_size))

    def _set_device(self, device):
        if device is not None:
            del self.jobconf.gpu[:]
            self.jobconf.gpu.extend(_gpu_ids(device))
            self.cudnn = True

    # -- conversions ------------------------------------------------------------
    def to_jobproto(self):
        """A copy of the full JobProto (``jobconf`` after ``build()``)."""
        if self.layers:
            self.build()
        job = job_pb2.JobProto()
        job.CopyFrom(self.jobconf)
        return job

    @classmethod
    def from_jobproto(cls, job, argv=None):
        """A model holding ``job`` (a JobProto, e.g. from read_job_conf) whose layers wrap its LayerProtos.

        ``to_jobproto()`` gives back an equal JobProto; fit()/evaluate() can run it.
        """
        if not isinstance(job, job_pb2.JobProto):
            raise ConfigError("Invalid value for `job` of from_jobproto(). Expected a JobProto. Received: %r" % (job,))
        m = cls(name=job.name, argv=argv)
        m.jobconf.CopyFrom(job)
        if job.HasField("neuralnet"):
            m._net_template = job_pb2.NetProto()
            m._net_template.CopyFrom(job.neuralnet)
            m._net_template.ClearField("layer")
            m.layers = [_ConfLayer(lp) for lp in job.neuralnet.layer]
        m.jobconf.ClearField("neuralnet")
        if m.layers:
            m.build()
        else:
            m.jobconf.CopyFrom(job)
        return m

    def display(self):
        """Print the JobProto in text format (job.conf syntax)."""
        print(text_format.MessageToString(self.to_jobproto()))

    # -- summary, save, load --------------------------------------------------------
    def summary(self, phase="train", print_fn=print):
        """The layers in net order with their output shapes and params, and the totals (a shared
        param counts once); printed with ``print_fn`` and returned as text. The net of ``phase`` is
        set up to know the shapes (its data layers read their stores' headers)."""
        from singa.backends import Backend
        from singa.neuralnet import NeuralNet
        from singa.random import RandomStreams
        job = self.to_jobproto()
        net = NeuralNet(job.neuralnet, enumPhase(phase), Backend(None), RandomStreams(0))
        rows = [("Layer (type)", "Output shape", "Params", "")]
        total = 0
        for layer in net.layers:
            own = [p for p in getattr(layer, "params", ()) if p.owner is None]
            n = sum(p.size for p in own)
            total += n
            detail = ", ".join("%s %s" % (p.name, p.shape) for p in layer.params) if layer.params else ""
            shares = [p.name for p in getattr(layer, "params", ()) if p.owner is not None]
            if shares:
                detail += " (shared: %s)" % ", ".join(shares)
            type_name = job_pb2.LayerType.Name(layer.conf.type) if layer.conf.type in job_pb2.LayerType.values() \
                else str(layer.conf.type)
            rows.append(("%s (%s)" % (layer.name, type_name), str(tuple(layer.out_shape)), "{:,}".format(n), detail))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ['Model: "%s" (%s net, batch %d)' % (job.name, phase, net.batch_size)]
        for r in rows:
            lines.append(("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + ("  " + r[3] if r[3] else "")).rstrip())
            if r is rows[0]:
                lines.append("-" * (sum(widths) + 4))
        lines.append("Total params: {:,} ({:.1f} MiB as float32)".format(total, total * 4 / 2 ** 20))
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(self, directory, overwrite=False):
        """The model as one directory: ``job.conf`` (its JobProto as text, SINGA's syntax) and its
        trained params (``step<N>-worker0``, SINGA's checkpoint format). ``Model.load`` reads it
        back; ``singa-run -conf <dir>/job.conf`` runs the job."""
        import os
        import shutil
        from singa.io.atomic import write_text_atomic
        from singa.proto import job_to_text
        if not self.last_checkpoint_path or not os.path.isfile(self.last_checkpoint_path):
            raise ConfigError("save(): the model has no trained params to save (last checkpoint: %r).\nhelp: fit() "
                              "the model first" % (self.last_checkpoint_path,))
        directory = os.fspath(directory)
        if os.path.isdir(directory) and os.listdir(directory) and not overwrite:
            raise ConfigError("Invalid value for `directory` of save(). Expected a new or empty directory. Received: "
                              "%r, which holds files\nhelp: save(%r, overwrite=True) replaces the saved model there"
                              % (directory, directory))
        os.makedirs(directory, exist_ok=True)
        # SINGA's checkpoint name, so the step stays known
        params = os.path.join(directory, os.path.basename(self.last_checkpoint_path))
        tmp = params + ".tmp"
        shutil.copyfile(self.last_checkpoint_path, tmp)
        os.replace(tmp, params)
        write_text_atomic(os.path.join(directory, "job.conf"), job_to_text(self.to_jobproto()))
        return directory

    @classmethod
    def load(cls, directory, argv=None):
        """A model saved by ``save``: its job, with its params as the checkpoint for predict,
        evaluate and further training (checkpoint_path)."""
        import glob
        import os
        from singa.errors import DataError
        from singa.proto import read_job_conf
        conf = os.path.join(directory, "job.conf")
        found = sorted(glob.glob(os.path.join(glob.escape(os.fspath(directory)), "step*-worker0")))
        if not os.path.isfile(conf) or len(found) != 1:
            raise DataError("Model.load(%r): expected job.conf and one step<N>-worker0 checkpoint there. Found: %s.\n"
                            "help: load a directory written by Model.save" % (directory, sorted(os.listdir(directory))
                                                                               if os.path.isdir(directory) else "no "
                                                                               "such directory"))
        params = found[0]
        m = cls.from_jobproto(read_job_conf(conf), argv=argv)
        m.last_checkpoint_path = params
        m._trained = True
        return m


class Sequential(Model):
    """A feed-forward stack: each layer takes the previous one's output; ``Autoencoder`` is expanded."""

    def __init__(self, name="my model", argv=None, label=False):
        super().__init__(name=name, argv=argv, label=label)

    def add(self, layer):
        if isinstance(layer, Autoencoder):
            self._add_autoencoder(layer)
        else:
            self._append(layer)

    def _add_autoencoder(self, ae):
        n = len(ae.hid_dim)
        if ae.param_share:
            for i in range(1, n + 1):          # encoder; the code layer (i == n) is linear
                parw = Parameter(name="w", init="none", level=i)
                parb = Parameter(name="b", init="none", level=i)
                self._append(Dense(ae.hid_dim[i - 1], w_param=parw, b_param=parb,
                                   activation=ae.activation if i < n else None))
            for i in range(n, 0, -1):          # decoder: transposed weights shared with the encoder
                parw = Parameter(name=generate_name("w", 2), init="none", share_from="w%d" % i)
                parb = Parameter(name="b%d" % i, init="none")
                dim = ae.out_dim if i == 1 else ae.hid_dim[i - 2]
                self._append(Dense(dim, w_param=parw, b_param=parb, activation=ae.activation, transpose=True))
        else:
            dims = ae.hid_dim + [ae.out_dim]
            for i in range(1, n + 2):
                parw = Parameter(name="w", init="none", level=i)
                parb = Parameter(name="b", init="none", level=i)
                self._append(Dense(dims[i - 1], w_param=parw, b_param=parb, activation=ae.activation))


class Energy(Model):
    """An energy model (stacked RBMs trained with contrastive divergence, ``fit(alg='cd')``)."""

    def __init__(self, name="my model", argv=None, label=False):
        super().__init__(name=name, argv=argv, label=label)

    def add(self, layer):
        if isinstance(layer, RBM):
            for i in range(1, len(layer.out_dim)):     # the lower RBMs, as sigmoid layers
                parw = Parameter(name="w", init="none", level=i)
                parb = Parameter(name="b", init="none", level=i)
                self._append(Dense(layer.out_dim[i - 1], w_param=parw, b_param=parb, activation="sigmoid"))
            self._append(layer)
        elif getattr(layer, "is_datalayer", False):
            self._append(layer)
        else:
            raise ConfigError("Invalid value for `layer` of Energy.add(). Expected an RBM(...) (or a Data layer). "
                              "Received: %r\nhelp: SINGA v0.3 silently dropped such layers; use Sequential for "
                              "feed-forward nets" % (layer,))


class Store:
    """A StoreProto (``.proto``): backend, path, batchsize (or ``batch_size``), shape, mean_value, ..."""

    def __init__(self, **kwargs):
        if "batch_size" in kwargs:
            if "batchsize" in kwargs:
                raise ConfigError("Invalid value for `batch_size` of Store. Expected either batchsize or "
                                  "batch_size. Received: both")
            kwargs["batchsize"] = kwargs.pop("batch_size")
        self.proto = job_pb2.StoreProto()
        for key in kwargs:
            if key not in self.proto.DESCRIPTOR.fields_by_name:
                raise unknown_field_error(self.proto, key, extra=("batch_size",), where="Store")
        setval(self.proto, **kwargs)


class Algorithm:
    """An AlgProto (``.proto``): ``Algorithm(type=kBP)``; for kCD, ``cd_k=`` goes to ``cd_conf``."""

    def __init__(self, type=job_pb2.kBP, **kwargs):
        self.proto = job_pb2.AlgProto(alg=enumAlgType(type))
        cd_fields = field_names(job_pb2.CDProto)
        alg_kw = {k: v for k, v in kwargs.items() if k not in cd_fields}
        cd_kw = {k: v for k, v in kwargs.items() if k in cd_fields}
        if cd_kw and self.proto.alg != job_pb2.kCD:
            raise ConfigError("Invalid value for `%s` of Algorithm. Expected it only with type=kCD. Received: "
                              "type=%s" % (next(iter(cd_kw)), job_pb2.AlgType.Name(self.proto.alg)))
        for key in alg_kw:
            if key not in self.proto.DESCRIPTOR.fields_by_name:
                raise unknown_field_error(self.proto, key, extra=cd_fields, where="Algorithm")
        setval(self.proto, **alg_kw)
        if cd_kw:
            setval(self.proto.cd_conf, **cd_kw)


# lr_type -> (ChangeMethod, conf field, {kwarg: default}; a None default means required)
_LR_SCHEDULES = {
    "fixed": (job_pb2.kFixed, None, {}),
    "step": (job_pb2.kStep, "step_conf", {"change_freq": 60, "gamma": 0.997}),
    "manual": (job_pb2.kFixedStep, "fixedstep_conf", {}),
    "fixedstep": (job_pb2.kFixedStep, "fixedstep_conf", {}),
    "linear": (job_pb2.kLinear, "linear_conf", {"change_freq": 10, "final_lr": 0.1}),
    "exponential": (job_pb2.kExponential, "exponential_conf", {"change_freq": None}),
    "inverse": (job_pb2.kInverse, "inverse_conf", {"gamma": 0.0001, "pow": 0.75}),
    "inverset": (job_pb2.kInverseT, "inverset_conf", {"final_lr": None}),
}
_SCHEDULE_KWARGS = ("change_freq", "gamma", "final_lr", "pow")


def _number(name, val, owner, positive=False):
    # NaN and inf pass `val <= 0` the wrong way (SGD(lr=float('nan')) used to be accepted)
    if (isinstance(val, bool) or not isinstance(val, numbers.Real) or not math.isfinite(val)
            or (val <= 0 if positive else val < 0)):
        raise ConfigError("Invalid value for `%s` of %s. Expected %s. Received: %r"
                          % (name, owner, "a positive finite number" if positive else "a finite number >= 0", val))
    return val


class Updater:
    """An UpdaterProto (``.proto``): ``Updater(upd_type, lr, lr_type, decay, momentum, step, step_lr, **fields)``.

    ``lr_type``: None/'fixed' (kFixed), 'step' (kStep, change_freq 60, gamma 0.997), 'manual' or
    'fixedstep' (kFixedStep with ``step`` / ``step_lr``), 'linear' (kLinear, change_freq 10,
    final_lr 0.1), 'exponential' (kExponential, needs change_freq), 'inverse' (kInverse, gamma
    0.0001, pow 0.75), 'inverset' (kInverseT, needs final_lr); ``change_freq``, ``gamma``,
    ``final_lr`` and ``pow`` keywords override these. ``decay`` (weight_decay) and ``momentum``
    are written only when > 0. Other keywords are UpdaterProto fields (delta, clip_low, ...).
    """

    def __init__(self, upd_type, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,),
                 **fields):
        owner = type(self).__name__
        sched_kw = {k: fields.pop(k) for k in _SCHEDULE_KWARGS if k in fields}
        upd = job_pb2.UpdaterProto(type=enumUpdaterType(upd_type))
        for key in fields:
            if key not in upd.DESCRIPTOR.fields_by_name:
                raise unknown_field_error(upd, key, extra=("lr", "lr_type", "decay", "momentum", "step", "step_lr")
                                          + _SCHEDULE_KWARGS, where=owner)
        setval(upd, **fields)
        upd.learning_rate.base_lr = _number("lr", lr, owner, positive=True)
        if _number("decay", decay, owner) > 0:
            upd.weight_decay = decay
        if _number("momentum", momentum, owner) > 0:
            upd.momentum = momentum

        key = "fixed" if lr_type is None else lr_type
        if isinstance(key, str):
            key = key.lower()
            if key not in _LR_SCHEDULES and key[:1] == "k" and key[1:] in _LR_SCHEDULES:
                key = key[1:]
        if key not in _LR_SCHEDULES:
            raise ConfigError("Invalid value for `lr_type` of %s. Expected None or one of %s. Received: %r"
                              % (owner, ", ".join("'%s'" % n for n in _LR_SCHEDULES), lr_type))
        method, conf_name, defaults = _LR_SCHEDULES[key]
        extra = [k for k in sched_kw if k not in defaults]
        if extra:
            raise ConfigError("Invalid value for `%s` of %s. Expected it only with an lr_type that uses it (%s). "
                              "Received: %s=%r with lr_type=%r" % (
                                  extra[0], owner, ", ".join("%s: %s" % (n, "/".join(d) or "-")
                                                             for n, (_, _, d) in _LR_SCHEDULES.items()),
                                  extra[0], sched_kw[extra[0]], lr_type))
        lrgen = upd.learning_rate
        lrgen.type = method
        if key in ("manual", "fixedstep"):
            steps = list(step) if isinstance(step, (list, tuple)) else [step]
            lrs = list(step_lr) if isinstance(step_lr, (list, tuple)) else [step_lr]
            if len(steps) != len(lrs) or not steps:
                raise ConfigError("Invalid value for `step`/`step_lr` of %s. Expected two lists of the same length "
                                  "(thresholds and their learning rates). Received: step=%r, step_lr=%r"
                                  % (owner, step, step_lr))
            if any(b < a for a, b in zip(steps, steps[1:])):
                raise ConfigError("Invalid value for `step` of %s. Expected ascending step thresholds. Received: %r"
                                  % (owner, step))
            setval(lrgen.fixedstep_conf, step=steps, step_lr=lrs)
        elif conf_name is not None:
            values = dict(defaults, **sched_kw)
            missing = [k for k, v in values.items() if v is None]
            if missing:
                raise ConfigError("Invalid value for `%s` of %s. Expected a value for lr_type=%r. Received: nothing"
                                  "\nhelp: %s(lr=..., lr_type=%r, %s=...)" % (missing[0], owner, lr_type, owner,
                                                                              lr_type, missing[0]))
            setval(getattr(lrgen, conf_name), **values)
        self.proto = upd
        if not type(self)._conf_after_init:
            self._validate()

    # Subclasses that fill their conf message (rmsprop_conf, adam_conf, ...) after this __init__
    # set this and call _validate() themselves, once the proto is complete.
    _conf_after_init = False

    def _validate(self):
        """The engine's own checks of the finished UpdaterProto (singa.updaters), so the Python API
        refuses exactly what a job.conf would (gamma, final_lr, step_lr, delta, rho, betas, ...),
        with the same field path in the message, when the optimizer is made rather than at fit()."""
        from singa.updaters import create_updater
        proto = self.proto
        if proto.type == job_pb2.kRMSProp and not proto.rmsprop_conf.HasField("rho"):
            # Updater(kRMSProp, ...) without rho was accepted by SINGA's Python (the engine says
            # it is missing when the job runs): check the other fields now all the same
            proto = job_pb2.UpdaterProto()
            proto.CopyFrom(self.proto)
            proto.rmsprop_conf.rho = 0.9
        create_updater(proto)


class SGD(Updater):
    """Stochastic gradient descent (kSGD), optionally with momentum."""

    def __init__(self, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), **fields):
        super().__init__(job_pb2.kSGD, lr=lr, lr_type=lr_type, decay=decay, momentum=momentum,
                         step=step, step_lr=step_lr, **fields)


class AdaGrad(Updater):
    """AdaGrad (kAdaGrad)."""

    def __init__(self, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), **fields):
        super().__init__(job_pb2.kAdaGrad, lr=lr, lr_type=lr_type, decay=decay, momentum=momentum,
                         step=step, step_lr=step_lr, **fields)


class Nesterov(Updater):
    """Nesterov momentum (kNesterov)."""

    def __init__(self, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), **fields):
        super().__init__(job_pb2.kNesterov, lr=lr, lr_type=lr_type, decay=decay, momentum=momentum,
                         step=step, step_lr=step_lr, **fields)


class RMSProp(Updater):
    """RMSProp (kRMSProp); ``rho`` goes to rmsprop_conf (required by the proto, which gives no
    default; 0.9 here)."""

    _conf_after_init = True

    def __init__(self, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), rho=0.9,
                 **fields):
        super().__init__(job_pb2.kRMSProp, lr=lr, lr_type=lr_type, decay=decay, momentum=momentum,
                         step=step, step_lr=step_lr, **fields)
        self.proto.rmsprop_conf.rho = _number("rho", rho, "RMSProp")
        self._validate()


class AdaDelta(Updater):
    """AdaDelta (kAdaDelta); ``rho`` (proto default 0.9) goes to adadelta_conf."""

    _conf_after_init = True

    def __init__(self, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), rho=0.9,
                 **fields):
        super().__init__(job_pb2.kAdaDelta, lr=lr, lr_type=lr_type, decay=decay, momentum=momentum,
                         step=step, step_lr=step_lr, **fields)
        self.proto.adadelta_conf.rho = _number("rho", rho, "AdaDelta")
        self._validate()


class Adam(Updater):
    """Adam (kAdam); ``beta1``/``beta2`` (proto defaults 0.9, 0.999) go to adam_conf."""

    _conf_after_init = True

    def __init__(self, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), beta1=0.9,
                 beta2=0.999, **fields):
        super().__init__(job_pb2.kAdam, lr=lr, lr_type=lr_type, decay=decay, momentum=momentum,
                         step=step, step_lr=step_lr, **fields)
        setval(self.proto.adam_conf, beta1=_number("beta1", beta1, "Adam"), beta2=_number("beta2", beta2, "Adam"))
        self._validate()


class AdamMax(Updater):
    """AdaMax (kAdamMax); ``beta1``/``beta2`` (proto defaults 0.9, 0.999) go to adammax_conf."""

    _conf_after_init = True

    def __init__(self, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), beta1=0.9,
                 beta2=0.999, **fields):
        super().__init__(job_pb2.kAdamMax, lr=lr, lr_type=lr_type, decay=decay, momentum=momentum,
                         step=step, step_lr=step_lr, **fields)
        setval(self.proto.adammax_conf, beta1=_number("beta1", beta1, "AdamMax"),
               beta2=_number("beta2", beta2, "AdamMax"))
        self._validate()


def _updater_update(self, step, layer):
    """Interactive training (SINGA v0.3): apply this updater to every param of ``layer`` with the
    gradients its last ComputeGradient() left (the updater's state kept per param)."""
    from singa.interactive import UpdaterState
    st = getattr(self, "_interactive", None)
    if st is None:
        st = self._interactive = UpdaterState(self.proto)
    st.update(step, layer)


Updater.Update = _updater_update


def save_model_parameter(step, folder, layers):
    """Write the params of ``layers`` to ``<folder>/step<step>-worker0`` (SINGA's checkpoint format)."""
    from singa.interactive import save_model_parameter as save
    return save(step, folder, layers)


def load_model_parameter(path, layers, batchsize=1, data_shape=None):
    """Load the params of ``layers`` by name from a checkpoint (setting the layers up for an input of
    ``data_shape`` per sample when they have not run yet)."""
    from singa.interactive import load_model_parameter as load
    load(path, layers, batchsize, data_shape)


class Cluster:
    """A ClusterProto (``.proto``) with the workspace and the six topology counts always written;
    other ClusterProto fields (server_worker_separate, sync_freq, ...) as keywords."""

    def __init__(self, workspace=None, nworker_groups=1, nserver_groups=1, nworkers_per_group=1,
                 nservers_per_group=1, nworkers_per_procs=1, nservers_per_procs=1, **fields):
        if workspace is not None and hasattr(workspace, "__fspath__"):
            workspace = str(workspace.__fspath__())
        if not isinstance(workspace, str) or not workspace:
            raise ConfigError("Invalid value for `workspace` of Cluster. Expected a directory path (checkpoints go "
                              "to <workspace>/checkpoint). Received: %r\nhelp: Cluster('examples/mnist'), or the "
                              "workspace returned by load_data()" % (workspace,))
        self.proto = job_pb2.ClusterProto(workspace=workspace)
        counts = dict(nworker_groups=nworker_groups, nserver_groups=nserver_groups,
                      nworkers_per_group=nworkers_per_group, nservers_per_group=nservers_per_group,
                      nworkers_per_procs=nworkers_per_procs, nservers_per_procs=nservers_per_procs)
        for key, val in counts.items():
            if isinstance(val, bool) or not isinstance(val, numbers.Integral) or val <= 0:
                raise ConfigError("Invalid value for `%s` of Cluster. Expected a positive integer. Received: %r"
                                  % (key, val))
        setval(self.proto, **counts)
        for key in fields:
            if key not in self.proto.DESCRIPTOR.fields_by_name:
                raise unknown_field_error(self.proto, key, where="Cluster")
        setval(self.proto, **fields)


__all__ = list(_layer_all) + ["Model", "Sequential", "Energy", "Store", "Algorithm", "Updater", "SGD",
                              "AdaGrad", "Nesterov", "RMSProp", "AdaDelta", "Adam", "AdamMax", "Cluster",
                              "save_model_parameter", "load_model_parameter",
                              "generate_name", "sys"]
