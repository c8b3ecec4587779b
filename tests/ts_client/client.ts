/**
 * A smoke test of the client generated from docs/openapi.json (openapi-typescript types, openapi-fetch runtime).
 *
 * Sends one inference event (3 candidates), then one PAIRWISE and one RANKING feedback about it in a batch,
 * through the generated client; checks each answer is 202 with the ids sent; prints a JSON summary (ids and
 * counts only, never the texts) on stdout. Run by tests/integration/test_api_typescript.py, which holds its own
 * copy of the texts below to check the pairs in the audit log.
 *
 * Env: PREFLOG_API_URL, PREFLOG_API_KEY, PREFLOG_REQUEST_ID, PREFLOG_PAIRWISE_ID, PREFLOG_RANKING_ID.
 */
import createClient from "openapi-fetch";

import type { components, paths } from "./generated/api.js";

type InferenceEvent = components["schemas"]["InferenceEvent"];
type FeedbackEvent = components["schemas"]["FeedbackEvent"];
type Accepted = components["schemas"]["Accepted"];

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const baseUrl = env("PREFLOG_API_URL");
const requestId = env("PREFLOG_REQUEST_ID");
const pairwiseId = env("PREFLOG_PAIRWISE_ID");
const rankingId = env("PREFLOG_RANKING_ID");

// the three forms the description allows for a candidate: bare text, text only, a full object
const inference = {
  request_id: requestId,
  event_time: new Date().toISOString(),
  prompt: "Name the largest planet of the Solar System.",
  candidates: [
    "Saturn.",
    { text: "Jupiter." },
    { index: 2, text: "Jupiter: more than twice the mass of all the other planets together.", finish_reason: "stop" },
  ],
  model: "acme-chat",
  sampling: { temperature: 0.7, top_p: 0.95 },
  context: { session_id: "ts-smoke", user_id: "u-ts-1" },
} satisfies InferenceEvent;

const now = Date.now();
const feedback = [
  {
    feedback_id: pairwiseId,
    request_id: requestId,
    event_time: now,
    kind: "PAIRWISE",
    pairwise: { chosen: 2, rejected: 0 },
    source: "END_USER",
  },
  {
    feedback_id: rankingId,
    request_id: requestId,
    event_time: new Date(now).toISOString(),
    kind: "RANKING",
    ranking: [
      { index: 2, rank: 1 },
      { index: 0, rank: 3 },
      { index: 1, rank: 2 },
    ],
    source: { type: "HUMAN_ANNOTATOR", id: "ann-ts", version: "guidelines-v3" },
    rationale: "the most complete answer first",
  },
] satisfies FeedbackEvent[];

const client = createClient<paths>({
  baseUrl,
  headers: { Authorization: `Bearer ${env("PREFLOG_API_KEY")}` },
});

function accepted(route: string, status: number, data: Accepted | undefined, error: unknown, ids: string[]): Accepted {
  if (status !== 202 || data === undefined) {
    // the error body names what went wrong (never a text of the events)
    throw new Error(`${route}: expected 202, got ${status}: ${JSON.stringify(error)}`);
  }
  if (data.accepted !== ids.length || JSON.stringify(data.ids) !== JSON.stringify(ids)) {
    throw new Error(`${route}: expected ${JSON.stringify({ accepted: ids.length, ids })}, got ${JSON.stringify(data)}`);
  }
  return data;
}

async function main(): Promise<void> {
  const one = await client.POST("/v1/inference", { body: inference, signal: AbortSignal.timeout(30_000) });
  const inferenceAnswer = accepted("/v1/inference", one.response.status, one.data, one.error, [requestId]);

  const batch = await client.POST("/v1/feedback", { body: feedback, signal: AbortSignal.timeout(30_000) });
  const feedbackAnswer = accepted("/v1/feedback", batch.response.status, batch.data, batch.error, [
    pairwiseId,
    rankingId,
  ]);

  const summary = {
    inference: { status: one.response.status, ...inferenceAnswer },
    feedback: { status: batch.response.status, ...feedbackAnswer },
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`ts client smoke: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
