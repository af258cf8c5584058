/*
 * Rust producer -> C consumer: opens the named channel argv[1] and checks argv[2] frames of
 * 16..=16+argv[3] bytes (see common.h), received in place (zipc_recv, released explicitly or
 * by the next receive) and by copy (zipc_recv_copy, now and then into a buffer too small
 * first); then expects ZIPC_DISCONNECTED.
 */
#include "common.h"

int main(int argc, char **argv) {
    program = "consumer.c";
    if (argc != 4) fail("usage: consumer NAME FRAMES MAX_EXTRA");
    const char *name = argv[1];
    uint64_t frames = arg_u64(argv, 2), max_extra = arg_u64(argv, 3);

    zipc_consumer *c = NULL;
    CHECK(zipc_consumer_open(name, &c));
    size_t cap = zipc_consumer_max_frame_len(c);
    uint8_t *buf = malloc(cap);
    ASSERT(buf != NULL);

    for (uint64_t seq = 0; seq < frames; seq++) {
        const void *data = NULL;
        size_t len = 0;
        switch (seq % 4) {
        case 0:
            CHECK(zipc_recv(c, &data, &len, -1));
            check_frame(seq, max_extra, data, len);
            CHECK(zipc_release(c));
            break;
        case 1:
            /* Held over: the next receive releases it. */
            CHECK(zipc_recv(c, &data, &len, -1));
            check_frame(seq, max_extra, data, len);
            break;
        case 2:
            if (seq % 1000 == 2) {
                /* Too small: the needed length comes back, the frame stays queued. */
                len = 0;
                EXPECT(zipc_recv_copy(c, buf, 15, &len, -1), ZIPC_TOO_LARGE);
                ASSERT(len == frame_len(seq, max_extra));
                EXPECT(zipc_recv_copy(c, NULL, 0, &len, 0), ZIPC_TOO_LARGE);
                ASSERT(len == frame_len(seq, max_extra));
            }
            CHECK(zipc_recv_copy(c, buf, cap, &len, -1));
            check_frame(seq, max_extra, buf, len);
            break;
        default:
            CHECK(zipc_recv_copy(c, buf, cap, &len, 60 * (int64_t)1000000000));
            check_frame(seq, max_extra, buf, len);
            break;
        }
    }
    const void *data = NULL;
    size_t len = 0;
    EXPECT(zipc_recv(c, &data, &len, 60 * (int64_t)1000000000), ZIPC_DISCONNECTED);
    ASSERT(data == NULL && len == 0);
    free(buf);
    zipc_consumer_close(c);
    return 0;
}
