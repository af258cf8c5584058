/*
 * The C half of ffi/benches/pingpong.rs: the same ping-pong as its Rust half, through the C API.
 *
 *   pingpong echo WAIT PONG CPU    creates PONG, says "ready"; on a line on stdin opens PING
 *                                  (named on that line) and sends back every frame until closed
 *   pingpong ping WAIT PING PONG CPU WARMUP ROUNDS
 *                                  creates PING, opens PONG, says "ready", then times ROUNDS
 *                                  round trips of an 8-byte frame and prints the mean in ns
 *
 * WAIT is how both ends of the process wait: spin or adaptive.
 */
#define _GNU_SOURCE
#include <zipc.h>

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void check(zipc_result r, const char *what) {
    if (r != ZIPC_OK) {
        fprintf(stderr, "pingpong.c: %s: %s (%s)\n", what, zipc_result_name(r),
                zipc_last_error_message());
        exit(1);
    }
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* best effort: a CPU may not exist */
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static zipc_wait wait_mode(const char *name) {
    return strcmp(name, "spin") == 0 ? ZIPC_WAIT_SPIN : ZIPC_WAIT_ADAPTIVE;
}

static int echo(zipc_wait wait, const char *pong, int cpu) {
    pin(cpu);
    zipc_producer *tx;
    check(zipc_producer_create(pong, 4096, &tx), "create");
    check(zipc_producer_set_wait(tx, wait), "set_wait");
    printf("ready\n");
    fflush(stdout);
    char ping[256];
    if (!fgets(ping, sizeof ping, stdin)) return 1;
    ping[strcspn(ping, "\n")] = 0;
    zipc_consumer *rx;
    check(zipc_consumer_open(ping, &rx), "open");
    check(zipc_consumer_set_wait(rx, wait), "set_wait");
    for (;;) {
        const void *data;
        size_t len;
        zipc_result r = zipc_recv(rx, &data, &len, -1);
        if (r == ZIPC_DISCONNECTED) break;
        check(r, "recv");
        check(zipc_send(tx, data, len, -1), "send");
        check(zipc_release(rx), "release");
    }
    zipc_consumer_close(rx);
    zipc_producer_close(tx);
    return 0;
}

static int ping(zipc_wait wait, const char *ping, const char *pong, int cpu, uint64_t warmup,
                uint64_t rounds) {
    pin(cpu);
    zipc_producer *tx;
    check(zipc_producer_create(ping, 4096, &tx), "create");
    zipc_consumer *rx;
    check(zipc_consumer_open(pong, &rx), "open");
    check(zipc_producer_set_wait(tx, wait), "set_wait");
    check(zipc_consumer_set_wait(rx, wait), "set_wait");
    printf("ready\n");
    fflush(stdout);
    uint64_t start = 0;
    for (uint64_t i = 0; i < warmup + rounds; i++) {
        if (i == warmup) start = now_ns();
        check(zipc_send(tx, &i, sizeof i, -1), "send");
        const void *data;
        size_t len;
        check(zipc_recv(rx, &data, &len, -1), "recv");
        uint64_t got;
        memcpy(&got, data, sizeof got);
        if (len != sizeof got || got != i) {
            fprintf(stderr, "pingpong.c: round %" PRIu64 " came back wrong\n", i);
            return 1;
        }
        check(zipc_release(rx), "release");
    }
    uint64_t elapsed = now_ns() - start;
    printf("%.1f\n", (double)elapsed / (double)rounds);
    zipc_producer_close(tx);
    zipc_consumer_close(rx);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "echo") == 0)
        return echo(wait_mode(argv[2]), argv[3], atoi(argv[4]));
    if (argc == 8 && strcmp(argv[1], "ping") == 0)
        return ping(wait_mode(argv[2]), argv[3], argv[4], atoi(argv[5]),
                    strtoull(argv[6], NULL, 10), strtoull(argv[7], NULL, 10));
    fprintf(stderr, "usage: see ffi/benches/pingpong.c\n");
    return 2;
}
