# The bot's image: the runtime dependencies at the exact versions (and hashes) of requirements/prod.lock,
# then the package itself without dependencies, as `make install-prod` does. No dev tools.
#   docker build -t ai-telegram-bot .
#   docker run --env-file .env -v "$PWD/data:/app/data" ai-telegram-bot                     # the front
#   docker run --env-file .env ai-telegram-bot python -m bot.worker                          # a worker (REDIS_URL)
# docker-compose.yml runs PostgreSQL, Redis, a front and scalable workers from it.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# the lock alone first: this layer (the slow one) is rebuilt only when the lock changes
COPY requirements/prod.lock requirements/prod.lock
RUN /opt/venv/bin/pip install --require-hashes -r requirements/prod.lock
COPY pyproject.toml README.md ./
COPY bot bot
COPY providers providers
COPY db db
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/pip check

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
# a user of its own; /app/data holds the SQLite database (the default DATABASE_URL), writable by it only
RUN groupadd --gid 10001 aibot && useradd --uid 10001 --gid aibot --create-home aibot \
    && mkdir -p /app/data && chown aibot:aibot /app/data
WORKDIR /app
USER 10001:10001

# Healthy = the process answers GET /metrics: it serves it only once the database is migrated and
# Telegram has answered (a front) or the queue is reached (a worker), and an answer needs its event
# loop to be running. Asked on METRICS_PORT, else a webhook front's own server (it serves /metrics too);
# with neither there is nothing to ask, and the check passes while the process lives.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; from bot.settings import Settings; s = Settings(); host, port = (s.metrics_host, s.metrics_port) if s.metrics_port else (s.webhook_host, s.webhook_port) if s.webhook_url else ('', 0); port or sys.exit(0); host = '127.0.0.1' if host in ('', '0.0.0.0', '::') else host; urllib.request.urlopen(f'http://{host}:{port}/metrics', timeout=4).read()"]

# the front: receives updates (polling, or a webhook with WEBHOOK_URL); with REDIS_URL it enqueues for
# the workers, `python -m bot.worker`
CMD ["python", "-m", "bot"]
