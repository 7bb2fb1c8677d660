"""Archives and outputs on object storage: a local S3 server (moto) and fsspec's memory filesystem."""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import siq_schemas
from siq_schemas import storage
from siq_schemas.converter import Tuning
from siq_schemas.tables import TABLES
from tests.archives import chat, envelope, tables_of
from tests.conftest import KEYS, delivery, write_lines

fsspec = pytest.importorskip("fsspec")
moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

KEY_A = KEYS / "key_a_public.pem"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free local port, and the AWS environment that points s3fs (and Dask workers) at it."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    settings = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    try:
        yield fs
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        fsspec.filesystem("s3").clear_instance_cache()
        server.stop()


@pytest.fixture
def bucket(s3):
    """A new, empty bucket: its s3:// URL."""
    name = f"siq-{uuid.uuid4().hex[:12]}"
    s3.mkdir(name)
    return f"s3://{name}"


def archive(folder):
    """Two files of signed deliveries, with a retry and a copy in the other file, and an unreadable line."""
    folder.mkdir(parents=True)
    payloads = chat()
    write_lines(folder / "a.jsonl", [delivery(p) for p in payloads[:6]])
    copies = [delivery({**payloads[1], "attempt": 2}), delivery(payloads[0]), "{broken"]
    write_lines(folder / "b.jsonl", [delivery(p) for p in payloads[6:]] + copies)
    return folder


def upload(fs, folder, url):
    """Copy the files of ``folder`` to ``url``."""
    for path in sorted(folder.iterdir()):
        fs.put_file(str(path), f"{url}/{path.name}")


def remote_tables(url):
    """Every table of the output at ``url``, read through the files its manifest lists, without ``source``."""
    fs, _ = storage.filesystem(url)
    result = {}
    for name in TABLES:
        paths = [fs._strip_protocol(file) for file in siq_schemas.table_files(url, name)]
        data = pq.read_table(paths, filesystem=fs, schema=TABLES[name].schema)
        result[name] = data.drop_columns([c for c in ("source",) if c in data.column_names])
    return result


def objects(fs, url):
    """The objects under ``url``, relative to it."""
    root = fs._strip_protocol(url)
    fs.invalidate_cache()
    return sorted(path[len(root) + 1 :] for path in fs.find(root))


def test_s3_round_trip_equals_a_local_conversion(tmp_path, s3, bucket):
    """Sources and output on S3 give the tables of a local run; re-running adds nothing, a new file only its events."""
    local = archive(tmp_path / "archive")
    upload(s3, local, f"{bucket}/archive")
    workers = Tuning(parallel_bytes=0)  # worker processes open the sources through s3fs too
    report = siq_schemas.convert(f"{bucket}/archive", f"{bucket}/out", keys=KEY_A, workers=2, tuning=workers)
    expected = siq_schemas.convert(local, tmp_path / "local", keys=KEY_A)
    assert report.out == f"{bucket}/out" and report.to_dict() | {"out": ""} == expected.to_dict() | {
        "out": "", "seconds": report.seconds}  # fmt: skip
    assert remote_tables(f"{bucket}/out") == tables_of(tmp_path / "local")
    events = siq_schemas.read_table(f"{bucket}/out", "events")
    assert events.source.str.startswith(f"{bucket}/archive/").all()
    manifest = json.loads(s3.cat_file(f"{bucket}/out/_manifest.json"))
    assert {entry["path"] for entry in manifest["inputs"]} == {f"{bucket}/archive/a.jsonl", f"{bucket}/archive/b.jsonl"}
    assert objects(s3, f"{bucket}/out") == sorted([*manifest["objects"].values(), "_manifest.json", "_drift.json"])

    again = siq_schemas.convert(f"{bucket}/archive", f"{bucket}/out", keys=KEY_A)
    assert (again.records_read, again.events_written, again.files_unchanged) == (0, 0, 2)
    assert json.loads(s3.cat_file(f"{bucket}/out/_manifest.json")) == manifest, "nothing new: nothing published"

    grown = write_lines(local / "c.jsonl", [delivery(envelope("department.deleted", "d7", 1_772_000_500_000))])
    s3.put_file(str(grown), f"{bucket}/archive/c.jsonl")
    more = siq_schemas.convert(f"{bucket}/archive/*.jsonl", f"{bucket}/out", keys=KEY_A)
    assert (more.records_read, more.events_written, more.files_unchanged) == (1, 1, 2)
    siq_schemas.convert(local, tmp_path / "fresh", keys=KEY_A)
    assert remote_tables(f"{bucket}/out") == tables_of(tmp_path / "fresh")
    manifest = json.loads(s3.cat_file(f"{bucket}/out/_manifest.json"))
    assert objects(s3, f"{bucket}/out") == sorted([*manifest["objects"].values(), "_manifest.json", "_drift.json"])


def test_dask_workers_read_sources_from_s3(tmp_path, s3, bucket):
    """The Dask engine's workers open s3:// sources themselves; the output on S3 equals a local run's."""
    local = archive(tmp_path / "archive")
    upload(s3, local, f"{bucket}/archive")
    report = siq_schemas.convert(f"{bucket}/archive", f"{bucket}/out", keys=KEY_A, engine="dask", workers=2)
    expected = siq_schemas.convert(local, tmp_path / "local", keys=KEY_A)
    assert (report.events_written, report.duplicates, report.rejected) == (
        expected.events_written, expected.duplicates, expected.rejected)  # fmt: skip
    assert remote_tables(f"{bucket}/out") == tables_of(tmp_path / "local")


def test_a_publish_that_dies_before_its_manifest_leaves_the_previous_output(tmp_path, monkeypatch):
    """Until the manifest is written, readers see the previous output; the next run completes and removes leftovers."""
    out = f"memory://{tmp_path.name}/out"
    local = archive(tmp_path / "archive")
    siq_schemas.convert(local / "a.jsonl", out, keys=KEY_A)
    before = remote_tables(out)
    fs = fsspec.filesystem("memory")
    pipe_file = type(fs).pipe_file

    def dies_at_the_manifest(self, path, *args, **kwargs):
        if path.endswith("_manifest.json"):
            raise ConnectionError("the network went away")
        return pipe_file(self, path, *args, **kwargs)

    monkeypatch.setattr(type(fs), "pipe_file", dies_at_the_manifest)
    with pytest.raises(ConnectionError):
        siq_schemas.convert(local, out, keys=KEY_A)
    monkeypatch.undo()
    assert remote_tables(out) == before
    assert len(siq_schemas.read_table(out, "events")) == 6
    leftovers = [name for name in objects(fs, out) if name.startswith("events/")]
    assert len(leftovers) == 2, "the dead run's files stand beside the committed ones"

    report = siq_schemas.convert(local, out, keys=KEY_A)
    assert (report.records_read, report.events_written) == (8, 5)
    siq_schemas.convert(local, tmp_path / "fresh", keys=KEY_A)
    assert remote_tables(out) == tables_of(tmp_path / "fresh")
    assert len([name for name in objects(fs, out) if name.startswith("events/")]) == 1


def test_memory_and_file_urls(tmp_path):
    """memory:// outputs read back with read_table; file:// URLs are plain paths (atomic folder swap)."""
    local = archive(tmp_path / "archive")
    report = siq_schemas.convert(local, f"memory://{tmp_path.name}/out")
    assert report.out == f"memory://{tmp_path.name}/out"
    assert len(siq_schemas.read_table(f"memory://{tmp_path.name}/out", "conversations")) == 3
    siq_schemas.convert(f"file://{local}", f"file://{tmp_path}/out")
    assert (tmp_path / "out" / "_manifest.json").exists()
    files = siq_schemas.table_files(tmp_path / "out", "events")
    assert files == [str(tmp_path / "out" / "events" / "part-00000.parquet")]
    assert remote_tables(f"memory://{tmp_path.name}/out") == tables_of(tmp_path / "out")


def test_a_url_that_is_not_a_siq_output_is_refused(tmp_path):
    """A non-empty prefix without a manifest is never written to; a missing source is a clear error."""
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"/{tmp_path.name}/other/data.csv", b"a,b\n")
    write_lines(tmp_path / "a.jsonl", chat()[:1])
    with pytest.raises(siq_schemas.StorageError, match="not a siq output"):
        siq_schemas.convert(tmp_path / "a.jsonl", f"memory://{tmp_path.name}/other")
    assert objects(fs, f"memory://{tmp_path.name}/other") == ["data.csv"]
    with pytest.raises(siq_schemas.Unreadable, match="no such file"):
        siq_schemas.convert(f"memory://{tmp_path.name}/missing/", tmp_path / "out")
    with pytest.raises(siq_schemas.StorageError, match="no siq output"):
        siq_schemas.table_files(f"memory://{tmp_path.name}/nothing", "events")


def test_remote_tables_keep_their_types(tmp_path):
    """Tables read back from object storage have the schemas of the table specs."""
    local = archive(tmp_path / "archive")
    out = f"memory://{tmp_path.name}/out"
    siq_schemas.convert(local, out)
    fs, _ = storage.filesystem(out)
    for name in ("events", "operators"):
        path = fs._strip_protocol(siq_schemas.table_files(out, name)[0])
        assert pq.read_schema(path, filesystem=fs) == TABLES[name].schema
    assert pq.read_schema(fs._strip_protocol(siq_schemas.table_files(out, "events")[0]), filesystem=fs).field(
        "event_time"
    ).type == pa.timestamp("ms", tz="UTC")


def test_readme_duckdb_snippet_reads_an_output_on_s3(s3, capsys):
    """The README's DuckDB snippet runs on the shipped sample converted to the local S3 server, printing its comment."""
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"### Reading the output\n.*?```python\n(.*?)```", readme, re.DOTALL).group(1)
    if not s3.exists("siq-demo"):
        s3.mkdir("siq-demo")
    sample = root / "data" / "sample"
    siq_schemas.convert(sample, "s3://siq-demo/sample", keys=sample / "keys" / "sample_public.pem", allow_unsigned=True)
    exec(snippet, {})
    expected = snippet.strip().splitlines()[-1].removeprefix("# ")
    assert capsys.readouterr().out.strip() == expected
