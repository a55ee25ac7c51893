# Slim, non-root image whose entrypoint is the loadbench CLI; by default it runs the service.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY loadbench ./loadbench
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 loadbench
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY scenarios /home/loadbench/scenarios
COPY grafana /home/loadbench/grafana
WORKDIR /home/loadbench
USER loadbench
RUN mkdir -p /home/loadbench/data
ENTRYPOINT ["loadbench"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/home/loadbench/data", "--scenarios", "/home/loadbench/scenarios", "--allow-host-header", "loadbench"]
