"""Minimal safetensors reader/writer for the PyTorch reference (no `safetensors` package needed).

Layout: u64 little-endian header length N, N bytes of JSON header (padded with spaces to a
multiple of 8), then raw little-endian tensor data; each header entry is
{"dtype": ..., "shape": [...], "data_offsets": [begin, end]} relative to the data section.
"""
import json
import struct
from collections import OrderedDict

import torch

_DTYPES = {
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
    "I32": torch.int32,
    "I64": torch.int64,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class SafetensorsError(Exception):
    pass


def load_file(path):
    """Returns (OrderedDict name -> CPU tensor in header order, metadata dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorsError(f"{path}: file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise SafetensorsError(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid JSON: {e}")
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = OrderedDict()
    spans = []
    for name, entry in header.items():
        dtype = entry.get("dtype")
        if dtype not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor '{name}': unsupported dtype {dtype!r}")
        shape = [int(s) for s in entry["shape"]]
        begin, end = (int(x) for x in entry["data_offsets"])
        torch_dtype = _DTYPES[dtype]
        numel = 1
        for s in shape:
            numel *= s
        itemsize = torch.tensor([], dtype=torch_dtype).element_size()
        if end - begin != numel * itemsize or begin < 0 or end > len(data):
            raise SafetensorsError(f"{path}: tensor '{name}': bad data_offsets [{begin}, {end}]")
        spans.append((begin, end, name))
        if numel == 0:
            t = torch.zeros(shape, dtype=torch_dtype)
        else:
            t = torch.frombuffer(bytearray(data[begin:end]), dtype=torch_dtype).reshape(shape)
        tensors[name] = t.clone()
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise SafetensorsError(f"{path}: tensor '{name}': overlap or gap at offset {begin}")
        pos = end
    if pos != len(data):
        raise SafetensorsError(f"{path}: {len(data) - pos} bytes of trailing data")
    return tensors, dict(metadata)


def _no_duplicates(pairs):
    seen = OrderedDict()
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def _raw_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save_file(path, tensors, metadata=None):
    """Writes a dict (or list of pairs) name -> tensor. Data ordered by element size, largest first."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    for name, t in items:
        if t.dtype not in _NAMES:
            raise SafetensorsError(f"{path}: tensor '{name}': unsupported dtype {t.dtype}")
    order = sorted(range(len(items)), key=lambda i: -items[i][1].element_size())
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offsets = {}
    chunks = []
    pos = 0
    for i in order:
        raw = _raw_bytes(items[i][1])
        offsets[i] = (pos, pos + len(raw))
        chunks.append(raw)
        pos += len(raw)
    for i, (name, t) in enumerate(items):
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": list(offsets[i])}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
