// The long-lived Deno process of the "Deno Worker" peer (bench/peers/bench.mjs). Run with `deno run` and
// no permission at all: it reads one JSON request per line on stdin and answers on stdout.
//   {"id": N, "source": "..."}            run `source` as a module in a new Worker, then terminate it
//   {"id": N, "reply": {"cid", "value"}}  the answer to a tool call the Worker made
// It writes {"id", "call": {"cid", "tool", "args"}} when the Worker calls a tool (the driver performs the
// call, as the host) and {"id", "done": "<result JSON>"} or {"id", "error": "..."} when the Worker ends.
// A Worker inherits the permissions of this process: none. Its module comes from a blob: URL, which
// needs no read permission.
const encoder = new TextEncoder();
const write = (message) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(message) + "\n"));
const workers = new Map();

function start(id, source) {
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  workers.set(id, worker);
  const finish = (message) => {
    worker.terminate();
    workers.delete(id);
    URL.revokeObjectURL(url);
    write({ id, ...message });
  };
  worker.onmessage = (event) => {
    const m = event.data;
    if (m.call) write({ id, call: m.call });
    else if ("done" in m) finish({ done: m.done });
    else finish({ error: m.error });
  };
  worker.onerror = (event) => {
    event.preventDefault();
    finish({ error: String(event.message) });
  };
}

let buffer = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let newline;
  while ((newline = buffer.indexOf("\n")) >= 0) {
    const request = JSON.parse(buffer.slice(0, newline));
    buffer = buffer.slice(newline + 1);
    if (request.source !== undefined) start(request.id, request.source);
    else workers.get(request.id)?.postMessage(request.reply);
  }
}
