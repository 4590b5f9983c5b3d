# xmppd in a container. README "Run it in production" says how to run it:
#   docker build -t xmppd .
#   docker run -d --name xmppd -v xmppd-data:/var/lib/xmppd -v ./xmppd.yml:/etc/xmppd/xmppd.yml:ro \
#     -p 5222:5222 -p 5223:5223 -p 5269:5269 -p 5280:5280 -p 5443:5443 xmppd
# The configuration must listen on 0.0.0.0 (the example's 127.0.0.1 is the container's own
# loopback) and set data_dir: /var/lib/xmppd.

# Build: the full image has python3 and g++ for sqlite3 when no prebuilt binary fits
FROM node:20-bookworm AS build
WORKDIR /opt/xmppd
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY test ./test
COPY scripts ./scripts
# `npm ci` compiles the TypeScript (the prepare script); then the dev tools are dropped
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund && rm -rf test dist/test

FROM node:20-bookworm-slim
WORKDIR /opt/xmppd
COPY --from=build /opt/xmppd/package.json ./
COPY --from=build /opt/xmppd/node_modules ./node_modules
COPY --from=build /opt/xmppd/dist ./dist
COPY config ./config
COPY README.md ./
RUN useradd --system --home-dir /var/lib/xmppd --shell /usr/sbin/nologin xmppd \
 && mkdir -p /var/lib/xmppd /etc/xmppd && chown xmppd:xmppd /var/lib/xmppd \
 && ln -s /opt/xmppd/dist/src/main.js /usr/local/bin/xmppd
USER xmppd
WORKDIR /var/lib/xmppd
VOLUME /var/lib/xmppd
# c2s (STARTTLS, direct TLS), s2s, HTTP, HTTPS
EXPOSE 5222 5223 5269 5280 5443
# SIGTERM (docker stop) ends the streams cleanly and flushes the database
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/opt/xmppd/dist/src/main.js"]
CMD ["start", "--config", "/etc/xmppd/xmppd.yml"]
