"""Finding and reading data sets (IDX files, the binarised Dress/Coat subset); numpy only."""

from localentropy.data.dresscoat import DressCoat, load_dresscoat, patterns_hash, prepare_dresscoat, save_dresscoat
from localentropy.data.errors import DataError
from localentropy.data.idx import read_idx, write_idx
from localentropy.data.locate import find_dataset

__all__ = [
    "DataError",
    "DressCoat",
    "find_dataset",
    "load_dresscoat",
    "patterns_hash",
    "prepare_dresscoat",
    "read_idx",
    "save_dresscoat",
    "write_idx",
]
