// Opens `count` authenticated agent sockets (official socket.io-client@4, websocket transport) to
// the hub's /agent namespace, `parallel` handshakes at a time, prints progress, then "held <n>"
// and keeps them open until stdin closes. Used by bench/realtime/idle.py.
import { io } from "socket.io-client";

const [url, token, countArg, parallelArg] = process.argv.slice(2);
const count = Number(countArg);
const parallel = Number(parallelArg ?? 200);
const sockets = [];
let connected = 0;
let failed = 0;

function open() {
  return new Promise((resolve) => {
    const socket = io(`${url}agent`, {
      transports: ["websocket"], auth: { token }, reconnection: false, forceNew: true,
    });
    socket.on("connect", () => { connected += 1; resolve(); });
    socket.on("connect_error", () => { failed += 1; resolve(); });
    sockets.push(socket);
  });
}

let next = 0;
async function worker() {
  while (next < count) {
    next += 1;
    await open();
    if ((connected + failed) % 1000 === 0) console.error(`  ${connected} connected, ${failed} failed`);
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
console.log(`held ${connected} ${failed}`);
process.stdin.resume();
process.stdin.on("end", () => { for (const s of sockets) s.close(); process.exit(0); });
