# slm-router image for docker-compose.yml. llama-cpp-python builds from source (a few minutes).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir torch==2.13.0 .
ENV HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True
EXPOSE 8000
CMD ["slm-router", "serve", "--host", "0.0.0.0", "--port", "8000"]
