"""Key scans of a PostgreSQL source, streamed through a server-side cursor."""

from __future__ import annotations

import itertools
from pathlib import Path

from govshare.node.source import SourceReader, keyset_checksum, make_engine
from tests.exchange.scenario import make_pg_source
from tests.pg import PostgresServer

_names = itertools.count()


def test_a_key_scan_streams_every_key_in_scope_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database(f"scan_{next(_names)}_{abs(hash(str(tmp_path))) % 10**6}")
    make_pg_source(url, 2500)
    engine = make_engine(url)
    try:
        reader = SourceReader(
            engine,
            {
                "table": "person",
                "key": ["id"],
                "mode": "snapshot",
                # A bound parameter in the scan: the grant's rows only.
                "row_filter": [{"column": "id", "op": "prefix", "value": "1"}],
            },
        )
        batches = list(reader.live_key_batches(size=400))
        keys = [row[0] for batch in batches for row in batch]
        expected = [i for i in range(1, 2501) if str(i).startswith("1")]
        assert sorted(keys) == expected  # none lost at a batch's edge, none twice
        assert max(len(b) for b in batches) == 400
        assert reader.checksum() == keyset_checksum([[(k,) for k in expected]], 1)
    finally:
        engine.dispose()
