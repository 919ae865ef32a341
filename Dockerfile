# liqmon as a container image (for docker-compose.yml and deploy/kubernetes/).
# Not built in this repository's CI (our machines have no Docker engine); what it relies on is
# tested there: a non-editable `pip install .` runs `liqmon simulate` with its default
# instruments (shipped as package data), tests/integration/test_install.py.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY streams ./streams
RUN pip install --no-cache-dir . \
    && rm -rf /app/monitor /app/streams \
    && mkdir -p /etc/liqmon \
    && cp "$(python -c 'import monitor, pathlib; print(pathlib.Path(monitor.__file__).parent / "examples" / "instruments.json")')" /etc/liqmon/instruments.json \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin liqmon
# The engine's compiled kernels, cached in the image (docs/operations.md, "Kernels and
# memory"): a start loads them in about 0.5 s instead of compiling for about 7 s.
ENV NUMBA_CACHE_DIR=/var/cache/liqmon-numba
RUN python -c "from monitor.engine import warm_up; warm_up()" \
    && chown -R 10001:10001 /var/cache/liqmon-numba
USER 10001:10001
ENV LIQMON_SERVICE__HTTP_HOST=0.0.0.0 LIQMON_LOG__FORMAT=json PYTHONUNBUFFERED=1
EXPOSE 9464
# /healthz answers while the event loop runs; the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=2)"]
ENTRYPOINT ["liqmon"]
CMD ["run", "--instruments", "/etc/liqmon/instruments.json"]
