# Multi-stage build of the MCP Guard image for users who have Docker. The binary is linked statically, so
# the final image holds nothing but it: no shell, no package manager, nothing for sandboxed code (or an
# attacker who escaped it) to use.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu -p mcp-guard --bin mcp-guard

FROM scratch
# The binding proxy's TLS client needs the CA bundle to reach https:// MCP servers.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/mcp-guard /mcp-guard
USER 65532:65532
ENTRYPOINT ["/mcp-guard"]
