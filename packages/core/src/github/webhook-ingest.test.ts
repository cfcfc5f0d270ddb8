import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CachingStore, withBindingCache } from "../adapters/local/binding-cache.ts";
import type { QueueJobItem } from "../adapters/local/table-queue.ts";
import { auditKeys } from "../audit/entity.ts";
import { type DeploymentItem, deploymentKey } from "../deployments/entity.ts";
import { queuedDeployments } from "../deployments/queued.ts";
import { listDeployments } from "../deployments/service.ts";
import { createHttpApp } from "../http/app.ts";
import type { Deps } from "../ports.ts";
import { channelPk } from "../realtime/publish.ts";
import type { Item, QuerySpec, Store, TransactOp } from "../store/store.ts";
import { FakeGitHub, type FakeRepo } from "../testing/fake-github.ts";
import { postDelivery, pushEvent, randomSha } from "../testing/github-delivery.ts";
import { linkGitHub, makeApps } from "../testing/github-setup.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import { type DeliveryItem, deliveryKey } from "./entity.ts";

/**
 * A push ingest reads the repository's secret, queries the apps, and writes one
 * TransactWriteItems (claim, deployment, queued marker, audit entries); a
 * redelivery is that transaction's failed condition and one read. Embedded,
 * the secret and the apps are remembered (adapters/local/binding-cache.ts): a
 * push is its one transaction. Counted through a proxy over DynamoDB's store,
 * under the cache where there is one; the job queue (SQS on AWS; table-backed
 * here, on its own store reference) is not counted.
 */
type Json = Record<string, unknown>;
const GLOBAL = "ingest-global-secret";

interface Call {
  op: string;
  /** The sequential round trip it belongs to: calls in flight together share one. */
  round: number;
  args: unknown[];
}

/** Counts the store calls of the HTTP handlers (not the admins' request-log listener check, which is per second). */
function counting(store: Store) {
  const calls: Call[] = [];
  let inFlight = 0;
  let round = 0;
  let after: { op: string; fn: () => Promise<void> } | undefined;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function" || typeof prop !== "string") return value;
      return async (...args: unknown[]) => {
        const ignored = prop === "query" && (args[0] as QuerySpec).pk === channelPk("logs:all");
        if (!ignored) {
          if (inFlight === 0) round++;
          calls.push({ op: prop, round, args });
        }
        inFlight++;
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          inFlight--;
          const hook = after?.op === prop ? after.fn : undefined;
          if (hook) {
            after = undefined;
            await hook();
          }
        }
      };
    },
  });
  return {
    store: proxy,
    calls,
    ops: () => calls.map((c) => c.op),
    rounds: () => round,
    reset() {
      calls.length = 0;
      round = 0;
    },
    /** Runs `fn` once the next `op` answered (a racing attempt committing in between). */
    onceAfter(op: string, fn: () => Promise<void>) {
      after = { op, fn };
    },
  };
}

let gh: FakeGitHub;
let t: TestClient;
let shop: FakeRepo;
let counter: ReturnType<typeof counting>;
/** As on AWS: every delivery reads. */
let app: ReturnType<typeof createHttpApp>;
/** As embedded: the binding cache over the counted store. */
let embedded: ReturnType<typeof createHttpApp>;
let alice: { token: string; id: string };
const apps: Record<string, string> = {};

const hookSecret = (fullName: string) => gh.hooksOf(fullName)[0]?.config.secret as string;
const push = (fullName: string, id: number) => JSON.stringify(pushEvent({ fullName, id }));

const deliver = (body: string, secret: string, id = randomUUID(), via = app) =>
  postDelivery<Json>(via, { body, secret, id, ip: "192.0.2.44" });

const deploymentsOf = async (appId: string) => (await listDeployments(t.deps, alice.id, { appId, limit: 100 })).items;
const deliveryItem = (id: string) => t.deps.store.get<DeliveryItem>(deliveryKey(id), { consistent: true });
const auditsOf = async (type: string, id: string) =>
  (await t.deps.store.query<Item>({ index: "gsi2", pk: auditKeys.byResource(type, id), limit: 100 })).items;
const jobsFor = async (deploymentId: string) =>
  (await t.deps.store.query<QueueJobItem>({ index: "gsi1", pk: "QUEUE#deploy#READY", limit: 1000 })).items.filter(
    (j) => (JSON.parse(j.body) as { deploymentId?: string }).deploymentId === deploymentId,
  );
const puts = (ops: TransactOp[]) => ops.flatMap((o) => ("put" in o ? [o.put] : []));

beforeAll(async () => {
  gh = await FakeGitHub.start();
  t = await testClient({ ...gh.env(), HOIST_GITHUB_WEBHOOK_SECRET: GLOBAL });
  const octo = gh.addUser({ login: "octo" });
  shop = gh.addRepo(octo, "shop");
  const a = await t.register("alice"); // the first user: an admin, who may bind by name under the global secret
  alice = { token: a.token, id: a.user.id };
  await linkGitHub(t, alice.id, gh, octo);
  Object.assign(
    apps,
    await makeApps(t, alice, [
      ["web", null],
      ["named", { fullName: "octo/named", branch: "main", autoDeploy: true, deployOn: "push" }],
      ["raced", { fullName: "octo/raced", branch: "main", autoDeploy: true, deployOn: "push" }],
      ...Array.from(
        { length: 30 },
        (_, i) =>
          [`many${i}`, { fullName: "octo/many", branch: "main", autoDeploy: true, deployOn: "push" }] as [string, Json],
      ),
    ]),
  );
  const res = await t.json<Json>("POST", "/api/github/repos/connect", {
    token: alice.token,
    body: { fullName: "octo/shop", appId: apps.web, branch: "main" },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const bound = await t.json<Json>("PUT", `/api/apps/${apps.web}`, {
    token: alice.token,
    body: { repository: { fullName: "octo/shop", branch: "main", autoDeploy: true, deployOn: "push" } },
  });
  expect(bound.status, JSON.stringify(bound.body)).toBe(200);
  counter = counting((t.deps.store as CachingStore).uncached);
  app = createHttpApp({ ...t.deps, store: counter.store });
  embedded = createHttpApp({ ...t.deps, store: withBindingCache(counter.store) });
});
afterAll(() => gh.stop());

describe("webhook ingest: DynamoDB round trips", () => {
  it("a push under its repository's secret: one read, one query, one transaction", async () => {
    counter.reset();
    const res = await deliver(push("octo/shop", shop.id), hookSecret("octo/shop"));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({ status: "accepted", deployments: [expect.any(String)] });
    expect(counter.ops()).toEqual(["get", "query", "transact"]);
    expect(counter.rounds()).toBe(3);
    // The read is the repository's secret alone: no failure count for a good signature, no claim read first.
    expect((counter.calls[0]?.args[0] as Item | undefined)?.pk).toBe(`REPOSECRET#${shop.id}`);
  });

  it("embedded, a push is its one transaction: the secret and the apps are remembered until a binding changes", async () => {
    const first = await deliver(push("octo/shop", shop.id), hookSecret("octo/shop"), randomUUID(), embedded);
    expect(first.body.status).toBe("accepted");
    counter.reset();
    const res = await deliver(push("octo/shop", shop.id), hookSecret("octo/shop"), randomUUID(), embedded);
    expect(res.body).toMatchObject({ status: "accepted", deployments: [expect.any(String)] });
    expect(counter.ops()).toEqual(["transact"]);
    // Auto-deploy turned off through the same store: the next push reads again, and deploys nothing.
    const off = await embedded.request(`/api/apps/${apps.web}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${alice.token}`, "content-type": "application/json" },
      body: JSON.stringify({ repository: { fullName: "octo/shop", branch: "main", autoDeploy: false } }),
    });
    expect(off.status).toBe(200);
    counter.reset();
    const ignored = await deliver(push("octo/shop", shop.id), hookSecret("octo/shop"), randomUUID(), embedded);
    expect(ignored.body).toMatchObject({ status: "ignored", deployments: [] });
    expect(counter.ops()).toEqual(["get", "query", "transact"]);
    const on = await embedded.request(`/api/apps/${apps.web}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${alice.token}`, "content-type": "application/json" },
      body: JSON.stringify({
        repository: { fullName: "octo/shop", branch: "main", autoDeploy: true, deployOn: "push" },
      }),
    });
    expect(on.status).toBe(200);
    const again = await deliver(push("octo/shop", shop.id), hookSecret("octo/shop"), randomUUID(), embedded);
    expect(again.body.status).toBe("accepted");
  });

  it("a push under the global secret: the by-id and by-name queries go out together", async () => {
    counter.reset();
    const res = await deliver(push("octo/named", 4242), GLOBAL);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(counter.ops()).toEqual(["get", "query", "query", "transact"]);
    expect(counter.rounds()).toBe(3);
  });

  it("writes the claim, the deployment, its queued marker and both audit entries in that one transaction", async () => {
    const id = randomUUID();
    counter.reset();
    const res = await deliver(push("octo/shop", shop.id), hookSecret("octo/shop"), id);
    const [depId] = res.body.deployments as string[];
    const tx = counter.calls.find((c) => c.op === "transact")?.args[0] as TransactOp[];
    const written = puts(tx);
    expect(tx).toHaveLength(6);
    expect(written[0]).toMatchObject({ pk: `DELIVERY#${id}`, state: "done", outcome: "accepted" });
    expect(written[0]?.queued).toEqual({ [apps.web as string]: depId });
    expect(written.map((i) => i.entity)).toEqual([
      "github-delivery",
      "queue-job", // the embedded queue takes the job in the same transaction (SQS: sent after it)
      "deployment",
      "queued-deployment",
      "audit",
      "audit",
    ]);
    expect(written.filter((i) => i.entity === "audit").map((i) => i.action)).toEqual([
      "github.webhook",
      "deployment.trigger",
    ]);
    // And they are there: the webhook's entry on the app, the trigger's on the deployment, the job with them.
    const onApp = (await auditsOf("app", apps.web as string)).find(
      (a) => (a.details as Json).deliveryId === id && a.action === "github.webhook",
    );
    expect(onApp?.details).toMatchObject({ event: "push", deploymentId: depId, repo: "octo/shop" });
    expect((await auditsOf("deployment", depId as string)).map((a) => a.action)).toEqual(["deployment.trigger"]);
    expect(await jobsFor(depId as string)).toHaveLength(1);
    expect(await deliveryItem(id)).toMatchObject({ state: "done", outcome: "accepted" });
  });

  it("a redelivery of a handled delivery: one failed condition and one read, nothing written", async () => {
    const id = randomUUID();
    const body = push("octo/shop", shop.id);
    const first = await deliver(body, hookSecret("octo/shop"), id);
    counter.reset();
    const again = await deliver(body, hookSecret("octo/shop"), id);
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ status: "duplicate", deployments: first.body.deployments });
    expect(counter.ops()).toEqual(["get", "query", "transact", "get"]);
    expect((counter.calls[3]?.args[0] as Item | undefined)?.pk).toBe(`DELIVERY#${id}`);
  });

  it("a redelivery that loses the race after its reads: one failed condition and one read, then duplicate", async () => {
    const id = randomUUID();
    const body = push("octo/raced", 5151);
    // Another attempt commits between this one's read and its transaction.
    counter.onceAfter("get", async () => {
      const other = await deliver(body, GLOBAL, id, createHttpApp(t.deps));
      expect(other.body.status).toBe("accepted");
    });
    counter.reset();
    const res = await deliver(body, GLOBAL, id);
    expect(res.status).toBe(202);
    expect(res.body.status).toBe("duplicate");
    expect(counter.ops()).toEqual(["get", "query", "query", "transact", "get"]);
    expect(await deploymentsOf(apps.raced as string)).toHaveLength(1);
  });

  it("a delivery that deploys nothing: its claim and audit entry in one transaction", async () => {
    const id = randomUUID();
    counter.reset();
    const body = JSON.stringify({
      ref: "refs/heads/feature",
      after: randomSha(),
      repository: { id: shop.id, full_name: "octo/shop" },
    });
    const res = await deliver(body, hookSecret("octo/shop"), id);
    expect(res.body).toMatchObject({ status: "ignored", deployments: [] });
    expect(counter.ops()).toEqual(["get", "query", "transact"]);
    const tx = counter.calls.find((c) => c.op === "transact")?.args[0] as TransactOp[];
    expect(puts(tx).map((i) => i.entity)).toEqual(["github-delivery", "audit"]);
    expect(await auditsOf("github-delivery", id)).toHaveLength(1);
  });
});

describe("webhook ingest: signature failures", () => {
  it("reads a sender's failure count only when a signature fails, and refuses a large body on the count alone, unread", async () => {
    const config = { ...t.deps.config, rateLimit: { ...t.deps.config.rateLimit, webhookFailures: 2 } };
    const limited = createHttpApp({ ...t.deps, config, store: counter.store });
    const body = push("octo/shop", shop.id);
    for (let i = 0; i < 2; i++) expect((await deliver(body, "a-guess", randomUUID(), limited)).status).toBe(401);
    counter.reset();
    const guess = await deliver(body, "a-guess", randomUUID(), limited);
    expect(guess.status).toBe(429);
    expect(counter.calls.map((c) => `${c.op} ${(c.args[0] as Item).pk.split("#")[0]}`)).toEqual([
      "get REPOSECRET",
      "get RATE",
    ]);
    // A good signature from the same sender passes, and never waits on the count.
    counter.reset();
    const good = await deliver(body, hookSecret("octo/shop"), randomUUID(), limited);
    expect(good.status).toBe(202);
    expect(counter.ops()).toEqual(["get", "query", "transact"]);
    // Past 256 KiB the body is not read (nor parsed, nor its secret looked up) before the count is checked.
    const large = JSON.stringify({ ...(JSON.parse(body) as Json), padding: "x".repeat(300 * 1024) });
    counter.reset();
    const refused = await deliver(large, hookSecret("octo/shop"), randomUUID(), limited);
    expect(refused.status).toBe(429);
    expect(counter.ops()).toEqual(["get"]);
  });
});

describe("webhook ingest: exactly once", () => {
  it("10 racing copies of one delivery make one set of deployments; the others answer duplicate (or 503)", async () => {
    const id = randomUUID();
    const body = push("octo/shop", shop.id);
    const before = (await deploymentsOf(apps.web as string)).length;
    counter.reset();
    const answers = await Promise.all(Array.from({ length: 10 }, () => deliver(body, hookSecret("octo/shop"), id)));
    // They did race: several read no claim and reached the transaction, where its condition let one through.
    expect(counter.ops().filter((op) => op === "transact").length).toBeGreaterThan(1);
    const statuses = answers.map((a) => (a.status === 202 ? a.body.status : a.status));
    expect(statuses.filter((s) => s === "accepted")).toHaveLength(1);
    expect(statuses.every((s) => s === "accepted" || s === "duplicate" || s === 503)).toBe(true);
    for (const a of answers.filter((a) => a.status === 503))
      expect(Number(a.res.headers.get("retry-after"))).toBeGreaterThan(0);
    const after = await deploymentsOf(apps.web as string);
    expect(after).toHaveLength(before + 1);
    const depId = after[0]?.id as string;
    for (const a of answers.filter((a) => a.status === 202)) expect(a.body.deployments).toEqual([depId]);
    expect(await jobsFor(depId)).toHaveLength(1);
    const onApp = (await auditsOf("app", apps.web as string)).filter((a) => (a.details as Json).deliveryId === id);
    expect(onApp).toHaveLength(1);
    expect(await deliveryItem(id)).toMatchObject({ state: "done", queued: { [apps.web as string]: depId } });
  });

  it("past DynamoDB's 100 actions, splits the fan-out into transactions, the claim done with the last", async () => {
    const id = randomUUID();
    counter.reset();
    const res = await deliver(push("octo/many", 777), GLOBAL, id);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.deployments).toHaveLength(30);
    const txs = counter.calls.filter((c) => c.op === "transact").map((c) => c.args[0] as TransactOp[]);
    // Per app: its job, the deployment, its marker and two audit entries.
    expect(txs.map((ops) => ops.length)).toEqual([1 + 19 * 5, 1 + 11 * 5]);
    expect(txs.every((ops) => ops.length <= 100)).toBe(true);
    const claims = txs.map((ops) => ops[0]);
    expect(claims[0]).toMatchObject({ put: { state: "processing" } });
    expect(claims[1]).toMatchObject({ update: { set: { state: "done", outcome: "accepted" } } });
    const done = await deliveryItem(id);
    expect(Object.keys(done?.queued ?? {})).toHaveLength(30);
    expect(done?.state).toBe("done");
  });

  it("a job that cannot be sent leaves its deployment queued (its marker is the sweep's outbox) and still answers 202", async () => {
    const failing: Deps = {
      ...t.deps,
      queue: {
        send: async () => {
          throw new Error("SQS is down");
        },
      },
    };
    const res = await deliver(
      push("octo/shop", shop.id),
      hookSecret("octo/shop"),
      randomUUID(),
      createHttpApp(failing),
    );
    expect(res.status).toBe(202);
    const [depId] = res.body.deployments as string[];
    const dep = await t.deps.store.get<DeploymentItem>(deploymentKey(depId as string));
    expect(dep?.status).toBe("queued");
    expect((await queuedDeployments(t.deps, apps.web as string)).map((m) => m.deploymentId)).toContain(depId);
  });
});
