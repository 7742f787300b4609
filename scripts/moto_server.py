"""moto's server (the local S3 + Kinesis emulator) with its Kinesis put made O(1).

moto 5.2.5 numbers a Kinesis record by copying every key of its shard into a list and
taking the last (`Shard.get_max_sequence_number`), so each put costs as much as the shard
already holds: a simulated market day (half a million records) slows it until it cannot
keep up. A shard's records live in an insertion-ordered dict whose keys only grow, so the
newest key is the last one inserted; the two functions below read it (and the oldest)
directly. Nothing else of moto changes.

Usage: moto_server.py [moto_server's arguments]   (run with the venv's Python)
"""
import sys

from moto.kinesis import models


def _max_sequence_number(self) -> int:
    return next(reversed(self.records)) if self.records else 0


def _min_sequence_number(self) -> int:
    return next(iter(self.records)) if self.records else 0


models.Shard.get_max_sequence_number = _max_sequence_number
models.Shard.get_min_sequence_number = _min_sequence_number

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
