# The chatbot server: gunicorn serving the numpy engine, with the default model built in.
# TensorFlow is only needed to train that model (and for CHATBOT_ENGINE=keras).
# The base's TensorFlow must be the version pinned in requirements.txt (tensorflow-cpu==2.21.0).
# `make image-test` passes a local Debian base with the same Python instead (no registry there).
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0

# Build stage: the venv and the model. The wheels copied in here never reach the final image.
FROM ${BASE_IMAGE} AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /srv/chatbot
# Requirements before code: this layer is rebuilt only when requirements.txt or wheels/ change.
COPY requirements.txt deploy/docker/install-requirements.sh /tmp/build/
COPY wheels/ /tmp/build/wheels/
RUN sh /tmp/build/install-requirements.sh /opt/venv /tmp/build/requirements.txt /tmp/build/wheels \
    && rm -rf /tmp/build
ENV PATH=/opt/venv/bin:$PATH
COPY chatbot/ chatbot/
COPY data/ data/
COPY models/ models/
# Train the default bot unless the context brings a model newer than the intents (as `make run`).
# Then keep model bundles only: a developer's conversation log (models/*.sqlite3, its WAL) or
# training plots must never ship, whatever .dockerignore lets through.
RUN if [ ! models/chatbot_model.h5 -nt data/intents.json ]; then \
        python -m chatbot train --data data/intents.json --out models/chatbot_model.h5; \
    fi \
    && find models -mindepth 1 ! -name '*.h5' -delete
COPY app/ app/
COPY deploy/docker/healthcheck.py ./
# The example order service (docker-compose.yml runs it beside the app): replace it with your shop's.
COPY deploy/orders/orders.py ./

# Final stage: the same base, the venv and the application, run by an unprivileged user.
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PORT=5000
RUN groupadd --gid 10001 chatbot \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin chatbot \
    && mkdir -p /var/lib/chatbot && chown 10001:10001 /var/lib/chatbot
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/chatbot /srv/chatbot
WORKDIR /srv/chatbot
# A numeric user lets Kubernetes check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "healthcheck.py"]
# Exec form: gunicorn is PID 1 and gets SIGTERM itself; it stops accepting, finishes the
# requests in flight (graceful_timeout in app/gunicorn_conf.py) and exits 0.
CMD ["gunicorn", "--config", "app/gunicorn_conf.py"]
