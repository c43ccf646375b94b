/* message-ids: the MESSAGE_ID of each key event in the journal, as sd-id128 strings.
 *
 * An id names a kind of event, never one occurrence: `journalctl MESSAGE_ID=<id>` lists every
 * failed send, every modem that went down, whatever the message's wording becomes. They are
 * therefore fixed forever once released: never change or reuse one; a new event gets a new
 * random id (`systemd-id128 new`). gatewayd(8) lists them for operators.
 *
 * Pass one in LogContext.message_id:
 *         log_ctx(LOG_INFO, &((LogContext){.alert_id = id, .message_id = MESSAGE_ID_SENT}), ...);
 */
#pragma once

/* An alert was accepted and committed: answered `queued`. */
#define MESSAGE_ID_ALERT_QUEUED "e6ec698662504f17ab85ae29c903f38d"
/* A delivery was accepted by the SMS centre. */
#define MESSAGE_ID_SENT "e3287c706e0b4f869ccda1f102a53e19"
/* One send attempt failed; the delivery will be tried again. */
#define MESSAGE_ID_SEND_FAILED "fc62f338018543c384994cf4140d915b"
/* A delivery failed for good: the network refused the number too often. */
#define MESSAGE_ID_FAILED "3abb373c53764d0ba7be686f4800e869"
/* An alert's time to live ran out before all its deliveries went out. */
#define MESSAGE_ID_EXPIRED "40e79967c26846ed9257b952abba79f8"
/* An alert was acknowledged (through the API, by SMS reply or by DTMF during a call). */
#define MESSAGE_ID_ACKNOWLEDGED "809b36309193495f9cb0ea8bb3da963d"
/* An alert was resolved (through the API, an integration's recovery, or by SMS reply). */
#define MESSAGE_ID_RESOLVED "f815733e7ce44698bce8450d6a014642"
/* An unacknowledged critical alert moved to the next escalation step. */
#define MESSAGE_ID_ESCALATED "f7185462888a4fb6b6f2854e3270c833"
/* A voice call of the fallback ended, with its outcome. */
#define MESSAGE_ID_VOICE_CALL "da2fb626a6204c26b0b4368054b7a9a7"
/* A modem of this node stopped being usable for SMS. */
#define MESSAGE_ID_MODEM_DOWN "f85982a842c142ecb49003c6fe0b0f5f"
/* A modem of this node became usable for SMS. */
#define MESSAGE_ID_MODEM_UP "1e6aed9a95334d5db4f9f6a93a6369e2"
/* Another node joined the cluster (announced itself). */
#define MESSAGE_ID_NODE_JOINED "9768c1f1b8e04270aeeaeefd32a58056"
/* Another node left the cluster view. */
#define MESSAGE_ID_NODE_LEFT "07d880e94d2f48018bc7c049203a097a"
/* A path self-test SMS from one of our modems did not arrive. */
#define MESSAGE_ID_PATH_DOWN "066c07d23ac347549abef7cb58c0753f"
/* The store could not commit a replicated payload: it is retried, nothing is skipped. */
#define MESSAGE_ID_STORE_STALLED "476061d014b241e8bc049da457dade72"
/* The store commits again after a stall; the payloads that waited are applied in order. */
#define MESSAGE_ID_STORE_RESUMED "0cc2afa5ddc446e4b0b557c2dbb88b36"
/* The nodes' digests of their stores differ at the same point of the agreed order. */
#define MESSAGE_ID_DIGEST_MISMATCH "eb3f5e91b7794f1a90e968f67c59faa4"
/* A delivery was left sending on this node with no send in progress: queued again. */
#define MESSAGE_ID_ORPHAN_REQUEUED "9ff0272407794abc88cb8bbc0cab4771"
/* A received SMS was quarantined: stored raw, never decoded (its PDU broke TS 23.040's limits). */
#define MESSAGE_ID_SMS_QUARANTINED "302ac6c8e41141518e058ea7bac9a7b9"
