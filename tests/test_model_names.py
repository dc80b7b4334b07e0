# covers: singa/model.py, singa/jobconf.py, singa/compiling.py, singa/arrays.py, singa/saving.py
# (the names and signatures of the user API)
"""The names the user API gives: ``from singa.model import *`` (SINGA v0.3 scripts' only import) and the
signatures of its classes and of Model's methods, pinned as they were before model.py was split (issue 15).
"""
import inspect

import singa.model

STAR_NAMES = [
    "Accuracy", "Activation", "ActivationProto", "ActivationType", "AdaDelta", "AdaDeltaProto", "AdaGrad", "Adam",
    "AdamMax", "AdamMaxProto", "AdamProto", "AlgProto", "AlgType", "Algorithm", "ArgSortProto", "Autoencoder",
    "AvgPooling2D", "BMProto", "BatchNormalization", "CDProto", "ChangeMethod", "CharRNN", "CharRNNProto", "Cluster", "ClusterProto",
    "ConcateProto", "Convolution", "Convolution2D", "ConvolutionProto", "Data", "DataProto", "Dense", "Dropout",
    "DropoutProto", "Dummy", "DummyProto", "Embedding", "EmbeddingProto", "Energy", "ExponentialProto",
    "FixedStepProto", "GRU", "GRUProto", "GaussianProto", "ImageInput", "InitMethod", "InnerProductProto",
    "InverseProto", "InverseTProto", "JobProto", "LRGenProto", "LRN2D", "LRNProto", "LabelInput", "Layer",
    "LayerGroupProto", "LayerProto", "LayerType", "LinearProto", "Loss", "MaxPooling2D", "Message", "MnistProto",
    "Model", "Nesterov", "NetProto", "OneHot", "OnehotProto", "ParamGenProto", "ParamProto", "ParamType",
    "Parameter", "Phase", "PoolingProto", "RBM", "RBMProto", "RELU", "RGB", "RGBImageProto", "RMSProp", "RMSPropProto",
    "RNNDummyProto", "RNNLM", "RNNLabel", "ReLUProto", "SGD", "SIGMOID", "STANH", "Sequential", "SliceProto",
    "SoftmaxLossProto", "SoftmaxProto", "SplitProto", "StepProto", "Store", "StoreProto", "TANH", "UniformProto",
    "UnrollConnType", "Updater", "UpdaterProto", "UpdaterType", "UserLossRNNLM", "enumActivationType",
    "enumAlgType", "enumChangeMethod", "enumInitMethod", "enumLayerType", "enumParamType", "enumPhase",
    "enumPoolMethod", "enumUnrollConnType", "enumUpdaterType", "generate_name", "kAccuracy", "kActivation",
    "kAdaDelta", "kAdaGrad", "kAdam", "kAdamMax", "kAggGrad", "kArgSort", "kBM", "kBP", "kBPTT", "kBackward",
    "kBridgeDst", "kBridgeSrc", "kCConvolution", "kCD", "kCPooling", "kCSVInput", "kCSVOutput", "kCharRNN",
    "kCharRNNOutput", "kConcate", "kConstant", "kConvolution", "kCudnnActivation", "kCudnnBM", "kCudnnConv",
    "kCudnnLRN", "kCudnnPool", "kCudnnSoftmax", "kCudnnSoftmaxLoss", "kDeploy", "kDropout", "kDummy", "kEmbedding",
    "kEuclideanLoss", "kExponential", "kFixed", "kFixedStep", "kForward", "kGRU", "kGaussian", "kGaussianSqrtFanIn",
    "kImagePreprocess", "kInnerProduct", "kInverse", "kInverseT", "kLMDBData", "kLRN", "kLabel", "kLinear", "kLoss",
    "kMnist", "kNegative", "kNesterov", "kOneHot", "kParam", "kPooling", "kPositive", "kRBMHid", "kRBMVis",
    "kRGBImage", "kRMSProp", "kRNNDummy", "kRNNLabel", "kReLU", "kRecordInput", "kRecordOutput", "kSGD", "kSTanh",
    "kShardData", "kSigmoid", "kSlice", "kSoftmax", "kSoftmaxLoss", "kSplit", "kStep", "kTest", "kTrain",
    "kUniform", "kUniformSqrtFanIn", "kUniformSqrtFanInOut", "kUnknown", "kUnrollCustomized", "kUnrollFirstToLast",
    "kUnrollOneToAll", "kUnrollOneToOne", "kUser", "kUserAlg", "kUserChange", "kUserInit", "kUserLayer",
    "kUserUpdater", "kVal", "load_model_parameter", "save_model_parameter", "set_param_field", "setval", "sys",
]

SIGNATURES = {
    "Updater": "(upd_type, lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,),"
               " **fields)",
    "SGD": "(lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), **fields)",
    "AdaGrad": "(lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), **fields)",
    "Nesterov": "(lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), **fields)",
    "RMSProp": "(lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), rho=0.9,"
               " **fields)",
    "AdaDelta": "(lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), rho=0.9,"
                " **fields)",
    "Adam": "(lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), beta1=0.9,"
            " beta2=0.999, **fields)",
    "AdamMax": "(lr=0.01, lr_type=None, decay=0, momentum=0, step=(0,), step_lr=(0.01,), beta1=0.9,"
               " beta2=0.999, **fields)",
    "Store": "(**kwargs)",
    "Algorithm": "(type=1, **kwargs)",
    "Cluster": "(workspace=None, nworker_groups=1, nserver_groups=1, nworkers_per_group=1,"
               " nservers_per_group=1, nworkers_per_procs=1, nservers_per_procs=1, **fields)",
}

MODEL_METHODS = {   # PRINT: the builtin print, summary's default print_fn
    "fit": "(self, data=None, alg='bp', nb_epoch=0, with_test=False, execpath='', device=None, seed=0,"
           " callbacks=None, terminate_on_nan=True, verbose=1, batch_size=None, epochs=None,"
           " validation_data=None, validation_split=0.0, shuffle=True, resume=False, y=None, **fields)",
    "evaluate": "(self, data=None, alg=None, checkpoint_path=None, execpath='', device=None,"
                " show_acc=False, seed=None, **fields)",
    "predict": "(self, x, batch_size=100, checkpoint_path=None)",
    "export_onnx": "(self, path, checkpoint_path=None, preprocess=True, opset=17)",
    "summary": "(self, phase='train', print_fn=PRINT)",
    "save": "(self, directory, overwrite=False)",
    "load": "(directory, argv=None)",
    "from_jobproto": "(job, argv=None)",
    "to_jobproto": "(self)",
    "build": "(self)",
    "compile": "(self, optimizer=None, cluster=None, loss=None, topk=1, updater=None, **kwargs)",
    "display": "(self)",
}


def test_star_import_gives_exactly_the_same_names():
    ns = {}
    exec("from singa.model import *", ns)
    assert sorted(k for k in ns if k != "__builtins__") == STAR_NAMES
    assert sorted(singa.model.__all__) == STAR_NAMES and len(singa.model.__all__) == len(STAR_NAMES)


def test_class_signatures_are_unchanged():
    for name, sig in SIGNATURES.items():
        assert str(inspect.signature(getattr(singa.model, name))) == sig, name


def test_model_method_signatures_are_unchanged():
    for name, sig in MODEL_METHODS.items():
        got = str(inspect.signature(getattr(singa.model.Model, name))).replace(repr(print), "PRINT")
        assert got == sig, name


def test_the_config_wrappers_keep_their_shape():
    from singa import jobconf
    for name in ("Store", "Algorithm", "Updater", "SGD", "AdaGrad", "Nesterov", "RMSProp", "AdaDelta", "Adam",
                 "AdamMax", "Cluster"):
        assert getattr(singa.model, name) is getattr(jobconf, name), name
    assert "Update" in vars(singa.model.Updater)          # a method of the class, not patched in later
    named = [singa.model.SGD, singa.model.AdaGrad, singa.model.Nesterov, singa.model.RMSProp,
             singa.model.AdaDelta, singa.model.Adam, singa.model.AdamMax]
    assert len({cls.__init__ for cls in named}) == 1      # one constructor; the classes differ in upd_type/conf
    assert [cls().proto.type for cls in named] == [cls.upd_type for cls in named]
    assert singa.model.Adam(0.1, None, 0, 0.9, (0,), (0.01,), 0.5).proto.adam_conf.beta1 == 0.5   # positional
