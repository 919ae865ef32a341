# liqmon as a container image (for docker-compose.yml and Kubernetes).
# Not built in this repository's CI: our machines have no Docker engine.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY streams ./streams
COPY deploy/instruments.example.json ./deploy/instruments.example.json
RUN pip install --no-cache-dir .
ENV LIQMON_SERVICE__HTTP_HOST=0.0.0.0 LIQMON_LOG__FORMAT=json
EXPOSE 9464
ENTRYPOINT ["liqmon"]
CMD ["run", "--instruments", "/app/deploy/instruments.example.json"]
