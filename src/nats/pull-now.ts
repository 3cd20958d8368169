/**
 * One pull from a JetStream pull consumer that never waits: `no_wait` answers at once with the
 * next message or "no messages" (about 0.5 ms on loopback). nats.js's `next()` only long-polls
 * (at least 1 s), during which the slot it holds can't serve another shard; a worker that pulls
 * only when it knows a job is there needs the no-wait form, so it is asked for here over core NATS.
 *
 * The reply is wrapped as a JsMsg (acks are plain replies to its `$JS.ACK…` subject), so the
 * rest of the worker sees the same message type as from nats.js.
 */
import type { DeliveryInfo, JsMsg, PullOptions } from "@nats-io/jetstream";
import type { Msg, MsgHdrs, NatsConnection } from "@nats-io/nats-core";

const enc = new TextEncoder();
const ACK = enc.encode("+ACK");
const WPI = enc.encode("+WPI");

export class PullError extends Error {
  override name = "PullError";
  constructor(
    readonly code: number,
    description: string,
  ) {
    super(`pull failed: ${code} ${description}`);
  }
}

/**
 * The next message for `consumer` on `stream`, or null when it has none to deliver right now.
 * With `waitMs`, the server holds the request that long for a message to arrive (a publish
 * seen on the subject may reach the stream a moment after it reaches us).
 */
export async function pullNow(nc: NatsConnection, stream: string, consumer: string, timeoutMs = 5_000, waitMs = 0): Promise<JsMsg | null> {
  const body: Partial<PullOptions> = waitMs > 0 ? { batch: 1, expires: waitMs * 1_000_000 } : { batch: 1, no_wait: true };
  // noMux: the message comes back on our inbox under its own subject, which the muxed inbox would not match.
  const m = await nc.request(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`, JSON.stringify(body), { timeout: timeoutMs + waitMs, noMux: true });
  const code = m.headers?.code ?? 0;
  if (code === 404 || code === 408) return null; // no messages; the request expired
  if (code !== 0 && !m.reply) throw new PullError(code, m.headers?.description ?? "");
  return new PulledMsg(m, nc, timeoutMs);
}

export function parseDeliveryInfo(reply: string): DeliveryInfo {
  const t = reply.split(".");
  if (t.length === 9) t.splice(2, 0, "_", ""); // the older form carries no domain and account hash
  if (t.length < 11 || t[0] !== "$JS" || t[1] !== "ACK") throw new Error(`not a JetStream message reply: ${reply}`);
  const deliveryCount = Number(t[6]);
  return {
    domain: t[2] === "_" ? "" : t[2]!,
    account_hash: t[3],
    stream: t[4]!,
    consumer: t[5]!,
    deliveryCount,
    redelivered: deliveryCount > 1,
    streamSequence: Number(t[7]),
    deliverySequence: Number(t[8]),
    timestampNanos: Number(t[9]),
    pending: Number(t[10]),
  };
}

class PulledMsg implements JsMsg {
  readonly info: DeliveryInfo;
  private acked = false;

  constructor(
    private readonly msg: Msg,
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    this.info = parseDeliveryInfo(msg.reply ?? "");
  }

  get redelivered(): boolean {
    return this.info.deliveryCount > 1;
  }
  get seq(): number {
    return this.info.streamSequence;
  }
  get headers(): MsgHdrs | undefined {
    return this.msg.headers;
  }
  get data(): Uint8Array {
    return this.msg.data;
  }
  get subject(): string {
    return this.msg.subject;
  }
  get sid(): number {
    return this.msg.sid;
  }
  get timestampNanos(): bigint {
    return BigInt((this.msg.reply ?? "").split(".").at(-3) ?? 0);
  }
  get time(): Date {
    return new Date(Math.floor(this.info.timestampNanos / 1_000_000));
  }
  get timestamp(): string {
    return this.time.toISOString();
  }

  /** Every answer but +WPI (in progress) is final; later ones are dropped, as nats.js does. */
  private reply(payload: Uint8Array): void {
    if (this.acked) return;
    if (payload !== WPI) this.acked = true;
    this.msg.respond(payload);
  }
  ack(): void {
    this.reply(ACK);
  }
  nak(millis?: number): void {
    this.reply(enc.encode(millis ? `-NAK ${JSON.stringify({ delay: millis * 1_000_000 })}` : "-NAK"));
  }
  working(): void {
    this.reply(WPI);
  }
  term(reason = ""): void {
    this.reply(enc.encode(reason ? `+TERM ${reason}` : "+TERM"));
  }
  next(subj: string, ro: Partial<PullOptions> = { batch: 1 }): void {
    const args = { batch: ro.batch ?? 1, no_wait: ro.no_wait ?? false, ...(ro.expires ? { expires: ro.expires * 1_000_000 } : {}) };
    this.msg.respond(enc.encode(`+NXT ${JSON.stringify(args)}`), subj ? { reply: subj } : undefined);
  }
  async ackAck(opts?: Partial<{ timeout: number }>): Promise<boolean> {
    if (this.acked || !this.msg.reply) return false;
    this.acked = true;
    await this.nc.request(this.msg.reply, ACK, { timeout: opts?.timeout ?? this.timeoutMs });
    return true;
  }
  json<T>(): T {
    return this.msg.json<T>();
  }
  string(): string {
    return this.msg.string();
  }
}
