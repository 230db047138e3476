# comfyui-balancer: one URL in front of many ComfyUI backends.
#   docker build -t comfyui-balancer .
#   docker run -p 8188:8188 -e BALANCER_API_KEY=change-me -v $PWD/config:/config comfyui-balancer
# config/docker-compose.yml runs it with two emulated backends.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    BALANCER_CONFIG=/config/docker.yaml
WORKDIR /app
# The dependencies first, from pyproject.toml alone: a change to the source
# reuses this layer instead of reinstalling every dependency.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && pip install -r requirements.txt && rm requirements.txt
COPY README.md ./
COPY balancer ./balancer
RUN pip install --no-deps . && useradd --create-home --uid 10001 balancer \
    && mkdir /data && chown balancer /data
# The default config; a volume on /config replaces it.
COPY config/docker.yaml /config/docker.yaml

USER balancer
# From /, a config's default data_dir (./data) is the /data volume too.
WORKDIR /
EXPOSE 8188
VOLUME ["/config", "/data"]
# Readiness on the port in $BALANCER_CONFIG: healthy while a backend can take prompts.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["comfyui-balancer", "healthcheck"]
ENTRYPOINT ["comfyui-balancer"]
CMD ["serve"]
