// tests/sdk-check/cloudwatch_check.js: the CloudWatch wire cross-check. For the
// same inputs (PutMetricData small and gzipped, PutMetricAlarm, DescribeAlarms,
// GetMetricData), it records on one local server what assay's client sends
// (cloudwatch_gen) and what the official @aws-sdk/client-cloudwatch sends, with
// the same credentials and the same signing time, and requires:
//   - method, path, Content-Type, X-Amz-Target, x-amzn-query-mode and
//     Content-Encoding equal; the JSON bodies (gunzipped) equal after parsing;
//   - each side's signature valid when re-computed server-side with
//     @smithy/signature-v4 over the bytes received, and X-Amz-Content-SHA256
//     equal to the SHA-256 of those bytes (the compressed ones when gzipped);
//   - Authorization byte for byte identical whenever both bodies are the same
//     bytes (all but gzipped ones, whose compressed bytes depend on the zlib
//     build; their JSON before compression must be the same bytes). The SDK's own bookkeeping headers (amz-sdk-invocation-id,
//     amz-sdk-request, x-amz-user-agent: a random id, the attempt count and
//     its version) are removed before it signs, so that both sign the same
//     header set; the unmodified SDK request's signature is checked
//     server-side as well.
// Usage: node cloudwatch_check.js GEN. Prints one line per case and "N passed,
// M failed"; exit 1 on any mismatch.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const http = require("http");
const os = require("os");
const path = require("path");
const zlib = require("zlib");
const { execFileSync } = require("child_process");

const modules = path.join(__dirname, "node_modules");
const cw = require(path.join(modules, "@aws-sdk/client-cloudwatch"));
const { SignatureV4 } = require(path.join(modules, "@smithy/signature-v4"));
const { Hash } = require(path.join(modules, "@smithy/hash-node"));

const AKID = "AKIDEXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const REGION = "us-east-1";
const gen = process.argv[2];
const NOW_MS = Math.floor(Date.now() / 1000) * 1000;

// ---- the inputs, in the SDK's shape (timestamps as epoch milliseconds) ----
function cases() {
  const t = NOW_MS - 120000;
  const dims = [{ Name: "App", Value: "chat" }, { Name: "Rubric", Value: "helpfulness" }];
  const small = {
    Namespace: "Assay",
    MetricData: [
      { MetricName: "QualityScore", Dimensions: dims, Timestamp: t, Values: [0.5, 0.75, 1], Counts: [3, 4, 1], Unit: "None", StorageResolution: 60 },
      { MetricName: "JudgeInvocationLatency", Dimensions: [{ Name: "JudgeModelId", Value: "anthropic.claude-3-haiku-20240307-v1:0" }], Timestamp: t + 123, StatisticValues: { SampleCount: 4, Sum: 1234.5, Minimum: 100, Maximum: 600.25 }, Unit: "Milliseconds" },
      { MetricName: "SamplesReceived", Dimensions: [{ Name: "App", Value: "chat" }], Timestamp: t, Value: 42, Unit: "Count" },
      { MetricName: "QualityPass", Value: 0.1 },
    ],
  };
  const big = { Namespace: "Assay", MetricData: [] };
  for (let i = 0; i < 150; i++) {
    big.MetricData.push({ MetricName: "QualityScore", Dimensions: [{ Name: "App", Value: "app-" + i }, { Name: "Rubric", Value: "faithfulness" }], Timestamp: t, Value: i / 7, Unit: "None" });
  }
  const alarm = {
    AlarmName: "assay-chat-helpfulness-regression", AlarmDescription: "assay: quality regression on chat/helpfulness",
    ActionsEnabled: true, OKActions: ["arn:aws:sns:us-east-1:123456789012:quality"], AlarmActions: ["arn:aws:sns:us-east-1:123456789012:quality"],
    MetricName: "QualityRegression", Namespace: "Assay", Statistic: "Maximum", Dimensions: dims, Period: 60,
    EvaluationPeriods: 3, DatapointsToAlarm: 2, Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold", TreatMissingData: "notBreaching",
  };
  const describe = { AlarmNames: ["assay-chat-helpfulness-regression", "assay-chat-helpfulness-score"], MaxRecords: 100 };
  const gmd = {
    MetricDataQueries: [
      { Id: "q1", MetricStat: { Metric: { Namespace: "Assay", MetricName: "QualityScore", Dimensions: dims }, Period: 60, Stat: "Sum" }, ReturnData: true },
      { Id: "q2", Label: "count", MetricStat: { Metric: { Namespace: "Assay", MetricName: "QualityScore", Dimensions: dims }, Period: 60, Stat: "SampleCount", Unit: "None" }, ReturnData: true },
    ],
    StartTime: NOW_MS - 3600000, EndTime: NOW_MS + 500, ScanBy: "TimestampAscending",
  };
  return [
    { name: "PutMetricData (small)", op: "PutMetricData", input: small },
    { name: "PutMetricData (gzipped)", op: "PutMetricData", input: big },
    { name: "PutMetricAlarm", op: "PutMetricAlarm", input: alarm },
    { name: "DescribeAlarms", op: "DescribeAlarms", input: describe },
    { name: "GetMetricData", op: "GetMetricData", input: gmd },
  ];
}

function sdkInput(input) {
  // Timestamps become Date objects, as an SDK user passes them.
  const out = JSON.parse(JSON.stringify(input));
  for (const m of out.MetricData || []) if (m.Timestamp !== undefined) m.Timestamp = new Date(m.Timestamp);
  if (out.StartTime !== undefined) out.StartTime = new Date(out.StartTime);
  if (out.EndTime !== undefined) out.EndTime = new Date(out.EndTime);
  return out;
}

// ---- the recording server ----
const seen = { assay: [], sdk: [] };
let phase = "assay";
function answer(op) {
  if (op === "DescribeAlarms") return { MetricAlarms: [] };
  if (op === "GetMetricData") return { MetricDataResults: [], Messages: [] };
  return {};
}
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunks);
    seen[phase].push({ method: req.method, url: req.url, headers: req.headers, raw });
    const op = String(req.headers["x-amz-target"] || "").split(".")[1];
    // No Date header: the SDK (3.1164) resets its clock offset from every
    // response's Date, which would move its signing time off the pinned one.
    res.sendDate = false;
    res.writeHead(200, { "content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "check" });
    res.end(JSON.stringify(answer(op)));
  });
});

// ---- checks ----
async function verify(r) {
  // Re-sign what arrived (the headers it names as signed, the bytes received).
  const auth = r.headers.authorization || "";
  const m = /SignedHeaders=([^,]+), Signature=([0-9a-f]+)/.exec(auth);
  if (!m) return "no Authorization";
  const headers = {};
  for (const h of m[1].split(";")) headers[h] = r.headers[h];
  const sha = crypto.createHash("sha256").update(r.raw).digest("hex");
  if (r.headers["x-amz-content-sha256"] !== sha) return "x-amz-content-sha256 is not the body's hash";
  const date = r.headers["x-amz-date"];
  const when = new Date(Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6, 8), +date.slice(9, 11), +date.slice(11, 13), +date.slice(13, 15)));
  const signer = new SignatureV4({ credentials: { accessKeyId: AKID, secretAccessKey: SECRET }, region: REGION, service: "monitoring", sha256: Hash.bind(null, "sha256") });
  const [host, port] = r.headers.host.split(":");
  const signed = await signer.sign({ method: r.method, protocol: "http:", hostname: host, port: +port, path: r.url, query: {}, headers, body: r.raw }, { signingDate: when });
  const got = /Signature=([0-9a-f]+)/.exec(signed.headers.authorization)[1];
  return got === m[2] ? null : "signature does not verify";
}

function plainBytes(r) {
  return r.headers["content-encoding"] === "gzip" ? zlib.gunzipSync(r.raw) : r.raw;
}

function body(r) {
  return JSON.parse(plainBytes(r).toString("utf8"));
}

function deepEqual(a, b, where, out) {
  if (typeof a === "number" && typeof b === "number") {
    if (a !== b) out.push(`${where}: ${a} vs ${b}`);
  } else if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) out.push(`${where}: ${a.length} vs ${b.length} entries`);
    for (let i = 0; i < Math.min(a.length, b.length); i++) deepEqual(a[i], b[i], `${where}[${i}]`, out);
  } else if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      if (!(k in a)) out.push(`${where}.${k}: only the SDK sends it`);
      else if (!(k in b)) out.push(`${where}.${k}: only assay sends it`);
      else deepEqual(a[k], b[k], `${where}.${k}`, out);
    }
  } else if (a !== b) {
    out.push(`${where}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
}

async function main() {
  if (!gen) {
    console.error("usage: node cloudwatch_check.js CLOUDWATCH_GEN");
    process.exit(2);
  }
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const url = "http://127.0.0.1:" + server.address().port;
  const list = cases();
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "cwcheck-")), "cases.json");
  fs.writeFileSync(file, JSON.stringify(list));

  // assay: the C client, signing at NOW_MS (execFileSync would block the
  // server in this process, so run it asynchronously).
  await new Promise((ok, fail) => {
    const { execFile } = require("child_process");
    execFile(gen, [url, String(NOW_MS), file], (err, stdout, stderr) => {
      if (err) fail(new Error("cloudwatch_gen failed: " + stderr));
      else ok();
    });
  });
  fs.rmSync(path.dirname(file), { recursive: true, force: true });

  // the SDK, its clock pinned to the same instant
  phase = "sdk";
  // Pin both ways the SDK may read the clock: Date.now() and new Date().
  const RealDate = Date;
  globalThis.Date = class extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(NOW_MS);
      else super(...args);
    }
    static now() {
      return NOW_MS;
    }
  };
  const client = new cw.CloudWatchClient({ region: REGION, endpoint: url, maxAttempts: 1, credentials: { accessKeyId: AKID, secretAccessKey: SECRET } });
  client.middlewareStack.addRelativeTo(
    (next) => async (args) => {
      for (const h of ["amz-sdk-invocation-id", "amz-sdk-request", "x-amz-user-agent"]) delete args.request.headers[h];
      return next(args);
    },
    { name: "assayStripSdkBookkeeping", relation: "before", toMiddleware: "httpSigningMiddleware" },
  );
  const plain = new cw.CloudWatchClient({ region: REGION, endpoint: url, maxAttempts: 1, credentials: { accessKeyId: AKID, secretAccessKey: SECRET } });
  for (const c of list) await client.send(new cw[c.op + "Command"](sdkInput(c.input)));
  // The unmodified SDK, once per case, for the server-side signature check.
  for (const c of list) await plain.send(new cw[c.op + "Command"](sdkInput(c.input)));
  globalThis.Date = RealDate;
  server.close();

  let passed = 0, failed = 0;
  for (let i = 0; i < list.length; i++) {
    const a = seen.assay[i], s = seen.sdk[i], u = seen.sdk[list.length + i];
    const problems = [];
    if (!a || !s || !u) {
      problems.push("missing request");
    } else {
      for (const h of ["content-type", "x-amz-target", "x-amzn-query-mode", "content-encoding", "x-amz-date"]) {
        if (a.headers[h] !== s.headers[h]) problems.push(`${h}: ${a.headers[h]} vs ${s.headers[h]}`);
      }
      if (a.method !== s.method || a.url !== s.url) problems.push(`request line: ${a.method} ${a.url} vs ${s.method} ${s.url}`);
      deepEqual(body(a), body(s), "body", problems);
      for (const [who, r] of [["assay", a], ["sdk", s], ["sdk unmodified", u]]) {
        const v = await verify(r);
        if (v) problems.push(`${who}: ${v}`);
      }
      const sameBytes = a.raw.equals(s.raw);
      if (sameBytes && a.headers.authorization !== s.headers.authorization) {
        problems.push(`Authorization differs:\n    assay ${a.headers.authorization}\n    sdk   ${s.headers.authorization}`);
      }
      // gzip output depends on the zlib build (node bundles its own): when the
      // compressed bytes differ, the JSON before compression must not.
      const samePlain = plainBytes(a).equals(plainBytes(s));
      if (!samePlain && a.headers["content-encoding"] === "gzip") problems.push("the JSON before gzip differs in bytes");
      const note = sameBytes
        ? "bytes and Authorization identical"
        : samePlain
          ? "JSON identical before gzip, compressed bytes differ (zlib builds); both signatures verified"
          : "bodies equal as JSON, not as bytes; both signatures verified";
      if (problems.length === 0) console.log(`ok ${list[i].name}: ${a.headers["x-amz-target"]}, ${a.raw.length} bytes${a.headers["content-encoding"] ? " gzip" : ""}; ${note}`);
    }
    if (problems.length) {
      failed++;
      console.log(`FAIL ${list[i].name}:\n  ` + problems.join("\n  "));
    } else {
      passed++;
    }
  }
  // The server-side check itself must refuse tampered requests.
  if (seen.assay.length) {
    const r = seen.assay[0];
    const tampered = [
      ["body", { ...r, raw: Buffer.concat([r.raw, Buffer.from(" ")]) }],
      ["X-Amz-Target", { ...r, headers: { ...r.headers, "x-amz-target": "GraniteServiceVersion20100801.DeleteAlarms" } }],
    ];
    for (const [what, t] of tampered) {
      if (await verify(t)) {
        passed++;
        console.log(`ok tampered ${what} refused`);
      } else {
        failed++;
        console.log(`FAIL tampered ${what} accepted`);
      }
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
