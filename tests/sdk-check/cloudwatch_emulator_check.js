// tests/sdk-check/cloudwatch_emulator_check.js EMULATOR: starts
// build/assay-emulator (three times: no faults, CloudWatch always throttled,
// a CloudWatch outage over its first two requests plus SNS always throttled)
// and drives it with the official @aws-sdk/client-cloudwatch and
// @aws-sdk/client-sns (endpoint set to the emulator, static credentials).
// Correct calls must succeed and read back what was put (PutMetricData small
// and gzipped, GetMetricData, PutMetricAlarm, DescribeAlarms, Publish); a
// wrong secret, a stale date and tampered bodies (plain and gzipped) must be
// refused; the emulator's errors must parse as the SDK's exception classes
// and be retried by the SDK when they are throttling or 5xx.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  CloudWatchClient, PutMetricDataCommand, GetMetricDataCommand, PutMetricAlarmCommand,
  DescribeAlarmsCommand, paginateDescribeAlarms,
} = require('@aws-sdk/client-cloudwatch');
const { SNSClient, PublishCommand } = require('@aws-sdk/client-sns');
const { NodeHttpHandler } = require('@smithy/node-http-handler');

const AKID = 'AKIDEXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const NS = 'AssaySdkCheck';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:assay-alarms';

let failures = 0;
let checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) {
    failures++;
    console.error('FAIL: ' + what);
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function startEmulator(exe, dir, name, scenario) {
  const portFile = path.join(dir, `${name}.port`);
  const scenarioFile = path.join(dir, `${name}.scenario.json`);
  fs.writeFileSync(scenarioFile, JSON.stringify(scenario));
  const child = spawn(exe, ['--listen', '127.0.0.1:0', '--port-file', portFile, '--scenario',
    scenarioFile, '--log', path.join(dir, `${name}.requests.jsonl`)],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(portFile)) {
      const port = parseInt(fs.readFileSync(portFile, 'utf8'), 10);
      if (port > 0) return { child, port, exited, name, log: path.join(dir, `${name}.requests.jsonl`) };
    }
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('the emulator did not start within 10 s');
}

async function stopEmulator(emu) {
  emu.child.kill('SIGTERM');
  const timer = setTimeout(() => emu.child.kill('SIGKILL'), 20000);
  const { code, sig } = await emu.exited;
  clearTimeout(timer);
  check(code === 0, `${emu.name}: emulator exit status ${code} (signal ${sig})`);
}

function logLines(emu) {
  return fs.readFileSync(emu.log, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

function options(port, extra) {
  return {
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: AKID, secretAccessKey: SECRET },
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler(),
    ...extra,
  };
}

const cw = (port, extra) => new CloudWatchClient(options(port, extra));
const sns = (port, extra) => new SNSClient(options(port, extra));

// Records the headers of every request as sent (after compression and signing).
function recordHeaders(client, into) {
  client.middlewareStack.add((next) => async (args) => {
    into.push({ ...args.request.headers });
    return next(args);
  }, { step: 'deserialize', name: 'recordHeaders', priority: 'low' });
}

// Changes the body after signing: the payload hash no longer matches.
function tamper(client) {
  client.middlewareStack.add((next) => async (args) => {
    const b = Buffer.from(args.request.body);
    b[b.length - 3] ^= 1;
    args.request.body = b;
    return next(args);
  }, { step: 'deserialize', name: 'tamperBody', priority: 'low' });
}

async function refused(client, command, name, status, what, attempts) {
  try {
    await client.send(command);
    check(false, `${what}: accepted`);
    return null;
  } catch (e) {
    check(e.name === name, `${what}: ${e.name}, want ${name} (${e.message})`);
    check(e.$metadata && e.$metadata.httpStatusCode === status,
      `${what}: status ${e.$metadata && e.$metadata.httpStatusCode}, want ${status}`);
    if (attempts !== undefined) {
      check(e.$metadata.attempts === attempts,
        `${what}: ${e.$metadata.attempts} attempts, want ${attempts}`);
    }
    return e;
  }
}

function datums(n, metric, start, dims) {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push({ MetricName: metric, Dimensions: dims, Timestamp: new Date(start + (i % 60) * 1000),
      Value: i % 5, Unit: 'Count' });
  }
  return out;
}

async function readBack(c, metric, dims, start, end, period) {
  const stats = ['SampleCount', 'Sum', 'Minimum', 'Maximum', 'Average'];
  const r = await c.send(new GetMetricDataCommand({
    MetricDataQueries: stats.map((s, i) => ({ Id: `q${i}`, MetricStat: {
      Metric: { Namespace: NS, MetricName: metric, Dimensions: dims }, Period: period, Stat: s } })),
    StartTime: new Date(start), EndTime: new Date(end), ScanBy: 'TimestampAscending',
  }));
  const out = {};
  r.MetricDataResults.forEach((res, i) => {
    check(res.StatusCode === 'Complete', `GetMetricData ${stats[i]}: StatusCode ${res.StatusCode}`);
    check(res.Timestamps.every((t) => t instanceof Date), `GetMetricData ${stats[i]}: Date timestamps`);
    out[stats[i]] = res.Values;
    out.timestamps = res.Timestamps;
  });
  return out;
}

async function runClean(emu) {
  const port = emu.port;
  const c = cw(port);
  const minute = (Math.floor(Date.now() / 60000) - 10) * 60000;
  const dims = [{ Name: 'App', Value: 'chat' }, { Name: 'Rubric', Value: 'faithfulness' }];

  // Small PutMetricData: Value, Values/Counts and StatisticValues into one minute.
  let r = await c.send(new PutMetricDataCommand({ Namespace: NS, MetricData: [
    { MetricName: 'QualityScore', Dimensions: dims, Timestamp: new Date(minute + 1000), Value: 0.5 },
    { MetricName: 'QualityScore', Dimensions: dims, Timestamp: new Date(minute + 2000),
      Values: [0.25, 1], Counts: [2, 1] },
    { MetricName: 'QualityScore', Dimensions: [...dims].reverse(), Timestamp: new Date(minute + 3000),
      StatisticValues: { SampleCount: 4, Sum: 2, Minimum: 0.125, Maximum: 0.75 } },
  ] }));
  check(r.$metadata.httpStatusCode === 200, 'small PutMetricData: 200');
  let got = await readBack(c, 'QualityScore', dims, minute, minute + 60000, 60);
  check(got.SampleCount[0] === 8 && got.Sum[0] === 0.5 + 1.5 + 2 &&
    got.Minimum[0] === 0.125 && got.Maximum[0] === 1 && got.Average[0] === 4 / 8,
  `small PutMetricData read back: ${JSON.stringify(got)}`);
  check(got.timestamps[0].getTime() === minute, 'read back at the minute');

  // A PutMetricData of more than 10 KB goes out gzipped and reads back whole.
  const sent = [];
  const gz = cw(port);
  recordHeaders(gz, sent);
  const gzDims = [{ Name: 'App', Value: 'gzip' }];
  const big = datums(400, 'SamplesJudged', minute, gzDims);
  r = await gz.send(new PutMetricDataCommand({ Namespace: NS, MetricData: big }));
  check(r.$metadata.httpStatusCode === 200, 'gzipped PutMetricData: 200');
  check(sent.length === 1 && sent[0]['content-encoding'] === 'gzip',
    `gzipped PutMetricData: content-encoding ${sent[0] && sent[0]['content-encoding']}`);
  got = await readBack(c, 'SamplesJudged', gzDims, minute, minute + 60000, 60);
  const want = big.reduce((a, d) => a + d.Value, 0);
  check(got.SampleCount[0] === 400 && got.Sum[0] === want && got.Minimum[0] === 0 &&
    got.Maximum[0] === 4, `gzipped PutMetricData read back: ${JSON.stringify(got)}`);
  const log = logLines(emu).filter((l) => l.operation === 'PutMetricData' && l.status === 200);
  check(log.some((l) => l.gzip === true && l.datums === 400), 'request log: gzip, 400 datums');

  // Alarms: create, replace, describe (the SDK's paginator over MaxRecords 2).
  const alarm = (name, threshold) => ({
    AlarmName: name, AlarmDescription: 'Quality dropped', ActionsEnabled: true, OKActions: [],
    AlarmActions: [TOPIC], MetricName: 'QualityRegression', Namespace: NS, Statistic: 'Maximum',
    Dimensions: dims, Period: 60, EvaluationPeriods: 3, DatapointsToAlarm: 2, Threshold: threshold,
    ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching',
  });
  for (const n of ['sdk-a', 'sdk-b', 'sdk-c']) await c.send(new PutMetricAlarmCommand(alarm(n, 1)));
  await c.send(new PutMetricAlarmCommand(alarm('sdk-b', 0.5)));
  r = await c.send(new DescribeAlarmsCommand({ AlarmNames: ['sdk-b', 'absent'] }));
  const b = r.MetricAlarms[0];
  check(r.MetricAlarms.length === 1 && b.AlarmName === 'sdk-b' && b.Threshold === 0.5 &&
    b.StateValue === 'INSUFFICIENT_DATA' && b.AlarmActions[0] === TOPIC &&
    b.AlarmArn === 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:sdk-b' &&
    b.Dimensions.length === 2 && b.DatapointsToAlarm === 2 && b.EvaluationPeriods === 3 &&
    b.TreatMissingData === 'notBreaching' && b.StateUpdatedTimestamp instanceof Date,
  `DescribeAlarms: ${JSON.stringify(r.MetricAlarms)}`);
  const names = [];
  let pages = 0;
  for await (const page of paginateDescribeAlarms({ client: c, pageSize: 2 },
    { AlarmNamePrefix: 'sdk-' })) {
    pages++;
    for (const a of page.MetricAlarms) names.push(a.AlarmName);
  }
  check(pages === 2 && names.join() === 'sdk-a,sdk-b,sdk-c',
    `DescribeAlarms paging: ${pages} pages, ${names.join()}`);

  // Shape errors as the SDK's exception classes, never retried.
  const e = await refused(cw(port, { maxAttempts: 3 }), new PutMetricDataCommand({ Namespace: NS,
    MetricData: [{ MetricName: 'M', Value: 1, StorageResolution: 30 }] }),
  'InvalidParameterValueException', 400, 'StorageResolution 30', 1);
  check(e && e.Code === 'InvalidParameterValue' && e.$fault === 'client',
    `InvalidParameterValue: Code ${e && e.Code}, fault ${e && e.$fault}`);
  await refused(c, new PutMetricDataCommand({ Namespace: NS, MetricData: [{ MetricName: 'M',
    Timestamp: new Date(Date.now() - 15 * 86400000), Value: 1 }] }),
  'InvalidParameterValueException', 400, 'timestamp 15 days back');
  await refused(c, new PutMetricDataCommand({ Namespace: NS, MetricData: [{ MetricName: 'M' }] }),
    'MissingRequiredParameterException', 400, 'datum without a value');
  await refused(c, new PutMetricAlarmCommand({ ...alarm('sdk-bad', 1), Period: 45 }),
    'InvalidParameterValueException', 400, 'alarm Period 45');

  // Refusals of the signature.
  await refused(cw(port, { credentials: { accessKeyId: AKID, secretAccessKey: 'wrong' } }),
    new PutMetricDataCommand({ Namespace: NS, MetricData: [{ MetricName: 'M', Value: 1 }] }),
    'SignatureDoesNotMatch', 403, 'wrong secret');
  await refused(cw(port, { systemClockOffset: -20 * 60 * 1000 }),
    new PutMetricDataCommand({ Namespace: NS, MetricData: [{ MetricName: 'M', Value: 1 }] }),
    'InvalidSignatureException', 403, 'stale date');
  const t1 = cw(port);
  tamper(t1);
  await refused(t1, new PutMetricDataCommand({ Namespace: NS,
    MetricData: [{ MetricName: 'M', Value: 1 }] }), 'SignatureDoesNotMatch', 403, 'tampered body');
  const t2 = cw(port);
  tamper(t2);
  await refused(t2, new PutMetricDataCommand({ Namespace: NS,
    MetricData: datums(400, 'Tampered', minute, gzDims) }), 'SignatureDoesNotMatch', 403,
  'tampered gzipped body');
  // The SDK corrects its clock from the Date header and succeeds on its own.
  r = await cw(port, { systemClockOffset: -20 * 60 * 1000, maxAttempts: 3 }).send(
    new PutMetricDataCommand({ Namespace: NS, MetricData: [{ MetricName: 'Skewed', Value: 1 }] }));
  check(r.$metadata.httpStatusCode === 200 && r.$metadata.attempts === 2,
    `skew correction: ${r.$metadata.httpStatusCode} after ${r.$metadata.attempts} attempts`);
  // Nothing of the refused puts was stored.
  got = await readBack(c, 'Tampered', gzDims, minute, minute + 60000, 60);
  check(got.SampleCount.length === 0, 'tampered datums not stored');

  // SNS Publish.
  const s = sns(port);
  r = await s.send(new PublishCommand({ TopicArn: TOPIC, Subject: 'assay: QualityRegression raised',
    Message: JSON.stringify({ series: 'chat/faithfulness', state: 'ALARM' }) }));
  check(r.$metadata.httpStatusCode === 200 && /^[0-9a-f-]{36}$/.test(r.MessageId || ''),
    `Publish: MessageId ${r.MessageId}`);
  const pub = logLines(emu).filter((l) => l.service === 'sns' && l.status === 200);
  check(pub.length === 1 && pub[0].topic === TOPIC && pub[0].message_id === r.MessageId &&
    pub[0].subject === 'assay: QualityRegression raised',
  `Publish request log: ${JSON.stringify(pub)}`);
  await refused(s, new PublishCommand({ TopicArn: 'arn:aws:sns:us-east-1:1:bad', Message: 'x' }),
    'InvalidParameterException', 400, 'Publish to a malformed topic ARN');
  await refused(s, new PublishCommand({ TopicArn: TOPIC, Message: 'x', Subject: 'two\nlines' }),
    'InvalidParameterException', 400, 'Publish with a two-line subject');
  await refused(sns(port, { credentials: { accessKeyId: AKID, secretAccessKey: 'wrong' } }),
    new PublishCommand({ TopicArn: TOPIC, Message: 'x' }), 'SignatureDoesNotMatch', 403,
    'Publish with a wrong secret');
  const t3 = sns(port);
  tamper(t3);
  await refused(t3, new PublishCommand({ TopicArn: TOPIC, Message: 'hello there' }),
    'SignatureDoesNotMatch', 403, 'Publish with a tampered body');
}

async function runThrottled(emu) {
  // Throttling is retried by the SDK (2 attempts of 2) and then raised as Throttling.
  await refused(cw(emu.port, { maxAttempts: 2 }), new PutMetricDataCommand({ Namespace: NS,
    MetricData: [{ MetricName: 'M', Value: 1 }] }), 'Throttling', 400, 'throttled', 2);
}

async function runOutage(emu) {
  // Requests 0 and 1 fall in the outage (503); the SDK's third attempt passes.
  const r = await cw(emu.port, { maxAttempts: 3 }).send(new PutMetricDataCommand({ Namespace: NS,
    MetricData: [{ MetricName: 'M', Value: 1 }] }));
  check(r.$metadata.httpStatusCode === 200 && r.$metadata.attempts === 3,
    `outage: ${r.$metadata.httpStatusCode} after ${r.$metadata.attempts} attempts`);
  await refused(sns(emu.port, { maxAttempts: 2 }), new PublishCommand({ TopicArn: TOPIC,
    Message: 'x' }), 'ThrottledException', 429, 'SNS throttled', 2);
}

(async () => {
  const exe = process.argv[2];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'assay-sdk-cloudwatch-'));
  const runs = [
    ['clean', { seed: 5 }, runClean],
    ['throttled', { cloudwatch: { throttle_rate: 1 } }, runThrottled],
    ['outage', { cloudwatch: { outage: [{ from_request: 0, to_request: 2 }] },
      sns: { throttle_rate: 1 } }, runOutage],
  ];
  for (const [name, scenario, fn] of runs) {
    const emu = await startEmulator(exe, dir, name, scenario);
    try {
      await fn(emu);
    } catch (e) {
      console.error(`FAIL: ${name}: ` + (e.stack || e));
      failures++;
    }
    await stopEmulator(emu);
  }
  if (failures === 0) fs.rmSync(dir, { recursive: true, force: true });
  console.log(`cloudwatch_emulator_check: ${checks - failures}/${checks} checks passed` +
    (failures ? ` (request logs kept in ${dir})` : ''));
  process.exit(failures ? 1 : 0);
})();
