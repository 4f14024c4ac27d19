# slm-router image for docker-compose.yml, portable across x86-64 CPUs.
#
# llama-cpp-python builds llama.cpp from source. By default llama.cpp compiles for the CPU of
# the machine that builds (GGML_NATIVE: -march=native), so an image built on an AVX-512/AMX
# host dies with SIGILL (or takes the AMX path that crashes) on another one. This build turns
# native flags off and compiles one CPU backend per instruction-set level (x86-64, SSE4.2,
# AVX, AVX2 "haswell", AVX-512 "skylakex", "icelake", AMX "sapphirerapids", ...); ggml loads
# the best one the host can run at start (router/providers/llama_backends.py). `slm-router
# doctor` in the container prints which one it picked.
#
# A native image on purpose (fastest on the build host, only there):
#   docker build --build-arg LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON" -t slm-router:native .
FROM python:3.11-slim
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
# torch from PyTorch's CPU index first: PyPI's Linux torch is the CUDA build (several GB).
# --no-cache-dir: never reuse a llama-cpp-python wheel built with other flags.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip install --no-cache-dir .
ENV HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True XDG_CACHE_HOME=/app/.cache
EXPOSE 8000
CMD ["slm-router", "serve", "--host", "0.0.0.0", "--port", "8000"]
