# lbp-cds: build in the Rust image, run in a slim Debian image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY cards cards
COPY fixtures/requests fixtures/requests
COPY benches benches
RUN cargo build --release --locked --bin lbp-cds

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/lbp-cds /usr/local/bin/lbp-cds
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["lbp-cds"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
