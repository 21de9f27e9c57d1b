#!/usr/bin/python3
"""Makes the import_torch test case in OUTDIR (tests/CMakeLists.txt runs it).

A small torch.nn.Transformer seq2seq model and a small GPT, as in
shared/reference/make_reference.py, with random weights (every bias and
LayerNorm gain moved off 0 / 1): their state_dicts go through
tools/import_torch.py into seq2seq.h5 and gpt.h5, and the inputs and PyTorch's
logits into expected.h5, which the hidden Catch case "import_torch: ..."
compares with heed.

Without torch it prints "[skip] ..." and exits 0 (ctest shows a skip).
"""
import math
import os
import sys

try:
    import h5py
    import torch
    from torch import nn
except ImportError as e:
    print(f"[skip] import_torch needs torch and h5py ({e}); run with /usr/bin/python3")
    sys.exit(0)

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
import import_torch  # noqa: E402

# heed's sinusoidal table and causal mask as the benchmarks' PyTorch twins
# write them (one copy: the case checks heed against the same definitions).
sys.path.insert(0, os.path.join(here, "..", "..", "bench"))
from torch_common import causal_mask, sinusoidal_table  # noqa: E402


class TorchSeq2Seq(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, D, nhead, ff, layers):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, D)
        self.tgt_embed = nn.Embedding(tgt_vocab, D)
        self.transformer = nn.Transformer(D, nhead, layers, layers, ff, dropout=0.0, batch_first=True)
        self.generator = nn.Linear(D, tgt_vocab)

    def forward(self, src, tgt, src_kpm, tgt_kpm):
        S, T, D = src.shape[1], tgt.shape[1], self.src_embed.embedding_dim
        pe = sinusoidal_table(max(S, T), D)
        x = self.src_embed(src) * math.sqrt(D) + pe[:S]
        y = self.tgt_embed(tgt) * math.sqrt(D) + pe[:T]
        h = self.transformer(x, y, tgt_mask=causal_mask(T), src_key_padding_mask=src_kpm,
                             tgt_key_padding_mask=tgt_kpm, memory_key_padding_mask=src_kpm)
        return self.generator(h)


class TorchGPT(nn.Module):
    def __init__(self, vocab, block, D, nhead, layers):
        super().__init__()
        self.tok_embed = nn.Embedding(vocab, D)
        self.pos_embed = nn.Embedding(block, D)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(D, nhead, 4 * D, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(layers))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, vocab, bias=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.tok_embed(ids) + self.pos_embed(torch.arange(T))
        for block in self.blocks:
            x = block(x, src_mask=causal_mask(T))
        return self.lm_head(self.ln_f(x))


def perturb(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape))
            elif p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape))
    # Training mode (dropout is 0) keeps PyTorch off its nested-tensor fast path.
    return model.train()


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    s2s = perturb(TorchSeq2Seq(11, 13, 16, 4, 32, 2))
    src = torch.randint(3, 11, (2, 6))
    src[1, 4:] = 0
    tgt = torch.randint(3, 13, (2, 5))
    tgt[:, 0] = 1
    tgt[1, 3:] = 0
    src_kpm, tgt_kpm = src == 0, tgt == 0
    gpt = perturb(TorchGPT(11, 8, 16, 4, 2))
    ids = torch.randint(0, 11, (2, 7))
    with torch.no_grad():
        s2s_logits = s2s(src, tgt, src_kpm, tgt_kpm)
        gpt_logits = gpt(ids)

    torch.save(s2s.state_dict(), os.path.join(out, "seq2seq.pt"))
    torch.save({"model": gpt.state_dict()}, os.path.join(out, "gpt.pt"))
    import_torch.main([os.path.join(out, "seq2seq.pt"), os.path.join(out, "seq2seq.h5"), "--nhead", "4",
                       "--config", "activation=relu", "--config", "layer_norm_eps=1e-05"])
    import_torch.main([os.path.join(out, "gpt.pt"), os.path.join(out, "gpt.h5"), "--nhead", "4"])
    with h5py.File(os.path.join(out, "expected.h5"), "w") as f:
        f["src_ids"], f["tgt_ids"] = src.numpy(), tgt.numpy()
        f["src_key_padding_mask"] = src_kpm.numpy().astype("uint8")
        f["tgt_key_padding_mask"] = tgt_kpm.numpy().astype("uint8")
        f["seq2seq_logits"] = s2s_logits.numpy()
        f["gpt_ids"], f["gpt_logits"] = ids.numpy(), gpt_logits.numpy()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} OUTDIR")
    main(sys.argv[1])
