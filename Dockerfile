# dohd container image: build with Node 20, run on a distroless Node 20 base as a non-root
# user (65532). No shell, no package manager, no npm in the runtime image.
#   docker build -t dohd:0.1.0 .
#   docker run --rm -p 127.0.0.1:5353:53/udp -p 127.0.0.1:5353:53/tcp dohd:0.1.0 run --listen 0.0.0.0:53
# (binding 53 as non-root inside the container needs --sysctl net.ipv4.ip_unprivileged_port_start=53,
# or --listen 0.0.0.0:5353 and -p ...:5353)

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY dohd.example.yaml /etc/dohd/dohd.yaml
USER 65532:65532
EXPOSE 53/udp 53/tcp 9153/tcp
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli.js"]
CMD ["run", "--config", "/etc/dohd/dohd.yaml"]
