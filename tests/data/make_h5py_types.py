#!/usr/bin/python3
"""Writes h5py_types.h5, the fixture of tests/hdf5_test.cpp: what h5py writes
that heed must read (bool arrays, fixed-length strings) or refuse clearly
(int32, compound). Run: /usr/bin/python3 make_h5py_types.py OUT.h5"""
import sys

import h5py
import numpy as np

with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("bool", data=np.array([[True, False, True], [False, False, True]]))
    f.create_dataset("int32", data=np.arange(4, dtype=np.int32))
    f.create_dataset("compound", data=np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")]))
    f.create_dataset("float32_big_endian", data=np.array([1.5, -2.0], dtype=">f4"))
    f.attrs["vlen"] = "variable length"                              # h5py's default string
    f.attrs["fixed_nullpad"] = np.bytes_(b"fixed")                   # numpy S5: null padded
    f.attrs.create("fixed_utf8", "caf\u00e9".encode("utf-8"), dtype=h5py.string_dtype("utf-8", 16))
    f.attrs["int"] = np.int64(-7)
    f.attrs["int32"] = np.int32(12)
    f.attrs["float"] = 0.25
    f.attrs["vector"] = np.arange(3)
