"""SINGA v0.3's keras-like Python API: ``from singa.model import *``.

``Sequential`` / ``Energy`` models collect layers, ``compile()`` adds the updater, the cluster and
the loss, ``fit()`` / ``evaluate()`` add the data layers and the step settings, assemble the
JobProto (``m.jobconf``, text via ``m.display()``) and run it with ``singa.driver.Driver``.
Semantics are SINGA-V0.md 1.3 and 1.7; ``nb_epoch`` counts mini-batch steps, not epochs.

This module is the orchestration; the parts live beside it: ``singa.layer`` (the layers),
``singa.jobconf`` (Store, Algorithm, the updaters, Cluster), ``singa.compiling`` (compile's checks
and loss), ``singa.netbuild`` (the NetProto of the layer list, and back), ``singa.arrays``
(fit/evaluate/predict on NumPy arrays) and ``singa.saving`` (save, load, summary, ONNX).

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
import numbers
import sys  # exported: SINGA v0.3's model.py had no __all__, so `from singa.model import *` gave sys

import numpy

from google.protobuf import text_format

from singa import arrays, saving
from singa.callbacks import CallbackList
from singa.compiling import apply_loss, compile_protos, default_loss
from singa.cluster import mpi as _mpi
from singa.driver import Driver
from singa.errors import ConfigError, Stated, invalid
from singa.history import History
from singa.interactive import load_model_parameter as _load_params, save_model_parameter as _save_params
from singa.interrupt import TrainingInterrupted
from singa.jobconf import *  # noqa: F401,F403  (Store, Algorithm, the updaters, Cluster)
from singa.jobconf import Algorithm
from singa.jobconf import __all__ as _jobconf_all
from singa.layer import *  # noqa: F401,F403
from singa.layer import Autoencoder, Dense, Loss, Parameter, RBM, replace_fields
from singa.layer import __all__ as _layer_all
from singa.netbuild import build_net, layers_of
from singa.progress import resolve_verbose
from singa.proto import enum_name, job_pb2
from singa.utils.arguments import alg_value, check_job_kwargs, gpu_ids, paths, positive_int, short
from singa.utils.message import enumPhase, setval
from singa.utils.utility import generate_name, reset_names

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


def _is_array(x):
    return isinstance(x, (numpy.ndarray, list, tuple)) and not getattr(x, "is_datalayer", False)


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
        self._array_stores = []   # the in-memory stores of fit(x, y)'s arrays, alive as long as the model
        self.history = None       # a singa.history.History once training ran

    # -- layers -----------------------------------------------------------------
    def add(self, layer):
        """Append a layer (Data layers are copied so the model owns its store settings)."""
        self._append(layer)

    def _append(self, layer, index=None):
        if not isinstance(getattr(layer, "layer", None), job_pb2.LayerProto):
            raise invalid("layer", "a layer object (Dense(...), Activation(...), Data(...), ...)", layer,
                          where="%s.add()" % type(self).__name__)
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
        raise invalid("name", "one of the model's layer names (%s)" % ", ".join(l.layer.name for l in self.layers),
                      name)

    def show(self):
        for l in self.layers:
            print(text_format.MessageToString(l.layer))

    # -- compile ----------------------------------------------------------------
    def compile(self, optimizer=None, cluster=None, loss=None, topk=1, updater=None, **kwargs):
        """Set the updater (``optimizer``, or ``updater``) and cluster, and the loss layer.

        ``loss='categorical_crossentropy'`` turns a final softmax into kSoftmaxLoss (``topk``)
        or appends a ``Loss('softmaxloss')``; ``'mean_squared_error'`` likewise gives
        kEuclideanLoss; ``'user_loss_rnnlm'`` with ``nclass=N, in_dim=V`` appends rnnlm's
        ``UserLossRNNLM(nclass=N, vocab_size=V)``; ``None`` adds no loss (RBM models).
        ``partition_dim=0/1``: the net's partition_dim, which layers without their own take (a
        worker group of several workers splits each layer by the batch or by its features).
        """
        if "partition_dim" in kwargs:        # the net's, for layers without their own (SINGA's NetProto field)
            pd = kwargs.pop("partition_dim")
            if pd not in (0, 1) or isinstance(pd, bool):
                raise invalid("partition_dim", "0 (every layer split by the batch among a group's workers) or 1 (by "
                                               "the features)", pd, where="compile()",
                              hint="usually 0 here, and Dense(..., partition_dim=1) on the wide layers")
            if self._net_template is None:
                self._net_template = job_pb2.NetProto()
            self._net_template.partition_dim = pd
        upd, clu = compile_protos(optimizer, cluster, loss, updater, kwargs)
        self.jobconf.updater.CopyFrom(upd)
        self.jobconf.cluster.CopyFrom(clu)
        if loss is not None:
            extra = apply_loss(self.layers, loss, topk, **kwargs)
            if extra is not None:
                self.add(extra)
        elif not isinstance(self, Energy):       # an RBM stack trains without a loss layer
            retyped = default_loss(self.layers, topk)
            if retyped is not None:
                _say("compile(): no loss given and the net ends in a softmax (layer %r): training it with the "
                     "softmax loss, as loss='categorical_crossentropy' would" % retyped)
        if self.layers:
            self.build()      # names and wiring are checked now, in the user's terms, not at fit()

    def _check_compiled(self, method, need_updater=True):
        if (need_updater and not self.jobconf.HasField("updater")) or not self.jobconf.HasField("cluster"):
            raise ConfigError("%s() needs the updater and the cluster.\nhelp: call m.compile(optimizer=SGD(...), "
                              "cluster=Cluster(workspace)) first" % method)

    # -- build ------------------------------------------------------------------
    def build(self):
        """Assemble ``jobconf.neuralnet`` from the layers (SINGA's Model.build, SINGA-V0.md 1.3; see
        singa.netbuild)."""
        net = build_net(self.layers, label=self.label, accuracy=self.accuracy, template=self._net_template)
        self.jobconf.neuralnet.CopyFrom(net)
        return self.jobconf

    # -- fit / evaluate ---------------------------------------------------------
    def _configure_fit(self, data=None, alg="bp", nb_epoch=0, device=None, **fields):
        """Add the training data and step settings to ``jobconf`` (fit() without running)."""
        check_job_kwargs("fit()", fields, ("batch_size", "validate_data"))
        self._check_compiled("fit")
        if isinstance(nb_epoch, bool) or not isinstance(nb_epoch, numbers.Integral) or nb_epoch <= 0:
            raise invalid("nb_epoch", "a positive number of training steps (mini-batches, not epochs)", nb_epoch,
                          where="fit()", hint="m.fit(X_train, nb_epoch=1000)")
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
            for path in paths(getattr(l, "checkpoint", None), "checkpoint"):
                if path not in job.checkpoint_path:
                    job.checkpoint_path.append(path)
        if "checkpoint_freq" not in fields:
            job.checkpoint_freq = nb_epoch
        self.last_checkpoint_path = "%s/checkpoint/step%d-worker0" % (
            job.cluster.workspace.rstrip("/"), job.train_steps)
        job.train_one_batch.CopyFrom(Algorithm(type=alg_value(alg, "fit")).proto)
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
            return arrays.fit_arrays(self, data, y, batch_size=32 if batch_size is None else batch_size,
                                    epochs=1 if epochs is None else epochs, validation_data=validation_data,
                                    validation_split=validation_split, shuffle=shuffle, seed=seed, resume=resume,
                                    callbacks=callbacks, terminate_on_nan=terminate_on_nan, verbose=verbose,
                                    device=device, **fields)
        for name, val, default in (("epochs", epochs, None), ("validation_data", validation_data, None),
                                   ("validation_split", validation_split, 0.0), ("y", y, None)):
            if val is not default:
                raise invalid(name, "it only with NumPy arrays (fit(x, y, ...))",
                              Stated("%s=%r with a %s as data" % (name, short(val), type(data).__name__)),
                              where="fit()", hint="with Data layers use nb_epoch=(steps) and validate_data=X_valid")
        if not shuffle:
            raise invalid("shuffle", "it only with NumPy arrays", Stated("False with a Data layer"), where="fit()",
                          hint="a Data layer reads its records in order; leave its Store's random_skip out (0) for "
                               "a fixed start")
        if batch_size is not None:
            fields["batch_size"] = batch_size
        if resume:
            fields["resume"] = True
        self._callbacks = CallbackList(callbacks).callbacks
        self._terminate_on_nan, self._verbose = bool(terminate_on_nan), resolve_verbose(verbose)
        self._configure_fit(data=data, alg=alg, nb_epoch=nb_epoch, device=device, **fields)
        self._seed = seed
        if with_test:
            return None
        self.build()
        self.result = self._run(test=False, seed=seed)
        self._trained = True
        return self.result

    def predict(self, x, batch_size=100, checkpoint_path=None):
        """The model's outputs for the samples of NumPy array ``x``, one row each: the class
        probabilities for a softmax loss, the reconstruction for a Euclidean loss. Uses the last
        checkpoint fit() wrote (or ``checkpoint_path``) and the normalisation of the model's data
        layer."""
        return arrays.predict(self, x, batch_size, checkpoint_path)

    def export_onnx(self, path, checkpoint_path=None, preprocess=True, opset=17):
        """Write the trained model as ONNX (input: raw samples as predict() takes them, output:
        what predict() returns); see singa.onnx_export. Needs the onnx package."""
        return saving.export_onnx(self, path, checkpoint_path, preprocess=preprocess, opset=opset)

    def _configure_evaluate(self, data=None, alg=None, checkpoint_path=None, device=None, show_acc=False,
                            **fields):
        """Add the test data and settings to ``jobconf`` and build it (evaluate() without running)."""
        check_job_kwargs("evaluate()", fields, ("batch_size",))
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
        ckpts = paths(checkpoint_path, "checkpoint_path")
        if self.testonly and not ckpts:
            if self._trained and self.last_checkpoint_path:
                ckpts = [self.last_checkpoint_path]
            elif not job.checkpoint_path:
                raise invalid(
                    "checkpoint_path", "the checkpoint(s) to test, since the model has no training data (test-only "
                    "run)", None, where="evaluate()", hint="m.evaluate(X_test, checkpoint_path=workspace + "
                    "'/checkpoint/step100-worker0'), or call m.fit(X_train, ..., with_test=True) before evaluate() to "
                    "train and test")
        for path in ckpts:
            if path not in job.checkpoint_path:
                job.checkpoint_path.append(path)
        job.test_steps = fields.pop("test_steps", 10)
        setval(job, **fields)
        if alg is not None or not job.HasField("train_one_batch"):
            job.train_one_batch.CopyFrom(Algorithm(type=alg_value("bp" if alg is None else alg, "evaluate")).proto)
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
            self.result = arrays.evaluate_arrays(self, data, y, checkpoint_path, fields)
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
        driver = Driver(argv=self.argv, seed=seed, verbose=self._verbose)
        if test:
            return driver.test(self.jobconf)
        self.history = History()
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
            raise invalid(arg, "a Data layer (e.g. from load_data())", data, where=method + "()")
        if enumPhase(phase) not in data.layer.include:
            got = [enum_name(job_pb2.Phase, p)[1:].lower() for p in data.layer.include]
            raise invalid(arg, "a Data layer of phase '%s'" % phase,
                          Stated("a Data layer of phase %s" % (got or "none",)), where=method + "()",
                          hint="Data(load='recordinput', phase='%s', conf=Store(...))" % phase)

    def _set_batchsize(self, phase, batch_size, method):
        batch_size = positive_int(batch_size, "batch_size", method + "()")
        for l in self._data_layers(phase):
            replace_fields(l.layer.store_conf, batchsize=batch_size)

    def _set_device(self, device):
        if device is not None:
            del self.jobconf.gpu[:]
            self.jobconf.gpu.extend(gpu_ids(device))
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
        """A model holding ``job`` (a JobProto, e.g. from read_job_conf), its layers rebuilt as layer
        objects of their types (singa.netbuild.layers_of).

        ``to_jobproto()`` gives back an equal JobProto; fit()/evaluate() can run it.
        """
        if not isinstance(job, job_pb2.JobProto):
            raise invalid("job", "a JobProto", job, where="from_jobproto()")
        m = cls(name=job.name, argv=argv)
        m.jobconf.CopyFrom(job)
        if job.HasField("neuralnet"):
            m._net_template = job_pb2.NetProto()
            m._net_template.CopyFrom(job.neuralnet)
            m._net_template.ClearField("layer")
            m.layers = layers_of(job.neuralnet)
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
        return saving.summary(self, phase, print_fn)

    def save(self, directory, overwrite=False):
        """The model as one directory: ``job.conf`` (its JobProto as text, SINGA's syntax) and its
        trained params (``step<N>-worker0``, SINGA's checkpoint format). ``Model.load`` reads it
        back; ``singa-run -conf <dir>/job.conf`` runs the job."""
        return saving.save(self, directory, overwrite)

    @classmethod
    def load(cls, directory, argv=None):
        """A model saved by ``save``: its job, with its params as the checkpoint for predict,
        evaluate and further training (checkpoint_path)."""
        return saving.load(cls, directory, argv)


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
            raise invalid("layer", "an RBM(...) (or a Data layer)", layer, where="Energy.add()",
                          hint="SINGA v0.3 silently dropped such layers; use Sequential for feed-forward nets")


def save_model_parameter(step, folder, layers):
    """Write the params of ``layers`` to ``<folder>/step<step>-worker0`` (SINGA's checkpoint format)."""
    return _save_params(step, folder, layers)


def load_model_parameter(path, layers, batchsize=1, data_shape=None):
    """Load the params of ``layers`` by name from a checkpoint (setting the layers up for an input of
    ``data_shape`` per sample when they have not run yet)."""
    _load_params(path, layers, batchsize, data_shape)




__all__ = list(_layer_all) + ["Model", "Sequential", "Energy"] + list(_jobconf_all) + [
    "save_model_parameter", "load_model_parameter", "generate_name", "sys"]
