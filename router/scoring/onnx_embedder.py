"""all-MiniLM-L6-v2 in ONNX Runtime, int8 (dynamic quantisation), without torch.

The model lives in ``router/artifacts/minilm-int8`` (``model.onnx`` + ``tokenizer.json``,
written by ``bench/export_minilm_onnx.py``; nothing is downloaded). Its graph holds the
transformer, the mean pooling and the L2 normalisation, so ``encode`` returns what
sentence-transformers' ``encode(..., normalize_embeddings=True)`` returns for the torch model,
up to quantisation error (cosine printed by the export script and by ``bench/decision.py``).
Only ``onnxruntime``, ``tokenizers`` and numpy are imported.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["OnnxEmbedder", "onnx_model_dir", "DEFAULT_TOKENS", "MAX_TOKENS", "MODEL_FILE", "TOKENIZER_FILE"]

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length (its sentence_bert_config.json)
DEFAULT_TOKENS = MAX_TOKENS
"""Word pieces read by default: the first 256, as sentence-transformers reads. 64 (the first
and last 31) kept the recipe's 5-fold APGR on every dataset at a quarter of the time, but lost
0.03-0.04 APGR on Winogrande and MBPP left out of training (``bench/embedder_quality.py``)."""
_CLS, _SEP = 101, 102  # [CLS] and [SEP] in MiniLM's vocabulary (bert-base-uncased's)


def onnx_model_dir(name: str = "minilm-int8") -> Path:
    """Directory of an int8 ONNX MiniLM shipped in the package (``minilm-int8``: all 6 layers;
    ``minilm-l<K>-int8``: the first K, written by ``bench/export_minilm_onnx.py --layers K``)."""
    return Path(str(resources.files("router") / "artifacts" / name))


class OnnxEmbedder:
    """Lazily loaded ONNX MiniLM; thread-safe (ORT sessions may run concurrently).

    Args:
        path: model directory (default :func:`onnx_model_dir`).
        threads: ORT intra-op threads per call (default 1: a decision uses one core, and
            concurrent decisions are batched by the caller rather than split across cores).
        batch_size: most texts per forward pass (texts grouped by token count so a batch
            pads little). 1 is fastest on one thread: 16 prompts of 197 word pieces took
            1.1-1.9 s one by one, 1.4-2.3 s in batches of 4 and 2.4-2.9 s in one batch (2 busy cores).
        max_tokens: word pieces read per text, [CLS] and [SEP] included (at most
            :data:`MAX_TOKENS`, MiniLM's own limit); a longer text keeps its first ``head``
            word pieces and the rest from its end (``head`` None: all from the start, as
            sentence-transformers cuts). Attention costs grow with the square of this.

    ``encode(texts)`` returns float32 of shape (len(texts), 384), unit norm.

    Raises (on first use):
        FileNotFoundError: the model directory lacks ``model.onnx`` or ``tokenizer.json``.
    """

    dimension = 384

    def __init__(self, path: str | Path | None = None, threads: int | None = 1, batch_size: int = 1,
                 max_tokens: int = MAX_TOKENS, head: int | None = None) -> None:
        if not 8 <= max_tokens <= MAX_TOKENS:
            raise ValueError(f"max_tokens must be in 8..{MAX_TOKENS}, got {max_tokens}")
        if head is not None and not 0 <= head <= max_tokens - 2:
            raise ValueError(f"head must be in 0..max_tokens-2 ({max_tokens - 2}), got {head}")
        self.path = Path(path) if path else onnx_model_dir()
        self.max_tokens, self.head = max_tokens, head
        self.threads = threads or 1
        self.batch_size = batch_size
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                for name in (MODEL_FILE, TOKENIZER_FILE):
                    if not (self.path / name).is_file():
                        raise FileNotFoundError(f"ONNX embedding model incomplete: {self.path / name} is missing")
                import onnxruntime as ort
                from tokenizers import Tokenizer

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.log_severity_level = 3
                tokenizer = Tokenizer.from_file(str(self.path / TOKENIZER_FILE))
                tokenizer.no_truncation()
                tokenizer.no_padding()
                self._tokenizer = tokenizer
                self._session = ort.InferenceSession(str(self.path / MODEL_FILE), options,
                                                     providers=["CPUExecutionProvider"])
        return self._session, self._tokenizer

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """MiniLM word-piece ids of each text, with [CLS]/[SEP], bounded to ``max_tokens``."""
        _, tokenizer = self._load()
        body = self.max_tokens - 2
        head = body if self.head is None else self.head
        out = []
        for e in tokenizer.encode_batch(list(texts), add_special_tokens=False):
            ids = e.ids
            if len(ids) > body:
                ids = ids[:head] + ids[len(ids) - (body - head):] if body > head else ids[:head]
            out.append([_CLS, *ids, _SEP])
        return out

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts; shape (n, 384), float32, unit norm (``show_progress_bar`` is ignored)."""
        session, _ = self._load()
        ids = self.token_ids(texts)
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            width = max(len(ids[i]) for i in chunk)
            input_ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            out[chunk] = session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        return out
