"""The results stream, `OUT/results.jsonl`: one typed definition of every record kind.

- `records`: the kinds (`run` header, `req`, `tick`, `phase`, `sample`, `step`, `error`,
  `worker`, `sent`, `delivery`, `queue`, `tracking`, `tls`, `end`) as frozen dataclasses, with
  the schema version;
- `codec`: one encoder and one decoder per kind, in one table (`req` hand-formatted: hot path);
- `writer`: `StreamWriter` (numbering, buffering, flushing) and Locust's request listener;
- `reader`: `read_stream`, typed records in order (a cut-off last line skipped);
- `tls`: `tls_listener`, a `tls` record per (scenario, version, cipher) first seen;
- `fields`: the README's field table, rendered from the definitions.
"""

from loadtests.stream.codec import CODECS, RECORD_TYPES, decode, to_dict
from loadtests.stream.reader import StreamError, StreamVersionError, read_stream
from loadtests.stream.records import (
    SCHEMA,
    Delivery,
    End,
    Header,
    Phase,
    Queue,
    Record,
    Req,
    Sample,
    Sent,
    Step,
    Tick,
    TlsSeen,
    Tracking,
    UserError,
    WorkerEvent,
)
from loadtests.stream.tls import tls_listener
from loadtests.stream.writer import (
    RESULTS_FILE,
    StreamWriter,
    req_dict,
    req_record,
    user_error_record,
)

__all__ = ["CODECS", "RECORD_TYPES", "RESULTS_FILE", "SCHEMA", "Delivery", "End", "Header",
           "Phase", "Queue", "Record", "Req", "Sample", "Sent", "Step", "StreamError",
           "StreamVersionError", "StreamWriter", "Tick", "TlsSeen", "Tracking", "UserError",
           "WorkerEvent", "decode", "read_stream", "req_dict", "req_record", "tls_listener",
           "to_dict", "user_error_record"]
