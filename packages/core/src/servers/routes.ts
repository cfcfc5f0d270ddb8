import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { idParam } from "../http/ids.ts";
import { listResponse, OwnedListQuery } from "../http/list.ts";
import { bearer, changesOf, jsonBody, jsonContent, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { toServer } from "./entity.ts";
import { createServer, deleteServer, getServerItem, listServers, serverStatus, updateServer } from "./service.ts";

const ServerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    address: z.string(),
    sshUser: z.string(),
    sshPort: z.number().int(),
    status: z.enum(["online", "offline", "unknown"]),
    runningAppsCount: z.number().int(),
    lastChecked: z.number().int().nullable(),
    lastError: z.object({ kind: z.string(), message: z.string() }).nullable(),
    hostKeyFingerprint: z.string().nullable(),
    hasCredentials: z.boolean(),
    createdAt: z.number().int(),
    updatedAt: z.number().int(),
  })
  .openapi("Server");

const fields = {
  name: z.string().trim().min(1).max(100),
  address: z
    .string()
    .min(1)
    .max(253)
    .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+)$/, "a hostname or an IP address")
    .openapi({
      description:
        "Hostname or IP address. Addresses in HOIST_SSH_DENY_NETWORKS (link-local and cloud metadata; on AWS also " +
        "loopback and private ranges) are refused: a literal here with a 400, a name when Hoist connects.",
    }),
  sshUser: z
    .string()
    .min(1)
    .max(32)
    .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, "a Unix user name"),
  sshPort: z.number().int().min(1).max(65535),
  privateKey: z.string().min(1).max(16_384),
  passphrase: z.string().min(1).max(1024),
  password: z.string().min(1).max(1024),
};

const CreateServer = z
  .object({ ...fields, sshPort: fields.sshPort.default(22) })
  .partial({ privateKey: true, passphrase: true, password: true })
  .strict();
const UpdateServer = changesOf({ ...fields, hostKeyFingerprint: z.null() });

const IdParam = idParam("srv");
const auth = { security: bearer, middleware: [requireUser], tags: ["servers"] };

const StatusSchema = z.object({
  status: z.enum(["online", "offline"]),
  runningContainers: z.number().int().nullable(),
  uptime: z.number().int().nullable(),
  lastChecked: z.number().int(),
  error: z.object({ kind: z.string(), message: z.string() }).optional(),
});

export const serverRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/servers",
      summary: "Your servers (`?format=array` for a bare array; `?status=` filters)",
      request: { query: OwnedListQuery.extend({ status: ServerSchema.shape.status.optional() }) },
      responses: {
        200: jsonContent(z.union([pageOf(ServerSchema), z.array(ServerSchema)]), "Servers"),
        ...problems(400, 401),
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return listResponse(
        c,
        q.format,
        (cursor, limit) => listServers(c.var.deps, c.var.user.id, cursor, limit, q.status),
        q,
      );
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/servers",
      summary: "Register a server (credentials are encrypted and never returned)",
      request: { body: jsonBody(CreateServer) },
      responses: { 201: jsonContent(ServerSchema, "Created"), ...problems(400, 401, 402) },
    }),
    async (c) => c.json(await createServer(c.var.deps, actorOf(c), c.req.valid("json")), 201),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/servers/{id}",
      summary: "One server",
      request: { params: IdParam },
      responses: { 200: jsonContent(ServerSchema, "The server"), ...problems(401, 404) },
    }),
    async (c) => c.json(toServer(await getServerItem(c.var.deps, c.var.user.id, c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "put",
      path: "/api/servers/{id}",
      summary: "Change a server; `hostKeyFingerprint: null` re-pins its host key",
      request: { params: IdParam, body: jsonBody(UpdateServer) },
      responses: { 200: jsonContent(ServerSchema, "Updated"), ...problems(400, 401, 404, 409) },
    }),
    async (c) => c.json(await updateServer(c.var.deps, actorOf(c), c.req.valid("param").id, c.req.valid("json")), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "delete",
      path: "/api/servers/{id}",
      summary: "Delete a server without apps",
      request: { params: IdParam },
      responses: { 200: jsonContent(z.object({ success: z.literal(true) }), "Deleted"), ...problems(401, 404, 409) },
    }),
    async (c) => {
      await deleteServer(c.var.deps, actorOf(c), c.req.valid("param").id);
      return c.json({ success: true as const }, 200);
    },
  )
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/servers/{id}/status",
      summary: "Connect now over SSH: running containers and uptime",
      request: { params: IdParam },
      responses: { 200: jsonContent(StatusSchema, "Status"), ...problems(400, 401, 404, 409) },
    }),
    async (c) => c.json(await serverStatus(c.var.deps, actorOf(c), c.req.valid("param").id), 200),
  );
