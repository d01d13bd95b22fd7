// bench/sigv4/bench_sigv4.js FILE TIME_S: the node side of bench_sigv4. Signs
// the Converse-shaped requests in FILE (JSON lines from bench_sigv4) with
// @smithy/signature-v4 and @smithy/hash-node's Sha256, as the AWS SDK does in
// Node, best of 5 passes, and prints "sdk <signatures per second> <sha256 of
// every Authorization value, one a line>".
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const modules = path.join(__dirname, "../../tests/sdk-check/node_modules");
const { SignatureV4 } = require(path.join(modules, "@smithy/signature-v4"));
const { Hash } = require(path.join(modules, "@smithy/hash-node"));

const AKID = "ASIAEXAMPLEBENCH0001";
const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN =
  "IQoJb3JpZ2luX2VjEXAMPLEtokenFORbenchmarkingONLYabcdefghijklmnopqrstuvwxyz0123456789+/" +
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789==";

async function main() {
  const [file, timeS] = process.argv.slice(2);
  const requests = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l)
    .map((l) => {
      const r = JSON.parse(l);
      return {
        method: "POST",
        protocol: "https:",
        hostname: r.headers.host,
        path: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        query: {},
        headers: r.headers,
        body: r.body,
      };
    });
  const signer = new SignatureV4({
    credentials: { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: TOKEN },
    region: "us-east-1",
    service: "bedrock",
    sha256: Hash.bind(null, "sha256"),
  });
  const signingDate = new Date(Number(timeS) * 1000);

  const all = crypto.createHash("sha256");
  for (const r of requests) {
    const s = await signer.sign(r, { signingDate });
    all.update(s.headers.authorization + "\n");
  }
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint();
    for (const r of requests) await signer.sign(r, { signingDate });
    const t = Number(process.hrtime.bigint() - t0) / 1e9;
    if (t < best) best = t;
  }
  console.log(`sdk ${(requests.length / best).toFixed(0)} ${all.digest("hex")}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
