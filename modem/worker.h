/* worker: the thread that owns one modem's GSM_StateMachine. Internal to modem/.
 *
 * modem_start() runs worker_main() in a new thread with a reference to the Modem, which the
 * worker drops when it returns (after modem_stop()). Nothing else touches the state machine. */
#pragma once

void *worker_main(void *userdata);
