// The reference side of the fan-out benchmark: the official socket.io@4 server with the same
// contract as ../hub_server.py.
//
//   node bench/fanout/node/server.mjs --port P [--backlog-kib 64] [--check-every 16]
//        [--cpu-profile FILE]   (V8 CPU profile of each /run, the last one kept)
//
// Every connection to namespace /bench is accepted. POST /run?count=K&size=1024 emits K events
// "bench" with {seq: i, pad: "x..."} to the namespace (socket.io's own broadcast: encoded once, the
// WebSocket frame pre-computed once for all websocket clients) and answers when the last one is
// handed to the sockets. Pacing is the same as ours: yield to the loop after each event; every
// check-every events, while the bytes waiting in user space for the sockets exceed backlog-kib per
// socket on average, wait 1 ms.
import { writeFile } from "node:fs/promises";
import http from "node:http";
import { Session } from "node:inspector/promises";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { Server } from "socket.io";

const { values: args } = parseArgs({
  options: {
    port: { type: "string" },
    "backlog-kib": { type: "string", default: "64" },
    "check-every": { type: "string", default: "16" },
    "cpu-profile": { type: "string" },
  },
});
const port = Number(args.port);
const backlogKib = Number(args["backlog-kib"]);
const checkEvery = Number(args["check-every"]);
const EVENT = "bench";

const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));

function payload(seq, size) {
  // the same JSON as hub_server.payload(): {"seq":N,"pad":"xxx..."}
  return { seq, pad: "x".repeat(Math.max(size - 20, 0)) };
}

let running = Promise.resolve();

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (req.method === "GET" && url.pathname === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ server: "node", sockets: nsp.sockets.size }));
    return;
  }
  if (req.method === "POST" && url.pathname === "/run") {
    const count = Number(url.searchParams.get("count") ?? "1000");
    const size = Number(url.searchParams.get("size") ?? "1024");
    req.resume();
    running = running.then(async () => {
      const result = await profiled(() => runEvents(count, size));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(result));
    });
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(server, {
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  cors: undefined,
});
const nsp = io.of("/bench");
nsp.on("connection", () => {});

// Bytes written by the server but not yet taken by the kernel, all sockets: packets that engine.io
// holds until the transport drains, plus what ws / net.Socket buffer.
function backlog(frameBytes) {
  let total = 0;
  for (const socket of nsp.sockets.values()) {
    const conn = socket.conn;
    total += conn.writeBuffer.length * frameBytes;
    const ws = conn.transport && conn.transport.socket;
    if (ws && typeof ws.bufferedAmount === "number") total += ws.bufferedAmount;
  }
  return total;
}

// The V8 profiler around one run, when --cpu-profile is given (for the benchmark's --profile).
async function profiled(run) {
  if (!args["cpu-profile"]) return run();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  const result = await run();
  const { profile } = await session.post("Profiler.stop");
  session.disconnect();
  await writeFile(args["cpu-profile"], JSON.stringify(profile));
  return result;
}

async function runEvents(count, size) {
  const sockets = nsp.sockets.size;
  const budget = backlogKib * 1024 * sockets;
  const frameBytes = size + 32;
  let waits = 0;
  let waited = 0;
  let peak = 0;
  const started = performance.now();
  for (let seq = 0; seq < count; seq++) {
    nsp.emit(EVENT, payload(seq, size));
    await yieldToLoop();
    if ((seq + 1) % checkEvery === 0) {
      let pending = backlog(frameBytes);
      peak = Math.max(peak, pending);
      if (pending > budget) {
        const pause = performance.now();
        while (pending > budget) {
          waits++;
          await sleep(1);
          pending = backlog(frameBytes);
        }
        waited += performance.now() - pause;
      }
    }
  }
  return {
    server: "node",
    sockets,
    events: count,
    seconds: (performance.now() - started) / 1000,
    pace_waits: waits,
    pace_wait_seconds: Math.round(waited) / 1000,
    peak_backlog_bytes: peak,
  };
}

server.listen(port, "127.0.0.1", 4096);
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
