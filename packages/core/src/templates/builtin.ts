import type { Template } from "./schemas.ts";

/**
 * The templates shipped with Hoist: small but complete Compose projects that
 * `docker compose up` runs as they are. Each publishes its port on the host
 * as `APP_PORT` (an app variable, written to `.env` where Compose reads it);
 * build contexts ignore `.env`, so no secret is baked into an image.
 */

/**
 * A template's files arrive over SFTP, not from git: a deploy rebuilds and
 * restarts what is in cdPath (the default deploy command checks out a commit).
 */
const BUILD_COMMANDS = {
  start: "docker compose up -d --build",
  deploy: "docker compose up -d --build --remove-orphans",
};

const DOCKERIGNORE = `.env
.env.*
.git
node_modules
`;

const NODE_SERVER = `const http = require("node:http");

const port = Number(process.env.PORT) || 3000;

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\\n");
    return;
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(\`\${JSON.stringify({ hello: "world", path: req.url })}\\n\`);
});

server.listen(port, () => console.log(\`listening on \${port}\`));

// PID 1 in the container: stop cleanly on docker compose down.
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
`;

const NODE_DOCKERFILE = `FROM node:20-alpine
WORKDIR /app
ENV NODE_ENV=production
COPY package*.json ./
RUN npm install --omit=dev
COPY . .
USER node
EXPOSE 3000
CMD ["node", "server.js"]
`;

const node: Template = {
  id: "node",
  name: "Node.js",
  description: "A Node.js 20 HTTP server (no dependencies), built from a Dockerfile.",
  builtin: true,
  files: [
    {
      path: "compose.yaml",
      encoding: "utf8",
      content: `services:
  app:
    build: .
    ports:
      - "\${APP_PORT:-3000}:3000"
    environment:
      PORT: "3000"
    restart: unless-stopped
`,
    },
    { path: "Dockerfile", encoding: "utf8", content: NODE_DOCKERFILE },
    { path: ".dockerignore", encoding: "utf8", content: DOCKERIGNORE },
    {
      path: "package.json",
      encoding: "utf8",
      content: `${JSON.stringify(
        { name: "app", version: "1.0.0", private: true, main: "server.js", scripts: { start: "node server.js" } },
        null,
        2,
      )}\n`,
    },
    { path: "server.js", encoding: "utf8", content: NODE_SERVER },
  ],
  env: { APP_PORT: "3000" },
  secretEnv: [],
  commands: BUILD_COMMANDS,
  createdAt: null,
};

const python: Template = {
  id: "python",
  name: "Python",
  description: "A Python 3.12 HTTP server (standard library only; add packages to requirements.txt).",
  builtin: true,
  files: [
    {
      path: "compose.yaml",
      encoding: "utf8",
      content: `services:
  app:
    build: .
    ports:
      - "\${APP_PORT:-8000}:8000"
    environment:
      PORT: "8000"
    restart: unless-stopped
`,
    },
    {
      path: "Dockerfile",
      encoding: "utf8",
      content: `FROM python:3.12-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
USER nobody
EXPOSE 8000
CMD ["python", "app.py"]
`,
    },
    { path: ".dockerignore", encoding: "utf8", content: `${DOCKERIGNORE}__pycache__\n` },
    { path: "requirements.txt", encoding: "utf8", content: "# Your dependencies, one per line (pip format).\n" },
    {
      path: "app.py",
      encoding: "utf8",
      content: `import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body, kind = b"ok\\n", "text/plain"
        else:
            body = (json.dumps({"hello": "world", "path": self.path}) + "\\n").encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    # PID 1 in the container: stop cleanly on docker compose down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
`,
    },
  ],
  env: { APP_PORT: "8000" },
  secretEnv: [],
  commands: BUILD_COMMANDS,
  createdAt: null,
};

const go: Template = {
  id: "go",
  name: "Go",
  description: "A Go 1.22 HTTP server, built in a multi-stage Dockerfile into a distroless image.",
  builtin: true,
  files: [
    {
      path: "compose.yaml",
      encoding: "utf8",
      content: `services:
  app:
    build: .
    ports:
      - "\${APP_PORT:-8080}:8080"
    environment:
      PORT: "8080"
    restart: unless-stopped
`,
    },
    {
      path: "Dockerfile",
      encoding: "utf8",
      content: `FROM golang:1.22-alpine AS build
WORKDIR /src
COPY go.mod ./
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/app /app
EXPOSE 8080
ENTRYPOINT ["/app"]
`,
    },
    { path: ".dockerignore", encoding: "utf8", content: DOCKERIGNORE },
    { path: "go.mod", encoding: "utf8", content: "module app\n\ngo 1.22\n" },
    {
      path: "main.go",
      encoding: "utf8",
      content: `package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"hello": "world", "path": r.URL.Path})
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	// PID 1 in the container: stop cleanly on docker compose down.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		log.Printf("listening on %s", port)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Print(err)
	}
}
`,
    },
  ],
  env: { APP_PORT: "8080" },
  secretEnv: [],
  commands: BUILD_COMMANDS,
  createdAt: null,
};

const staticSite: Template = {
  id: "static",
  name: "Static site",
  description: "nginx serving the files in ./public (edit them in place; no build).",
  builtin: true,
  files: [
    {
      path: "compose.yaml",
      encoding: "utf8",
      content: `services:
  web:
    image: nginx:1.27-alpine
    ports:
      - "\${APP_PORT:-8080}:80"
    volumes:
      - ./public:/usr/share/nginx/html:ro
    restart: unless-stopped
`,
    },
    {
      path: "public/index.html",
      encoding: "utf8",
      content: `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>It works</title>
    <link rel="stylesheet" href="style.css">
  </head>
  <body>
    <main>
      <h1>It works</h1>
      <p>Served by nginx from <code>public/</code>, deployed with Hoist.</p>
    </main>
  </body>
</html>
`,
    },
    {
      path: "public/style.css",
      encoding: "utf8",
      content: `body { font-family: system-ui, sans-serif; margin: 0; display: grid; place-items: center; min-height: 100vh; }
main { max-width: 40rem; padding: 2rem; }
code { background: #f2f2f2; padding: 0.1em 0.3em; border-radius: 3px; }
`,
    },
  ],
  env: { APP_PORT: "8080" },
  secretEnv: [],
  // Files served as they are: nothing to build.
  commands: { deploy: "docker compose up -d --remove-orphans" },
  createdAt: null,
};

const PASSWORD_REQUIRED = `\${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in the app's environment}`;

const postgresApp: Template = {
  id: "postgres-app",
  name: "Postgres + app",
  description:
    "PostgreSQL 16 with its data in a volume, and a Node.js app that reaches it through DATABASE_URL. " +
    "POSTGRES_PASSWORD is generated for each app.",
  builtin: true,
  files: [
    {
      path: "compose.yaml",
      encoding: "utf8",
      content: `services:
  db:
    image: postgres:16-alpine
    environment:
      POSTGRES_USER: "\${POSTGRES_USER:-app}"
      POSTGRES_PASSWORD: "${PASSWORD_REQUIRED}"
      POSTGRES_DB: "\${POSTGRES_DB:-app}"
    volumes:
      - db-data:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U $\${POSTGRES_USER} -d $\${POSTGRES_DB}"]
      interval: 5s
      timeout: 3s
      retries: 10
    restart: unless-stopped
  app:
    build: .
    environment:
      PORT: "3000"
      DATABASE_URL: "postgres://\${POSTGRES_USER:-app}:${PASSWORD_REQUIRED}@db:5432/\${POSTGRES_DB:-app}"
    ports:
      - "\${APP_PORT:-3000}:3000"
    depends_on:
      db:
        condition: service_healthy
    restart: unless-stopped

volumes:
  db-data:
`,
    },
    { path: "Dockerfile", encoding: "utf8", content: NODE_DOCKERFILE },
    { path: ".dockerignore", encoding: "utf8", content: DOCKERIGNORE },
    {
      path: "package.json",
      encoding: "utf8",
      content: `${JSON.stringify(
        {
          name: "app",
          version: "1.0.0",
          private: true,
          main: "server.js",
          scripts: { start: "node server.js" },
          dependencies: { pg: "^8.13.0" },
        },
        null,
        2,
      )}\n`,
    },
    {
      path: "server.js",
      encoding: "utf8",
      content: `const http = require("node:http");
const { Pool } = require("pg");

const pool = new Pool({ connectionString: process.env.DATABASE_URL });
const port = Number(process.env.PORT) || 3000;

const server = http.createServer(async (req, res) => {
  try {
    const { rows } = await pool.query("SELECT now() AS now, version() AS version");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(\`\${JSON.stringify({ database: "connected", ...rows[0] })}\\n\`);
  } catch (err) {
    res.writeHead(503, { "content-type": "application/json" });
    res.end(\`\${JSON.stringify({ database: "unreachable", error: err.message })}\\n\`);
  }
});

server.listen(port, () => console.log(\`listening on \${port}\`));

// PID 1 in the container: stop cleanly on docker compose down.
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => pool.end().finally(() => process.exit(0))));
}
`,
    },
  ],
  env: { APP_PORT: "3000", POSTGRES_USER: "app", POSTGRES_DB: "app" },
  secretEnv: ["POSTGRES_PASSWORD"],
  commands: BUILD_COMMANDS,
  createdAt: null,
};

export const BUILTIN_TEMPLATES: readonly Template[] = [node, python, go, staticSite, postgresApp];

export const builtinTemplate = (id: string): Template | undefined => BUILTIN_TEMPLATES.find((t) => t.id === id);
