# covers: singa/proto/__init__.py, singa/io/textfile.py, singa/history.py
"""Issue 14 item 5 for the text readers: job.conf, the CSV/textfile store and History CSV/JSONL
answer hostile files with the project's own errors (file, line, what was expected), never a
UnicodeDecodeError, ValueError, TypeError, IndexError, csv.Error or RecursionError; and every
file the project writes itself still reads back."""
import math

import pytest

from singa.errors import ConfigError, DataError, SingaError
from singa.history import History
from singa.io.textfile import TextFileReader, TextFileWriter, read_csv_file
from singa.proto import JobConfError, job_to_text, parse_job_conf, read_job_conf

JOB = b"""name: "tiny"
train_steps: 3
train_one_batch { alg: kBP }
updater { type: kSGD learning_rate { type: kFixed base_lr: 0.1 } }
neuralnet { layer { name: "data" type: kRecordInput } }
"""


# -- job.conf --------------------------------------------------------------------------------
def test_jobconf_latin1_byte_in_a_comment_is_accepted(tmp_path):
    p = tmp_path / "old.conf"
    p.write_bytes(b"# r\xe9seau de neurones (Latin-1, as old confs were saved)\n" + JOB +
                  b'cluster { workspace: "ws" }  # caf\xe9 "quoted" \xff\n')
    job = read_job_conf(str(p))
    assert job.name == "tiny" and job.cluster.workspace == "ws"


def test_jobconf_non_utf8_byte_in_a_string_value_is_an_error_naming_line_column_byte(tmp_path):
    p = tmp_path / "bad.conf"
    p.write_bytes(JOB + b'cluster { workspace: "caf\xe9 # not a comment" }\n')
    with pytest.raises(JobConfError) as e:
        read_job_conf(str(p))
    msg = str(e.value)
    assert str(p) + ":6:26" in msg and "0xe9" in msg and "help:" in msg
    assert isinstance(e.value, ConfigError) and e.value.line == 6


def test_jobconf_non_utf8_byte_outside_strings_and_comments_is_an_error(tmp_path):
    with pytest.raises(JobConfError, match=r"<string>:2:1: byte 0xff"):
        parse_job_conf(b"name: \"x\"\n\xff\n")


def test_jobconf_bom_is_dropped_and_partial_files_read_without_required_fields(tmp_path):
    p = tmp_path / "cluster.conf"
    p.write_bytes(b'\xef\xbb\xbfcluster { nworkers_per_group: 2 workspace: "w" }\n'
                  b'neuralnet { layer { type: kRecordInput } }\n')      # a layer without its required name
    with pytest.raises(JobConfError, match="required field"):
        read_job_conf(str(p))
    assert read_job_conf(str(p), check_required=False).cluster.nworkers_per_group == 2


def test_jobconf_round_trips_text_written_by_job_to_text(tmp_path):
    job = parse_job_conf(JOB)
    p = tmp_path / "job.conf"
    p.write_text(job_to_text(job), encoding="utf-8")
    assert read_job_conf(str(p)) == job


# -- the CSV / textfile store ------------------------------------------------------------------
def test_csv_store_non_utf8_byte_is_a_data_error_naming_file_line_offset(tmp_path):
    p = tmp_path / "store.csv"
    p.write_bytes(b"0,1,2\n1,3,4\n2,5\xe9,6\n")
    with pytest.raises(DataError) as e:
        read_csv_file(str(p))
    msg = str(e.value)
    assert str(p) in msg and "line 3" in msg and "byte offset 15" in msg and "0xe9" in msg and "help:" in msg
    with pytest.raises(DataError, match="line 3"):
        TextFileReader(str(p)).count()


def test_csv_store_label_too_large_or_infinite_is_an_error_not_a_garbage_class(tmp_path):
    # found by the fuzz replay: inf or 1e10 passed the integer check and became a random int32
    for label in ("inf", "1e10", "-3e9"):
        p = tmp_path / "lab.csv"
        p.write_text("1,0.5\n%s,0.25\n" % label)
        with pytest.raises(DataError, match="line 2 of .*lab.csv has a label"):
            read_csv_file(str(p))


def test_csv_store_writer_refuses_non_utf8_bytes_with_a_config_error(tmp_path):
    w = TextFileWriter(str(tmp_path / "w.csv"))
    with pytest.raises(ConfigError, match="record 'k'.*UTF-8"):
        w.insert("k", b"1,\xff")
    w.abort()


# -- History -------------------------------------------------------------------------------------
def _history():
    h = History()
    for s in range(3):
        h.on_step_end(None, s, {"loss": 1.0 / (s + 1), "acc": 0.25 * s})
    h.on_display(None, 2, {"loss": 0.5, "acc": 0.5})
    h.on_test_end(None, 3, "test", {"loss": float("nan"), "acc": float("inf")})
    h.on_test_end(None, 3, "validation", {"se": -float("inf")})
    return h


def _same(a, b):
    def norm(h):
        return {p: {s: {k: repr(v) for k, v in m.items()} for s, m in getattr(h, p).items()}
                for p in ("step", "train", "validation", "test")}
    return norm(a) == norm(b)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_history_reads_back_every_file_it_writes(tmp_path, fmt):
    for h in (_history(), History()):
        path = str(tmp_path / ("h." + fmt))
        back = getattr(History, "from_" + fmt)(getattr(h, "to_" + fmt)(path))
        assert _same(back, h) and math.isnan(back.test.get(3, {"loss": float("nan")})["loss"])
    # a spreadsheet that re-saved the file may put a BOM in front; blank lines at the end too
    path = tmp_path / ("bom." + fmt)
    path.write_bytes(b"\xef\xbb\xbf" + open(_history().__getattribute__("to_" + fmt)(str(tmp_path / "x")), "rb")
                     .read() + b"\n\n")
    assert _same(getattr(History, "from_" + fmt)(str(path)), _history())


HEADER = b"phase,step,acc,loss\n"
# (file name, bytes, what the message must say). Each of these crashed (or was silently wrong)
# before: see the comment on each line for the old outcome.
HOSTILE_CSV = [
    ("empty.csv", b"", r"not a History CSV"),                                          # DataError already
    ("latin1.csv", HEADER + b"step,0,0.5,caf\xe9\n", r"line 2 \(byte offset 34\)"),    # UnicodeDecodeError
    ("word.csv", HEADER + b"step,0,0.5,abc\n", r"line 2: metric 'loss'.*'abc'"),       # ValueError
    ("blank.csv", HEADER + b"step,0,0.5,1\n\n\nstep,1,0.5,1\n", None),                   # IndexError; now read
    ("ragged.csv", HEADER + b"step\n", r"line 2: the row.*4 fields.*1 field"),         # IndexError
    ("short.csv", HEADER + b"step,0,0.5\n", r"line 2: the row.*3 field"),              # silently dropped loss
    ("extra.csv", HEADER + b"step,0,0.5,1,7,8\n", r"line 2: the row.*6 field"),        # silently dropped
    ("dup.csv", b"phase,step,loss,loss\nstep,0,1,2\n", r"line 1: the header.*repeated: loss"),  # kept the last
    ("huge.csv", HEADER + b"step,0,0.5," + b"1" * 200000 + b"\n", r"line 2: the CSV text.*field larger"),  # csv.Error
    ("ctrl.csv", HEADER + b"step,\x1d3,0.5,1\n", r"line 2: step '\\x1d3'"),             # ValueError (atheris)
    ("hugestep.csv", HEADER + b"step," + b"9" * 5000 + b",0.5,1\n", r"line 2: step"),  # int() digit limit
]


@pytest.mark.parametrize("name,data,match", HOSTILE_CSV, ids=[c[0] for c in HOSTILE_CSV])
def test_history_csv_hostile_file_gives_data_error_with_file_and_line(tmp_path, name, data, match):
    p = tmp_path / name
    p.write_bytes(data)
    if match is None:
        assert sorted(History.from_csv(str(p)).step) == [0, 1]
        return
    with pytest.raises(DataError, match=match) as e:
        History.from_csv(str(p))
    assert str(p) in str(e.value)


REC = b'{"phase": "step", "step": 0, "loss": 1.0}\n'
HOSTILE_JSONL = [
    ("latin1.jsonl", REC + b'{"phase": "step", "step": 1, "loss": "\xe9"}\n', r"line 2 \(byte offset"),  # Unicode
    ("list.jsonl", REC + b"[1, 2]\n", r"line 2 is not a History record \(a JSON list"),  # TypeError
    ("number.jsonl", b"3\n", r"line 1 is not a History record \(a JSON int"),            # AttributeError->ok
    ("numkey.jsonl", b'{1: 2}\n', r"line 1 is not a History record"),                   # DataError already
    ("nested.jsonl", b'{"phase": "step", "step": 0, "loss": [1]}\n', r"line 1: metric 'loss'.*\[1\]"),  # TypeError
    ("null.jsonl", b'{"phase": "step", "step": 0, "loss": null}\n', r"metric 'loss'.*None"),           # TypeError
    ("word.jsonl", b'{"phase": "step", "step": 0, "loss": "abc"}\n', r"metric 'loss'"),                # ValueError
    ("bigint.jsonl", b'{"phase": "step", "step": 0, "loss": 1' + b"0" * 400 + b"}\n", r"metric 'loss'"),  # Overflow
    ("nullstep.jsonl", b'{"phase": "step", "step": null}\n', r"line 1: step 'None'"),                   # TypeError
    ("infstep.jsonl", b'{"phase": "step", "step": Infinity}\n', r"line 1: step 'inf'"),                # Overflow
    ("floatstep.jsonl", b'{"phase": "step", "step": 1.5}\n', r"line 1: step '1.5'"),                   # silently 1
    ("nostep.jsonl", b'{"phase": "step"}\n', r"line 1 is not a History record \(no 'step'"),            # DataError
    ("deep.jsonl", b"[" * 100000 + b"]" * 100000 + b"\n", r"line 1 is not a History record"),  # RecursionError
    ("phase.jsonl", b'{"phase": ["step"], "step": 0}\n', r"line 1: phase \['step'\]"),                  # ok
]


@pytest.mark.parametrize("name,data,match", HOSTILE_JSONL, ids=[c[0] for c in HOSTILE_JSONL])
def test_history_jsonl_hostile_file_gives_data_error_with_file_and_line(tmp_path, name, data, match):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(DataError, match=match) as e:
        History.from_jsonl(str(p))
    assert str(p) in str(e.value)


@pytest.mark.parametrize("reader", [History.from_csv, History.from_jsonl])
def test_history_missing_file_or_directory_is_a_data_error(tmp_path, reader):
    for p in (tmp_path / "missing", tmp_path):
        with pytest.raises(DataError, match="cannot be read"):
            reader(str(p))


def test_history_jsonl_blank_lines_and_form_feeds_keep_editor_line_numbers(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_bytes(REC + b"\n  \n" + b'{"phase": "step", "step": 1, "loss": "x\\u2028"}\x0c\n')
    with pytest.raises(DataError, match=r"h.jsonl line 4 is not"):    # \x0c is not JSON whitespace
        History.from_jsonl(str(p))


def test_every_error_above_is_a_singa_error():
    assert issubclass(JobConfError, SingaError) and issubclass(DataError, SingaError)


def test_csv_lines_in_a_kvfile_with_a_non_utf8_byte_name_the_record(tmp_path):
    # they were decoded with errors="replace": a Latin-1 byte silently became U+FFFD
    from singa.io.kvfile import KVFileWriter
    from singa.layers.input import _load
    path = str(tmp_path / "csv.kv")
    with KVFileWriter(path) as w:
        w.insert("0", b"1,0.5,0.25")
        w.insert("1", b"2,0.5,\xe90.25")
    with pytest.raises(DataError, match=r"csv.kv record 1 line 1 \(byte offset 6\) holds byte 0xe9"):
        _load(path, "kvfile", 2, "csv", ",", True)
