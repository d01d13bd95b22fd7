// tests/sdk-check/converse_check.js EMULATOR: starts build/assay-emulator and
// drives it with the official @aws-sdk/client-bedrock-runtime ConverseCommand
// (endpoint set to the emulator, static credentials), with and without tools.
// Correct calls must succeed and parse; a wrong secret, an unknown key, a
// stale date and a tampered body must be refused with AWS's error codes; the
// SDK must correct its clock from the emulator's Date header on its own.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { BedrockRuntimeClient, ConverseCommand } = require('@aws-sdk/client-bedrock-runtime');
const { NodeHttpHandler } = require('@smithy/node-http-handler');

const AKID = 'AKIDEXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const MODEL = 'anthropic.claude-3-haiku-20240307-v1:0';

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

async function startEmulator(exe, dir) {
  const portFile = path.join(dir, 'port');
  const scenario = path.join(dir, 'scenario.json');
  fs.writeFileSync(scenario, JSON.stringify({
    seed: 7,
    models: {
      'throttled-model': { throttle_rate: 1 },
      'broken-model': { error_rate: 1 },
      'missing-model': { not_found: true },
      'no-forced-tools': { refuse_forced_tools: true },
    },
  }));
  const child = spawn(exe, ['--listen', '127.0.0.1:0', '--port-file', portFile, '--scenario',
    scenario, '--log', path.join(dir, 'requests.jsonl')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(portFile)) {
      const port = parseInt(fs.readFileSync(portFile, 'utf8'), 10);
      if (port > 0) return { child, port, exited };
    }
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('the emulator did not start within 10 s');
}

function client(port, extra) {
  return new BedrockRuntimeClient({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: AKID, secretAccessKey: SECRET },
    maxAttempts: 1,
    // The client defaults to HTTP/2 (for its streaming operations); the
    // emulator speaks HTTP/1.1, as assay's transport does on plain http.
    requestHandler: new NodeHttpHandler(),
    ...extra,
  });
}

function judgeInput(answer, reference) {
  const token = 'f00dfeedf00dfeedf00dfeedf00dfeed';
  const fence = (label, text) => `\n<<<BEGIN ${label} ${token}>>>\n${text}\n<<<END ${label} ${token}>>>\n`;
  return {
    modelId: MODEL,
    system: [{ text: 'You grade answers for correctness.' }, { cachePoint: { type: 'default' } }],
    messages: [{
      role: 'user',
      content: [{
        text: `Grade the sample below. The boundary token of this request is ${token}.\n` +
          fence('USER_REQUEST', 'What is the capital of France?') +
          fence('REFERENCE_ANSWER', reference) + fence('ANSWER', answer) +
          '\nNow call submit_verdict with your reasoning, then the score (an integer from 1 to 5).',
      }],
    }],
    inferenceConfig: { temperature: 0, maxTokens: 512 },
    toolConfig: {
      tools: [{
        toolSpec: {
          name: 'submit_verdict',
          description: 'Record the verdict.',
          inputSchema: {
            json: {
              type: 'object',
              properties: {
                reasoning: { type: 'string' },
                score: { type: 'integer', minimum: 1, maximum: 5 },
              },
              required: ['reasoning', 'score'],
            },
          },
        },
      }],
      toolChoice: { tool: { name: 'submit_verdict' } },
    },
  };
}

async function refused(c, input, name, status, what) {
  try {
    await c.send(new ConverseCommand(input));
    check(false, `${what}: accepted, want ${name}`);
  } catch (e) {
    check(e.name === name, `${what}: error ${e.name}, want ${name} (${e.message})`);
    check(e.$metadata && e.$metadata.httpStatusCode === status,
      `${what}: status ${e.$metadata && e.$metadata.httpStatusCode}, want ${status}`);
  }
}

const plain = { modelId: MODEL, messages: [{ role: 'user', content: [{ text: 'Say hello.' }] }] };

async function run(port) {
  const c = client(port);

  // Without tools: a text answer, parsed.
  let r = await c.send(new ConverseCommand(plain));
  check(r.$metadata.httpStatusCode === 200, 'plain: status 200');
  check(typeof r.output.message.content[0].text === 'string' &&
    r.output.message.content[0].text.length > 0, 'plain: text answer');
  check(r.output.message.role === 'assistant', 'plain: assistant role');
  check(r.stopReason === 'end_turn', `plain: stopReason ${r.stopReason}`);
  check(r.usage.inputTokens > 0 && r.usage.outputTokens > 0 &&
    r.usage.totalTokens >= r.usage.inputTokens + r.usage.outputTokens, 'plain: usage');
  check(typeof r.metrics.latencyMs === 'number', 'plain: metrics.latencyMs');

  // A model ARN travels as one path segment ('/' as %2F).
  r = await c.send(new ConverseCommand({ ...plain, modelId:
    'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0' }));
  check(r.$metadata.httpStatusCode === 200, 'arn model id: status 200');

  // With the forced tool: a verdict in range, better answers scoring higher.
  const good = await c.send(new ConverseCommand(judgeInput('Paris is the capital of France.',
    'The capital of France is Paris.')));
  const tu = good.output.message.content.find((b) => b.toolUse);
  check(good.stopReason === 'tool_use', `tool: stopReason ${good.stopReason}`);
  check(tu && tu.toolUse.name === 'submit_verdict', 'tool: submit_verdict called');
  check(tu && /^tooluse_/.test(tu.toolUse.toolUseId), 'tool: toolUseId');
  const gs = tu && tu.toolUse.input.score;
  check(Number.isInteger(gs) && gs >= 1 && gs <= 5, `tool: score ${gs} in 1..5`);
  check(tu && typeof tu.toolUse.input.reasoning === 'string', 'tool: reasoning');
  check(good.usage.cacheWriteInputTokens > 0, 'tool: cache write on first sight');
  const bad = await c.send(new ConverseCommand(judgeInput('I am sorry, but I cannot help with that.',
    'The capital of France is Paris.')));
  const bs = bad.output.message.content.find((b) => b.toolUse).toolUse.input.score;
  check(bs < gs, `tool: a refusal (${bs}) scores below a correct answer (${gs})`);
  check(bad.usage.cacheReadInputTokens > 0, 'tool: cache read after the first call');

  // Refusals.
  await refused(client(port, { credentials: { accessKeyId: AKID, secretAccessKey: 'wrong' } }),
    plain, 'SignatureDoesNotMatch', 403, 'wrong secret');
  await refused(client(port, { credentials: { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: SECRET } }),
    plain, 'UnrecognizedClientException', 403, 'unknown key');
  await refused(client(port, { systemClockOffset: -10 * 60 * 1000 }), plain,
    'InvalidSignatureException', 403, 'stale date');
  const tampered = client(port);
  tampered.middlewareStack.add((next) => async (args) => {
    args.request.body = Buffer.from(args.request.body).toString('utf8')
      .replace('Say hello.', 'Say goodbye.');
    return next(args);
  }, { step: 'deserialize', name: 'tamperBody', priority: 'low' });
  await refused(tampered, plain, 'SignatureDoesNotMatch', 403, 'tampered body');

  // The SDK corrects a skewed clock from the Date header and retries by itself.
  const skewed = client(port, { systemClockOffset: -10 * 60 * 1000, maxAttempts: 3 });
  r = await skewed.send(new ConverseCommand(plain));
  check(r.$metadata.httpStatusCode === 200 && r.$metadata.attempts === 2,
    `skew correction: status ${r.$metadata.httpStatusCode} after ${r.$metadata.attempts} attempts`);

  // Shapes and modelled errors parse as the SDK's own exception classes.
  const noTool = judgeInput('x', 'y');
  noTool.toolConfig.toolChoice = { tool: { name: 'missing_tool' } };
  await refused(c, noTool, 'ValidationException', 400, 'toolChoice names a missing tool');
  await refused(c, { modelId: MODEL, messages: [{ role: 'assistant', content: [{ text: 'hi' }] }] },
    'ValidationException', 400, 'conversation starting with assistant');
  await refused(c, { ...plain, inferenceConfig: { temperature: 1.5 } }, 'ValidationException', 400,
    'temperature out of range');
  await refused(c, { ...plain, modelId: 'throttled-model' }, 'ThrottlingException', 429, 'throttling');
  await refused(c, { ...plain, modelId: 'missing-model' }, 'ResourceNotFoundException', 404,
    'missing model');
  await refused(c, { ...judgeInput('a', 'b'), modelId: 'no-forced-tools' }, 'ValidationException',
    400, 'forced tool refused');
  try {
    await c.send(new ConverseCommand({ ...plain, modelId: 'broken-model' }));
    check(false, '5xx: accepted');
  } catch (e) {
    check(['InternalServerException', 'ServiceUnavailableException'].includes(e.name) &&
      e.$fault === 'server', `5xx: ${e.name} (${e.$fault})`);
  }
}

(async () => {
  const exe = process.argv[2];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'assay-sdk-converse-'));
  const emu = await startEmulator(exe, dir);
  let err = null;
  try {
    await run(emu.port);
  } catch (e) {
    err = e;
  }
  emu.child.kill('SIGTERM');
  const timer = setTimeout(() => emu.child.kill('SIGKILL'), 20000);
  const { code, sig } = await emu.exited;
  clearTimeout(timer);
  check(code === 0, `emulator exit status ${code} (signal ${sig})`);
  if (err) {
    console.error('FAIL: ' + (err.stack || err));
    failures++;
  }
  if (failures === 0) fs.rmSync(dir, { recursive: true, force: true });
  console.log(`converse_check: ${checks - failures}/${checks} checks passed` +
    (failures ? ` (request log kept in ${dir})` : ''));
  process.exit(failures ? 1 : 0);
})();
