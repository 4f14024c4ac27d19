"""A portable llama.cpp build's CPU backend variants are found where the wheel puts them."""

from __future__ import annotations

from pathlib import Path

from router.providers.llama_backends import load_cpu_variants, variant_dirs


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_variants_beside_the_package_are_found(tmp_path):
    # llama-cpp-python 0.3.36 built with GGML_BACKEND_DL installs them in site-packages/bin
    package = tmp_path / "site-packages" / "llama_cpp"
    _touch(package / "__init__.py")
    _touch(tmp_path / "site-packages" / "bin" / "libggml-cpu-haswell.so")
    assert variant_dirs(package) == [tmp_path / "site-packages" / "bin"]


def test_variants_inside_the_package_are_found_and_a_native_build_has_none(tmp_path):
    package = tmp_path / "llama_cpp"
    _touch(package / "lib" / "libggml-cpu-x64.so")
    assert variant_dirs(package) == [package / "lib"]
    native = tmp_path / "native" / "llama_cpp"
    _touch(native / "lib" / "libggml-cpu.so")  # a native build: one backend, no variants
    assert variant_dirs(native) == []


def test_the_installed_build_loads_and_generates_after_the_variant_step():
    from router.models import smollm2_gguf_path
    from router.providers.llama_runtime import LlamaRuntime

    assert isinstance(load_cpu_variants(), list)  # a no-op on a native build, idempotent
    out = LlamaRuntime(str(smollm2_gguf_path()), n_ctx=256).generate(
        [{"role": "user", "content": "What is the capital of Japan?"}], max_tokens=8)
    assert out.completion_tokens > 0
