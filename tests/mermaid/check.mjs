// Parses a Mermaid gantt chart (stdin) with Mermaid's own parser and prints what it read as
// JSON: the chart's settings and each task's section, name, times and tags. Exit 1 with the
// parser's message when it does not parse. Used by tests/test_github.py.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!DOCTYPE html><body></body>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString("utf8");
try {
  await mermaid.parse(text);
  const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
  const db = diagram.db;
  const tasks = db.getTasks().map((t) => ({
    section: t.section,
    name: t.task,
    start: +t.startTime,
    end: +t.endTime,
    tags: ["crit", "done", "active", "milestone"].filter((tag) => t[tag]),
  }));
  const out = {
    type: diagram.type,
    title: db.getDiagramTitle(),
    dateFormat: db.getDateFormat(),
    axisFormat: db.getAxisFormat(),
    todayMarker: db.getTodayMarker(),
    tasks,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (e) {
  process.stdout.write(String(e.message || e) + "\n");
  process.exit(1);
}
