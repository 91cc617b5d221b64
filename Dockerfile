# Sluice and its plugins, built in one stage, run from a slim one.
#   docker build -t sluice .
#   docker run --rm sluice validate pipelines/quickstart.toml

FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/target
RUN scripts/build-plugins.sh && cargo build --release -p sluice

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /target/release/sluice /usr/local/bin/sluice
COPY --from=build /src/plugins/dist /app/plugins/dist
COPY pipelines /app/pipelines
COPY schemas /app/schemas
WORKDIR /app
ENTRYPOINT ["sluice"]
CMD ["run", "--no-progress", "pipelines/quickstart.toml"]
