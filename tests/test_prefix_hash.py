"""PrefixHasher: pieces written in any order, from several threads, hash to the file's sha256 (no final pass)."""

from __future__ import annotations

import hashlib
import os
import random
from concurrent.futures import ThreadPoolExecutor

from pifi_extract.prefix_hash import PrefixHasher


def _file(tmp_path, size):
    path = tmp_path / "f.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, size)
    return fd


def test_out_of_order_pieces_from_threads_hash_to_the_data_sha256(tmp_path):
    header, size = 100, 100 + 3_000_017
    data = random.Random(0).randbytes(size)
    fd = _file(tmp_path, size)
    hasher = PrefixHasher(fd, header, size)
    cuts = sorted({header, size, *random.Random(1).sample(range(header + 1, size), 40)})
    pieces = list(zip(cuts, cuts[1:]))
    random.Random(2).shuffle(pieces)

    def write(piece):
        begin, end = piece
        os.pwrite(fd, data[begin:end], begin)
        hasher.wrote(begin, data[begin:end])

    os.pwrite(fd, data[:header], 0)
    hasher.wrote(0, data[:header])  # the header is outside the hashed range
    assert hasher.hexdigest() is None
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, pieces))
    os.close(fd)
    assert hasher.hexdigest() == hashlib.sha256(data[header:]).hexdigest()


def test_a_gap_or_an_overlapping_write_gives_no_digest(tmp_path):
    fd = _file(tmp_path, 30)
    hasher = PrefixHasher(fd, 0, 30)
    hasher.wrote(0, b"a" * 10)
    hasher.wrote(20, b"c" * 10)
    assert hasher.hexdigest() is None  # bytes 10-20 never written
    hasher.wrote(5, b"b" * 10)  # overlaps what was hashed
    assert hasher.broken and hasher.hexdigest() is None
    os.close(fd)
