// tests/sdk-check/cloudwatch_capture.js: what @aws-sdk/client-cloudwatch puts
// on the wire, for reading (not a test): a local server records each request
// (headers, body gunzipped) while the SDK, pointed at it with static test
// credentials, calls PutMetricData (small and >= 10 KB), PutMetricAlarm,
// DescribeAlarms and GetMetricData, then meets an InvalidParameterValue and a
// Throttling answer (x-amzn-query-error). aws/README.md records what it showed.
// Usage: (cd tests/sdk-check && npm ci && node cloudwatch_capture.js)
"use strict";
const http = require("http");
const zlib = require("zlib");
const path = require("path");
const m = path.join(__dirname, "node_modules");
const cw = require(path.join(m, "@aws-sdk/client-cloudwatch"));
const seen = [];
let mode = "ok";
const srv = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let body = Buffer.concat(chunks);
    const raw = body.length;
    if (req.headers["content-encoding"] === "gzip") body = zlib.gunzipSync(body);
    seen.push({ method: req.method, url: req.url, headers: req.headers, rawLen: raw, body: body.toString().slice(0, 600) });
    const op = req.headers["x-amz-target"].split(".")[1];
    if (mode === "err") {
      res.writeHead(400, { "content-type": "application/x-amz-json-1.0", "x-amzn-query-error": "InvalidParameterValue;Sender", "x-amzn-requestid": "r1" });
      res.end(JSON.stringify({ __type: "com.amazonaws.cloudwatch#InvalidParameterValueException", message: "bad value" }));
      return;
    }
    if (mode === "throttle") {
      res.writeHead(400, { "content-type": "application/x-amz-json-1.0", "x-amzn-query-error": "Throttling;Sender" });
      res.end(JSON.stringify({ __type: "com.amazon.coral.availability#ThrottlingException", message: "Rate exceeded" }));
      return;
    }
    res.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
    if (op === "DescribeAlarms") res.end(JSON.stringify({ MetricAlarms: [{ AlarmName: "a", StateValue: "OK", StateUpdatedTimestamp: 1.7e9 }], NextToken: "t2" }));
    else if (op === "GetMetricData") res.end(JSON.stringify({ MetricDataResults: [{ Id: "q1", Label: "L", Timestamps: [1764200000, 1764200060], Values: [1.5, 2], StatusCode: "Complete" }], Messages: [] }));
    else res.end("{}");
  });
});
srv.listen(0, "127.0.0.1", async () => {
  const c = new cw.CloudWatchClient({ region: "us-east-1", endpoint: "http://127.0.0.1:" + srv.address().port,
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }, maxAttempts: 2 });
  const ts = new Date(1764200000123);
  await c.send(new cw.PutMetricDataCommand({ Namespace: "Assay", MetricData: [{ MetricName: "QualityScore", Dimensions: [{ Name: "App", Value: "chat" }], Timestamp: ts, Values: [0.5, 1], Counts: [3, 4], Unit: "None", StorageResolution: 60 }, { MetricName: "X", Timestamp: ts, StatisticValues: { SampleCount: 2, Sum: 3, Minimum: 1, Maximum: 2 }, Value: undefined }, {MetricName: "Y", Value: 1.25, Unit: "Count"}] }));
  const big = []; for (let i = 0; i < 200; i++) big.push({ MetricName: "QualityScore", Dimensions: [{ Name: "App", Value: "app" + i }], Timestamp: ts, Value: i / 7 });
  await c.send(new cw.PutMetricDataCommand({ Namespace: "Assay", MetricData: big }));
  await c.send(new cw.PutMetricAlarmCommand({ AlarmName: "assay-chat", AlarmDescription: "d", Namespace: "Assay", MetricName: "QualityRegression", Dimensions: [{ Name: "App", Value: "chat" }], Statistic: "Maximum", Period: 60, EvaluationPeriods: 3, DatapointsToAlarm: 2, Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold", TreatMissingData: "notBreaching", AlarmActions: ["arn:aws:sns:us-east-1:123456789012:t"], OKActions: [], ActionsEnabled: true }));
  const d = await c.send(new cw.DescribeAlarmsCommand({ AlarmNames: ["a", "b"], NextToken: "t1", MaxRecords: 100 }));
  console.log("describe parsed", JSON.stringify(d.MetricAlarms), d.NextToken);
  const g = await c.send(new cw.GetMetricDataCommand({ MetricDataQueries: [{ Id: "q1", MetricStat: { Metric: { Namespace: "Assay", MetricName: "QualityScore", Dimensions: [{ Name: "App", Value: "chat" }] }, Period: 60, Stat: "Average", Unit: "None" }, ReturnData: true }], StartTime: new Date(1764190000000), EndTime: new Date(1764200000000), ScanBy: "TimestampAscending", NextToken: "n1", MaxDatapoints: 100 }));
  console.log("gmd parsed", JSON.stringify(g.MetricDataResults));
  mode = "err";
  try { await c.send(new cw.PutMetricDataCommand({ Namespace: "Assay", MetricData: [{ MetricName: "Y", Value: 1 }] })); } catch (e) { console.log("err name", e.name, "Code", e.Code, "msg", e.message, "$fault", e.$fault, "status", e.$metadata.httpStatusCode, "attempts", e.$metadata.attempts); }
  mode = "throttle";
  try { await c.send(new cw.PutMetricDataCommand({ Namespace: "Assay", MetricData: [{ MetricName: "Y", Value: 1 }] })); } catch (e) { console.log("throttle name", e.name, "$fault", e.$fault, "attempts", e.$metadata.attempts, "retryable", JSON.stringify(e.$retryable)); }
  for (const s of seen) console.log(JSON.stringify(s));
  srv.close();
});
