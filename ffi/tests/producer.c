/*
 * C producer -> Rust consumer: creates the named channel argv[1] and sends argv[2] frames of
 * 16..=16+argv[3] bytes (see common.h), a third by zipc_send, a third by zipc_loan and
 * zipc_commit, a third by a loan larger than the frame and a shorter commit; then closes.
 */
#include "common.h"

int main(int argc, char **argv) {
    program = "producer.c";
    if (argc != 4) fail("usage: producer NAME FRAMES MAX_EXTRA");
    const char *name = argv[1];
    uint64_t frames = arg_u64(argv, 2), max_extra = arg_u64(argv, 3);

    zipc_producer *p = NULL;
    CHECK(zipc_producer_create(name, 64 * 1024, &p));
    /* The consumer opens once the segment is made: an open that races the creation may find
     * the segment before it is sized. */
    printf("created\n");
    fflush(stdout);
    ASSERT(zipc_producer_max_frame_len(p) == 32 * 1024 - 8);
    uint8_t *buf = malloc(16 + max_extra);
    ASSERT(buf != NULL);

    for (uint64_t seq = 0; seq < frames; seq++) {
        size_t len = frame_len(seq, max_extra);
        void *out = NULL;
        switch (seq % 3) {
        case 0:
            fill_frame(seq, buf, len);
            CHECK(zipc_send(p, buf, len, -1));
            break;
        case 1:
            CHECK(zipc_loan(p, len, &out));
            ASSERT(((uintptr_t)out & 7) == 0);
            fill_frame(seq, out, len);
            CHECK(zipc_commit(p, len));
            break;
        default:
            CHECK(zipc_loan_timeout(p, len + 24, 60 * (int64_t)1000000000, &out));
            fill_frame(seq, out, len);
            CHECK(zipc_commit(p, len));
            break;
        }
    }
    free(buf);
    zipc_producer_close(p);
    return 0;
}
