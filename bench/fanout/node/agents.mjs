// The reference for the product-path fan-out benchmark (bench/realtime/fanout_path.py): the
// official socket.io@4 server doing the deliveries the hub does, and nothing else (it persists
// nothing).
//
//   node bench/fanout/node/agents.mjs --port P --secret S --token T
//
// POST /webhooks/api/<inbox> takes an API-channel webhook signed like the hub's
// (X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body); 401 otherwise), gives it the next
// sequence number and answers 200. What arrived in one turn of the event loop goes out as one
// "events" batch of {seq, type, event, context} items to every socket of namespace /agent
// (socket.io's broadcast: encoded once for all sockets), as the hub batches a stream's events.
// A socket joins /agent with auth {token}; any other token is refused.
import { createHmac, timingSafeEqual, randomUUID } from "node:crypto";
import http from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values: args } = parseArgs({
  options: {
    port: { type: "string" },
    secret: { type: "string" },
    token: { type: "string" },
  },
});
const secret = args.secret;
const token = args.token;

let seq = 0;
let pending = [];
let scheduled = false;

function item(body) {
  const now = new Date().toISOString();
  const id = randomUUID();
  const contact = `c-${body.contact?.identifier ?? ""}`;
  const conversation = `v-${contact}`;
  seq += 1;
  return {
    seq,
    type: "message.received",
    event: {
      id,
      type: "message.received",
      v: 1,
      occurred_at: now,
      account_id: "account",
      conversation_id: conversation,
      actor: { kind: "contact", id: contact },
      correlation_id: id,
      causation_id: null,
      payload: {
        message_id: `m-${id}`,
        inbox_id: "inbox",
        contact_id: contact,
        channel: "api",
        provider_message_id: body.message_id ?? null,
        content: body.text ?? null,
        attachments: [],
        sent_at: now,
      },
    },
    context: {
      conversation: {
        id: conversation,
        inbox_id: "inbox",
        status: "open",
        priority: null,
        assignee_id: null,
        team_id: null,
        last_activity_at: now,
        contact: { id: contact, name: body.contact?.name ?? null },
      },
    },
  };
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
    return;
  }
  if (req.method !== "POST" || !req.url.startsWith("/webhooks/api/")) {
    res.writeHead(404);
    res.end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const given = Buffer.from(String(req.headers["x-hub-signature-256"] ?? ""));
    const wanted = Buffer.from("sha256=" + createHmac("sha256", secret).update(body).digest("hex"));
    if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end('{"error":{"code":"bad_signature"}}');
      return;
    }
    let parsed;
    try {
      parsed = JSON.parse(body);
    } catch {
      res.writeHead(400, { "content-type": "application/json" });
      res.end('{"error":{"code":"bad_json"}}');
      return;
    }
    const it = item(parsed);
    pending.push(it);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ messages: [{ id: it.event.payload.message_id }] }));
  });
});

const io = new Server(server, { serveClient: false, transports: ["websocket"] });
const agents = io.of("/agent");
agents.use((socket, next) => {
  if (socket.handshake.auth?.token === token) next();
  else next(new Error("unauthenticated"));
});

function flush() {
  scheduled = false;
  const batch = pending;
  pending = [];
  if (batch.length) agents.emit("events", batch);
}

server.listen(Number(args.port), "127.0.0.1", () => {
  console.log(JSON.stringify({ event: "listening", port: Number(args.port) }));
});
