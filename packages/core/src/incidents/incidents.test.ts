import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import type { WebhookDefinition } from "@octokit/webhooks-examples";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listDeployments } from "../deployments/service.ts";
import { channelPk, subscriptionKey } from "../realtime/publish.ts";
import { FakeGitHub, type FakeGitHubUser } from "../testing/fake-github.ts";
import { postDelivery } from "../testing/github-delivery.ts";
import { linkGitHub, makeApps } from "../testing/github-setup.ts";
import { type TestClient, testClient } from "../testing/http.ts";
import { TRANSITIONS } from "./state-machine.ts";

type Json = Record<string, unknown>;
type Incident = {
  id: string;
  status: string;
  runIds: string[];
  repo: string;
  branch: string;
  workflowName: string;
  resolvedAt: number | null;
};
type Comment = { kind: string; body: string; authorId: string | null; createdAt: number };

const SECRET = "incident-test-webhook-secret-0123";
const examples = createRequire(import.meta.url)("@octokit/webhooks-examples") as WebhookDefinition[];
const sha = () => randomBytes(20).toString("hex");

let gh: FakeGitHub;
let t: TestClient;
let octo: FakeGitHubUser;
let alice: { token: string; id: string };
let bob: { token: string; id: string };
let apps: Record<string, string> = {};
let bobApps: Record<string, string> = {};
let runSeq = 5_000_000;
const posts: { connectionId: string; message: Json }[] = [];

let shopRepoId = 0;

/** The real completed `workflow_run` example, pointed at octo/shop@`branch`, with the given outcome. */
function runPayload(
  o: {
    conclusion?: string | null;
    status?: string;
    action?: string;
    id?: number;
    branch?: string;
    headSha?: string;
    updatedAt?: string;
    event?: string;
    /** The head repository's id; default: the repository's own (not a fork). */
    headRepoId?: number;
    name?: string;
  } = {},
) {
  const def = examples.find((d) => d.name === "workflow_run");
  const found = ((def?.examples ?? []) as unknown as Json[]).find(
    (e) => e.action === "completed" && (e.workflow_run as Json).conclusion === "success",
  );
  const p = structuredClone(found) as Json & { workflow_run: Json; repository: Json };
  p.action = o.action ?? "completed";
  p.repository.full_name = "octo/shop";
  p.repository.id = shopRepoId; // GitHub's id of octo/shop, as the repository was connected
  const run = p.workflow_run;
  run.id = o.id ?? runSeq++;
  run.run_number = (run.id as number) % 1000;
  run.name = o.name ?? "CI";
  run.event = o.event ?? "push";
  run.head_repository = { ...(run.head_repository as Json), id: o.headRepoId ?? (p.repository.id as number) };
  run.head_branch = o.branch ?? "main";
  run.head_sha = o.headSha ?? sha();
  run.status = o.status ?? "completed";
  run.conclusion = o.conclusion === undefined ? "failure" : o.conclusion;
  run.updated_at = o.updatedAt ?? new Date().toISOString();
  run.created_at = new Date(Date.now() - 60_000).toISOString();
  return p;
}

const deliver = (payload: Json) => postDelivery<Json>(t.app, { body: payload, secret: SECRET, event: "workflow_run" });

const incidents = async (token = alice.token, query = "") =>
  (await t.json<{ items: Incident[] }>("GET", `/api/incidents${query}`, { token })).body.items;
const comments = async (id: string) =>
  (await t.json<{ items: Comment[] }>("GET", `/api/incidents/${id}/comments`, { token: alice.token })).body.items;
const transition = (id: string, to: string, token = alice.token) =>
  t.json<Json>("POST", `/api/incidents/${id}/transition`, { token, body: { to } });
const deploymentsOf = async (appId: string) => (await listDeployments(t.deps, alice.id, { appId, limit: 100 })).items;

beforeAll(async () => {
  gh = await FakeGitHub.start();
  t = await testClient({ ...gh.env(), HOIST_GITHUB_WEBHOOK_SECRET: SECRET });
  t.deps.broadcaster = {
    close: async () => {},
    post: async (connectionId, message) => {
      posts.push({ connectionId, message: message as Json });
      return "sent" as const;
    },
  };
  octo = gh.addUser({ login: "octo" });
  shopRepoId = gh.addRepo(octo, "shop").id;
  const a = await t.register("alice");
  const b = await t.register("bob");
  alice = { token: a.token, id: a.user.id };
  bob = { token: b.token, id: b.user.id };
  await linkGitHub(t, alice.id, gh, octo);
  apps = await makeApps(t, alice, [
    ["web", null],
    ["ci", { fullName: "octo/shop", branch: "main", autoDeploy: true, deployOn: "ci-success" }],
  ]);
  bobApps = await makeApps(t, bob, [["bobweb", null]]);
  const connect = await t.json<Json>("POST", "/api/github/repos/connect", {
    token: alice.token,
    body: { fullName: "octo/shop", appId: apps.web, branch: "main" },
  });
  expect(connect.status, JSON.stringify(connect.body)).toBe(200);
  // A WebSocket subscriber on the ci app's channel.
  await t.deps.store.put({
    ...subscriptionKey("conn-1", `app:${apps.ci}`),
    entity: "subscription",
    connectionId: "conn-1",
    channel: `app:${apps.ci}`,
    userId: alice.id,
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
    live: true,
    gsi1pk: channelPk(`app:${apps.ci}`),
    gsi1sk: "conn-1",
  });
});
afterAll(() => gh.stop());

describe("workflow_run webhooks → runs, incidents, ci-success deployments", () => {
  let incidentId = "";
  let firstRun = 0;

  it("records a failed run and opens one incident, publishing both on the app channels", async () => {
    const payload = runPayload({ conclusion: "failure" });
    firstRun = (payload.workflow_run as Json).id as number;
    const res = await deliver(payload);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({ status: "ignored", deployments: [] });
    expect(res.body.reason).toMatch(/recorded for 1 of 1 user\(s\); 1 incident/);

    const runs = await t.json<{ items: Json[] }>("GET", "/api/workflow-runs?repo=octo/shop&status=completed", {
      token: alice.token,
    });
    expect(runs.body.items[0]).toMatchObject({
      id: String(firstRun),
      repo: "octo/shop",
      workflowName: "CI",
      branch: "main",
      status: "completed",
      conclusion: "failure",
      runAttempt: 1,
    });
    const open = await incidents();
    expect(open).toHaveLength(1);
    expect(open[0]).toMatchObject({ status: "open", repo: "octo/shop", branch: "main", runIds: [String(firstRun)] });
    incidentId = open[0]?.id ?? "";
    expect(incidentId).toMatch(/^inc_/);

    const types = posts.filter((p) => p.connectionId === "conn-1").map((p) => p.message.type);
    expect(types).toEqual(expect.arrayContaining(["workflow_run", "incident"]));
  });

  it("links a second failure (and its redelivery) to the same incident", async () => {
    const payload = runPayload({ conclusion: "timed_out" });
    const second = String((payload.workflow_run as Json).id);
    expect((await deliver(payload)).status).toBe(202);
    expect((await deliver(payload)).status).toBe(202); // a new delivery id for the same run
    const all = await incidents();
    expect(all).toHaveLength(1);
    expect(all[0]?.runIds).toEqual([String(firstRun), second]);
  });

  it("moves incidents only along the state machine, audited, and 409 names the allowed moves", async () => {
    const ack = await transition(incidentId, "acknowledged");
    expect(ack.status).toBe(200);
    expect(ack.body.status).toBe("acknowledged");
    const illegal = await transition(incidentId, "open");
    expect(illegal.status).toBe(409);
    expect(illegal.body.detail).toContain(TRANSITIONS.acknowledged.join(", "));
    expect(illegal.body.detail).toMatch(/from acknowledged to open/);
    expect((await transition(incidentId, "bogus")).status).toBe(400);
    const audit = await t.json<{ items: { details: Json }[] }>(
      "GET",
      `/api/audit-logs?resourceType=incident&resourceId=${incidentId}&action=incident.transition`,
      { token: alice.token },
    );
    expect(audit.body.items[0]?.details).toMatchObject({ from: "open", to: "acknowledged" });
  });

  it("takes comments (1–5000 characters) in time order after the system ones", async () => {
    const add = await t.json<Json>("POST", `/api/incidents/${incidentId}/comments`, {
      token: alice.token,
      body: { body: "Looking into it" },
    });
    expect(add.status).toBe(201);
    expect(add.body).toMatchObject({ kind: "user", authorId: alice.id, body: "Looking into it" });
    for (const body of ["", "x".repeat(5001)]) {
      const bad = await t.json<Json>("POST", `/api/incidents/${incidentId}/comments`, {
        token: alice.token,
        body: { body },
      });
      expect(bad.status).toBe(400);
    }
    const list = await comments(incidentId);
    expect(list.map((c) => c.kind)).toEqual(["system", "system", "user"]);
    expect(list[0]?.body).toMatch(/^Opened/);
    expect(list.map((c) => c.createdAt)).toEqual([...list.map((c) => c.createdAt)].sort((a, b) => a - b));
  });

  it("a green run resolves the incident with a system comment and deploys only deployOn ci-success apps", async () => {
    const webBefore = (await deploymentsOf(apps.web as string)).length;
    const headSha = sha();
    const payload = runPayload({ conclusion: "success", headSha });
    const res = await deliver(payload);
    expect(res.status).toBe(202);
    const deployed = res.body.deployments as string[];
    expect(deployed).toHaveLength(1);

    const ci = await deploymentsOf(apps.ci as string);
    expect(ci[0]).toMatchObject({
      id: deployed[0],
      trigger: "ci-success",
      commitSha: headSha,
      ref: "main",
      status: "queued",
    });
    const headCommit = (payload.workflow_run as Json).head_commit as { message: string; author: { name: string } };
    expect(ci[0]).toMatchObject({ commitMessage: headCommit.message, author: headCommit.author.name });
    expect(await deploymentsOf(apps.web as string)).toHaveLength(webBefore);

    const got = await t.json<Incident>("GET", `/api/incidents/${incidentId}`, { token: alice.token });
    expect(got.body.status).toBe("resolved");
    expect(got.body.resolvedAt).toEqual(expect.any(Number));
    expect((await comments(incidentId)).at(-1)).toMatchObject({
      kind: "system",
      authorId: null,
      body: expect.stringMatching(/^Resolved automatically/),
    });
    expect(await incidents(alice.token, "?status=open")).toHaveLength(0);
  });

  it("a failure after resolution opens a new incident; reopening the old one is then refused", async () => {
    expect((await deliver(runPayload({ conclusion: "failure" }))).status).toBe(202);
    const open = await incidents(alice.token, "?status=open&repo=octo/shop");
    expect(open).toHaveLength(1);
    expect(open[0]?.id).not.toBe(incidentId);
    const reopen = await transition(incidentId, "open");
    expect(reopen.status).toBe(409);
    expect(reopen.body.detail).toMatch(/Another incident/);
    // Resolve the new one by hand (open → resolved), then the old one may reopen.
    expect((await transition(open[0]?.id ?? "", "resolved")).status).toBe(200);
    const again = await transition(incidentId, "open");
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: "open", resolvedAt: null });
    expect((await incidents()).map((i) => i.id)[0]).not.toBe(incidentId); // newest first
  });

  it("ignores an older event for a run that already completed", async () => {
    const id = runSeq++;
    await deliver(runPayload({ id, conclusion: "cancelled", updatedAt: new Date().toISOString() }));
    await deliver(
      runPayload({
        id,
        action: "in_progress",
        status: "in_progress",
        conclusion: null,
        updatedAt: "2020-01-01T00:00:00Z",
      }),
    );
    const runs = await t.json<{ items: Json[] }>("GET", "/api/workflow-runs?limit=100", { token: alice.token });
    expect(runs.body.items.find((r) => r.id === String(id))).toMatchObject({
      status: "completed",
      conclusion: "cancelled",
    });
  });

  it("re-runs a run (or its failed jobs) on GitHub with the caller's token", async () => {
    const res = await t.json<Json>("POST", `/api/workflow-runs/${firstRun}/rerun`, {
      token: alice.token,
      body: { failedOnly: true },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(gh.reruns.at(-1)).toEqual({ repo: "octo/shop", runId: String(firstRun), failedOnly: true, userId: octo.id });
    const full = await t.call("POST", `/api/workflow-runs/${firstRun}/rerun`, { token: alice.token });
    expect(full.status).toBe(202);
    expect(gh.reruns.at(-1)?.failedOnly).toBe(false);
    expect(gh.requests.at(-1)?.path).toBe(`/repos/octo/shop/actions/runs/${firstRun}/rerun`);
  });

  it("trusts only the repository's own runs: a fork's or a pull request's green run deploys nothing and resolves nothing", async () => {
    expect((await deliver(runPayload({ conclusion: "failure" }))).status).toBe(202);
    const [open] = await incidents(alice.token, "?status=open&repo=octo/shop");
    expect(open).toBeDefined();
    const before = (await deploymentsOf(apps.ci as string)).length;
    // A fork whose branch is called main, and a pull request from a branch of the repository itself.
    const fork = await deliver(runPayload({ conclusion: "success", event: "pull_request", headRepoId: 999_999 }));
    const forkPush = await deliver(runPayload({ conclusion: "success", event: "push", headRepoId: 999_999 }));
    const pr = await deliver(runPayload({ conclusion: "success", event: "pull_request_target" }));
    for (const res of [fork, forkPush, pr]) {
      expect(res.status).toBe(202);
      expect(res.body.deployments).toEqual([]);
    }
    expect(await deploymentsOf(apps.ci as string)).toHaveLength(before);
    expect((await t.json<Incident>("GET", `/api/incidents/${open?.id}`, { token: alice.token })).body.status).toBe(
      "open",
    );
    // A fork's failing run opens nothing either.
    await deliver(runPayload({ conclusion: "failure", event: "pull_request", headRepoId: 999_999, branch: "main" }));
    expect(await incidents(alice.token, "?status=open&repo=octo/shop")).toHaveLength(1);
    // The repository's own green run does resolve it.
    await deliver(runPayload({ conclusion: "success" }));
    expect((await t.json<Incident>("GET", `/api/incidents/${open?.id}`, { token: alice.token })).body.status).toBe(
      "resolved",
    );
  });

  it("deploys one commit once, however many workflows pass, and waits for every workflow an app names", async () => {
    const headSha = sha();
    const ci = apps.ci as string;
    const before = (await deploymentsOf(ci)).length;
    const first = await deliver(runPayload({ conclusion: "success", headSha, name: "CI" }));
    const second = await deliver(runPayload({ conclusion: "success", headSha, name: "Lint" }));
    expect((first.body.deployments as string[]).length, JSON.stringify(first.body)).toBe(1);
    expect(second.body.deployments).toEqual([]);
    expect(await deploymentsOf(ci)).toHaveLength(before + 1);

    // The app now requires both CI and Lint to pass for a commit.
    const put = await t.json<Json>("PUT", `/api/apps/${ci}`, {
      token: alice.token,
      body: {
        repository: {
          fullName: "octo/shop",
          branch: "main",
          autoDeploy: true,
          deployOn: "ci-success",
          workflows: ["CI", "Lint"],
        },
      },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const gated = sha();
    const ciOnly = await deliver(runPayload({ conclusion: "success", headSha: gated, name: "CI" }));
    expect(ciOnly.body.deployments).toEqual([]);
    const failedLint = await deliver(runPayload({ conclusion: "failure", headSha: gated, name: "Lint" }));
    expect(failedLint.body.deployments).toEqual([]);
    const lint = await deliver(runPayload({ conclusion: "success", headSha: gated, name: "Lint" }));
    expect((lint.body.deployments as string[]).length).toBe(1);
    const [latest] = await deploymentsOf(ci);
    expect(latest).toMatchObject({ commitSha: gated, trigger: "ci-success" });
  });

  it("keeps other tenants out (404) and lists nothing of alice's for them", async () => {
    expect(bobApps.bobweb).toBeDefined();
    expect((await t.call("GET", `/api/incidents/${incidentId}`, { token: bob.token })).status).toBe(404);
    expect((await transition(incidentId, "resolved", bob.token)).status).toBe(404);
    expect((await t.call("GET", `/api/incidents/${incidentId}/comments`, { token: bob.token })).status).toBe(404);
    const post = await t.call("POST", `/api/incidents/${incidentId}/comments`, {
      token: bob.token,
      body: { body: "hi" },
    });
    expect(post.status).toBe(404);
    expect((await t.call("POST", `/api/workflow-runs/${firstRun}/rerun`, { token: bob.token })).status).toBe(404);
    expect(await incidents(bob.token)).toEqual([]);
    const runs = await t.json<{ items: Json[] }>("GET", "/api/workflow-runs", { token: bob.token });
    expect(runs.body.items).toEqual([]);
    expect((await t.call("GET", "/api/incidents")).status).toBe(401);
  });
});
