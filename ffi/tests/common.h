/*
 * What the C test programs share: checks that say what failed, and the frame format of the Rust
 * tests (tests/common/mod.rs): sequence number, FNV-1a checksum of the payload, then a payload
 * of 0..=max_extra bytes from xorshift64*, so that either side can check the other's frames.
 */
#ifndef ZIPC_TEST_COMMON_H
#define ZIPC_TEST_COMMON_H

#include "zipc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *program = "c test";

static inline void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static inline void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Fails unless `got` is `want`, naming both and the last error message. */
#define EXPECT(call, want)                                                                  \
    do {                                                                                    \
        zipc_result got_ = (call);                                                          \
        if (got_ != (want))                                                                 \
            fail("%s:%d: %s returned %s, not %s (%s)", __FILE__, __LINE__, #call,           \
                 zipc_result_name(got_), zipc_result_name(want), zipc_last_error_message()); \
    } while (0)

#define CHECK(call) EXPECT(call, ZIPC_OK)

#define ASSERT(cond)                                                                        \
    do {                                                                                    \
        if (!(cond)) fail("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond);        \
    } while (0)

static inline uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(0x2545f4914f6cdd1d);
}

static inline uint64_t checksum(const uint8_t *p, size_t n) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* The length of frame `seq`: 16 bytes of sequence number and checksum, then 0..=max_extra. */
static inline size_t frame_len(uint64_t seq, uint64_t max_extra) {
    uint64_t s = (seq * UINT64_C(0x9e3779b97f4a7c15)) | 1;
    return 16 + (size_t)(rng_next(&s) % (max_extra + 1));
}

static inline void fill_frame(uint64_t seq, uint8_t *buf, size_t len) {
    uint64_t s = seq | 1;
    uint8_t *payload = buf + 16;
    size_t n = len - 16;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t word = rng_next(&s); /* little-endian, as the Rust side's to_le_bytes */
        memcpy(payload + i, &word, n - i < 8 ? n - i : 8);
    }
    uint64_t sum = checksum(payload, n);
    memcpy(buf, &seq, 8);
    memcpy(buf + 8, &sum, 8);
}

static inline void check_frame(uint64_t expect, uint64_t max_extra, const uint8_t *frame, size_t len) {
    if (len != frame_len(expect, max_extra))
        fail("frame %" PRIu64 ": %zu bytes, not %zu", expect, len, frame_len(expect, max_extra));
    uint64_t seq, sum;
    memcpy(&seq, frame, 8);
    memcpy(&sum, frame + 8, 8);
    if (seq != expect) fail("frame %" PRIu64 " has sequence number %" PRIu64, expect, seq);
    if (sum != checksum(frame + 16, len - 16)) fail("frame %" PRIu64 ": bad checksum", expect);
}

static inline uint64_t arg_u64(char **argv, int i) {
    return strtoull(argv[i], NULL, 10);
}

#endif
