import { expect } from "vitest";
import { userKeys } from "../users/entity.ts";
import type { FakeGitHub, FakeGitHubUser } from "./fake-github.ts";
import type { TestClient } from "./http.ts";

type Json = Record<string, unknown>;

/** What the link flow stores: the GitHub identity and the token sealed with the owner's id as context. */
export async function linkGitHub(client: TestClient, userId: string, fake: FakeGitHub, user: FakeGitHubUser) {
  const token = fake.issueToken(user);
  await client.deps.store.update(userKeys.user(userId), {
    set: {
      githubId: String(user.id),
      githubLogin: user.login,
      githubToken: await client.deps.keyVault.encrypt(token, { ownerId: userId }),
    },
  });
}

/** A server, a project and the named apps for `user` (no SSH happens here). */
export async function makeApps(client: TestClient, user: { token: string }, list: [string, Json | null][]) {
  const post = async (path: string, body: Json) => {
    const res = await client.json<Json>("POST", path, { token: user.token, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  const serverId = await post("/api/servers", {
    name: "box",
    address: "192.0.2.10",
    sshUser: "deploy",
    password: "not-used-123",
  });
  const projectId = await post("/api/projects", { name: "shop" });
  const ids: Record<string, string> = {};
  for (const [name, repository] of list) {
    ids[name] = await post("/api/apps", { name, projectId, serverId, cdPath: `/srv/${name}`, repository });
  }
  return ids;
}
