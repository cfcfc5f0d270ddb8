import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf } from "../actor.ts";
import { requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import { bearer, jsonBody, jsonContent, PageQuery, pageOf, problems } from "../http/openapi.ts";
import { validationHook } from "../http/problem.ts";
import { connectRepo, disconnectRepo, FULL_NAME, listRepos } from "./repos.ts";

const Repo = z
  .object({
    id: z.number().int(),
    name: z.string(),
    fullName: z.string(),
    owner: z.string(),
    private: z.boolean(),
    htmlUrl: z.string(),
    description: z.string().nullable(),
    defaultBranch: z.string().nullable(),
    updatedAt: z.number().int().nullable(),
    admin: z.boolean(),
    connected: z.boolean(),
  })
  .openapi("GitHubRepository");
const Connection = z
  .object({
    fullName: z.string(),
    hookId: z.number().int(),
    appIds: z.array(z.string()),
    connectedAt: z.number().int(),
    updatedAt: z.number().int(),
  })
  .openapi("RepositoryConnection");
const ConnectBody = z
  .object({
    fullName: z.string().regex(FULL_NAME, "owner/repo"),
    appId: z.string().min(1).max(64),
    branch: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[^\s~^:?*[\\]+$/, "a branch name"),
  })
  .strict();
const segment = z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/);
const auth = { security: bearer, middleware: [requireUser], tags: ["github"] };
const origin = (url: string) => new URL(url).origin;

export const repoRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      ...auth,
      method: "get",
      path: "/api/github/repos",
      summary: "Your GitHub repositories (via your linked GitHub account), most recently updated first",
      request: { query: PageQuery },
      responses: {
        200: jsonContent(pageOf(Repo), "Repositories"),
        ...problems(400, 401, 409, 502),
      },
    }),
    async (c) => c.json(await listRepos(c.var.deps, c.var.user, c.req.valid("query")), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "post",
      path: "/api/github/repos/connect",
      summary: "Create (or reuse) the repository webhook on GitHub and point the app at the repository and branch",
      request: { body: jsonBody(ConnectBody) },
      responses: {
        200: jsonContent(
          z.object({
            repository: Connection,
            app: z.object({ id: z.string() }).passthrough(),
            hook: z.object({ id: z.number().int(), outcome: z.enum(["created", "reused", "adopted"]) }),
          }),
          "Connected",
        ),
        ...problems(400, 401, 404, 409, 502, 503),
      },
    }),
    async (c) =>
      c.json(await connectRepo(c.var.deps, c.var.user, actorOf(c), c.req.valid("json"), origin(c.req.url)), 200),
  )
  .openapi(
    createRoute({
      ...auth,
      method: "delete",
      path: "/api/github/repos/{owner}/{repo}",
      summary: "Remove the webhook on GitHub and forget the connection",
      request: { params: z.object({ owner: segment, repo: segment }) },
      responses: { 204: { description: "Disconnected" }, ...problems(400, 401, 404, 409, 502) },
    }),
    async (c) => {
      const { owner, repo } = c.req.valid("param");
      await disconnectRepo(c.var.deps, c.var.user, actorOf(c), `${owner}/${repo}`);
      return c.body(null, 204);
    },
  );
