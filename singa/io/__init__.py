"""SINGA v0.x file formats: kvfile and textfile stores, RecordProto values, MNIST idx files,
checkpoints (BlobProtos) and the ``singa-create-data`` converter."""
from singa.io.kvfile import KVFileReader, KVFileWriter, read_kvfile, write_kvfile  # noqa: F401
from singa.io.record import (decode_batch, decode_records, encode_pixel_records, encode_record,  # noqa: F401
                             load_record_file, parse_record, record_values)
from singa.io.idx import read_idx, read_mnist, read_mnist_images, read_mnist_labels, write_idx  # noqa: F401
from singa.io.textfile import (TextFileReader, TextFileWriter, format_csv_record,  # noqa: F401
                               parse_csv_records, read_csv_file)
from singa.io.checkpoint import (checkpoint_file, latest_checkpoint_step, read_checkpoint,  # noqa: F401
                                 read_state, write_checkpoint, write_state)
