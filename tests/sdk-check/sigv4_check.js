// tests/sdk-check/sigv4_check.js: the JS half of the SigV4 cross-check. Reads
// the JSON lines of sigv4_gen on stdin, signs each request with the official
// @smithy/signature-v4 (node's crypto through @smithy/hash-node, as the AWS SDK
// does in Node) and requires assay's result to be identical: the Authorization
// header byte for byte, or for presigned requests the same query parameters
// (X-Amz-Signature included). Prints "N of N identical"; exit 1 on any mismatch.
"use strict";
const path = require("path");
const readline = require("readline");
const modules = path.join(__dirname, "node_modules");
const { SignatureV4 } = require(path.join(modules, "@smithy/signature-v4"));
const { Hash } = require(path.join(modules, "@smithy/hash-node"));

function jsQuery(pairs) {
  const q = {};
  for (const [k, v] of pairs) {
    if (Object.prototype.hasOwnProperty.call(q, k)) {
      q[k] = Array.isArray(q[k]) ? q[k].concat([v]) : [q[k], v];
    } else {
      q[k] = v;
    }
  }
  return q;
}

function pairsOfQueryObject(q) {
  const out = [];
  for (const k of Object.keys(q)) {
    for (const v of Array.isArray(q[k]) ? q[k] : [q[k]]) out.push(k + "=" + v);
  }
  return out.sort();
}

function pairsOfQueryString(s) {
  const out = [];
  for (const piece of s.split("&")) {
    if (piece === "") continue;
    const eq = piece.indexOf("=");
    const k = eq < 0 ? piece : piece.slice(0, eq);
    const v = eq < 0 ? "" : piece.slice(eq + 1);
    out.push(decodeURIComponent(k) + "=" + decodeURIComponent(v));
  }
  return out.sort();
}

async function check(t) {
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: t.akid,
      secretAccessKey: t.secret,
      ...(t.token ? { sessionToken: t.token } : {}),
    },
    region: t.region,
    service: t.service,
    sha256: Hash.bind(null, "sha256"),
    uriEscapePath: !t.s3,
    applyChecksum: t.sign_body,
  });
  const headers = {};
  for (const [k, v] of t.headers) headers[k] = v;
  const request = {
    method: t.method,
    protocol: "https:",
    hostname: "example.amazonaws.com",
    path: t.path,
    query: jsQuery(t.query),
    headers,
    body: Buffer.from(t.body_hex, "hex"),
  };
  const signingDate = new Date(t.time_s * 1000);
  if (t.presign) {
    const signed = await signer.presign(request, { signingDate, expiresIn: t.expires_s });
    const want = pairsOfQueryObject(signed.query).join("&");
    const got = pairsOfQueryString(t.presigned_query).join("&");
    return { same: want === got, want, got };
  }
  const signed = await signer.sign(request, { signingDate });
  const want = signed.headers.authorization;
  return { same: want === t.authorization, want, got: t.authorization };
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let total = 0, same = 0, headerTotal = 0, presignTotal = 0, shown = 0;
  for await (const line of rl) {
    if (!line.trim()) continue;
    const t = JSON.parse(line);
    total++;
    if (t.presign) presignTotal++; else headerTotal++;
    const r = await check(t);
    if (r.same) {
      same++;
    } else if (shown++ < 5) {
      console.error(`request ${t.n} differs (${t.presign ? "presigned" : "header"}):`);
      console.error(`  request: ${line.slice(0, 600)}`);
      console.error(`  sdk:   ${r.want}`);
      console.error(`  assay: ${r.got}`);
    }
  }
  console.log(`${same} of ${total} identical (${headerTotal} Authorization headers, ` +
              `${presignTotal} presigned queries)`);
  process.exit(total > 0 && same === total ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
