/* auth: who may connect to a CURVE socket, answered as the ZAP handler of the server's context.
 *
 * Prefix auth_. An Auth binds inproc://zeromq.zap.01 in one ZeroMQ context and answers libzmq's
 * authentication requests from the sd-event loop. Each CURVE socket names a ZAP domain, and each
 * domain has a directory of client public certificates (as zcert_save() writes them); a client
 * whose key is in its domain's directory gets in, with its key (Z85) as the ZMQ "User-Id" of its
 * messages, and any other is refused and logged with its address.
 *
 * Threads: main thread only. Ownership: strings returned through ret_* are the caller's. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#define AUTH_KEY_LEN      32 /* a CURVE key, in bytes */
#define AUTH_KEY_TEXT_LEN 40 /* the same in Z85 */

typedef struct Auth Auth;

/* Binds the ZAP endpoint in zmq_ctx; must come before any CURVE socket binds, or libzmq lets
 * clients in unchecked. */
int auth_new(sd_event *event, void *zmq_ctx, Auth **ret);
Auth *auth_free(Auth *a);

/* Adds a ZAP domain whose allowed clients are the certificates in dir. */
int auth_add_domain(Auth *a, const char *domain, const char *dir);
/* Re-reads every domain's directory (SIGHUP): a removed key is refused from the next
 * connection on. Connections already in keep going until they close. A directory that cannot be
 * read leaves that domain with no allowed client at all. */
int auth_reload(Auth *a);

/* Makes sock a CURVE server with the secret key in path, checked by domain. */
int auth_setup_server(void *sock, const char *secret_key_file, const char *domain);

/* Checks for config_load(): 0, or -errno with *ret_reason saying why ("cannot be read: ..."). */
int auth_check_secret_key_file(const char *path, char **ret_reason);
int auth_check_clients_dir(const char *path, char **ret_reason);
