# The crs image: the static binary (crs, crsdump and crsload) on a
# minimal base, run as a user that is not root. Build it from the
# repository's root:
#   docker build -t crs .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/crs . \
 && ln -s crs /out/crsdump \
 && ln -s crs /out/crsload

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
ENTRYPOINT ["crs"]
