# syntax=docker/dockerfile:1

# checkoutd: a static binary on distroless, running as an unprivileged user.
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t checkoutd .
# (`make image` does the same.)

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/checkoutd ./cmd/checkoutd

# distroless/static has CA certificates and tzdata, and no shell: the
# HEALTHCHECK runs checkoutd's own probe.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/checkoutd /usr/local/bin/checkoutd
USER nonroot:nonroot
ENV CHECKOUTD_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/checkoutd", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/checkoutd"]
CMD ["serve"]
