"""The peers of the converter benchmark, each run as a whole process: ``python _peers.py PEER ARGS``.

- ``duckdb OUT SOURCE...``: DuckDB ``read_json(format='newline_delimited')`` ->
  ``COPY ... (FORMAT parquet)`` with 2 threads;
- ``naive OUT SOURCE``: ``json.loads`` per line, ``jsonschema.Draft202012Validator`` with the
  envelope schema, ``pandas.json_normalize``, object columns to JSON text, ``to_parquet``;
- ``dlt OUT SOURCE``: dlt ``pipeline.run`` to the filesystem destination in Parquet, 2 normalize
  workers, telemetry off;
- ``rsa OUT PEM SOURCE...``: ``cryptography`` verification of every delivery record of the
  sources (signature header against body) with the right key known, one process per core (OUT
  is unused: verifying writes nothing).

Each prints the number of rows (or verified deliveries) it produced on its last line.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import sys
from pathlib import Path

THREADS = 2  # DuckDB threads and dlt normalize workers: the cores of the bench machine


def duckdb_copy(out: str, *sources: str) -> int:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {THREADS}")
    target = out.replace("'", "''")
    query = f"COPY (SELECT * FROM read_json(?, format='newline_delimited')) TO '{target}' (FORMAT parquet)"
    row = con.execute(query, [list(sources)]).fetchone()
    return int(row[0]) if row else 0


def naive(out: str, source: str) -> int:
    import jsonschema
    import pandas as pd
    from referencing import Registry, Resource

    from siq_schemas import schema

    defs = schema("defs")  # the envelope's $refs point into it
    registry: Registry = Registry().with_resource(defs["$id"], Resource.from_contents(defs))
    validator = jsonschema.Draft202012Validator(schema("envelope"), registry=registry)
    payloads = []
    with open(source, "rb") as handle:
        for line in handle:
            payload = json.loads(line)
            validator.validate(payload)
            payloads.append(payload)
    frame = pd.json_normalize(payloads)
    for column in frame.columns:  # lists, dicts and mixed types cannot be written as they are
        if pd.api.types.is_object_dtype(frame[column]):
            frame[column] = frame[column].map(lambda value: None if value is None else json.dumps(value))
    frame.to_parquet(out)
    return len(frame)


def dlt_run(out: str, source: str) -> int:
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["NORMALIZE__WORKERS"] = str(THREADS)
    os.environ["DLT_DATA_DIR"] = os.path.join(out, "_dlt")
    import dlt

    @dlt.resource(name="events")
    def events():  # type: ignore[no-untyped-def]
        with open(source, "rb") as handle:
            batch = []
            for line in handle:
                batch.append(json.loads(line))
                if len(batch) == 1000:
                    yield batch
                    batch = []
            if batch:
                yield batch

    pipeline = dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.filesystem(bucket_url=Path(out, "tables").as_uri()),
        dataset_name="siq",
        pipelines_dir=os.path.join(out, "_pipelines"),
    )
    pipeline.run(events(), loader_file_format="parquet")
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return int(counts.get("events", 0))


def _verify(job: tuple[bytes, list[str]]) -> int:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    pem, sources = job
    key = serialization.load_pem_public_key(pem)
    pad, digest = padding.PKCS1v15(), hashes.SHA256()
    count = 0
    for source in sources:
        with open(source, "rb") as handle:
            for line in handle:
                record = json.loads(line)
                signature = base64.b64decode(record["headers"]["x-siqsignature"])
                key.verify(signature, record["body"].encode(), pad, digest)  # type: ignore[union-attr,call-arg]
                count += 1
    return count


def rsa_verify(out: str, pem: str, *sources: str) -> int:
    processes = os.cpu_count() or 1
    key = Path(pem).read_bytes()
    jobs = [(key, list(sources[index::processes])) for index in range(processes)]
    with multiprocessing.Pool(processes) as pool:
        return sum(pool.map(_verify, jobs, chunksize=1))


PEERS = {"duckdb": duckdb_copy, "naive": naive, "dlt": dlt_run, "rsa": rsa_verify}

if __name__ == "__main__":
    print(PEERS[sys.argv[1]](*sys.argv[2:]))
