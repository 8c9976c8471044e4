// An agent client built on the official socket.io-client@4: connects to the hub's /agent namespace
// with a token (and a last_seq when resuming), prints "ready" once connected, collects `count`
// events, then prints them as one JSON line and exits. Used by tests/realtime/test_js_client.py.
import { io } from "socket.io-client";

const [url, token, count, lastSeq] = process.argv.slice(2);
const auth = { token };
if (lastSeq !== undefined && lastSeq !== "") auth.last_seq = Number(lastSeq);

const socket = io(`${url}agent`, { transports: ["websocket"], auth, reconnection: false });
const events = [];
const timer = setTimeout(() => {
  console.error(`timed out with ${events.length} of ${count} events`);
  process.exit(2);
}, 15000);

socket.on("connect", () => console.log("ready"));
socket.on("connect_error", (err) => {
  console.log(JSON.stringify({ connect_error: err.message, data: err.data ?? null }));
  process.exit(0);
});
socket.on("events", (batch) => {
  for (const message of batch) {
    if (events.length && message.seq <= events[events.length - 1].seq) continue; // dedupe by seq
    events.push({ seq: message.seq, type: message.type, content: message.event.payload.content ?? null });
  }
  if (events.length >= Number(count)) {
    clearTimeout(timer);
    console.log(JSON.stringify({ events: events.slice(0, Number(count)) }));
    socket.disconnect();
    process.exit(0);
  }
});
