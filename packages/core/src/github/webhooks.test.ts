import { createHmac, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import type { WebhookDefinition } from "@octokit/webhooks-examples";
import { beforeAll, describe, expect, it } from "vitest";
import type { QueueJobItem } from "../adapters/local/table-queue.ts";
import { auditKeys } from "../audit/entity.ts";
import { listDeployments } from "../deployments/service.ts";
import { createHttpApp } from "../http/app.ts";
import { type Delivery, postDelivery, randomSha, signDelivery } from "../testing/github-delivery.ts";
import { makeApps } from "../testing/github-setup.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import { CLAIM_STALE_MS, type DeliveryItem, deliveryKey } from "./entity.ts";

type Json = Record<string, unknown>;
const SECRET = "webhook-test-secret-0123456789";
// The package is the JSON file itself (CommonJS `main`); its index.d.ts types it.
const examples = createRequire(import.meta.url)("@octokit/webhooks-examples") as WebhookDefinition[];

/** A real example payload from @octokit/webhooks-examples (deep-copied, so tests can rewrite it). */
function example(event: string, match: (p: Json) => boolean = () => true): Json {
  const def = examples.find((d) => d.name === event);
  const found = (def?.examples as unknown as Json[] | undefined)?.find(match);
  if (!found) throw new Error(`no ${event} example`);
  return structuredClone(found);
}

const sha = randomSha;
const sign = (body: string, secret = SECRET) => signDelivery(body, secret);

/** The real branch-push example (`refs/heads/master`), pointed at `repo`@`branch` with a fresh `after`. */
function pushPayload(repo: string, branch: string, after = sha()): Json {
  const p = example("push", (e) => typeof e.ref === "string" && e.ref.startsWith("refs/heads/") && e.deleted === false);
  (p.repository as Json).full_name = repo;
  p.ref = `refs/heads/${branch}`;
  p.after = after;
  return p;
}

let t: TestClient;
let alice: { token: string; id: string };
let bob: { token: string; id: string };
const apps: Record<string, { id: string; ownerId: string }> = {};

/** A delivery signed with the global secret unless it says otherwise, from GitHub's user agent. */
const deliver = (d: Delivery) =>
  postDelivery<Json>(t.app, {
    secret: SECRET,
    ...d,
    headers: { "user-agent": "GitHub-Hookshot/abc123", ...d.headers },
  });

const deploymentsOf = async (name: string) => {
  const app = apps[name];
  if (!app) throw new Error(name);
  return (await listDeployments(t.deps, app.ownerId, { appId: app.id, limit: 100 })).items;
};

const counts = async () =>
  Object.fromEntries(await Promise.all(Object.keys(apps).map(async (n) => [n, (await deploymentsOf(n)).length])));

const deliveryItem = (id: string) => t.deps.store.get<DeliveryItem>(deliveryKey(id), { consistent: true });

const queuedJobs = async () =>
  (await t.deps.store.query<QueueJobItem>({ index: "gsi1", pk: "QUEUE#deploy#READY", limit: 100 })).items.map(
    (i) => JSON.parse(i.body) as { type: string; deploymentId: string },
  );

const anonymousAudits = async () =>
  (await t.deps.store.query({ pk: auditKeys.byUser(null), limit: 1000, consistent: true })).items.length;

beforeAll(async () => {
  t = await testClient({ HOIST_GITHUB_WEBHOOK_SECRET: SECRET });
  const a = await t.register("alice");
  const b = await t.register("bob");
  alice = { token: a.token, id: a.user.id };
  bob = { token: b.token, id: b.user.id };

  async function setup(user: { token: string; id: string }, list: [string, Json | null][]) {
    for (const [name, id] of Object.entries(await makeApps(t, user, list))) apps[name] = { id, ownerId: user.id };
  }

  await setup(alice, [
    ["web", { fullName: "Octo/Shop", branch: "main", autoDeploy: true, deployOn: "push" }],
    ["ci", { fullName: "Octo/Shop", branch: "main", autoDeploy: true, deployOn: "ci-success" }],
    ["manual", { fullName: "Octo/Shop", branch: "main", autoDeploy: false, deployOn: "push" }],
    ["staging", { fullName: "Octo/Shop", branch: "staging", autoDeploy: true, deployOn: "push" }],
    ["other", { fullName: "Octo/Other", branch: "main", autoDeploy: true, deployOn: "push" }],
    ["norepo", null],
  ]);
  // Under the operator's global secret, admins may bind a repository by name (members need GitHub's proof).
  await t.json("PATCH", `/api/users/${bob.id}`, { token: alice.token, body: { role: "admin" } });
  await setup(bob, [["bobweb", { fullName: "octo/shop", branch: "main", autoDeploy: true, deployOn: "push" }]]);
});

describe("POST /api/webhooks/github: push", () => {
  it("queues one deployment per matching app (any owner, repo name case-insensitive) and answers 202", async () => {
    const before = await counts();
    const after = sha();
    // The repo name as GitHub spells it need not match the apps' case.
    const payload = pushPayload("OCTO/shop", "main", after);
    const id = randomUUID();
    const res = await deliver({ event: "push", id, body: payload });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({ status: "accepted", event: "push", deliveryId: id });
    const ids = res.body.deployments as string[];
    expect(ids).toHaveLength(2);

    const web = await deploymentsOf("web");
    const bobweb = await deploymentsOf("bobweb");
    expect(web).toHaveLength(before.web + 1);
    expect(bobweb).toHaveLength(before.bobweb + 1);
    const headCommit = payload.head_commit as { message: string; author: { name: string } };
    for (const d of [web[0], bobweb[0]]) {
      expect(d).toMatchObject({
        status: "queued",
        trigger: "push",
        ref: "main",
        commitSha: after,
        commitMessage: headCommit.message,
        author: headCommit.author.name,
      });
    }
    expect(ids.sort()).toEqual([web[0]?.id, bobweb[0]?.id].sort());
    // ci-success, autoDeploy off, another branch, another repo: untouched.
    const now = await counts();
    for (const name of ["ci", "manual", "staging", "other", "norepo"]) expect(now[name]).toBe(before[name]);

    const jobs = await queuedJobs();
    for (const depId of ids)
      expect(jobs).toContainEqual({
        type: "deploy",
        deploymentId: depId,
        ownerId: expect.any(String),
        appId: expect.any(String),
      });

    const delivery = await deliveryItem(id);
    expect(delivery).toMatchObject({ state: "done", event: "push", outcome: "accepted", repo: "OCTO/shop" });
    expect(Object.values(delivery?.queued ?? {}).sort()).toEqual([...ids].sort());
    expect(delivery?.expiresAt).toBeGreaterThan(Date.now() / 1000 + 6 * 86_400);

    // Audited for each owner: the webhook and the deployment trigger.
    for (const [user, app] of [
      [alice, "web"],
      [bob, "bobweb"],
    ] as const) {
      const audit = await t.json<{ items: { action: string; details: Json }[] }>(
        "GET",
        `/api/audit-logs?resourceType=app&resourceId=${apps[app]?.id}`,
        { token: user.token },
      );
      expect(audit.body.items.find((i) => i.action === "github.webhook")?.details).toMatchObject({
        event: "push",
        deliveryId: id,
        repo: "OCTO/shop",
        commitSha: after,
      });
      const own = await t.json<{ items: { action: string }[] }>("GET", "/api/audit-logs?action=deployment.trigger", {
        token: user.token,
      });
      expect(own.body.items.length).toBeGreaterThan(0);
    }
  });

  it("answers a redelivery (same delivery id) 202 duplicate and queues nothing new", async () => {
    const id = randomUUID();
    const payload = pushPayload("octo/shop", "main");
    const first = await deliver({ id, body: payload });
    expect(first.status).toBe(202);
    const before = await counts();
    const jobs = (await queuedJobs()).length;
    const again = await deliver({ id, body: payload });
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ status: "duplicate", deliveryId: id });
    expect((again.body.deployments as string[]).sort()).toEqual((first.body.deployments as string[]).sort());
    expect(await counts()).toEqual(before);
    expect((await queuedJobs()).length).toBe(jobs);
  });

  it("deploys only the app on the pushed branch", async () => {
    const before = await counts();
    const res = await deliver({ body: pushPayload("Octo/Shop", "staging") });
    expect(res.body).toMatchObject({ status: "accepted", deployments: [expect.any(String)] });
    const after = await counts();
    expect(after).toEqual({ ...before, staging: before.staging + 1 });
  });

  it("deploys nothing for another branch, a tag push or a deleted branch", async () => {
    const before = await counts();

    const other = await deliver({ body: pushPayload("Octo/Shop", "feature/x") });
    expect(other.status).toBe(202);
    expect(other.body).toMatchObject({ status: "ignored", deployments: [] });
    expect(other.body.reason).toMatch(/No app/);

    // The real tag-push example, pointed at our repo.
    const tag = example("push", (e) => String(e.ref).startsWith("refs/tags/") && e.deleted === false);
    (tag.repository as Json).full_name = "Octo/Shop";
    const tagRes = await deliver({ body: tag });
    expect(tagRes.status).toBe(202);
    expect(tagRes.body).toMatchObject({ status: "ignored", deployments: [] });
    expect(tagRes.body.reason).toMatch(/tag/);

    // The real deletion example (deleted: true, after all zeros), as a branch deletion.
    const deleted = example("push", (e) => e.deleted === true);
    expect(deleted.after).toMatch(/^0+$/);
    (deleted.repository as Json).full_name = "Octo/Shop";
    deleted.ref = "refs/heads/main";
    const delRes = await deliver({ body: deleted });
    expect(delRes.status).toBe(202);
    expect(delRes.body).toMatchObject({ status: "ignored", deployments: [] });
    expect(delRes.body.reason).toMatch(/deleted/);

    // `deleted` alone is enough.
    const flagged = pushPayload("Octo/Shop", "main");
    flagged.deleted = true;
    expect((await deliver({ body: flagged })).body).toMatchObject({ status: "ignored", deployments: [] });

    expect(await counts()).toEqual(before);
  });
});

describe("POST /api/webhooks/github: signature", () => {
  const rejected = async (d: Omit<Delivery, "id">) => {
    const before = await counts();
    const audits = await anonymousAudits();
    const id = randomUUID();
    const res = await deliver({ ...d, id });
    expect(res.status).toBe(401);
    expect(res.res.headers.get("content-type")).toMatch(/application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 401, title: "Unauthorized" });
    expect(await deliveryItem(id)).toBeUndefined();
    expect(await counts()).toEqual(before);
    expect(await anonymousAudits()).toBe(audits);
    return res.body;
  };

  it("rejects a missing signature", async () => {
    const body = await rejected({ body: pushPayload("Octo/Shop", "main"), signature: null });
    expect(body.detail).toMatch(/Missing X-Hub-Signature-256/);
  });

  it("rejects a garbage signature, a sha1 one, and one made with another secret", async () => {
    const payload = pushPayload("Octo/Shop", "main");
    const raw = JSON.stringify(payload);
    await rejected({ body: raw, signature: "sha256=deadbeef" });
    await rejected({ body: raw, signature: `sha1=${createHmac("sha1", SECRET).update(raw).digest("hex")}` });
    await rejected({ body: raw, signature: sign(raw, "another-secret") });
  });

  it("rejects a tampered body", async () => {
    const raw = JSON.stringify(pushPayload("Octo/Shop", "main"));
    const signature = sign(raw);
    await rejected({ body: raw.replace('"refs/heads/main"', '"refs/heads/main" '), signature });
    const other = JSON.stringify(pushPayload("Octo/Shop", "main"));
    await rejected({ body: other, signature });
  });

  it("limits failed signatures per client IP, while good deliveries pass", async () => {
    const limited = await testClient({ HOIST_GITHUB_WEBHOOK_SECRET: SECRET, HOIST_RATE_LIMIT_WEBHOOK_FAILURES: "2" });
    const raw = JSON.stringify({ zen: "hi", hook_id: 1 });
    const send = (ip: string, signature: string) =>
      limited.call("POST", "/api/webhooks/github", {
        body: raw,
        ip,
        headers: { "x-github-event": "ping", "x-github-delivery": randomUUID(), "x-hub-signature-256": signature },
      });
    const bad = sign(raw, "guessed-secret");
    expect([(await send("198.51.100.7", bad)).status, (await send("198.51.100.7", bad)).status]).toEqual([401, 401]);
    const refused = await send("198.51.100.7", bad);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    // A correct signature still passes (whoever shares the address, GitHub's deliveries are never held up),
    // and the next guess from there is refused again; other senders are not affected.
    expect((await send("198.51.100.7", sign(raw))).status).toBe(200);
    expect((await send("198.51.100.7", bad)).status).toBe(429);
    expect((await send("198.51.100.8", bad)).status).toBe(401);
  });

  it("answers 401 for a repository with no secret of its own when no global secret is configured", async () => {
    const config = { ...t.deps.config, github: { ...t.deps.config.github, webhookSecret: undefined } };
    const app = createHttpApp({ ...t.deps, config });
    const raw = JSON.stringify(pushPayload("Octo/Shop", "main"));
    const id = randomUUID();
    const res = await app.request("/api/webhooks/github", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-github-delivery": id,
        "x-hub-signature-256": sign(raw),
      },
      body: raw,
    });
    expect(res.status).toBe(401);
    expect(await deliveryItem(id)).toBeUndefined();
  });
});

describe("POST /api/webhooks/github: other events and bad requests", () => {
  it("answers ping 200 with GitHub's zen", async () => {
    const ping = example("ping");
    const id = randomUUID();
    const res = await deliver({ event: "ping", id, body: ping });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "pong", zen: ping.zen, deliveryId: id, deployments: [] });
    expect(await deliveryItem(id)).toMatchObject({ state: "done", outcome: "pong" });
  });

  it("ignores unknown events and workflow_run with 202, deduped and audited", async () => {
    const audits = await anonymousAudits();
    const before = await counts();
    const issues = example("issues");
    const id = randomUUID();
    const res = await deliver({ event: "issues", id, body: issues });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ status: "ignored", event: "issues", deployments: [] });
    expect(await deliveryItem(id)).toMatchObject({ state: "done", outcome: "ignored" });
    expect((await deliver({ event: "issues", id, body: issues })).body).toMatchObject({ status: "duplicate" });

    const run = example("workflow_run");
    (run.repository as Json).full_name = "Octo/Shop";
    const wr = await deliver({ event: "workflow_run", body: run });
    expect(wr.status).toBe(202);
    expect(wr.body).toMatchObject({ status: "ignored", event: "workflow_run" });
    expect(await counts()).toEqual(before);
    expect(await anonymousAudits()).toBe(audits + 2);
  });

  it("requires the event and delivery headers (400)", async () => {
    const body = pushPayload("Octo/Shop", "main");
    const noEvent = await deliver({ event: null, body });
    expect(noEvent.status).toBe(400);
    expect(noEvent.body.errors).toEqual([expect.objectContaining({ path: "header.x-github-event" })]);
    const noDelivery = await deliver({ id: null, body });
    expect(noDelivery.status).toBe(400);
    expect(noDelivery.body.errors).toEqual([expect.objectContaining({ path: "header.x-github-delivery" })]);
    expect((await deliver({ id: "x".repeat(101), body })).status).toBe(400);
    expect((await deliver({ id: "has space", body })).status).toBe(400);
    expect((await deliver({ event: "Push!", body })).status).toBe(400);
  });

  it("answers 400 to malformed JSON or a non-push payload with a valid signature, writing nothing", async () => {
    const before = await counts();
    const id = randomUUID();
    const res = await deliver({ id, body: '{"ref": "refs/heads/main",' });
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/Malformed JSON/);
    expect(await deliveryItem(id)).toBeUndefined();
    expect((await deliver({ body: "[1,2]" })).status).toBe(400);
    const noRepo = pushPayload("Octo/Shop", "main");
    delete noRepo.repository;
    const bad = await deliver({ body: noRepo });
    expect(bad.status).toBe(400);
    const badSha = pushPayload("Octo/Shop", "main", "$(reboot)");
    expect((await deliver({ body: badSha })).status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  it("answers 415 to a non-JSON body", async () => {
    const raw = `payload=${encodeURIComponent(JSON.stringify(pushPayload("Octo/Shop", "main")))}`;
    const res = await deliver({ body: raw, headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(res.status).toBe(415);
  });

  it("is documented in the OpenAPI document", async () => {
    const doc = await t.json<{ paths: Record<string, { post?: { tags?: string[]; parameters?: Json[] } }> }>(
      "GET",
      "/openapi.json",
    );
    const op = doc.body.paths["/api/webhooks/github"]?.post;
    expect(op?.tags).toEqual(["github"]);
    expect(op?.parameters?.map((p) => p.name)).toContain("X-Hub-Signature-256");
  });
});

describe("delivery claims", () => {
  const claim = async (id: string, claimedAt: number, queued: Record<string, string> = {}) => {
    const now = Date.now();
    const item: DeliveryItem = {
      ...deliveryKey(id),
      entity: "github-delivery",
      id,
      event: "push",
      repo: "Octo/Shop",
      state: "processing",
      claimId: "someone-else",
      claimedAt,
      receivedAt: claimedAt,
      finishedAt: null,
      queued,
      outcome: null,
      expiresAt: Math.floor(now / 1000) + 3600,
    };
    await t.deps.store.put(item);
  };

  it("asks a redelivery of a delivery still being processed to come back (503 + Retry-After), queueing nothing", async () => {
    const id = randomUUID();
    await claim(id, Date.now());
    const before = await counts();
    const res = await deliver({ id, body: pushPayload("Octo/Shop", "main") });
    expect(res.status).toBe(503);
    expect(Number(res.res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await counts()).toEqual(before);
  });

  it("takes over a stale claim and does only what is left", async () => {
    const id = randomUUID();
    const webApp = apps.web?.id as string;
    await claim(id, Date.now() - CLAIM_STALE_MS - 1000, { [webApp]: "dep_already" });
    const before = await counts();
    const res = await deliver({ id, body: pushPayload("Octo/Shop", "main") });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe("accepted");
    expect(res.body.deployments).toContain("dep_already");
    expect(res.body.deployments).toHaveLength(2);
    // The web app's deployment was queued by the dead attempt; only bob's is new.
    expect(await counts()).toEqual({ ...before, bobweb: before.bobweb + 1 });
    const done = await deliveryItem(id);
    expect(done).toMatchObject({ state: "done", outcome: "accepted" });
    expect(done?.claimId).not.toBe("someone-else");
  });
});
