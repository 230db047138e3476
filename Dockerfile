# comfyui-balancer: one URL in front of many ComfyUI backends.
#   docker build -t comfyui-balancer .
#   docker run -p 8188:8188 -v $PWD/config:/config comfyui-balancer
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY balancer ./balancer
RUN pip install . && useradd --create-home --uid 10001 balancer \
    && mkdir /data && chown balancer /data

USER balancer
# The default data_dir (./data) resolves here: the job store, uploads, user data.
WORKDIR /data
EXPOSE 8188
VOLUME ["/config", "/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8188/balancer/ready', timeout=2); sys.exit(0)"
ENTRYPOINT ["comfyui-balancer"]
CMD ["serve", "--config", "/config/balancer.yaml", "--host", "0.0.0.0", "--port", "8188"]
