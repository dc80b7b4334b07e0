"""SINGA v0.3 protocol messages (JobProto, BlobProtos, RecordProto, SingaProto) and job.conf IO.

The ``*_pb2`` modules are generated from the ``.proto`` files beside them with
``python -m grpc_tools.protoc -I. --python_out=. job.proto common.proto singa.proto rnnlm.proto``
(run inside this folder); ``tests/test_proto.py`` checks they are in sync.

``rnnlm.proto`` is SINGA's examples/rnnlm/rnnlm.proto unchanged (no ``package``: its messages and the
``LayerProto`` extensions ``embedding_conf``, ``loss_conf``, ``data_conf`` live in the global namespace).
It is imported here, so its extensions are registered before any job.conf is parsed and rnnlm's
``[data_conf] {...}`` fields read with parse_job_conf/read_job_conf like any other field.
"""
import contextlib
import os
import sys

from google.protobuf import text_format

from singa.errors import ConfigError
from singa.proto import common_pb2, job_pb2, singa_pb2


@contextlib.contextmanager
def _as_top_level(**modules):
    """protoc's modules import their dependencies top-level (``import job_pb2``, for a .proto that
    says ``import "job.proto"``): within this block those names are this package's modules, and
    afterwards whatever they were, so a user's own top-level ``job_pb2`` is neither shadowed nor
    replaced."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def load_file_module(path):
    """Import the Python file ``path`` as the module named by its stem (its folder on sys.path, so
    its own imports resolve); the module stays in sys.modules. Returns the module."""
    import importlib.util
    name = os.path.splitext(os.path.basename(path))[0]
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, os.path.abspath(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


with _as_top_level(job_pb2=job_pb2, common_pb2=common_pb2):
    from singa.proto import rnnlm_pb2


def import_pb2(source):
    """Import a protoc-made ``*_pb2`` module of a user's ``.proto`` that says ``import "job.proto"``
    (or ``common.proto``, ``rnnlm.proto``): protoc writes ``import job_pb2``, which here is this
    package's job_pb2 for the length of the import (as rnnlm_pb2 is loaded), so the extensions it
    declares (``extend singa.LayerProto { optional MyConf my_conf = 1001; }``) join the same pool and
    a job.conf's ``[my_conf] { ... }`` parses. ``source``: a file path or a module name. Returns
    the module."""
    import importlib
    path = os.fspath(source)
    if path.endswith(".py") or os.path.isfile(path + ".py"):
        path = path if path.endswith(".py") else path + ".py"
        if not os.path.isfile(path):
            raise ConfigError("%s: no such file.\nhelp: give the *_pb2.py that protoc made from your .proto, or "
                              "the .proto itself" % path)
    else:
        path = None
    with _as_top_level(job_pb2=job_pb2, common_pb2=common_pb2, rnnlm_pb2=rnnlm_pb2):
        if path is None:
            return importlib.import_module(source)
        loaded = sys.modules.get(os.path.splitext(os.path.basename(path))[0])
        if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") == os.path.abspath(path):
            return loaded           # its descriptors are in the pool already
        try:
            return load_file_module(path)
        except Exception as e:
            raise ConfigError("%s cannot be loaded: %s: %s.\nhelp: regenerate it with this protobuf's protoc "
                              "(python -m grpc_tools.protoc), or pass the .proto file itself" % (
                                  path, type(e).__name__, e)) from e


def load_proto(path):
    """Compile a user's ``.proto`` (which may ``import "job.proto"``: this package's folder is on the
    include path) with grpc_tools.protoc into the cache (``$SINGA_CACHE/protos/<hash>``, made once
    per content) and import it with ``import_pb2``; returns the module."""
    import hashlib
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("%s cannot be read (%s).\nhelp: the path is relative to the working directory %s"
                          % (path, e.strerror, os.getcwd())) from None
    try:
        from grpc_tools import protoc
    except ImportError:
        raise ConfigError("compiling %s needs grpc_tools (pip install grpcio-tools).\nhelp: or compile it yourself, "
                          "`protoc -I %s --python_out=. %s`, and pass the *_pb2.py" % (
                              path, os.path.dirname(os.path.abspath(__file__)), path)) from None
    from singa.datasets._idx import cache_root
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(cache_root(), "protos", hashlib.sha1(text + path.encode()).hexdigest()[:16])
    stem = os.path.splitext(os.path.basename(path))[0]
    target = os.path.join(out, stem + "_pb2.py")
    if not os.path.isfile(target):
        os.makedirs(out, exist_ok=True)
        import contextlib
        import io
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = protoc.main(["protoc", "-I", os.path.dirname(os.path.abspath(path)), "-I", here,
                              "--python_out=" + out, os.path.abspath(path)])
        if rc != 0 or not os.path.isfile(target):
            raise ConfigError("protoc could not compile %s:\n%s\nhelp: a user .proto imports \"job.proto\" and "
                              "extends singa.LayerProto with field numbers 1001-1100 (JobProto, UpdaterProto, "
                              "ParamProto, LRGenProto, ParamGenProto: 101-200)" % (path, err.getvalue().strip()))
    return import_pb2(target)

JobProto = job_pb2.JobProto
LayerProto = job_pb2.LayerProto
ParamProto = job_pb2.ParamProto
BlobProto = common_pb2.BlobProto
BlobProtos = common_pb2.BlobProtos
RecordProto = common_pb2.RecordProto


class JobConfError(ConfigError):
    """A job.conf file (protobuf text format) could not be read; names the file, line and column."""

    def __init__(self, source, message, line=None, column=None, hint=None):
        where = source if line is None else "%s:%d:%d" % (source, line, column or 0)
        text = "%s: %s" % (where, message)
        if hint:
            text += "\nhelp: " + hint
        super().__init__(text)
        self.source, self.line, self.column = source, line, column


def decode_job_conf(data, source="<string>"):
    """The text of a job.conf given as bytes: UTF-8, where a byte that is not UTF-8 is accepted
    only inside a ``#`` comment (old confs carry Latin-1 comments; SINGA's C++ parser read bytes
    and skipped comments). Anywhere else, a string value included, such a byte is a JobConfError
    naming the line, column and byte, never silently changed. A UTF-8 byte-order mark is dropped.
    """
    data = bytes(data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]          # editors on Windows write one; it is no part of the text
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
    out = []
    for number, line in enumerate(lines, 1):
        code, comment = _split_comment(line)
        try:
            code_text = code.decode("utf-8")
        except UnicodeDecodeError as e:
            raise JobConfError(source, "byte 0x%02x is not UTF-8 (outside a # comment)" % code[e.start],
                               number, e.start + 1,
                               hint="save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`); only comments "
                                    "may hold other bytes") from None
        # A comment's text is dropped by the parser, so an undecodable byte there cannot change the job.
        out.append(code_text + comment.decode("utf-8", errors="replace"))
    return "\n".join(out)


def _split_comment(line):
    """(code, comment) of one line of bytes: the comment starts at a ``#`` outside a quoted string."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i:i + 1]
        if quote:
            if c == b"\\":
                i += 1           # the escaped byte cannot close the string
            elif c == quote:
                quote = None
        elif c in (b'"', b"'"):
            quote = c
        elif c == b"#":
            return line[:i], line[i:]
        i += 1
    return line, b""


def parse_job_conf(text, source="<string>", message=None, check_required=True):
    """Parse protobuf text (a job.conf, str or bytes) into a JobProto (or into ``message`` if given).

    Raises JobConfError naming ``source``, the line and the column of the first error,
    and (unless ``check_required`` is false) the required fields left unset (SINGA's C++
    parser rejected those too).
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = decode_job_conf(text, source)
    msg = message if message is not None else JobProto()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        line, col = e.GetLine(), e.GetColumn()
        detail = str(e)
        # ParseError's text starts with "line:col : "; keep only the reason.
        if " : " in detail:
            detail = detail.split(" : ", 1)[1]
        raise JobConfError(source, detail, line, col,
                           hint="field names and enum values are those of SINGA v0.3's job.proto, "
                                "e.g. `type: kInnerProduct`, `include: kTest`") from None
    missing = msg.FindInitializationErrors() if check_required else None
    if missing:
        raise JobConfError(source, "required field(s) not set: %s" % ", ".join(missing),
                           hint="SINGA v0.3 marks these fields `required`; add them to the file")
    return msg


def read_job_conf(path, check_required=True):
    """Read a job.conf file (text format) into a JobProto; every failure is a JobConfError naming
    the file (``check_required=False`` reads a partial file, e.g. one holding only ``cluster {}``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise JobConfError(path, "no such file",
                           hint="pass the path of an existing job.conf (text-format JobProto)")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise JobConfError(path, "cannot be read (%s)" % (e.strerror or e),
                           hint="check the file's permissions") from None
    return parse_job_conf(data, source=path, check_required=check_required)


def job_to_text(job):
    """Text format of a JobProto, as SINGA's job.conf files are written."""
    return text_format.MessageToString(job)


def enum_name(enum_type, value):
    """The name of ``value`` in ``enum_type`` ('kSoftmaxLoss'), or ``str(value)`` when the enum has no
    such value (a user type number, or a value from a newer SINGA): for messages, never raises."""
    try:
        return enum_type.Name(value)
    except (ValueError, TypeError):
        return str(value)


def is_input_layer(lp):
    """Whether LayerProto ``lp`` is a data (input) layer: a built-in input type (numbers 100-199 of
    SINGA's LayerType) or the user type 'kData', without sources (v0.1's parsers kLabel, kMnist and
    kRGBImage share the numbers but read a data layer)."""
    return (100 <= lp.type < 200 or lp.user_type == "kData") and not len(lp.srclayers)


def enum_value(enum_type, key, what):
    """SINGA's enumXxx(key): the value whose name minus its first letter, lower-cased, equals key.

    ``enum_value(job_pb2.LayerType, 'softmaxloss', 'layer type') == kSoftmaxLoss``. Full names
    ('kSoftmaxLoss') are accepted too. Unknown keys raise ConfigError listing the valid ones.
    """
    desc = enum_type.DESCRIPTOR
    if isinstance(key, int):
        if key in desc.values_by_number:
            return key
    else:
        for v in desc.values:
            if key == v.name or key.lower() == v.name[1:].lower() or key.lower() == v.name.lower():
                return v.number
    valid = ", ".join("'%s'" % v.name[1:].lower() for v in desc.values)
    raise ConfigError("Invalid value for `%s`. Expected one of %s. Received: %r" % (what, valid, key))
