# One image recipe for the five Python services; the service is a build argument:
#   docker build --build-arg SERVICE=gateway -t loom/gateway .   (from the repository root)
# SERVICE is one of gateway, orchestrator, rag, inference, tools. The console has its own
# (services/console/Dockerfile: a Node build). What differs between services is in the `case`
# below and in the environment block; everything else is the same for all five.
FROM python:3.11-slim
ARG SERVICE
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# inference: llama-cpp-python compiles from source (a compiler and cmake) as a portable build
# (no -march=native), so the image runs on any x86-64 node. Read by pip's build only.
ENV CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"
RUN case "$SERVICE" in \
      gateway|orchestrator|rag|tools) ;; \
      inference) apt-get update \
        && apt-get install -y --no-install-recommends build-essential cmake \
        && rm -rf /var/lib/apt/lists/* ;; \
      *) echo "build with --build-arg SERVICE=gateway|orchestrator|rag|inference|tools (got '$SERVICE')" >&2; exit 1 ;; \
    esac
COPY protos protos
COPY scripts/gen_protos.sh scripts/gen_protos.sh
COPY libs libs
COPY services/${SERVICE} services/${SERVICE}
# The app template catalogue (docs/templates/README.md): read from disk by the gateway, not installed.
COPY templates templates
# The orchestrator's document store can be S3 (its `s3` extra).
RUN case "$SERVICE" in orchestrator) extras="[s3]" ;; *) extras="" ;; esac \
 && pip install grpcio-tools \
 && PY=python bash scripts/gen_protos.sh \
 && pip install ./libs/protos ./libs/common "./services/${SERVICE}${extras}" \
 && ln -s "$(command -v "loom-${SERVICE}")" /usr/local/bin/loom-service
# Production points at external servers: LOOM_NATS_URL, LOOM_DATABASE_URL. Each service reads
# only its own LOOM_<SERVICE>_ variables, so the others' settings here are inert.
# The tools sandbox runs user code with this interpreter (visible inside bubblewrap: /usr is
# bound). bubblewrap needs user namespaces: run the container with a seccomp profile that
# allows them, or code tools answer `sandbox_unavailable` (see docs/security.md).
ENV LOOM_GATEWAY_HTTP_HOST=0.0.0.0 LOOM_ORCHESTRATOR_HTTP_HOST=0.0.0.0 LOOM_RAG_HTTP_HOST=0.0.0.0 \
    LOOM_INFERENCE_HTTP_HOST=0.0.0.0 LOOM_TOOLS_HTTP_HOST=0.0.0.0 \
    LOOM_GATEWAY_TEMPLATES_DIR=/app/templates \
    LOOM_TOOLS_SANDBOX_PYTHON=/usr/local/bin/python3
# HTTP: gateway 8080, orchestrator 8081, rag 8082, tools 8083, inference 11434;
# gRPC: inference 50051, rag 50052, tools 50053.
EXPOSE 8080 8081 8082 8083 11434 50051 50052 50053
# loom-service links to loom-$SERVICE: the service is PID 1 and gets SIGTERM itself (its drain).
CMD ["loom-service"]
