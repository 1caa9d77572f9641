#!/usr/bin/env python3
"""An independent reader of elevate-archive's Parquet mirror, as a dataset reader sees it.

It shares no code with the project: pyarrow reads every `*.parquet` object under `ROOT/TABLE/` (hidden and
`_`-prefixed names skipped, as Spark, Trino and DuckDB skip them), with the Hive partition `date` taken from
the path, and prints every row, sorted by id, as one JSON array per line; timestamps as epoch milliseconds:
  events:    [id, timestamp, category, action, description, username, ip_address, digest, raw, date]
  revisions: [id, event_id, timestamp, fetched_at, digest, raw, date]
A row that appears twice is printed twice.

Usage:
  lake_read.py [--table events|revisions] DIR                 a local mirror
  lake_read.py [--table events|revisions] s3://BUCKET/PREFIX  an S3-compatible mirror (AWS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION from the environment)
  lake_read.py --mkbucket s3://BUCKET   create the bucket (test set-up)
  lake_read.py --put s3://BUCKET/KEY FILE   replace an object's bytes (test tampering)
"""
import json
import os
import sys
from urllib.parse import urlparse

import pyarrow.fs as pafs
import pyarrow.parquet as pq


COLUMNS = {
    "events": ("id", "timestamp", "category", "action", "description", "username", "ip_address", "digest", "raw"),
    "revisions": ("id", "event_id", "timestamp", "fetched_at", "digest", "raw"),
}


def s3(allow_bucket_creation=False):
    endpoint = urlparse(os.environ["AWS_ENDPOINT_URL"])
    return pafs.S3FileSystem(
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme,
        allow_bucket_creation=allow_bucket_creation,
    )


def filesystem(url):
    if url.startswith("s3://"):
        return s3(), url[len("s3://"):].rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(url)


def main(argv):
    if len(argv) == 3 and argv[1] == "--mkbucket":
        s3(allow_bucket_creation=True).create_dir(argv[2][len("s3://"):])
        return 0
    if len(argv) == 4 and argv[1] == "--put":
        with s3().open_output_stream(argv[2][len("s3://"):]) as out, open(argv[3], "rb") as f:
            out.write(f.read())
        return 0
    table = "events"
    if len(argv) == 4 and argv[1] == "--table" and argv[2] in COLUMNS:
        table, argv = argv[2], argv[:1] + argv[3:]
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    fs, root = filesystem(argv[1])
    infos = fs.get_file_info(pafs.FileSelector(root + "/" + table, recursive=True, allow_not_found=True))
    rows = []
    for info in infos:
        name = info.base_name
        if info.type != pafs.FileType.File or not name.endswith(".parquet") or name[0] in "._":
            continue
        date = next(p[len("date="):] for p in info.path.split("/") if p.startswith("date="))
        data = pq.read_table(info.path, filesystem=fs)
        cols = []
        for c in COLUMNS[table]:
            column = data.column(c)
            if column.type.__class__.__name__ == "TimestampType":
                column = column.cast("int64")
            cols.append(column.to_pylist())
        for i in range(data.num_rows):
            rows.append([c[i] for c in cols] + [date])
    rows.sort(key=lambda r: r[0])
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
