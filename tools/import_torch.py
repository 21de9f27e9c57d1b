#!/usr/bin/python3
"""Converts a PyTorch state_dict (.pt) into a heed checkpoint (docs/checkpoints.md).

The layouts are those of shared/reference/README.md:

  seq2seq  embeddings + torch.nn.Transformer + a generator Linear:
           src_embed.weight, tgt_embed.weight, transformer.encoder.layers.{i}.*,
           transformer.decoder.layers.{i}.*, transformer.{encoder,decoder}.norm.*,
           generator.*  ->  the "transformer." prefix is dropped, "multihead_attn"
           becomes "cross_attn" and every packed in_proj_weight / in_proj_bias
           [3D, ...] is split into q_proj / k_proj / v_proj (rows q, k, v).
  gpt      tok_embed.weight, pos_embed.weight, blocks.{i}.* (nn.TransformerEncoderLayer),
           ln_f.*, lm_head.weight  ->  the same names, in_proj split likewise.

config/ gets what the shapes say (vocabularies, d_model, dim_feedforward,
layer counts, block_size, tied_lm_head) plus --nhead and every --config
KEY=VALUE (which wins over an inferred value). The file has the same layout,
attributes and checksums as heed's save_checkpoint, so load_checkpoint
accepts it and nn::load_state loads its model/ group.

  /usr/bin/python3 tools/import_torch.py model.pt ckpt.h5 --nhead 8 \\
      --config emb_scale=22.627 --config activation=relu

Run it with Debian's /usr/bin/python3 (python3-torch, python3-h5py).
"""
import argparse
import ctypes
import re
import struct
import sys

import numpy as np

FORMAT = "heed-checkpoint"
FORMAT_VERSION = 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def fnv1a64(data, h=FNV_OFFSET):
    """64-bit FNV-1a, as heed::fnv1a64 (pure Python: about 10 MB/s)."""
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def as_int64(u):
    return u - (1 << 64) if u >= (1 << 63) else u


# ---- names ------------------------------------------------------------------

def heed_name(torch_name):
    if torch_name.startswith("transformer."):
        torch_name = torch_name[len("transformer."):]
    return torch_name.replace("multihead_attn.", "cross_attn.")


def convert_state(state):
    """{torch name: tensor} -> {heed name: float32/int64 numpy array}, in_proj split."""
    out = {}
    for name, t in state.items():
        a = t.detach().cpu().numpy()
        if name.endswith(("in_proj_weight", "in_proj_bias")):
            head, kind = name.rsplit("in_proj_", 1)
            if a.shape[0] % 3 != 0:
                raise SystemExit(f"import_torch: {name} has {a.shape[0]} rows, not 3 * d_model")
            for part, chunk in zip("qkv", np.split(a, 3, axis=0)):
                out[f"{heed_name(head)}{part}_proj.{kind}"] = chunk
        else:
            out[heed_name(name)] = a
    return out


def count_layers(names, prefix):
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for n in names for m in [pattern.match(n)] if m}
    return max(found) + 1 if found else 0


def infer_config(kind, params):
    """What the shapes say about the model."""
    names = list(params)
    if kind == "seq2seq":
        src_vocab, d_model = params["src_embed.weight"].shape
        return {
            "model": "seq2seq",
            "src_vocab": src_vocab,
            "tgt_vocab": params["tgt_embed.weight"].shape[0],
            "d_model": d_model,
            "dim_feedforward": params["encoder.layers.0.linear1.weight"].shape[0],
            "num_encoder_layers": count_layers(names, "encoder.layers."),
            "num_decoder_layers": count_layers(names, "decoder.layers."),
        }
    vocab, d_model = params["tok_embed.weight"].shape
    config = {
        "model": "gpt",
        "vocab": vocab,
        "d_model": d_model,
        "num_layers": count_layers(names, "blocks."),
        "dim_feedforward": params["blocks.0.linear1.weight"].shape[0],
        "tied_lm_head": 0 if "lm_head.weight" in params else 1,
    }
    if "pos_embed.weight" in params:
        config["block_size"] = params["pos_embed.weight"].shape[0]
    return config


def guess_kind(names):
    if any(n.startswith("transformer.") for n in names) or "src_embed.weight" in names:
        return "seq2seq"
    if "tok_embed.weight" in names:
        return "gpt"
    raise SystemExit("import_torch: cannot tell the model from the names (expected src_embed.* and "
                     "transformer.* for seq2seq, tok_embed.* for gpt); pass --model")


# ---- the content checksum (io/checkpoint.cpp: content_checksum) -----------

DTYPE_NAMES = {np.dtype("float32"): "float32", np.dtype("float64"): "float64",
               np.dtype("int64"): "int64", np.dtype("uint8"): "uint8", np.dtype("bool"): "bool"}


def attr_record(path, name, value):
    head = f"A {path} {name} ".encode()
    if isinstance(value, int):
        return head + f"i {value}\n".encode()
    if isinstance(value, float):
        return head + "f {:016x}\n".format(struct.unpack("<Q", struct.pack("<d", value))[0]).encode()
    data = value.encode("utf-8")
    return head + f"s {len(data)}:".encode() + data + b"\n"


def content_checksum(groups, datasets, attrs):
    """groups: paths; datasets: {path: array}; attrs: {path: {name: int|float|str}}."""
    records = [f"G {g}\n".encode() for g in groups]
    for path, a in datasets.items():
        records.append(f"D {path} {DTYPE_NAMES[a.dtype]} {','.join(str(d) for d in a.shape)}\n".encode())
    for path, named in attrs.items():
        for name, value in named.items():
            if not (path == "/" and name == "content_fnv1a64"):
                records.append(attr_record(path, name, value))
    h = FNV_OFFSET
    for r in sorted(records):
        h = fnv1a64(r, h)
    return h


# ---- writing ----------------------------------------------------------------

def hdf5_library():
    """The libhdf5 h5py runs on, for the one call h5py does not wrap."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if re.search(r"/libhdf5(_serial)?\.so", path):
                return ctypes.CDLL(path)
    return None


def compact(plist, lib, links):
    """Keep links and attributes in the (checksummed) object header, as heed does:
    HDF5 1.10 can crash on a damaged file that uses dense storage."""
    plist.set_attr_phase_change(65535, 65535)
    if links and lib is not None:
        lib.H5Pset_link_phase_change.argtypes = [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint]
        if lib.H5Pset_link_phase_change(plist.id, 65535, 65535) < 0:
            raise SystemExit("import_torch: H5Pset_link_phase_change failed")


def write_checkpoint(path, params, config):
    import h5py
    from h5py import h5f, h5g, h5p

    datasets = {f"/model/{n}": np.ascontiguousarray(a) for n, a in params.items()}
    datasets["/history"] = np.zeros((0,), dtype=np.float64)
    groups = ["/", "/model", "/optimizer", "/optimizer/scalars", "/scheduler", "/scheduler/state",
              "/rng", "/training", "/config", "/texts"]
    attrs = {
        "/": {"format": FORMAT, "format_version": FORMAT_VERSION, "created_by": "tools/import_torch.py"},
        "/optimizer": {"type": ""},
        "/scheduler": {"type": ""},
        "/rng": {"seed": 0, "offset": 0},
        "/config": {k: str(v) for k, v in config.items()},
    }
    for p, a in datasets.items():
        if a.dtype not in DTYPE_NAMES:
            raise SystemExit(f"import_torch: {p} has dtype {a.dtype}, which heed does not store")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        datasets[p] = a
        attrs[p] = {"fnv1a64": as_int64(fnv1a64(a.tobytes()))}
    attrs["/"]["content_fnv1a64"] = as_int64(content_checksum(groups, datasets, attrs))

    lib = hdf5_library()
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5f.LIBVER_V18, h5f.LIBVER_LATEST)
    fcpl = h5p.create(h5p.FILE_CREATE)
    compact(fcpl, lib, links=True)
    tmp = path + ".tmp-import"
    with h5py.File(h5f.create(tmp.encode(), h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)) as f:
        for g in groups[1:]:
            gcpl = h5p.create(h5p.GROUP_CREATE)
            compact(gcpl, lib, links=True)
            h5g.create(f.id, g.encode(), gcpl=gcpl)
        for p, a in datasets.items():
            f.create_dataset(p, data=a)
        for p, named in attrs.items():
            for name, value in named.items():
                if isinstance(value, str):
                    data = value.encode("utf-8") or b"\0"  # fixed length, NUL-padded, as heed writes
                    f[p].attrs.create(name, np.array(data, dtype=h5py.string_dtype("utf-8", len(data))))
                elif isinstance(value, int):
                    f[p].attrs.create(name, np.int64(value))
                else:
                    f[p].attrs.create(name, np.float64(value))
    import os
    os.replace(tmp, path)


def parse_config(items):
    config = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or "/" in key:
            raise SystemExit(f"import_torch: --config wants KEY=VALUE, got '{item}'")
        config[key] = value
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See docs/checkpoints.md for the file layout.")
    parser.add_argument("state_dict", help="a .pt file holding a state_dict (or {'model': state_dict})")
    parser.add_argument("output", help="the heed checkpoint to write (.h5)")
    parser.add_argument("--model", choices=["seq2seq", "gpt"], help="the layout (default: guessed from the names)")
    parser.add_argument("--nhead", type=int, help="attention heads (not visible in the shapes); stored as config/nhead")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a config/ value (repeatable); wins over what the shapes say")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        raise SystemExit("import_torch: needs torch (run it with /usr/bin/python3 and python3-torch)")
    state = torch.load(args.state_dict, map_location="cpu")
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise SystemExit(f"import_torch: {args.state_dict} does not hold a state_dict of tensors")

    kind = args.model or guess_kind(list(state))
    params = convert_state(state)
    try:
        config = infer_config(kind, params)
    except KeyError as e:
        raise SystemExit(f"import_torch: not a {kind} state_dict: no {e}")
    if args.nhead is not None:
        config["nhead"] = args.nhead
    config.update(parse_config(args.config))
    if "nhead" not in config:
        print("import_torch: warning: no --nhead; config/nhead is not set", file=sys.stderr)
    write_checkpoint(args.output, params, config)
    print(f"wrote {args.output}: {len(params)} tensors, config " +
          ", ".join(f"{k}={v}" for k, v in sorted(config.items())))


if __name__ == "__main__":
    main()
