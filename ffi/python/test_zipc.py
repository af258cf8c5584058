"""Tests of the ctypes wrapper: `python3 ffi/python/test_zipc.py` (libzipc.so built first).

The test suite (ffi/tests/python.rs) runs this with a Rust peer: ZIPC_TEST_FROM_RUST names a
channel a Rust producer fills, ZIPC_TEST_TO_RUST the channel this side creates to send every
frame back, ZIPC_TEST_FRAMES how many. Without them the round trip with Rust is skipped.
"""

import os
import sys
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
