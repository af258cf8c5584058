/*
 * A pool worker in C: answers each request with its bytes reversed, then their FNV-1a checksum
 * (8 bytes, little-endian), written in place; exits when the parent closes.
 */
#include "common.h"

int main(void) {
    program = "worker.c";
    zipc_producer *to_parent = NULL;
    zipc_consumer *from_parent = NULL;
    CHECK(zipc_worker_connect(&to_parent, &from_parent));
    /* Once per process. */
    zipc_producer *again_tx = NULL;
    zipc_consumer *again_rx = NULL;
    EXPECT(zipc_worker_connect(&again_tx, &again_rx), ZIPC_INVALID_ARGUMENT);
    ASSERT(again_tx == NULL && again_rx == NULL);

    for (;;) {
        const void *data = NULL;
        size_t len = 0;
        zipc_result r = zipc_recv(from_parent, &data, &len, -1);
        if (r == ZIPC_DISCONNECTED) break;
        CHECK(r);
        const uint8_t *request = data;
        void *out = NULL;
        CHECK(zipc_loan(to_parent, len + 8, &out));
        uint8_t *reply = out;
        for (size_t i = 0; i < len; i++) reply[i] = request[len - 1 - i];
        uint64_t sum = checksum(request, len);
        memcpy(reply + len, &sum, 8);
        CHECK(zipc_commit(to_parent, len + 8));
        CHECK(zipc_release(from_parent));
    }
    zipc_consumer_close(from_parent);
    zipc_producer_close(to_parent);
    return 0;
}
