/*
 * Bad input through the C API: each case gets the right zipc_result and a message, leaves the
 * out-params alone, and nothing crashes. NULL everywhere, capacity 0, bad names, calls out of
 * turn, frames too large, timeouts, a closed peer, a killed peer (a forked child, SIGKILLed),
 * and a corrupted segment (scribbled on through /dev/shm). And the rendezvous: a consumer that
 * opens before the producer creates, a producer that closes before the consumer opens, and
 * frames left undelivered when the linger time runs out.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MS ((int64_t)1000000)

/* Fails unless `call` returns `want` and the last error message contains `needle`. */
#define EXPECT_MSG(call, want, needle)                                                    \
    do {                                                                                  \
        EXPECT(call, want);                                                               \
        if (!strstr(zipc_last_error_message(), (needle)))                                 \
            fail("%s:%d: %s: message \"%s\" does not mention \"%s\"", __FILE__, __LINE__, \
                 #call, zipc_last_error_message(), (needle));                             \
    } while (0)

/* A name of this run's own, with `tag` in it. */
static const char *name(const char *tag) {
    static char names[16][96];
    static int next;
    char *n = names[next++ % 16];
    snprintf(n, sizeof names[0], "c-bad-%ld-%s", (long)getpid(), tag);
    return n;
}

/* Maps the segment of the named channel read-write, as a hostile process of the same user
 * could: a 128-byte header, the control block, the data area at 4096. */
static volatile uint64_t *map_segment(const char *n, size_t len) {
    char path[160];
    snprintf(path, sizeof path, "/dev/shm/zipc.%s", n);
    int fd = open(path, O_RDWR);
    if (fd < 0) fail("open %s", path);
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) fail("mmap %s", path);
    return m;
}

static void unmap_segment(volatile uint64_t *m, size_t len) {
    munmap((void *)m, len);
}

/* What the handles and out-params hold before a call that must not touch them. */
#define UNTOUCHED ((void *)0x5a5a)

static void results_and_messages(void) {
    ASSERT(strcmp(zipc_last_error_message(), "") == 0);
    const char *names[] = {"ZIPC_OK",         "ZIPC_TIMEOUT",     "ZIPC_WOULD_BLOCK",
                           "ZIPC_PEER_GONE",  "ZIPC_DISCONNECTED", "ZIPC_TOO_LARGE",
                           "ZIPC_CORRUPTED",  "ZIPC_INVALID_ARGUMENT", "ZIPC_EXISTS",
                           "ZIPC_NOT_FOUND",  "ZIPC_IO",          "ZIPC_PANIC",
                           "ZIPC_UNDELIVERED"};
    for (int r = ZIPC_OK; r <= ZIPC_UNDELIVERED; r++)
        ASSERT(strcmp(zipc_result_name((zipc_result)r), names[r]) == 0);
    ASSERT(strcmp(zipc_result_name((zipc_result)99), "ZIPC_UNKNOWN") == 0);
    ASSERT(strcmp(zipc_result_name((zipc_result)-1), "ZIPC_UNKNOWN") == 0);
}

static void nulls(void) {
    const char *n = name("nulls");
    zipc_producer *p = UNTOUCHED;
    zipc_consumer *c = UNTOUCHED;
    void *buf = UNTOUCHED;
    const void *data = UNTOUCHED;
    size_t len = 7;
    char bytes[16] = {0};

    EXPECT_MSG(zipc_producer_create(NULL, 4096, &p), ZIPC_INVALID_ARGUMENT, "name is NULL");
    EXPECT_MSG(zipc_producer_create(n, 4096, NULL), ZIPC_INVALID_ARGUMENT, "out is NULL");
    EXPECT_MSG(zipc_consumer_open(NULL, &c), ZIPC_INVALID_ARGUMENT, "name is NULL");
    EXPECT_MSG(zipc_consumer_open(n, NULL), ZIPC_INVALID_ARGUMENT, "out is NULL");
    ASSERT(p == UNTOUCHED && c == UNTOUCHED);

    EXPECT_MSG(zipc_send(NULL, bytes, 1, 0), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_loan(NULL, 1, &buf), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_loan_timeout(NULL, 1, 0, &buf), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_commit(NULL, 0), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_recv(NULL, &data, &len, 0), ZIPC_INVALID_ARGUMENT, "c is NULL");
    EXPECT_MSG(zipc_release(NULL), ZIPC_INVALID_ARGUMENT, "c is NULL");
    EXPECT_MSG(zipc_recv_copy(NULL, bytes, 16, &len, 0), ZIPC_INVALID_ARGUMENT, "c is NULL");
    ASSERT(buf == UNTOUCHED && data == UNTOUCHED && len == 7);
    ASSERT(zipc_producer_max_frame_len(NULL) == 0 && zipc_consumer_max_frame_len(NULL) == 0);
    zipc_producer_close(NULL);
    zipc_consumer_close(NULL);

    /* The rendezvous functions. */
    bool connected = true;
    uint64_t undelivered = 7;
    EXPECT_MSG(zipc_consumer_open_timeout(NULL, 0, &c), ZIPC_INVALID_ARGUMENT, "name is NULL");
    EXPECT_MSG(zipc_consumer_open_timeout(n, 0, NULL), ZIPC_INVALID_ARGUMENT, "out is NULL");
    EXPECT_MSG(zipc_consumer_open_timeout(NULL, -1, &c), ZIPC_INVALID_ARGUMENT, "name is NULL");
    EXPECT_MSG(zipc_producer_is_connected(NULL, &connected), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_producer_wait_for_consumer(NULL, 0), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_producer_wait_for_consumer(NULL, -1), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_producer_set_linger(NULL, 0), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_producer_close_checked(NULL, &undelivered), ZIPC_INVALID_ARGUMENT,
               "p is NULL");
    EXPECT_MSG(zipc_producer_close_checked(NULL, NULL), ZIPC_INVALID_ARGUMENT, "p is NULL");
    ASSERT(c == UNTOUCHED && connected && undelivered == 7);

    /* NULL beside a live handle. */
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_consumer_open(n, &c));
    EXPECT_MSG(zipc_send(p, NULL, 1, 0), ZIPC_INVALID_ARGUMENT, "data is NULL");
    EXPECT_MSG(zipc_loan(p, 1, NULL), ZIPC_INVALID_ARGUMENT, "out_buf is NULL");
    EXPECT_MSG(zipc_loan_timeout(p, 1, 0, NULL), ZIPC_INVALID_ARGUMENT, "out_buf is NULL");
    CHECK(zipc_send(p, NULL, 0, 0)); /* an empty frame needs no data */
    EXPECT_MSG(zipc_recv(c, NULL, &len, 0), ZIPC_INVALID_ARGUMENT, "out_data is NULL");
    EXPECT_MSG(zipc_recv(c, &data, NULL, 0), ZIPC_INVALID_ARGUMENT, "out_len is NULL");
    EXPECT_MSG(zipc_recv_copy(c, NULL, 1, &len, 0), ZIPC_INVALID_ARGUMENT, "buf is NULL");
    EXPECT_MSG(zipc_recv_copy(c, bytes, 16, NULL, 0), ZIPC_INVALID_ARGUMENT, "out_len is NULL");
    ASSERT(data == UNTOUCHED && len == 7);
    /* Nothing was taken by the failed calls: the empty frame is still there. */
    CHECK(zipc_recv_copy(c, NULL, 0, &len, 0));
    ASSERT(len == 0);

    /* How the ends wait: NULL, or a value that is not a zipc_wait. */
    EXPECT_MSG(zipc_producer_set_wait(NULL, ZIPC_WAIT_SPIN), ZIPC_INVALID_ARGUMENT, "p is NULL");
    EXPECT_MSG(zipc_consumer_set_wait(NULL, ZIPC_WAIT_SPIN), ZIPC_INVALID_ARGUMENT, "c is NULL");
    EXPECT_MSG(zipc_producer_set_wait(p, (zipc_wait)7), ZIPC_INVALID_ARGUMENT, "not a zipc_wait");
    EXPECT_MSG(zipc_consumer_set_wait(c, (zipc_wait)-1), ZIPC_INVALID_ARGUMENT,
               "not a zipc_wait");
    CHECK(zipc_producer_set_wait(p, ZIPC_WAIT_SLEEP));
    CHECK(zipc_consumer_set_wait(c, ZIPC_WAIT_SPIN));
    CHECK(zipc_send(p, "w", 1, -1));
    CHECK(zipc_recv_copy(c, bytes, sizeof bytes, &len, -1));
    ASSERT(len == 1 && bytes[0] == 'w');
    CHECK(zipc_consumer_set_wait(c, ZIPC_WAIT_ADAPTIVE));
    EXPECT_MSG(zipc_producer_is_connected(p, NULL), ZIPC_INVALID_ARGUMENT, "out is NULL");
    ASSERT(connected);

    zipc_producer *tx = UNTOUCHED;
    zipc_consumer *rx = UNTOUCHED;
    EXPECT_MSG(zipc_worker_connect(NULL, &rx), ZIPC_INVALID_ARGUMENT, "to_parent is NULL");
    EXPECT_MSG(zipc_worker_connect(&tx, NULL), ZIPC_INVALID_ARGUMENT, "from_parent is NULL");
    ASSERT(tx == UNTOUCHED && rx == UNTOUCHED);
    zipc_consumer_close(c);
    zipc_producer_close(p);
}

static void names_and_capacities(void) {
    zipc_producer *p = UNTOUCHED;
    zipc_consumer *c = UNTOUCHED;
    char long_name[301];
    memset(long_name, 'x', 300);
    long_name[300] = 0;
    const char *bad[] = {"", "a/b", "/abs", "../up", "sp ace", "\xff\xfe", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_MSG(zipc_producer_create(bad[i], 4096, &p), ZIPC_INVALID_ARGUMENT, "name");
        EXPECT_MSG(zipc_consumer_open(bad[i], &c), ZIPC_INVALID_ARGUMENT, "name");
        EXPECT_MSG(zipc_consumer_open_timeout(bad[i], 0, &c), ZIPC_INVALID_ARGUMENT, "name");
        EXPECT_MSG(zipc_consumer_open_timeout(bad[i], -1, &c), ZIPC_INVALID_ARGUMENT, "name");
    }
    EXPECT_MSG(zipc_producer_create("\xff", 4096, &p), ZIPC_INVALID_ARGUMENT, "UTF-8");
    EXPECT_MSG(zipc_producer_create(name("cap0"), 0, &p), ZIPC_INVALID_ARGUMENT, "capacity 0");
    EXPECT_MSG(zipc_producer_create(name("capmax"), SIZE_MAX, &p), ZIPC_INVALID_ARGUMENT,
               "capacity");
    EXPECT_MSG(zipc_consumer_open(name("missing"), &c), ZIPC_NOT_FOUND, "was not found");
    EXPECT_MSG(zipc_consumer_open_timeout(name("missing"), 0, &c), ZIPC_NOT_FOUND,
               "was not found");
    ASSERT(p == UNTOUCHED && c == UNTOUCHED);

    const char *n = name("taken");
    CHECK(zipc_producer_create(n, 1, &p)); /* rounds up to a page */
    ASSERT(zipc_producer_max_frame_len(p) == 2048 - 8);
    zipc_producer *p2 = UNTOUCHED;
    EXPECT_MSG(zipc_producer_create(n, 4096, &p2), ZIPC_EXISTS, "already exists");
    CHECK(zipc_consumer_open(n, &c));
    zipc_consumer *c2 = UNTOUCHED;
    EXPECT_MSG(zipc_consumer_open(n, &c2), ZIPC_EXISTS, "live process");
    ASSERT(p2 == UNTOUCHED && c2 == UNTOUCHED);
    zipc_consumer_close(c);
    CHECK(zipc_consumer_open(n, &c2)); /* once the first is gone, another may open it */
    zipc_consumer_close(c2);
    zipc_producer_close(p);
}

static void out_of_turn_and_too_large(void) {
    const char *n = name("turns");
    zipc_producer *p = NULL;
    zipc_consumer *c = NULL;
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_consumer_open(n, &c));
    size_t max = zipc_producer_max_frame_len(p);
    ASSERT(max == 2040 && zipc_consumer_max_frame_len(c) == 2040);
    uint8_t *big = calloc(1, max + 1);
    ASSERT(big != NULL);
    void *buf = UNTOUCHED;
    const void *data = UNTOUCHED;
    size_t len = 7;

    EXPECT_MSG(zipc_commit(p, 0), ZIPC_INVALID_ARGUMENT, "no loan");
    EXPECT_MSG(zipc_release(c), ZIPC_INVALID_ARGUMENT, "no frame held");
    EXPECT_MSG(zipc_send(p, big, max + 1, 0), ZIPC_TOO_LARGE, "2041 bytes");
    EXPECT_MSG(zipc_loan(p, max + 1, &buf), ZIPC_TOO_LARGE, "limit of 2040");
    ASSERT(buf == UNTOUCHED);

    /* Nothing there: no wait, then a short one. */
    EXPECT_MSG(zipc_recv(c, &data, &len, 0), ZIPC_WOULD_BLOCK, "would block");
    EXPECT_MSG(zipc_recv(c, &data, &len, 1 * MS), ZIPC_TIMEOUT, "timed out");
    EXPECT_MSG(zipc_recv_copy(c, big, max, &len, 0), ZIPC_WOULD_BLOCK, "would block");
    ASSERT(data == UNTOUCHED && len == 7);

    /* A commit longer than the loan keeps the loan; a shorter one is fine. */
    CHECK(zipc_loan(p, 8, &buf));
    memcpy(buf, "abcdefgh", 8);
    EXPECT_MSG(zipc_commit(p, 9), ZIPC_INVALID_ARGUMENT, "8 loaned");
    CHECK(zipc_commit(p, 5));
    EXPECT(zipc_commit(p, 5), ZIPC_INVALID_ARGUMENT);
    /* A send abandons a loan: nothing of it is sent. */
    CHECK(zipc_loan(p, 8, &buf));
    memcpy(buf, "XXXXXXXX", 8);
    CHECK(zipc_send(p, "xyz", 3, 0));
    EXPECT_MSG(zipc_commit(p, 8), ZIPC_INVALID_ARGUMENT, "no loan");

    /* A buffer too small: the length needed, and the frame stays. */
    char small[4];
    len = 0;
    EXPECT_MSG(zipc_recv_copy(c, small, 4, &len, 0), ZIPC_TOO_LARGE, "5 bytes");
    ASSERT(len == 5);
    EXPECT_MSG(zipc_release(c), ZIPC_INVALID_ARGUMENT, "no frame held"); /* not handed out */
    EXPECT(zipc_recv_copy(c, small, 4, &len, 0), ZIPC_TOO_LARGE);
    CHECK(zipc_recv(c, &data, &len, 0));
    ASSERT(len == 5 && memcmp(data, "abcde", 5) == 0);
    CHECK(zipc_release(c));
    EXPECT(zipc_release(c), ZIPC_INVALID_ARGUMENT);
    CHECK(zipc_recv_copy(c, small, 4, &len, 0));
    ASSERT(len == 3 && memcmp(small, "xyz", 3) == 0);

    /* Full ring: no wait, then a short one. */
    zipc_result r;
    int sent = 0;
    while ((r = zipc_send(p, big, 500, 0)) == ZIPC_OK) sent++;
    ASSERT(sent >= 6);
    EXPECT_MSG(zipc_send(p, big, 500, 0), ZIPC_WOULD_BLOCK, "would block");
    EXPECT_MSG(zipc_send(p, big, 500, 1 * MS), ZIPC_TIMEOUT, "timed out");
    EXPECT_MSG(zipc_loan_timeout(p, 500, 0, &buf), ZIPC_WOULD_BLOCK, "would block");
    EXPECT_MSG(zipc_loan_timeout(p, 500, 1 * MS, &buf), ZIPC_TIMEOUT, "timed out");

    /* The consumer goes without taking them: closing with no linger counts them. */
    free(big);
    zipc_consumer_close(c);
    CHECK(zipc_producer_set_linger(p, 0));
    uint64_t undelivered = 0;
    EXPECT_MSG(zipc_producer_close_checked(p, &undelivered), ZIPC_UNDELIVERED,
               "were not delivered");
    ASSERT(undelivered == (uint64_t)sent);
}

static void closed_peers(void) {
    const char *n = name("closed");
    zipc_producer *p = NULL;
    zipc_consumer *c = NULL;
    const void *data = NULL;
    size_t len = 0;
    /* The producer closes: what it sent comes first. */
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_consumer_open(n, &c));
    CHECK(zipc_send(p, "one", 3, -1));
    CHECK(zipc_send(p, "two", 3, -1));
    zipc_producer_close(p);
    CHECK(zipc_recv(c, &data, &len, -1));
    ASSERT(len == 3 && memcmp(data, "one", 3) == 0);
    CHECK(zipc_recv(c, &data, &len, -1));
    ASSERT(len == 3 && memcmp(data, "two", 3) == 0);
    EXPECT_MSG(zipc_recv(c, &data, &len, -1), ZIPC_DISCONNECTED, "closed");
    EXPECT_MSG(zipc_recv(c, &data, &len, 0), ZIPC_DISCONNECTED, "closed");
    zipc_consumer_close(c);

    /* The consumer closes. */
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_consumer_open(n, &c));
    zipc_consumer_close(c);
    EXPECT_MSG(zipc_send(p, "x", 1, -1), ZIPC_DISCONNECTED, "closed");
    void *buf = NULL;
    EXPECT(zipc_loan(p, 1, &buf), ZIPC_DISCONNECTED);
    zipc_producer_close(p);
}

/* A child that runs `role` then signals readiness and waits to be killed. */
static pid_t child(void (*role)(const char *), const char *n) {
    int ready[2];
    ASSERT(pipe(ready) == 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        role(n);
        ASSERT(write(ready[1], "x", 1) == 1);
        for (;;) pause();
    }
    close(ready[1]);
    char x;
    ASSERT(read(ready[0], &x, 1) == 1);
    close(ready[0]);
    return pid;
}

static void kill_child(pid_t pid) {
    ASSERT(kill(pid, SIGKILL) == 0);
    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void produce_three(const char *n) {
    zipc_producer *p = NULL; /* never closed: the process is killed */
    CHECK(zipc_producer_create(n, 4096, &p));
    for (uint32_t i = 0; i < 3; i++) CHECK(zipc_send(p, &i, sizeof i, -1));
}

static void open_consumer(const char *n) {
    zipc_consumer *c = NULL; /* never closed: the process is killed */
    CHECK(zipc_consumer_open(n, &c));
}

static void killed_peers(void) {
    /* A killed producer: what it sent, then ZIPC_PEER_GONE. */
    const char *n = name("killed-producer");
    pid_t pid = child(produce_three, n);
    zipc_consumer *c = NULL;
    CHECK(zipc_consumer_open(n, &c));
    kill_child(pid);
    for (uint32_t i = 0; i < 3; i++) {
        uint32_t got = 99;
        size_t len = 0;
        CHECK(zipc_recv_copy(c, &got, sizeof got, &len, -1));
        ASSERT(len == sizeof got && got == i);
    }
    const void *data = NULL;
    size_t len = 0;
    EXPECT_MSG(zipc_recv(c, &data, &len, 5000 * MS), ZIPC_PEER_GONE, "died");
    EXPECT_MSG(zipc_recv(c, &data, &len, 0), ZIPC_PEER_GONE, "died");
    zipc_consumer_close(c);
    /* The dead producer could not remove its name: the next create of it replaces it. */
    zipc_producer *p = NULL;
    CHECK(zipc_producer_create(n, 4096, &p));
    zipc_producer_close(p);

    /* A killed consumer: the producer fills the ring, then ZIPC_PEER_GONE. */
    n = name("killed-consumer");
    CHECK(zipc_producer_create(n, 4096, &p));
    pid = child(open_consumer, n);
    kill_child(pid);
    char frame[100] = {0};
    zipc_result r;
    int sent = 0;
    while ((r = zipc_send(p, frame, sizeof frame, 5000 * MS)) == ZIPC_OK) ASSERT(++sent < 100);
    EXPECT_MSG(r, ZIPC_PEER_GONE, "died");
    /* The dead consumer took none: a short linger, then the count. */
    CHECK(zipc_producer_set_linger(p, 1 * MS));
    uint64_t undelivered = 0;
    EXPECT_MSG(zipc_producer_close_checked(p, &undelivered), ZIPC_UNDELIVERED, "1ms");
    ASSERT(undelivered == (uint64_t)sent);
}

static void corrupted_segments(void) {
    const size_t seg_len = 4096 + 4096;
    zipc_producer *p = NULL;
    zipc_consumer *c = UNTOUCHED;
    const void *data = NULL;
    size_t len = 0;

    /* A wrong magic number: not opened. */
    const char *n = name("magic");
    CHECK(zipc_producer_create(n, 4096, &p));
    volatile uint64_t *seg = map_segment(n, seg_len);
    seg[0] = 0x1234;
    EXPECT_MSG(zipc_consumer_open(n, &c), ZIPC_CORRUPTED, "magic");
    ASSERT(c == UNTOUCHED);
    unmap_segment(seg, seg_len);
    zipc_producer_close(p);

    /* A wrong ABI version: another zipc's segment. */
    n = name("version");
    CHECK(zipc_producer_create(n, 4096, &p));
    seg = map_segment(n, seg_len);
    ((volatile uint32_t *)seg)[2] = 99;
    EXPECT_MSG(zipc_consumer_open(n, &c), ZIPC_CORRUPTED, "version 99");
    unmap_segment(seg, seg_len);
    zipc_producer_close(p);

    /* A frame header longer than the ring: the receive fails, every time, no crash. */
    n = name("frame");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_consumer_open(n, &c));
    CHECK(zipc_send(p, "0123456789abcdef", 16, -1));
    seg = map_segment(n, seg_len);
    seg[4096 / 8] = UINT64_C(0xFFFFFFFF) | (UINT64_C(0xD1) << 32);
    EXPECT_MSG(zipc_recv(c, &data, &len, -1), ZIPC_CORRUPTED, "frame header");
    char buf[64];
    EXPECT_MSG(zipc_recv_copy(c, buf, sizeof buf, &len, 0), ZIPC_CORRUPTED, "frame header");
    /* An unknown kind of frame. */
    seg[4096 / 8] = 16 | (UINT64_C(0x55) << 32);
    EXPECT_MSG(zipc_recv(c, &data, &len, 0), ZIPC_CORRUPTED, "kind 0x55");
    unmap_segment(seg, seg_len);
    zipc_consumer_close(c);
    /* Undelivered, but the garbled header leaves no count: the handle is freed all the same. */
    CHECK(zipc_producer_set_linger(p, 0));
    uint64_t undelivered = 7;
    EXPECT_MSG(zipc_producer_close_checked(p, &undelivered), ZIPC_CORRUPTED, "kind 0x55");
    ASSERT(undelivered == 7);

    /* A held frame's header rewritten before its release: the consumer goes by what it
     * checked when it received the frame, and carries on. */
    n = name("held");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_consumer_open(n, &c));
    CHECK(zipc_send(p, "abcdefgh", 8, -1));
    CHECK(zipc_recv(c, &data, &len, -1));
    ASSERT(len == 8);
    seg = map_segment(n, seg_len);
    seg[4096 / 8] = 2000 | (UINT64_C(0xD1) << 32);
    CHECK(zipc_release(c));
    CHECK(zipc_send(p, "next", 4, -1));
    CHECK(zipc_recv(c, &data, &len, -1));
    ASSERT(len == 4 && memcmp(data, "next", 4) == 0);
    CHECK(zipc_release(c));
    unmap_segment(seg, seg_len);
    zipc_consumer_close(c);
    zipc_producer_close(p);

    /* A consumer position out of range: the producer's next wait for space fails. */
    n = name("head");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_consumer_open(n, &c));
    char frame[500] = {0};
    while (zipc_send(p, frame, sizeof frame, 0) == ZIPC_OK) {
    }
    seg = map_segment(n, seg_len);
    seg[(128 + 128) / 8] = UINT64_C(1) << 40; /* head, on the control block's second line */
    EXPECT_MSG(zipc_send(p, frame, sizeof frame, 5000 * MS), ZIPC_CORRUPTED, "consumer position");
    unmap_segment(seg, seg_len);
    zipc_consumer_close(c);
    CHECK(zipc_producer_set_linger(p, 0));
    EXPECT_MSG(zipc_producer_close_checked(p, NULL), ZIPC_CORRUPTED, "consumer position");
}

/* Nanoseconds on the monotonic clock. */
static int64_t now_ns(void) {
    struct timespec t;
    ASSERT(clock_gettime(CLOCK_MONOTONIC, &t) == 0);
    return (int64_t)t.tv_sec * 1000 * MS + t.tv_nsec;
}

/* In a forked child: signal `go` (when not -1), open `n` waiting up to a minute, and receive
 * `frames` frames "f0", "f1", ... then ZIPC_DISCONNECTED; exits 0 when all came, as they were
 * sent. */
static void receive_all(const char *n, int go, int frames) {
    if (go >= 0) {
        ASSERT(write(go, "x", 1) == 1);
        close(go);
    }
    zipc_consumer *c = NULL;
    CHECK(zipc_consumer_open_timeout(n, 60000 * MS, &c));
    for (int i = 0; i < frames; i++) {
        char want[16], got[16];
        size_t len = 0;
        snprintf(want, sizeof want, "f%d", i);
        CHECK(zipc_recv_copy(c, got, sizeof got, &len, 60000 * MS));
        ASSERT(len == strlen(want) && memcmp(got, want, len) == 0);
    }
    const void *data = NULL;
    size_t len = 0;
    EXPECT(zipc_recv(c, &data, &len, 60000 * MS), ZIPC_DISCONNECTED);
    zipc_consumer_close(c);
    exit(0);
}

static void send_frames(zipc_producer *p, int frames) {
    for (int i = 0; i < frames; i++) {
        char f[16];
        snprintf(f, sizeof f, "f%d", i);
        CHECK(zipc_send(p, f, strlen(f), -1));
    }
}

static void exited_0(pid_t pid) {
    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("the receiving child failed (status %d)", status);
}

static void rendezvous(void) {
    zipc_producer *p = NULL;
    zipc_consumer *c = UNTOUCHED;
    uint64_t undelivered = 7;
    bool connected = true;

    /* A name that never appears: ZIPC_NOT_FOUND once the timeout ran out, not before; the
     * upper bound is only a hang's. */
    const char *n = name("never");
    int64_t start = now_ns();
    EXPECT_MSG(zipc_consumer_open_timeout(n, 50 * MS, &c), ZIPC_NOT_FOUND, "was not found");
    int64_t took = now_ns() - start;
    ASSERT(took >= 50 * MS && took < 30000 * MS);
    ASSERT(strstr(zipc_last_error_message(), n) != NULL);
    ASSERT(c == UNTOUCHED);

    /* Connected or not, waited for or not. */
    n = name("connect");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_producer_is_connected(p, &connected));
    ASSERT(!connected);
    EXPECT_MSG(zipc_producer_wait_for_consumer(p, 0), ZIPC_WOULD_BLOCK, "no consumer");
    EXPECT_MSG(zipc_producer_wait_for_consumer(p, 1 * MS), ZIPC_TIMEOUT, "timed out");
    CHECK(zipc_consumer_open_timeout(n, -1, &c)); /* there already: no wait */
    CHECK(zipc_producer_is_connected(p, &connected));
    ASSERT(connected);
    CHECK(zipc_producer_wait_for_consumer(p, 0));
    CHECK(zipc_producer_wait_for_consumer(p, -1));
    zipc_consumer_close(c);
    CHECK(zipc_producer_is_connected(p, &connected));
    ASSERT(!connected);
    /* Nothing sent: nothing to deliver, no wait. */
    CHECK(zipc_producer_close_checked(p, &undelivered));
    ASSERT(undelivered == 0);

    /* The consumer first: it waits for the name, and a producer in another process waiting
     * for it sees it attach. */
    n = name("consumer-first");
    int go[2];
    ASSERT(pipe(go) == 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(go[0]);
        receive_all(n, go[1], 3);
    }
    close(go[1]);
    char x;
    ASSERT(read(go[0], &x, 1) == 1); /* the child is about to wait for the name */
    close(go[0]);
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_producer_wait_for_consumer(p, 60000 * MS));
    send_frames(p, 3);
    undelivered = 7;
    CHECK(zipc_producer_close_checked(p, &undelivered));
    ASSERT(undelivered == 0);
    exited_0(pid);

    /* The producer first, closing before the consumer opens: the close lingers until the
     * consumer has attached, and the name stays until then. */
    n = name("producer-first");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_producer_set_linger(p, 120000 * MS));
    send_frames(p, 5);
    ASSERT(pipe(go) == 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        ASSERT(read(go[0], &x, 1) == 1); /* the parent is closing */
        receive_all(n, -1, 5);
    }
    close(go[0]);
    ASSERT(write(go[1], "x", 1) == 1);
    close(go[1]);
    undelivered = 7;
    CHECK(zipc_producer_close_checked(p, &undelivered));
    ASSERT(undelivered == 0);
    exited_0(pid);
    EXPECT(zipc_consumer_open(n, &c), ZIPC_NOT_FOUND); /* the name went with the close */

    /* No consumer within the linger time: ZIPC_UNDELIVERED with the count; the name and the
     * frames are gone. */
    n = name("undelivered");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_producer_set_linger(p, 20 * MS));
    send_frames(p, 3);
    undelivered = 0;
    start = now_ns();
    EXPECT_MSG(zipc_producer_close_checked(p, &undelivered), ZIPC_UNDELIVERED,
               "3 committed frame(s) were not delivered");
    took = now_ns() - start;
    ASSERT(undelivered == 3);
    ASSERT(took >= 20 * MS && took < 30000 * MS);
    ASSERT(strstr(zipc_last_error_message(), "zipc_producer_close_checked") != NULL);
    c = UNTOUCHED;
    EXPECT(zipc_consumer_open(n, &c), ZIPC_NOT_FOUND);
    ASSERT(c == UNTOUCHED);

    /* A consumer that took some and went: the rest are counted. NULL for the count is fine. */
    n = name("partly");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_consumer_open(n, &c));
    send_frames(p, 4);
    char buf[16];
    size_t len = 0;
    CHECK(zipc_recv_copy(c, buf, sizeof buf, &len, 0));
    ASSERT(len == 2 && memcmp(buf, "f0", 2) == 0);
    zipc_consumer_close(c);
    CHECK(zipc_producer_set_linger(p, 1 * MS));
    undelivered = 0;
    EXPECT_MSG(zipc_producer_close_checked(p, &undelivered), ZIPC_UNDELIVERED, "3 committed");
    ASSERT(undelivered == 3);
    n = name("partly-null");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_producer_set_linger(p, 0));
    send_frames(p, 1);
    EXPECT_MSG(zipc_producer_close_checked(p, NULL), ZIPC_UNDELIVERED, "1 committed");

    /* The plain close lingers the same way, saying nothing: with no linger it is at once. */
    n = name("plain");
    CHECK(zipc_producer_create(n, 4096, &p));
    CHECK(zipc_producer_set_linger(p, 0));
    send_frames(p, 2);
    zipc_producer_close(p);
    EXPECT(zipc_consumer_open(n, &c), ZIPC_NOT_FOUND);
}

int main(void) {
    program = "bad_input.c";
    results_and_messages();
    nulls();
    names_and_capacities();
    out_of_turn_and_too_large();
    closed_peers();
    killed_peers();
    corrupted_segments();
    rendezvous();
    printf("bad_input.c: all cases passed\n");
    return 0;
}
