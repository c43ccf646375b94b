/* gateway: the node's state machine and the glue between its rooms.
 *
 * It takes requests from the server, turns them into changes, publishes the changes through the
 * replication layer, applies what comes back (in agreed order, one transaction per payload),
 * answers the clients whose changes were committed, and feeds due deliveries to the modems.
 *
 * Threads: main thread only. Ownership: the Gateway borrows the Config and the sd_event. */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"

typedef struct Gateway Gateway;

int gateway_new(sd_event *event, const Config *config, Gateway **ret);
/* Binds the sockets, starts the modems and resumes interrupted work. */
int gateway_start(Gateway *g);
/* Graceful stop: stops the modems (a send in progress may finish), records their last results,
 * and exits the event loop once those are committed. */
void gateway_stop(Gateway *g);
/* SIGHUP: re-reads the configuration file; what may change without a restart (contacts, roles,
 * rota, escalation, limits, the CURVE client directories) is applied, else the reload is refused
 * by name (gateway-reload.c). */
void gateway_reload(Gateway *g);
Gateway *gateway_free(Gateway *g);
