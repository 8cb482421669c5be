/**
 * Statuses on the engine, fenced: each status of a resource is published
 * on condition that the last one on its subject is the one this node
 * published before (`Nats-Expected-Last-Subject-Sequence`). A node that
 * lost an upload to another (or whose upload was failed by another) gets
 * {@linkcode FencedError} instead of overwriting the newer truth.
 *
 * @module
 */

import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";
import type { ResourceStatus } from "../../protocol/status.ts";
import { FencedError, publishReliably } from "./_publish.ts";
import { statusSubject, STREAM } from "./subjects.ts";

/** Refused publishes whose way was blocked by a status of our own, retried after it. */
const OWN_STATUS_RETRIES = 5;
/** Message ids remembered per resource: what blocks a publish is a recent one. */
const REMEMBERED_IDS = 16;

/** The header JetStream deduplicates on; stored with the message. */
const MSG_ID_HEADER = "Nats-Msg-Id";

/** The last status stored for a resource, and its sequence. */
export interface StoredStatus {
  /** The status, or `undefined` for a deletion marker. */
  status: ResourceStatus | undefined;
  /** Its stream sequence. */
  seq: number;
}

/** What {@linkcode StatusPublisher.publish} takes besides the status. */
export interface PublishStatusOptions {
  /** Publish after this sequence instead of this node's last status. */
  after?: number;
  /** Headers of the message. */
  headers?: MsgHdrs;
  /** The payload instead of the status's JSON (a deletion marker's is empty). */
  payload?: string;
  /** Sets the message id apart from this node's other kinds of status (a takeover's fence, a sweeper's `FAILED`). */
  tag?: string;
}

/**
 * Publishes statuses with fencing; remembers the last sequence per resource.
 *
 * @example
 * ```ts ignore
 * const statuses = new StatusPublisher(engine.js, engine.jsm, engine.node);
 * await statuses.publish(status);
 * ```
 */
export class StatusPublisher {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  /** The sequence of the last status this node stored, per resource. */
  readonly #last = new Map<string, number>();
  /** The message ids this node published last, per resource. */
  readonly #mine = new Map<string, string[]>();
  readonly #node: string;
  /** Per resource, settles once its publish under way (and every earlier one) has. */
  readonly #turns = new Map<string, Promise<void>>();

  /** Publishes through `js` as node `node`, reads back through `jsm`. */
  constructor(js: JetStreamClient, jsm: JetStreamManager, node: string) {
    this.#js = js;
    this.#jsm = jsm;
    this.#node = node;
  }

  /**
   * The last status message of `id`, if any (a deletion marker has none).
   * A direct get, which a replica may answer from a moment ago; with
   * `fromLeader`, asked of the stream's leader, as a decision about who
   * holds the upload must be.
   */
  async last(
    id: string,
    options: { fromLeader?: boolean } = {},
  ): Promise<StoredStatus | undefined> {
    const query = { last_by_subj: statusSubject(id) };
    const message = options.fromLeader
      ? await this.#jsm.streams.getMessage(STREAM, query)
      : await this.#jsm.direct.getMessage(STREAM, query);
    if (message === null) return undefined;
    if (message.data.byteLength === 0) {
      return { status: undefined, seq: message.seq };
    }
    return { status: message.json<ResourceStatus>(), seq: message.seq };
  }

  /**
   * Publishes `status` after the last one this node stored for it (or,
   * with `after`, after that sequence; with neither, after the one in the
   * stream now). Resolves with its sequence. Message ids name this node
   * (and `tag`, e.g. a takeover), so that another node's status after the
   * same one is never taken for a duplicate of ours.
   */
  publish(
    status: ResourceStatus,
    options: PublishStatusOptions = {},
  ): Promise<number> {
    // One at a time per resource: two publishes after the same status
    // would share a message id, and the stream would acknowledge the second
    // as a duplicate without storing it; a retry of an older one refused
    // after a newer one landed would look like another node's fence.
    const id = status.id;
    const turn = (this.#turns.get(id) ?? Promise.resolve()).then(() =>
      this.#publishNow(status, options)
    );
    const settled = turn.then(() => {}, () => {});
    this.#turns.set(id, settled);
    settled.then(() => {
      if (this.#turns.get(id) === settled) this.#turns.delete(id);
    });
    return turn;
  }

  async #publishNow(
    status: ResourceStatus,
    options: PublishStatusOptions,
  ): Promise<number> {
    const id = status.id;
    let after = options.after ?? this.#last.get(id) ??
      (await this.last(id, { fromLeader: true }))?.seq ?? 0;
    for (let attempt = 1;; attempt++) {
      const msgID = `${id}:s:${after}:${this.#node}${
        options.tag === undefined ? "" : `:${options.tag}`
      }`;
      this.#remember(id, msgID);
      try {
        const seq = (await publishReliably(
          this.#js,
          statusSubject(id),
          options.payload ?? JSON.stringify(status),
          {
            msgID,
            headers: options.headers,
            expect: { lastSubjectSequence: after },
          },
        )).seq;
        this.#last.set(id, seq);
        return seq;
      } catch (error) {
        if (!(error instanceof FencedError)) throw error;
        const inTheWay = await this.#lastOnLeader(id);
        if (inTheWay?.msgID === msgID) {
          this.#last.set(id, inTheWay.seq);
          return inTheWay.seq;
        }
        const ours = inTheWay !== undefined &&
          this.#mine.get(id)!.includes(inTheWay.msgID);
        if (!ours || attempt === OWN_STATUS_RETRIES) throw error;
        after = inTheWay.seq;
      }
    }
  }

  /**
   * The last status message of `id` on the stream's leader, with its id.
   * A refused publish looks there for what is in its way. After a stream
   * leader change, an attempt whose acknowledgement was lost may be stored
   * and its retry refused as "wrong last sequence" instead of acknowledged
   * as a duplicate, or even stored twice (both seen with nats-server
   * 2.9.10): what is in the way is then this node's own, no other node's
   * status came in between, and the status goes after it.
   */
  async #lastOnLeader(
    id: string,
  ): Promise<{ seq: number; msgID: string } | undefined> {
    const message = await this.#jsm.streams.getMessage(STREAM, {
      last_by_subj: statusSubject(id),
    });
    if (message === null) return undefined;
    return {
      seq: message.seq,
      msgID: message.header?.get(MSG_ID_HEADER) ?? "",
    };
  }

  /** Keeps `msgID` among the last ones this node published for `id`. */
  #remember(id: string, msgID: string): void {
    const mine = this.#mine.get(id) ?? [];
    if (mine.at(-1) !== msgID) mine.push(msgID);
    if (mine.length > REMEMBERED_IDS) mine.shift();
    this.#mine.set(id, mine);
  }

  /** Forgets `id` (its upload ended here). */
  forget(id: string): void {
    this.#last.delete(id);
    this.#mine.delete(id);
  }
}
