"""Tests of the ctypes wrapper: `python3 ffi/python/test_zipc.py` (libzipc.so built first).

The test suite (ffi/tests/python.rs) runs this with a Rust peer: ZIPC_TEST_FROM_RUST names a
channel a Rust producer fills, ZIPC_TEST_TO_RUST the channel this side creates to send every
frame back, ZIPC_TEST_FRAMES how many. Without them the round trip with Rust is skipped.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zipc  # noqa: E402

# Frame `seq` from the Rust peer: 8 bytes of seq (little-endian), then (seq * 7919) % 2049
# bytes counting up from seq % 256. The same in ffi/tests/python.rs.
PATTERN = bytes(range(256)) * 10


def expected_frame(seq):
    start = seq % 256
    return seq.to_bytes(8, "little") + PATTERN[start:start + (seq * 7919) % 2049]


def unique(tag):
    unique.n = getattr(unique, "n", 0) + 1
    return f"py-{os.getpid()}-{tag}-{unique.n}"


class InProcess(unittest.TestCase):
    def test_round_trip_in_place_and_by_copy(self):
        name = unique("trip")
        with zipc.Producer(name, capacity=4096) as tx, zipc.Consumer(name) as rx:
            self.assertEqual(tx.max_frame_len, 2040)
            self.assertEqual(rx.max_frame_len, 2040)
            frames = [b"", b"x", bytes(range(256)) * 7, b"\0" * 2040]
            for f in frames:
                tx.send(f)
                self.assertEqual(rx.recv(timeout=5), f)
            tx.send(bytearray(b"into"))
            buf = bytearray(16)
            self.assertEqual(rx.recv_into(buf, timeout=5), 4)
            self.assertEqual(bytes(buf[:4]), b"into")

    def test_a_buffer_too_small_keeps_the_frame(self):
        name = unique("small")
        with zipc.Producer(name) as tx, zipc.Consumer(name) as rx:
            tx.send(b"0123456789")
            with self.assertRaises(zipc.TooLarge) as caught:
                rx.recv_into(bytearray(4), timeout=0)
            self.assertEqual(caught.exception.needed, 10)
            self.assertEqual(caught.exception.name, "ZIPC_TOO_LARGE")
            self.assertEqual(rx.recv(timeout=0), b"0123456789")

    def test_waiting_and_closing(self):
        name = unique("wait")
        tx = zipc.Producer(name)
        rx = zipc.Consumer(name)
        with self.assertRaises(zipc.WouldBlock):
            rx.recv(timeout=0)
        with self.assertRaises(zipc.Timeout) as caught:
            rx.recv(timeout=0.001)
        self.assertIn("timed out", caught.exception.message)
        tx.send(b"last")
        tx.close()
        self.assertEqual(list(rx), [b"last"])
        with self.assertRaises(zipc.Disconnected):
            rx.recv()
        rx.close()
        rx.close()  # twice is fine
        with self.assertRaises(ValueError):
            rx.recv()

    def test_errors_carry_result_and_message(self):
        for bad in ["", "a/b", "x" * 300]:
            with self.assertRaises(zipc.ZipcError) as caught:
                zipc.Producer(bad)
            self.assertEqual(caught.exception.result, zipc.INVALID_ARGUMENT)
            self.assertIn("zipc_producer_create", caught.exception.message)
            self.assertIn("name", caught.exception.message)
        with self.assertRaises(zipc.ZipcError) as caught:
            zipc.Producer(unique("cap"), capacity=0)
        self.assertEqual(caught.exception.name, "ZIPC_INVALID_ARGUMENT")
        with self.assertRaises(zipc.ZipcError) as caught:
            zipc.Consumer(unique("missing"))
        self.assertEqual(caught.exception.result, zipc.NOT_FOUND)
        name = unique("big")
        with zipc.Producer(name, capacity=4096) as tx:
            with self.assertRaises(zipc.TooLarge):
                tx.send(b"x" * 2041)
        with self.assertRaises(zipc.ZipcError) as caught:
            zipc.worker_connect()
        self.assertEqual(caught.exception.result, zipc.INVALID_ARGUMENT)
        self.assertEqual(zipc.result_name(zipc.PEER_GONE), "ZIPC_PEER_GONE")
        self.assertEqual(zipc.result_name(1000), "ZIPC_UNKNOWN")


class Rendezvous(unittest.TestCase):
    def test_open_waits_for_the_name_then_gives_up(self):
        name = unique("never")
        with self.assertRaises(zipc.NotFound) as caught:
            zipc.Consumer(name)  # the default: no wait
        self.assertEqual(caught.exception.result, zipc.NOT_FOUND)
        start = time.monotonic()
        with self.assertRaises(zipc.NotFound) as caught:
            zipc.Consumer(name, timeout=0.05)
        took = time.monotonic() - start
        self.assertGreaterEqual(took, 0.05)
        self.assertLess(took, 30)  # only a hang's bound
        self.assertIn(name, caught.exception.message)
        self.assertIn("zipc_consumer_open_timeout", caught.exception.message)

    def test_connected_and_waiting_for_the_consumer(self):
        name = unique("connect")
        with zipc.Producer(name) as tx:
            self.assertFalse(tx.is_connected)
            with self.assertRaises(zipc.WouldBlock):
                tx.wait_for_consumer(timeout=0)
            with self.assertRaises(zipc.Timeout):
                tx.wait_for_consumer(timeout=0.001)
            rx = zipc.Consumer(name, timeout=None)  # there already: no wait
            self.assertTrue(tx.is_connected)
            tx.wait_for_consumer()
            tx.wait_for_consumer(timeout=0)
            rx.close()
            self.assertFalse(tx.is_connected)
        with self.assertRaises(ValueError):
            _ = tx.is_connected

    def test_the_consumer_first(self):
        name = unique("consumer-first")
        got = []

        def consume():
            with zipc.Consumer(name, timeout=60) as rx:
                got.extend(rx)

        consumer = threading.Thread(target=consume)
        consumer.start()
        with zipc.Producer(name, capacity=4096) as tx:
            tx.wait_for_consumer(timeout=60)
            for i in range(100):  # more than the ring holds at once
                tx.send(b"f%d" % i, timeout=60)
        consumer.join()
        self.assertEqual(got, [b"f%d" % i for i in range(100)])

    def test_the_producer_closes_first_and_lingers(self):
        name = unique("producer-first")
        tx = zipc.Producer(name, linger=120)
        for i in range(5):
            tx.send(b"f%d" % i)
        outcome = []

        def close():
            try:
                tx.close()
                outcome.append("closed")
            except zipc.ZipcError as e:
                outcome.append(e)

        closer = threading.Thread(target=close)
        closer.start()  # lingers until the consumer attaches
        with zipc.Consumer(name, timeout=60) as rx:
            self.assertEqual(list(rx), [b"f%d" % i for i in range(5)])
        closer.join()
        self.assertEqual(outcome, ["closed"])

    def test_close_raises_undelivered_with_the_count(self):
        name = unique("undelivered")
        tx = zipc.Producer(name, linger=0.02)
        for i in range(3):
            tx.send(b"f%d" % i)
        start = time.monotonic()
        with self.assertRaises(zipc.Undelivered) as caught:
            tx.close()
        self.assertGreaterEqual(time.monotonic() - start, 0.02)
        e = caught.exception
        self.assertEqual((e.frames, e.result, e.name), (3, zipc.UNDELIVERED, "ZIPC_UNDELIVERED"))
        self.assertIn("3 committed frame(s) were not delivered", e.message)
        tx.close()  # closed already: nothing more
        with self.assertRaises(zipc.NotFound):
            zipc.Consumer(name)  # the name went with the frames

        # A consumer that took one and went: the rest are counted.
        name = unique("partly")
        tx = zipc.Producer(name)
        rx = zipc.Consumer(name)
        for i in range(4):
            tx.send(b"f%d" % i)
        self.assertEqual(rx.recv(timeout=0), b"f0")
        rx.close()
        tx.set_linger(0)
        with self.assertRaises(zipc.Undelivered) as caught:
            tx.close()
        self.assertEqual(caught.exception.frames, 3)
        with self.assertRaises(ValueError):
            tx.set_linger(1)

    def test_a_with_block_raises_undelivered_unless_already_failing(self):
        with self.assertRaises(zipc.Undelivered) as caught:
            with zipc.Producer(unique("with"), linger=0) as tx:
                tx.send(b"lost")
        self.assertEqual(caught.exception.frames, 1)
        with self.assertRaises(KeyError):
            with zipc.Producer(unique("with-error"), linger=0) as tx:
                tx.send(b"lost")
                raise KeyError("the error that counts")


@unittest.skipUnless(os.environ.get("ZIPC_TEST_FROM_RUST"), "no Rust peer (see ffi/tests/python.rs)")
class WithRust(unittest.TestCase):
    def test_receive_byte_exact_and_send_back(self):
        frames = int(os.environ["ZIPC_TEST_FRAMES"])
        with zipc.Consumer(os.environ["ZIPC_TEST_FROM_RUST"]) as rx, \
                zipc.Producer(os.environ["ZIPC_TEST_TO_RUST"], capacity=64 * 1024) as tx:
            print("created", flush=True)  # the Rust side opens it now
            seq = 0
            for frame in rx:
                if frame != expected_frame(seq):
                    self.fail(f"frame {seq}: {len(frame)} bytes, not as sent")
                tx.send(frame, timeout=60)
                seq += 1
            self.assertEqual(seq, frames)


if __name__ == "__main__":
    unittest.main(verbosity=2)
