import { describe, expect, it } from "vitest";
import { KeyedPipeline } from "../../actors/intake/pipeline.js";

/** A task whose end the test decides. */
function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

/** Lets every settled promise run its reactions (no timers involved). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

describe("KeyedPipeline", () => {
  it("runs tasks of different keys at once, up to the limit, and holds the next push until there is room", async () => {
    const p = new KeyedPipeline(2);
    const started: string[] = [];
    const gates = { a: gate(), b: gate(), c: gate() };
    const task = (k: keyof typeof gates) => () => (started.push(k), gates[k].promise);
    await p.push("a", task("a"));
    await p.push("b", task("b"));
    let cAdmitted = false;
    const c = p.push("c", task("c")).then(() => (cAdmitted = true));
    await settle();
    expect(started).toEqual(["a", "b"]);
    expect(p.inFlight).toBe(2);
    expect(p.waiting).toBe(1);
    expect(cAdmitted).toBe(false);

    gates.b.open();
    await c;
    await settle();
    expect(started).toEqual(["a", "b", "c"]);
    expect(p.inFlight).toBe(2);
  });

  it("runs tasks of one key one after another, in push order, while other keys overtake them", async () => {
    const p = new KeyedPipeline(8);
    const log: string[] = [];
    const first = gate();
    const second = gate();
    await p.push("job-1", async () => {
      log.push("1a start");
      await first.promise;
      log.push("1a end");
    });
    await p.push("job-1", async () => {
      log.push("1b start");
      await second.promise;
      log.push("1b end");
    });
    await p.push("job-2", async () => void log.push("2 ran"));
    await settle();
    expect(log).toEqual(["1a start", "2 ran"]);

    first.open();
    await settle();
    expect(log).toEqual(["1a start", "2 ran", "1a end", "1b start"]);
    second.open();
    await p.idle();
    expect(log).toEqual(["1a start", "2 ran", "1a end", "1b start", "1b end"]);
  });

  it("counts a task waiting behind its key against the limit", async () => {
    const p = new KeyedPipeline(2);
    const g = gate();
    await p.push("k", () => g.promise);
    await p.push("k", async () => undefined);
    let admitted = false;
    const other = p.push("other", async () => undefined).then(() => (admitted = true));
    await settle();
    expect(admitted).toBe(false);
    g.open();
    await other;
    await p.idle();
    expect(p.inFlight).toBe(0);
  });

  it("reports a failing task and goes on with the next of its key", async () => {
    const errors: Array<[string, string]> = [];
    const p = new KeyedPipeline(1, (err, key) => errors.push([key, (err as Error).message]));
    const g = gate();
    let ranAfter = false;
    await p.push("k", () => g.promise);
    const next = p.push("k", async () => void (ranAfter = true));
    g.fail(new Error("boom"));
    await next;
    await p.idle();
    expect(errors).toEqual([["k", "boom"]]);
    expect(ranAfter).toBe(true);
  });

  it("is idle at once when empty, and once every admitted and waiting task is done", async () => {
    const p = new KeyedPipeline(1);
    await p.idle();
    const g = gate();
    await p.push("a", () => g.promise);
    void p.push("b", async () => undefined);
    let idle = false;
    const whenIdle = p.idle().then(() => (idle = true));
    await settle();
    expect(idle).toBe(false);
    g.open();
    await whenIdle;
    expect(p.inFlight).toBe(0);
    expect(p.waiting).toBe(0);
  });

  it("keeps push order per key when many pushes wait for room at once", async () => {
    const p = new KeyedPipeline(1);
    const order: number[] = [];
    const g = gate();
    await p.push("x", () => g.promise);
    const pushes = [1, 2, 3, 4].map((n) => p.push(n % 2 === 0 ? "x" : "y", async () => void order.push(n)));
    g.open();
    await Promise.all(pushes);
    await p.idle();
    expect(order).toEqual([1, 2, 3, 4]);
  });

  it("refuses a limit below one", () => {
    expect(() => new KeyedPipeline(0)).toThrow(RangeError);
    expect(() => new KeyedPipeline(1.5)).toThrow(RangeError);
  });
});
