# One image for the API, the workers and Flower; the command picks the role
# (see docker-compose.yml and the Procfile).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY tasks ./tasks
COPY render ./render
COPY storage ./storage
COPY jobs ./jobs
COPY config ./config
COPY security ./security
COPY client ./client
RUN pip install . \
    && useradd --create-home --uid 10001 soundreel \
    && mkdir -p /app/var/storage \
    && chown soundreel /app/var/storage

# Least privilege: no root at run time.
USER soundreel
EXPOSE 8000 5555
CMD ["gunicorn", "-c", "python:api.gunicorn_conf", "--bind", "0.0.0.0:8000", "api:create_app()"]
