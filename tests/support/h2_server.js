// tests/support/h2_server.js: an HTTP/2-only TLS peer on 127.0.0.1 for
// tests/unit/aws/test_http.c (HTTP/2 multiplexing, TLS verification).
// Usage: node h2_server.js KEY.pem CERT.pem. Prints the port on stdout, then
// answers every request with "<httpVersion> <sessions so far>" after 100 ms;
// GET /quit (or 30 s) ends it.
'use strict';
const fs = require('fs');
const http2 = require('http2');

let sessions = 0;
const server = http2.createSecureServer({
  key: fs.readFileSync(process.argv[2]),
  cert: fs.readFileSync(process.argv[3]),
  allowHTTP1: false,
});
server.on('session', () => { sessions++; });
server.on('request', (req, res) => {
  if (req.url === '/quit') {
    res.end('bye');
    setTimeout(() => process.exit(0), 50);
    return;
  }
  setTimeout(() => {
    res.setHeader('content-type', 'text/plain');
    res.end(`${req.httpVersion} ${sessions}`);
  }, 100);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
setTimeout(() => process.exit(0), 30000).unref();
