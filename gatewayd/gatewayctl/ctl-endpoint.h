/* ctl-endpoint: where gatewayctl finds the control or submit socket of its gatewayd.
 *
 * Prefix ctl_endpoint_. Single-threaded. Strings returned through ret_* are the caller's to
 * free(). Each function logs its own failures, so callers only pass the error on.
 */
#pragma once

#include <stdbool.h>

#ifndef GATEWAYD_CONFIG_FILE
#define GATEWAYD_CONFIG_FILE "/etc/gatewayd/gatewayd.conf"
#endif
#define CTL_ENDPOINT_DEFAULT "tcp://127.0.0.1:5570"

/* Reads "[control] bind", else "[submit] bind", from the INI file at path; *ret_bind is NULL
 * when the file has neither. Other sections and keys are ignored: validating the file is gatewayd's
 * job, and an operator must still reach a daemon whose config grew keys this tool does not know.
 * -errno when the file cannot be opened or read (-ENOENT when it does not exist). */
int ctl_endpoint_from_config(const char *path, char **ret_bind);

/* The address to connect to for a bind address: a wildcard host ("*", "0.0.0.0", "[::]")
 * becomes the loopback address, anything else is kept as it is. */
int ctl_endpoint_connectable(const char *bind, char **ret);

/* The endpoint gatewayctl talks to: the explicit endpoint when given (-e); otherwise [control]
 * or [submit] bind from config_path (-c), which must exist; otherwise from GATEWAYD_CONFIG_FILE if
 * it exists; otherwise CTL_ENDPOINT_DEFAULT. */
int ctl_endpoint_resolve(const char *endpoint, const char *config_path, char **ret);
