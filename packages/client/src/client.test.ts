import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { STRONG_PASSWORD, testClient } from "@hoist/core/testing/http";
import { createHttpServer } from "@hoist/local/http-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHoistClient, HoistApiError, orThrow } from "./index.ts";

/** The typed client against the real app on a loopback port, as the CLI would use it. */
let server: Server;
let baseUrl: string;
beforeAll(async () => {
  const t = await testClient();
  server = createHttpServer(t.app.fetch, t.deps.logger);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("createHoistClient", () => {
  it("registers, creates a project and lists it", async () => {
    const anonymous = createHoistClient({ baseUrl });
    const session = await orThrow(
      anonymous.POST("/api/auth/register", {
        body: { username: "ada", email: "ada@example.com", password: STRONG_PASSWORD },
      }),
    );
    expect(session.user.username).toBe("ada");

    const client = createHoistClient({ baseUrl, token: session.token });
    const project = await orThrow(client.POST("/api/projects", { body: { name: "shop" } }));
    expect(project).toMatchObject({ id: expect.stringMatching(/^prj_/), name: "shop", description: "" });

    const page = await orThrow(client.GET("/api/projects", { params: { query: { limit: 10 } } }));
    const items = Array.isArray(page) ? page : page.items;
    expect(items.map((p) => p.id)).toEqual([project.id]);
    const again = await orThrow(client.GET("/api/projects/{id}", { params: { path: { id: project.id } } }));
    expect(again).toEqual(project);
  });

  it("throws a 4xx problem as a HoistApiError with its title, detail and field errors", async () => {
    const { token } = await orThrow(
      createHoistClient({ baseUrl }).POST("/api/auth/register", {
        body: { username: "grace", email: "grace@example.com", password: STRONG_PASSWORD },
      }),
    );
    const client = createHoistClient({ baseUrl, token: () => token });

    const invalid = await orThrow(client.POST("/api/projects", { body: { name: " " } })).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(HoistApiError);
    expect(invalid).toMatchObject({
      name: "HoistApiError",
      status: 400,
      type: "https://hoist.dev/problems/validation",
      title: "Bad Request",
      detail: "Invalid request body",
      errors: [{ path: "body.name", message: expect.any(String) }],
    });

    const missing = await orThrow(
      client.GET("/api/projects/{id}", { params: { path: { id: "prj_doesnotexist" } } }),
    ).catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404, title: "Not Found", detail: expect.stringMatching(/project/i) });
    expect((missing as HoistApiError).message).toBe(`404 Not Found: ${(missing as HoistApiError).detail}`);

    const anonymous = createHoistClient({ baseUrl });
    await expect(orThrow(anonymous.GET("/api/projects"))).rejects.toMatchObject({ status: 401, title: "Unauthorized" });
  });
});
