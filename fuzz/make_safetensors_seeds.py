#!/usr/bin/env python3
"""Writes a few small valid safetensors files as fuzz seeds (python3 standard library only).

usage: make_safetensors_seeds.py OUT_DIR
"""
import json
import os
import struct
import sys


def write(path, tensors, metadata=None, pad=True):
    header, data = {}, b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "one_f32.safetensors"), {"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))})
    write(os.path.join(out, "every_dtype.safetensors"), {
        "a": ("BF16", [3], b"\x80\x3f" * 3), "b": ("F16", [1], b"\x00\x3c"), "c": ("F8_E4M3", [4], b"\x38" * 4),
        "d": ("I64", [1], struct.pack("<q", 7)), "e": ("I32", [2], struct.pack("<2i", 1, 2)),
        "f": ("BOOL", [2], b"\x01\x00"), "g": ("U8", [0], b""), "h": ("F32", [], struct.pack("<f", 5)),
    }, metadata={"format": "pt"})
    write(os.path.join(out, "unpadded.safetensors"), {"x": ("U8", [5], b"hello")}, pad=False)


if __name__ == "__main__":
    main()
